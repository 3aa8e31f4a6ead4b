/**
 * Merge one device run's strata and peer figures into bench/results/<date>-<device>.json
 * and regenerate bench/RESULTS.md from it. Usage:
 *   tsx bench/report.ts <strata.json> <peers.json> "<exact device command>" [<llamacpp.json>] [<ort.json>]
 *     [<diffusion-strata.json>] [<diffusion-peer.json>] [<block-diffusion.json>]
 *     [<explore results.json> ...] [--md FILE]
 * --md: where the tables go (default bench/RESULTS.md, the H200's): a run on another device
 * (an H100 when no H200 came) gets its own file, so one device's figures never replace another's.
 * llamacpp.json is llama.cpp's side (bench/llama-cpp/run.sh, a device call of its own: see
 * bench/device.sh), compared with the e2e rows; ort.json is ONNX Runtime WebGPU's
 * (bench/ort/run.sh); the diffusion files are bench/diffusion-speed.ts's,
 * bench/diffusion_peer.py's and bench/block-diffusion-speed.ts's; explore results (issue 17's
 * sparse decode sweep, bench/sparse/run.sh) are kept in bench/results/ and named by path, a
 * later one's designs replacing an earlier one's at the same context. Each is told apart by its
 * content, so any may come alone.
 * Every figure in RESULTS.md comes from these files; nothing is typed in by hand.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { llamaCppSection, type LlamaCppResults } from './llama-cpp/table.ts';
import { isOrtResults, ortSection, type OrtResults } from './ort/table.ts';
import {
  diffusionSection,
  isDiffusionBlock,
  isDiffusionPeer,
  isDiffusionStrata,
  type DiffusionBlock,
  type DiffusionPeer,
  type DiffusionStrata,
} from './diffusion-table.ts';
import { disagreement, spreadOf, withRange, type Spread } from './spread.ts';
import { isSweep, sweepSection, type Sweep } from './sparse/table.ts';
import type { PhaseProfile } from '../runtime/dispatch-profile.ts';

interface Row {
  [k: string]: unknown;
}
const argv = process.argv.slice(2);
const mdAt = argv.indexOf('--md');
const mdFile = mdAt < 0 ? 'bench/RESULTS.md' : argv.splice(mdAt, 2)[1];
if (!mdFile) {
  console.error('--md needs a file name');
  process.exit(2);
}
const [strataPath, peersPath, command, ...peerPaths] = argv;
if (!strataPath || !peersPath || !command) {
  console.error(
    'usage: tsx bench/report.ts <strata.json> <peers.json> "<device command>" [<llamacpp.json>] [<ort.json>]',
  );
  process.exit(2);
}
const strata = JSON.parse(readFileSync(strataPath, 'utf8'));
const peers = JSON.parse(readFileSync(peersPath, 'utf8'));
let llamacpp: LlamaCppResults | null = null;
let ort: OrtResults | null = null;
/** The diffusion bench's two sides, each with the run it comes from. */
interface DiffusionResults {
  strata: DiffusionStrata | null;
  strataFrom: string;
  peer: DiffusionPeer | null;
  peerFrom: string;
  block?: DiffusionBlock | null;
  blockFrom?: string;
}
const diffusion: DiffusionResults = { strata: null, strataFrom: '', peer: null, peerFrom: '' };
/** Explore sweeps' results.json paths, in the order given (bench/results/ keeps them). */
let sweeps: string[] = [];
for (const path of peerPaths) {
  const x: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (isSweep(x)) {
    if (!path.startsWith('bench/results/'))
      throw new Error(`${path}: keep an explore sweep in bench/results/ and name it from there`);
    sweeps.push(path);
  } else if (isOrtResults(x)) ort = x;
  else if (isDiffusionStrata(x)) Object.assign(diffusion, { strata: x, strataFrom: 'this run' });
  // A peer file kept in bench/results/ comes from an earlier run; one given fresh is this run's.
  else if (isDiffusionPeer(x))
    Object.assign(diffusion, {
      peer: x,
      peerFrom: path.startsWith('bench/results/') ? path : 'this run',
    });
  else if (isDiffusionBlock(x)) Object.assign(diffusion, { block: x, blockFrom: 'this run' });
  else llamacpp = x as LlamaCppResults;
}
const date = String(strata.date).slice(0, 10);
const device = String(peers.device ?? strata.device)
  .toLowerCase()
  .replace(/[^a-z0-9]+/g, '-')
  .replace(/^-|-$/g, '');
