/** Seeded random data and error measures for kernel and model tests. */
import { mulberry32 } from '../../src/import/random-init.ts';

/** Mulberry32 (src/import/random-init.ts): same seed gives the same arrays. */
export const rng = mulberry32;

/** Uniform in [-scale, scale). */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

export function randInts(n: number, max: number, seed: number): Uint32Array {
  const r = rng(seed);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * max);
  return out;
}

/** max |a-b| / max(|b|) over the whole array: the kernels' stated error measure. */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    maxRef = Math.max(maxRef, Math.abs(b[i]));
  }
  return maxDiff / Math.max(maxRef, 1e-30);
}

/** The worst maxRelError over paired steps (each step's logits measured on its own scale). */
export function maxRelErrorSteps(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  if (a.length !== b.length) throw new Error(`step count mismatch ${a.length} vs ${b.length}`);
  return Math.max(0, ...a.map((x, s) => maxRelError(x, b[s])));
}

export function maxAbsError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m;
}
