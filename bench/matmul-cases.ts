/**
 * One matmul benchmark case: random x and w, the kernel timed on them, and its output checked
 * against an f64 dot product at sampled (row, column) positions (a full CPU reference of a
 * 4096³ product would take minutes). Shared by the matmul suite and the tiling sweep.
 */
import type { KernelLaunch } from '../codegen/kernel-ir.ts';
import { matmulWeightBytes } from '../codegen/kernels/matmul.ts';
import type { GpuContext } from '../runtime/gpu.ts';
import { packF16 } from '../formats/safetensors.ts';
import type { MatmulAttrs } from '../src/graph/ops.ts';
import { activate, roundF16 } from '../src/ops/math.ts';
import { encodeWeight, roundWeight } from '../src/ops/weight-storage.ts';
import type { WeightType } from '../src/graph/dtype.ts';
import { uniform } from '../src/import/random-init.ts';
import { timeLaunches } from './gpu-timer.ts';

export interface MatmulData {
  x: Float32Array;
  w: Float32Array;
  /** Rows of w (K elements each). */
  K: number;
  /** w as the kernel reads it: f32, or f16 packed two per word (q8 / q4: storedWeight). */
  wGpu: { f32: Float32Array; f16: Uint32Array };
  /** q8 / q4 encodings made so far (storedWeight): the words, and the values they decode to. */
  quant: Partial<Record<'q8' | 'q4', { words: Uint32Array; values: Float32Array }>>;
}

/** Uniform random x in [-1, 1) and w scaled by 1/√K, so outputs stay O(1). */
export function matmulData(M: number, N: number, K: number, seed: number): MatmulData {
  const x = uniform(M * K, seed, -1, 1);
  const w = uniform(N * K, seed + 1, -1 / Math.sqrt(K), 1 / Math.sqrt(K));
  return { x, w, K, wGpu: { f32: w, f16: packF16(w) }, quant: {} };
}

/**
 * w stored as type t (src/ops/weight-storage.ts, rows of K) as the kernel binds it, and the
 * values a kernel reading it sees; q8 and q4 are encoded on first use (seconds at 32768 × 2048).
 */
export function storedWeight(
  d: MatmulData,
  t: WeightType,
): { words: Float32Array | Uint32Array; values: (i: number) => number } {
  if (t === 'f32') return { words: d.wGpu.f32, values: (i) => d.w[i] };
  if (t === 'f16') return { words: d.wGpu.f16, values: (i) => roundF16(d.w[i]) };
  let q = d.quant[t];
  if (!q) {
    const bytes = encodeWeight(t, d.w, d.K);
    q = {
      words: new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4),
      values: roundWeight(t, d.w, d.K),
    };
    d.quant[t] = q;
  }
  const values = q.values;
  return { words: q.words, values: (i) => values[i] };
}

/**
 * max |out − ref| / max |ref| over `samples` sampled outputs, ref in f64 on the rounded inputs
 * (plain, activated or gated matmuls; no prologue, bias or residual).
 */
export function sampledError(
  a: MatmulAttrs,
  M: number,
  d: MatmulData,
  out: Float32Array,
  samples = 256,
): number {
  const pick = uniform(2 * samples, 12345, 0, 1);
  const rw = storedWeight(d, a.wType).values;
  const rx = a.xType === 'f16' ? roundF16 : (v: number) => v;
  let maxDiff = 0;
  let maxRef = 0;
  for (let s = 0; s < samples; s++) {
    const m = Math.floor(pick[2 * s] * M);
    const n = Math.floor(pick[2 * s + 1] * a.N);
    const dot = (row: number) => {
      let acc = 0;
      for (let k = 0; k < a.K; k++) acc += rx(d.x[m * a.K + k]) * rw(row * a.K + k);
      return acc;
    };
    let ref = dot(n);
    if (a.act) ref = activate(a.act, ref);
    if (a.gated) ref *= dot(a.N + n);
    const g = out[m * a.N + n];
    if (!Number.isFinite(g)) return Infinity;
    maxDiff = Math.max(maxDiff, Math.abs(g - ref));
    maxRef = Math.max(maxRef, Math.abs(ref));
  }
  return maxDiff / maxRef;
}

/** GPU milliseconds of one launch of `launches` over M rows, and the sampled error of its output. */
export async function timeMatmul(
  gpu: GpuContext,
  a: MatmulAttrs,
  launches: KernelLaunch[],
  M: number,
  d: MatmulData,
): Promise<{ ms: number; err: number }> {
  const wBytes = matmulWeightBytes(a);
  const bytes = { x: M * a.K * 4, w: wBytes, out: M * a.N * 4 };
  const flops = 2 * M * a.N * a.K * (a.gated ? 2 : 1);
  // About 0.2 TFLOP per sample, between 3 and 200 launches: the cap only binds below the
  // benchmark's shapes (1024³ takes 93), where the sweep's --shapes smoke runs would never end.
  const reps = M === 1 ? 200 : Math.min(200, Math.max(3, Math.round(2e11 / flops)));
  const out = new Float32Array(M * a.N).fill(NaN); // poisoned: unwritten outputs show as errors
  const t = await timeLaunches(
    gpu,
    launches,
    bytes,
    { T: M, pos: 0, L: M },
    {
      reps,
      samples: 5,
      init: { x: d.x, w: storedWeight(d, a.wType).words, out },
      readBack: ['out'],
    },
  );
  return { ms: t.gpuMs ?? t.wallMs, err: sampledError(a, M, d, t.outputs.out) };
}