const SUITES = [
  'matmul',
  'attention',
  'e2e',
  'hybrid',
  'scan',
  'compile',
  'linear',
  'sparse',
  'batch',
];
/**
 * A run of some suites only keeps the others' latest figures in RESULTS.md: each section says
 * which results file it comes from. Result files are never overwritten: a second run on one day
 * gets the time in its name.
 */
const carried: Record<string, string> = {};
const runKey = (n: string) => `${n.slice(0, 10)}-${/^.{10}-(\d{4})-/.exec(n)?.[1] ?? '0000'}`;
for (const file of readdirSync('bench/results')
  .filter((n) => new RegExp(`^\\d{4}-\\d{2}-\\d{2}(-\\d{4})?-${device}\\.json$`).test(n))
  // Newest first: by date, then by the time a same-day run carries in its name.
  .sort((a, b) => runKey(b).localeCompare(runKey(a)))) {
  let old: {
    strata?: Row;
    peers?: Row;
    llamacpp?: LlamaCppResults;
    ort?: OrtResults;
    diffusion?: DiffusionResults;
    sweeps?: string[];
    carried?: Record<string, string>;
  } = {};
  try {
    old = JSON.parse(readFileSync(`bench/results/${file}`, 'utf8'));
  } catch {
    continue;
  }
  // A file that carried a suite itself names the run it came from.
  const from = (k: string) => old.carried?.[k] ?? file;
  if (!llamacpp && old.llamacpp) {
    llamacpp = old.llamacpp;
    carried.llamacpp = from('llamacpp');
  }
  if (!ort && old.ort) {
    ort = old.ort;
    carried.ort = from('ort');
  }
  if (!diffusion.strata && old.diffusion?.strata) {
    diffusion.strata = old.diffusion.strata;
    carried.diffusion = from('diffusion');
    diffusion.strataFrom = `bench/results/${carried.diffusion}`;
  }
  if (!diffusion.peer && old.diffusion?.peer) {
    diffusion.peer = old.diffusion.peer;
    // 'this run' in that file is that file's run.
    const p = old.diffusion.peerFrom;
    diffusion.peerFrom = p && p !== 'this run' ? p : `bench/results/${from('diffusion')}`;
  }
  if (!sweeps.length && old.sweeps?.length) {
    sweeps = old.sweeps;
    carried.sweeps = from('sweeps');
  }
  if (!diffusion.block && old.diffusion?.block) {
    diffusion.block = old.diffusion.block;
    const b = old.diffusion.blockFrom;
    diffusion.blockFrom = b && b !== 'this run' ? b : `bench/results/${from('diffusion')}`;
  }
  for (const k of SUITES) {
    if (k in strata || k in carried || !old.strata?.[k] || (old.strata[k] as Row).error) continue;
    strata[k] = old.strata[k];
    peers[k] = old.peers?.[k];
    carried[k] = from(k);
  }
}
const combined = { command, strata, peers, llamacpp, ort, diffusion, sweeps, carried };
let resultFile = `bench/results/${date}-${device}.json`;
if (existsSync(resultFile)) {
  const time = String(strata.date).slice(11, 16).replace(':', '');
  resultFile = `bench/results/${date}-${time}-${device}.json`;
  if (existsSync(resultFile)) throw new Error(`${resultFile} exists; refusing to overwrite it`);
}
writeFileSync(resultFile, JSON.stringify(combined, null, 1) + '\n');

const f = (x: unknown, d = 2) => (typeof x === 'number' ? x.toFixed(d) : String(x ?? '—'));
const ratio = (a: unknown, b: unknown) =>
  typeof a === 'number' && typeof b === 'number' ? `${(a / b).toFixed(2)}×` : '—';
