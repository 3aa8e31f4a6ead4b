/**
 * The ONNX Runtime WebGPU comparison of bench/RESULTS.md: strata's e2e rows (prefill of 512
 * tokens and batch-1 decode, per weight precision) beside onnxruntime-node's WebGPU execution
 * provider on the same weights exported from PyTorch to ONNX (bench/ort/run.sh, bench_ort.py).
 */
interface Row {
  [k: string]: unknown;
}

/** Median, min and max of the timed runs. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

/** One precision's run of bench/ort/bench_ort.py. */
export interface OrtRun {
  precision: string;
  ep: string;
  onnxruntime?: string | null;
  date?: string;
  sessionSeconds?: number;
  check?: { reference: string; tolerance: number; worstRelative: number };
  correct?: boolean;
  prefill?: { tokens: number; tokensPerSecond: Spread };
  decode?: { tokens: number; tokensPerSecond: Spread; msPerToken: number };
  /** Where the run (or the export before it) failed, with the message. */
  error?: string;
}

/** What bench/ort/bench_ort.py (and run.sh, for failures before it) writes. */
export interface OrtResults {
  peer: 'onnxruntime-webgpu';
  device?: string;
  export?: string;
  precisions: Record<string, OrtRun>;
}

export const isOrtResults = (x: unknown): x is OrtResults =>
  typeof x === 'object' && x !== null && (x as Row).peer === 'onnxruntime-webgpu';

const f = (x: unknown, d = 0) => (typeof x === 'number' ? x.toFixed(d) : '—');
const ratio = (a: unknown, b: unknown) =>
  typeof a === 'number' && typeof b === 'number' ? `${(a / b).toFixed(2)}×` : '—';
const spread = (s: Spread | undefined, d: number) =>
  s ? `${f(s.median, d)} (${f(s.min, d)}–${f(s.max, d)})` : '—';

/** Markdown lines of the section; `e2e` is strata's e2e suite (one row per precision). */
export function ortSection(e2e: Row[], ort: OrtResults, e2eFrom: string): string[] {
  const runs = Object.values(ort.precisions);
  const version = runs.find((r) => r.onnxruntime)?.onnxruntime;
  const lines = [
    `## end to end vs ONNX Runtime WebGPU${version ? ` (onnxruntime-node ${version})` : ''}: same weights as ONNX`,
    '',
    `strata: the e2e rows (${e2eFrom}), tokens/s. ONNX Runtime: the WebGPU execution provider of onnxruntime-node's library (its own Dawn, on Vulkan; driven from Python through the C API, bench/ort/ort_capi.py) on the e2e weights (strata's seeded init, built in PyTorch by bench/ort/random_init.py) exported by torch.onnx.export from HF LlamaForCausalLM (eager attention, the KV cache as graph inputs/outputs kept on the GPU between steps; ${ort.export ?? 'bench/ort/export_onnx.py'}); prefill of 512 tokens from an empty cache, and tg128 (128 greedy steps from an empty cache, as llama-bench): median of 5 runs (min–max) after a warm-up${ort.device ? `; ${ort.device}` : ''}. "check" is the largest |ONNX Runtime − PyTorch| logit on a 16-token prompt and 3 decode steps, relative to the largest |logit|. Ratios are strata ÷ ONNX Runtime: above 1× strata is faster.`,
    '',
    '| weights | strata pp512 | strata decode | ORT pp512 | ORT tg128 | check | strata ÷ ORT (prefill / decode) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  const notes: string[] = [];
  for (const p of ['f32', 'f16']) {
    const s = e2e.find((r) => (r.precision ?? 'f32') === p);
    const o = ort.precisions[p];
    if (!s && !o) continue;
    const sp = ((s?.prefill ?? []) as Row[]).find((x) => x.tokens === 512)?.tokensPerSecond;
    const sd = (s?.decode as Row | undefined)?.tokensPerSecond;
    const op = o?.prefill?.tokensPerSecond;
    const od = o?.decode?.tokensPerSecond;
    const check = o?.check
      ? `${o.check.worstRelative.toExponential(1)}${o.correct === false ? ' (MISMATCH)' : ''}`
      : '—';
    if (o?.error) notes.push(`ONNX Runtime ${p} failed: ${o.error}`);
    lines.push(
      `| ${p} | ${f(sp)} | ${f(sd, 1)} | ${o?.error && !op ? 'failed' : spread(op, 0)} | ${o?.error && !od ? 'failed' : spread(od, 1)} | ${check} | ${ratio(sp, op?.median)} / ${ratio(sd, od?.median)} |`,
    );
  }
  for (const n of notes) lines.push('', n);
  lines.push('');
  return lines;
}
