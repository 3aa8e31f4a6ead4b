/**
 * The diffusion comparison of the RESULTS tables (issue 16's bench row): bench/diffusion-speed.ts
 * (strata: a LLaDA-8B-shaped model cut to a few layers, f16 weights, each sampler setting timed
 * over one generation after a warm-up) beside bench/diffusion_peer.py (the PyTorch reference
 * samplers, ML-GSAI/LLaDA's generate() and NVlabs/Fast-dLLM's, on the same shape and schedule,
 * median of its runs). Rows pair by setting name; a schedule that differs is said, not compared.
 */
interface Row {
  [k: string]: unknown;
}

/** What bench/diffusion-speed.ts writes. */
export interface DiffusionStrata {
  layers: number;
  prompt: number;
  kind: string;
  genLength: number;
  blockLength: number;
  steps: number;
  remasking: string;
  temperature: number;
  rows: {
    label: string;
    pick: string;
    forwards: number;
    seconds: number;
    tokensPerSecond: number;
  }[];
}

/** What bench/diffusion_peer.py writes. */
export interface DiffusionPeer {
  peer: string;
  model: string;
  device: string;
  torch: string;
  prompt: number;
  sampler: {
    steps: number;
    gen_length: number;
    block_length: number;
    temperature: number;
    remasking: string;
  };
  /** The block-diffusion rows' settings (absent in runs before they existed). */
  block_sampler?: { block: number; temperature: number; nucleus_p: number; ddpm_steps: number };
  rows: {
    setting: string;
    seconds_median: number;
    seconds_min: number;
    seconds_max: number;
    runs: number;
    forwards: number;
    tokens_per_s: number;
  }[];
}

/** What bench/block-diffusion-speed.ts writes: BD3-LM samplers beside LLaDA exact, same weights. */
export interface DiffusionBlock {
  layers: number;
  prompt: number;
  block: number;
  rows: { label: string; forwards: number; seconds: number; tokensPerSecond: number }[];
}

export const isDiffusionBlock = (x: unknown): x is DiffusionBlock =>
  typeof x === 'object' && x !== null && 'block' in x && Array.isArray((x as Row).rows);

export const isDiffusionStrata = (x: unknown): x is DiffusionStrata =>
  typeof x === 'object' && x !== null && 'blockLength' in x && Array.isArray((x as Row).rows);

export const isDiffusionPeer = (x: unknown): x is DiffusionPeer =>
  typeof x === 'object' &&
  x !== null &&
  typeof (x as Row).peer === 'string' &&
  String((x as Row).peer).startsWith('PyTorch reference samplers');

/** Whether the two ran the same schedule (prompt, gen length, block, steps, remasking, t). */
export function sameSchedule(s: DiffusionStrata, p: DiffusionPeer): boolean {
  const q = p.sampler;
  return (
    s.prompt === p.prompt &&
    s.genLength === q.gen_length &&
    s.blockLength === q.block_length &&
    s.steps === q.steps &&
    s.remasking === q.remasking &&
    s.temperature === q.temperature
  );
}

/** Markdown lines of the section; `from` says which run each side comes from. */
export function diffusionSection(
  s: DiffusionStrata,
  p: DiffusionPeer | null,
  from: { strata: string; peer: string },
  block: { run: DiffusionBlock; from: string } | null = null,
): string[] {
  const comparable = p !== null && sameSchedule(s, p);
  const lines = [
    `## diffusion: LLaDA-8B shape cut to ${s.layers} layers, random weights (peer: ${p ? `${p.peer}, ${p.model}` : 'none this run'})`,
    '',
    `strata (${from.strata}): f16 weights, a prompt of ${s.prompt} ids, ${s.genLength} tokens in blocks of ${s.blockLength} over ${s.steps} steps, ${s.remasking} remasking, temperature ${s.temperature}; one generation after a warm-up, tokens/s of generated tokens.${p ? ` PyTorch (${from.peer}; ${p.device}, torch ${p.torch}): the same schedule${comparable ? '' : ' **differs** (no ratio)'}, median of its runs (min–max).` : ''} Random weights give flat distributions, so a threshold rarely fires: its saving depends on a trained model's confidences. Ratios are strata ÷ PyTorch: above 1× strata is faster.`,
    '',
    '| setting | pick | forwards | strata s | strata tokens/s | PyTorch s | PyTorch tokens/s | strata ÷ PyTorch |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  const f = (x: number | undefined, d: number) => (x === undefined ? '—' : x.toFixed(d));
  for (const r of s.rows) {
    const q = comparable ? p.rows.find((x) => x.setting === r.label) : undefined;
    lines.push(
      `| ${r.label} | ${r.pick} | ${r.forwards} | ${f(r.seconds, 2)} | ${f(r.tokensPerSecond, 1)} | ${q ? `${f(q.seconds_median, 2)} (${f(q.seconds_min, 2)}–${f(q.seconds_max, 2)})` : '—'} | ${f(q?.tokens_per_s, 1)} | ${q ? `${(r.tokensPerSecond / q.tokens_per_s).toFixed(2)}×` : '—'} |`,
    );
  }
  lines.push('');
  if (block) lines.push(...blockLines(block.run, block.from, p, from.peer));
  return lines;
}

/**
 * Block diffusion (BD3-LM), beside bd3lms's sampler driving the same weights in PyTorch where
 * the peer run has its rows (diffusion_peer.py's bd3lm settings) for the same prompt and block.
 * A strata row with its draw on the GPU pairs with the peer's row of the same sampler.
 */
function blockLines(
  b: DiffusionBlock,
  from: string,
  p: DiffusionPeer | null,
  peerFrom: string,
): string[] {
  // --no-llada leaves the LLaDA row out: the table above has it.
  const llada = b.rows.some((r) => !r.label.startsWith('bd3lm'))
    ? "; the LLaDA row is the bidirectional model's exact sampler, timed in the same process"
    : '';
  const q = p?.block_sampler;
  const peer = q && p.prompt === b.prompt && q.block === b.block ? p : null;
  const peerRow = (label: string) =>
    peer?.rows.find((x) => x.setting === label.replace(/, GPU draw$/, ''));
  const f = (x: number) => x.toFixed(1);
  return [
    `Block diffusion (${from}, bench/block-diffusion-speed.ts): the same weights with attention made block-causal over blocks of ${b.block}, a prompt of ${b.prompt} ids, temperature 1, nucleus 0.9${llada}. One generation after a warm-up.${peer ? ` PyTorch (${peerFrom}): kuleshov-group/bd3lms's _ddpm_caching_update (kv_cache on) driving the same weights, median of its runs; its forwards include the prompt's blocks and one more forward a block that stores the block's K/V (strata writes them in the next block's first forward). Ratios are strata ÷ PyTorch tokens/s.` : ''}`,
    '',
    '| sampler | forwards | s | tokens/s | ms a forward | PyTorch forwards | PyTorch s | PyTorch tokens/s | strata ÷ PyTorch |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...b.rows.map((r) => {
      const x = peerRow(r.label);
      const them = x
        ? `${x.forwards} | ${x.seconds_median.toFixed(2)} (${x.seconds_min.toFixed(2)}–${x.seconds_max.toFixed(2)}) | ${f(x.tokens_per_s)} | ${(r.tokensPerSecond / x.tokens_per_s).toFixed(2)}×`
        : '— | — | — | —';
      return `| ${r.label} | ${r.forwards} | ${r.seconds.toFixed(2)} | ${f(r.tokensPerSecond)} | ${f((1000 * r.seconds) / r.forwards)} | ${them} |`;
    }),
    '',
  ];
}