const lines: string[] = [
  '# strata benchmark results',
  '',
  `Generated by \`bench/report.ts\` from \`${resultFile}\`; do not edit by hand.`,
  '',
  `- device: ${strata.device} (${peers.device}); date: ${strata.date}`,
  `- Dawn flags: ${(strata.dawnFlags as string[]).join(' ') || '(none)'}; features: ${(strata.features as string[]).join(', ')}`,
  // A run of the diffusion or llama.cpp benches alone has no HF peers file of its own.
  peers.torch
    ? `- peers: torch ${peers.torch}, transformers ${peers.transformers}`
    : '- peers: no HF peers in this run',
  `- command: \`${command}\``,
  '',
  'Ratios are strata ÷ peer: above 1× strata is faster (throughput) — for times, below 1× is faster.',
  '',
  'One run. The same kernel has measured up to 5× apart between runs on these machines, and within',
  "one run the matmul suite's later shapes have run slower than the same kernels in a fresh process",
  '(bench/results/ keeps every run and the tile sweeps): compare ratios, and compare runs with care.',
  '',
];
// A suite that threw is reported as such, and its section is left out below.
if (Object.keys(carried).length) {
  lines.push(
    `Suites not run this time, with their latest figures: ${Object.entries(carried)
      .map(([k, file]) => `${k} (bench/results/${file})`)
      .join(', ')}.`,
    '',
  );
}
const failed = SUITES.filter((k) => strata[k]?.error || peers[k]?.error);
for (const k of failed) {
  lines.push(
    `**suite ${k} failed**: ${strata[k]?.error ?? ''} ${peers[k]?.error ? `(peer: ${peers[k].error})` : ''}`,
    '',
  );
  delete strata[k];
}
if (strata.matmul) {
  lines.push(
    '## matmul (peer: cuBLAS through PyTorch, fp32 with TF32 off, and fp16 on tensor cores)',
    '',
    'strata f16 rows: prefill shapes are f16 × f16 on tensor cores (WGSL subgroup matrices), reading',
    'f32 activations (rounded to f16 as they are staged) and writing f32; decode shapes read f16',
    'weights with f32 activations. cuBLAS f16 reads and writes f16 throughout. Each strata row is',
    'checked against f64 dot products at 256 sampled outputs.',
    '',
    '| shape M×N×K | precision | strata kernel | strata ms | strata TFLOP/s | sampled rel. error | cuBLAS ms | cuBLAS TFLOP/s | strata ÷ cuBLAS throughput |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const r of strata.matmul as Row[]) {
    const peer = String(r.precision).startsWith('f16') ? 'f16' : 'f32';
    const p =
      (peers.matmul as Row[]).find((q) => q.shape === r.shape && (q.precision ?? 'f32') === peer) ??
      {};
    const err = typeof r.sampledRelErr === 'number' ? r.sampledRelErr.toExponential(1) : '—';
    lines.push(
      r.error
        ? `| ${r.shape} | ${r.precision ?? 'f32'} | ${r.error} | — | — | — | ${f(p.ms, 3)} | ${f(p.tflops)} | — |`
        : `| ${r.shape} | ${r.precision ?? 'f32'} | ${r.kernel} | ${f(r.ms, 3)} | ${f(r.tflops)} | ${err} | ${f(p.ms, 3)} | ${f(p.tflops)} | ${ratio(r.tflops, p.tflops)} |`,
    );
  }
  lines.push('');
}
if (strata.attention) {
  lines.push(
    '## attention (f32, 32 heads, 8 KV heads, head_dim 128; peer: torch SDPA fp32)',
    '',
    '| case | strata ms | SDPA ms | strata ÷ SDPA throughput |',
    '| --- | --- | --- | --- |',
  );
  for (const r of strata.attention as Row[]) {
    const p = (peers.attention as Row[]).find((q) => q.case === r.case) ?? {};
    lines.push(
      `| ${r.case} | ${f(r.ms, 3)} | ${p.error ? String(p.error).slice(0, 40) : f(p.ms, 3)} | ${ratio(p.ms, r.ms)} |`,
    );
  }
  lines.push('');
}
/** "5 runs of 64 tokens, 1.9–2.1" from the per-run figures, where the results have them. */
function runsNote(runs: unknown): string {
  if (!Array.isArray(runs) || runs.length === 0) return 'one run';
  const ms = runs as number[];
  return `${ms.length} runs of 64 tokens, ${f(Math.min(...ms), 3)}–${f(Math.max(...ms), 3)}`;
}

