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
import { uniform } from '../src/import/random-init.ts';
import { timeLaunches } from './gpu-timer.ts';

export interface MatmulData {
  x: Float32Array;
  w: Float32Array;
  /** w as the kernel reads it: f32, or f16 packed two per word. */
  wGpu: { f32: Float32Array; f16: Uint32Array };
}

/** Uniform random x in [-1, 1) and w scaled by 1/√K, so outputs stay O(1). */
export function matmulData(M: number, N: number, K: number, seed: number): MatmulData {
  const x = uniform(M * K, seed, -1, 1);
  const w = uniform(N * K, seed + 1, -1 / Math.sqrt(K), 1 / Math.sqrt(K));
  return { x, w, wGpu: { f32: w, f16: packF16(w) } };
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
  const rw = a.wType === 'f16' ? roundF16 : (v: number) => v;
  const rx = a.xType === 'f16' ? roundF16 : (v: number) => v;
  let maxDiff = 0;
  let maxRef = 0;
  for (let s = 0; s < samples; s++) {
    const m = Math.floor(pick[2 * s] * M);
    const n = Math.floor(pick[2 * s + 1] * a.N);
    const dot = (row: number) => {
      let acc = 0;
      for (let k = 0; k < a.K; k++) acc += rx(d.x[m * a.K + k]) * rw(d.w[row * a.K + k]);
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
      init: { x: d.x, w: a.wType === 'f16' ? d.wGpu.f16 : d.wGpu.f32, out },
      readBack: ['out'],
    },
  );
  return { ms: t.gpuMs ?? t.wallMs, err: sampledError(a, M, d, t.outputs.out) };
}