/** One end-to-end table: strata's prefill and decode beside HF eager and the bandwidth bound. */
function endToEnd(s: Row & { prefill: Row[]; decode: Row }, p: Row) {
  const disagree: string[] = [];
  /** strata's median with its range where the runs were kept, noting runs that disagree. */
  const cell = (label: string, sp: Spread | null, median: number, digits: number) => {
    if (!sp) return f(median, digits);
    const d = disagreement(label, sp, 'tokens/s');
    if (d) disagree.push(d);
    return withRange(sp, digits);
  };
  lines.push(
    `## end to end: ${s.model}${s.precision ? `, weights ${s.precision}` : ''} (peer: ${p.model})`,
    '',
    '| phase | strata tokens/s | HF eager tokens/s | strata ÷ HF | bandwidth bound tokens/s | strata ÷ bound |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  for (const r of s.prefill) {
    const q = ((p.prefill ?? []) as Row[]).find((x) => x.tokens === r.tokens) ?? {};
    lines.push(
      `| prefill ${r.tokens} | ${cell(`prefill ${r.tokens}`, spreadOf(Number(r.tokens), Number(r.tokensPerSecond), [Number(r.minSeconds), Number(r.maxSeconds)], Number(r.runs)), Number(r.tokensPerSecond), 0)} | ${q.error ? 'OOM' : f(q.tokensPerSecond, 0)} | ${ratio(r.tokensPerSecond, q.tokensPerSecond)} | — | — |`,
    );
  }
  const d = s.decode as Record<string, number>;
  const pd = (p.decode ?? {}) as Row;
  lines.push(
    `| decode (batch 1) | ${cell('decode', Array.isArray(s.decode.msPerTokenRuns) ? spreadOf(1000, d.tokensPerSecond, s.decode.msPerTokenRuns as number[]) : null, d.tokensPerSecond, 1)} | ${f(pd.tokensPerSecond, 1)} | ${ratio(d.tokensPerSecond, pd.tokensPerSecond)} | ${f(d.boundTokensPerSecond, 1)} (copy) / ${f(d.readBoundTokensPerSecond, 1)} (read) | ${ratio(d.tokensPerSecond, d.boundTokensPerSecond)} / ${ratio(d.tokensPerSecond, d.readBoundTokensPerSecond)} |`,
  );
  const check =
    typeof s.lastLogitsRelErrVsHf === 'number'
      ? ` Last-row logits after the 512-token prefill vs HF on the same weights: max relative error ${s.lastLogitsRelErrVsHf.toExponential(1)}.`
      : '';
  lines.push(
    '',
    ...disagree.flatMap((l) => [l, '']),
    `${s.bundleWeightBytes ? `Weights ${(Number(s.bundleWeightBytes) / 2 ** 30).toFixed(2)} GiB stored; the resident set grew ${(Number(s.loadRssBytes) / 2 ** 30).toFixed(2)} GiB while loading. ` : ''}Decode: ${d.dispatchesPerToken} dispatches per token; wall ${f(d.msPerToken, 3)} ms/token (median of ${runsNote(d.msPerTokenRuns)}); GPU ${f(d.gpuMsPerToken, 3)} ms/token (timestamp queries); weights ${(d.weightBytesPerToken / 2 ** 30).toFixed(2)} GiB read per token (stored bytes of the weights a token uses); copy bandwidth ${f(d.copyBandwidthGBs, 0)} GB/s (read + write of copyBufferToBuffer; understates HBM), streaming-read bandwidth ${f(d.readBandwidthGBs, 0)} GB/s (a read kernel: the realistic bound for GEMV decode); without the one-step-ahead pipeline (one host round trip per token) ${f(d.unpipelinedTokensPerSecond, 1)} tokens/s.${check}`,
    '',
  );
  const prof = (s.decode as Row).profile as PhaseProfile | null | undefined;
  if (prof)
    profileTable(
      prof,
      `Where a decode step's GPU time goes (each dispatch timed in a pass of its own, median of 10 steps; the ${f(prof.dispatchSumMs, 3)} ms sum leaves out the gaps between dispatches that the one-pass ${f(d.gpuMsPerToken, 3)} ms includes):`,
      'ms per token',
    );
  const pre = s.prefillProfile as PhaseProfile | null | undefined;
  if (pre)
    profileTable(
      pre,
      `Where a 512-token prefill's GPU time goes (one chunk from an empty cache, each dispatch timed in a pass of its own, median of 5 runs; ${f(pre.dispatchSumMs, 3)} ms in all, ${f(512 / (pre.dispatchSumMs / 1000), 0)} tokens/s without the gaps between dispatches):`,
      'ms per chunk',
    );
}

/** A step's GPU time by role in the layer (runtime/dispatch-profile.ts), its 12 largest. */
function profileTable(prof: PhaseProfile, caption: string, unit: string): void {
  lines.push(
    caption,
    '',
    `| role in the layer | dispatches | ${unit} | share |`,
    '| --- | --- | --- | --- |',
  );
  for (const r of prof.roles.slice(0, 12))
    lines.push(
      `| ${r.role} | ${r.dispatches} | ${f(r.ms, 3)} | ${((100 * r.ms) / prof.dispatchSumMs).toFixed(0)}% |`,
    );
  lines.push('');
}
// One row per weight precision (older results files hold a single f32 row). HF ran in f32.
for (const suite of ['e2e', 'hybrid'] as const) {
  const rows = strata[suite];
  if (rows) for (const r of ([] as Row[]).concat(rows)) endToEnd(r as never, peers[suite] ?? {});
}
if (llamacpp) {
  const e2eFrom = carried.e2e ? `bench/results/${carried.e2e}` : 'this run';
  lines.push(...llamaCppSection(([] as Row[]).concat(strata.e2e ?? []), llamacpp, e2eFrom));
}
if (ort) {
  const e2eFrom = carried.e2e ? `bench/results/${carried.e2e}` : 'this run';
  lines.push(...ortSection(([] as Row[]).concat(strata.e2e ?? []), ort, e2eFrom));
}
if (diffusion.strata)
  lines.push(
    ...diffusionSection(
      diffusion.strata,
      diffusion.peer,
      {
        strata: diffusion.strataFrom,
        peer: diffusion.peerFrom,
      },
      diffusion.block ? { run: diffusion.block, from: diffusion.blockFrom ?? '' } : null,
    ),
  );
if (strata.scan) {
  lines.push(
    '## scan: 2-layer Mamba-1 (Mamba-2.8B widths) and Mamba-2 (Mamba2-2.7B widths) prefill, same weights (peer: HF transformers PyTorch path)',
    '',
    '| model | tokens | strata tokens/s | HF tokens/s | strata ÷ HF | last-row logits rel. error vs HF |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  for (const r of (strata.scan as Row[]).filter((x) => x.tokens)) {
    const q =
      ((peers.scan ?? []) as Row[]).find((x) => x.model === r.model && x.tokens === r.tokens) ?? {};
    lines.push(
      `| ${r.model} | ${r.tokens} | ${f(r.tokensPerSecond, 0)} | ${q.error ? 'OOM' : f(q.tokensPerSecond, 0)} | ${ratio(r.tokensPerSecond, q.tokensPerSecond)} | ${r.lastLogitsRelErrVsHf === null ? '—' : Number(r.lastLogitsRelErrVsHf).toExponential(1)} |`,
    );
  }
  const d = (strata.scan as Row[]).filter((x) => x.prefillDispatchesPerChunk);
  lines.push(
    '',
    `Prefill dispatches per chunk of up to 4096 tokens: ${d.map((x) => `${x.model} ${x.prefillDispatchesPerChunk}`).join(', ')}.`,
    '',
  );
}
if (strata.compile) {
  lines.push(
    '## compile (CPU side, no weights; target < 300 ms)',
    '',
    '| spec | ms |',
    '| --- | --- |',
  );
  for (const r of strata.compile as Row[]) lines.push(`| ${r.spec} | ${f(r.ms, 1)} |`);
  lines.push('');
}
if (strata.linear) {
  const fla = (peers.linear ?? {}) as Row;
  lines.push(
    `## linear recurrence: 16 heads, key and value head dims 128, f32 (peer: fla ${fla.fla ?? '—'} Triton kernels, chunk_* for prefill, fused_recurrent_* for decode)`,
    '',
    '| family | case | strata form | strata ms | strata dispatches | fla ms | strata ÷ fla throughput |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  const lin = strata.linear as { rows: Row[]; ssd: Row[] };
  for (const r of lin.rows) {
    // A row timing one pass of the multi-pass form alone has no fla counterpart.
    const part = String(r.form ?? '').endsWith(' only');
    const q = part
      ? {}
      : (((fla.rows ?? []) as Row[]).find((x) => x.family === r.family && x.T === r.T) ?? {});
    lines.push(
      `| ${r.family} | ${r.case} | ${r.form ?? '—'} | ${f(r.ms, 3)} | ${r.dispatches} | ${q.error ? String(q.error).slice(0, 50) : f(q.ms, 3)} | ${ratio(q.ms, r.ms)} |`,
    );
  }
  if (fla.error) lines.push('', `fla failed to load: ${fla.error}`);
  lines.push(
    '',
    "strata's times are GPU timestamps around its dispatch; fla's are CUDA events around back-to-back Python calls, " +
      'so a one-token decode measures how fast Python launches its Triton kernel (~0.1–0.5 ms), not the kernel: the decode ratios compare ' +
      "unlike things. Prefill, where both sides' kernels dominate, is the comparison that counts. fla 0.5.2's chunk_delta_rule refuses float32.",
  );
  lines.push(
    '',
    "Mamba-2's SSD (Mamba2-2.7B widths: 80 heads of 64, state 128, 1 group) on its own chunked kernels and as a head-decay linear_recurrence:",
    '',
    '| kernel | case | ms | dispatches |',
    '| --- | --- | --- | --- |',
  );
  for (const r of lin.ssd)
    lines.push(`| ${r.kernel} | ${r.case} | ${f(r.ms, 3)} | ${r.dispatches} |`);
  lines.push('');
}
if (strata.sparse && !(strata.sparse as Row).error) {
  lines.push(
    '## block-sparse attention against dense (f32, 32 heads, 8 KV heads, head_dim 128, blocks of 64)',
    '',
    '| context | phase | layout | density (FLOPs ÷ dense) | ms | dense ÷ sparse time |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  for (const r of strata.sparse as Row[]) {
    lines.push(
      `| ${r.context} | ${r.phase} | ${r.layout} | ${f(r.density, 3)} | ${f(r.ms, 3)} | ${f(r.speedup)} |`,
    );
  }
  lines.push(
    '',
    'Time scaling with density means dense ÷ sparse near 1 ÷ density; decode at 4k is launch-bound either way.',
    '',
  );
}
if (strata.batch) {
  const rows = strata.batch as Row[];
  const mib = (x: unknown) => (typeof x === 'number' ? (x / 2 ** 20).toFixed(1) : '—');
  lines.push(
    '## batched decode (f32, B sequences a step; compile --batch B, runtime/batch.ts)',
    '',
    'Throughput is generated tokens/s over all B sequences (median of 5 runs; each step reads its',
    "tokens back, so B = 1 is the unpipelined decode). Memory per sequence is the bundle's KV caches",
    'and recurrent states at the compiled capacity; the largest B is weights + B × that within each budget.',
    'First token: ms until all B sequences have their first token, B prompts of the given length each',
    'prefilled into its batch slot (maxT tokens a step) against fed a token per batched step (median of 3).',
    '',
    '| model | B | tokens/s | ms/step | × B=1 | state MiB/seq | step activations MiB | largest B (budgets) | first token ms: slot prefill / token by token (prompt) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const r of rows) {
    const one = rows.find((x) => x.model === r.model && x.batch === 1 && !x.error);
    const fit = r.maxBatchAtCapacity as Record<string, number> | undefined;
    lines.push(
      r.error
        ? `| ${r.model} | ${r.batch} | ${String(r.error).slice(0, 80)} | — | — | — | — | — | — |`
        : `| ${r.model} | ${r.batch} | ${f(r.tokensPerSecond, 1)} | ${f(r.msPerStep, 2)} | ${ratio(r.tokensPerSecond, one?.tokensPerSecond)} | ${mib(r.stateBytesPerSequence)} | ${mib(r.stepActivationBytes)} | ${
            fit
              ? Object.entries(fit)
                  .map(([k, v]) => `${k}: ${v}`)
                  .join(', ')
              : '—'
          } | ${
            r.ttftSlotPrefillMs === undefined
              ? '—'
              : `${f(r.ttftSlotPrefillMs, 0)} / ${f(r.ttftTokenByTokenMs, 0)} (${r.ttftPromptTokens})`
          } |`,
    );
  }
  lines.push('');
}
if (sweeps.length) {
  lines.push(
    '## sparse and memory-bounded attention: decode at long context (`strata explore --measure`)',
    '',
    'bench/sparse/llama-1b-attention.strata through `bash bench/sparse/run.sh` (random weights, f32,',
    "batch 1, 32 greedy steps timed). The roofline estimate is explore's for this adapter. A step that",
    'stalls (the first design of a process has, up to 138 ms) pulls the mean down; the median step',
    'shows the steady rate.',
    '',
    ...sweepSection(
      sweeps.map((from) => ({
        sweep: JSON.parse(readFileSync(from, 'utf8')) as Sweep,
        from: `\`${from.replace('bench/results/', '')}\``,
      })),
    ),
  );
}
writeFileSync(mdFile, lines.join('\n'));
console.log(`wrote ${resultFile} and ${mdFile}`);
