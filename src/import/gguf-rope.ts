/**
 * Llama 3's RoPE scaling from a GGUF file. llama.cpp's converter writes no metadata keys for it:
 * it stores the per-frequency divisors HF's llama3 rule gives as the tensor `rope_freqs.weight`
 * (f_i = 1 for short wavelengths, the factor F for long ones, 1 / ((1 − s)/F + s) between, where
 * s = (orig/λ − low)/(high − low) is linear in 1/λ). The rule only depends on orig/low and
 * orig/high, so with low_freq_factor fixed at 1 (Meta's value in every Llama 3.x) the blended
 * frequencies determine orig and high by a line fit; the parameters found are then accepted only
 * if the rule reproduces every stored divisor.
 */
import type { ConfigObject } from './config-reader.ts';

/** The HF llama3 divisor of each frequency pair (f64; the file holds them rounded to f32). */
export function llama3Divisors(
  theta: number,
  headDim: number,
  s: { factor: number; low: number; high: number; orig: number },
): number[] {
  return Array.from({ length: headDim / 2 }, (_, i) => {
    const wavelen = 2 * Math.PI * theta ** ((2 * i) / headDim);
    if (wavelen < s.orig / s.high) return 1;
    if (wavelen > s.orig / s.low) return s.factor;
    const smooth = (s.orig / wavelen - s.low) / (s.high - s.low);
    return 1 / ((1 - smooth) / s.factor + smooth);
  });
}

/** Close enough to the stored f32 divisors: a few f32 roundings of the converter's arithmetic. */
function matches(want: Float32Array, got: number[]): boolean {
  return got.every((g, i) => Math.abs(g - want[i]) <= 1e-5 * Math.abs(want[i]));
}

/** The shortest decimal (up to 7 digits) of x for which `ok` holds, else null. */
function shortest(x: number, ok: (v: number) => boolean): number | null {
  for (let digits = 1; digits <= 7; digits++) {
    const v = Number(x.toPrecision(digits));
    if (ok(v)) return v;
  }
  return null;
}

/**
 * The HF `rope_scaling` dict `divisors` (rope_freqs.weight) encode for heads of `headDim` and
 * base `theta`, or a reason it cannot be recovered.
 */
export function llama3FromDivisors(
  divisors: Float32Array,
  theta: number,
  headDim: number,
): ConfigObject | string {
  if (divisors.length !== headDim / 2) {
    return `it has ${divisors.length} entries, not one per frequency pair (${headDim / 2})`;
  }
  const F = Math.max(...divisors);
  if (!(F > 1)) return `its largest divisor is ${F}, not a llama3 factor above 1`;
  // Short wavelengths (low i) keep 1, long ones take F, and the blend rises in between.
  const between: number[] = [];
  for (let i = 0; i < divisors.length; i++) {
    const f = divisors[i];
    if (i > 0 && f < divisors[i - 1]) return `divisor ${i} (${f}) is smaller than divisor ${i - 1}`;
    if (f !== 1 && f !== F) between.push(i);
  }
  if (between.length < 2) {
    return `only ${between.length} frequencies fall between the unscaled and the scaled ones, too few to recover the llama3 parameters`;
  }
  // orig·c − (high − 1)·s = 1 for each blended frequency, with c = 1/λ and s from its divisor.
  let scc = 0;
  let scs = 0;
  let sss = 0;
  let sc = 0;
  let ss = 0;
  for (const i of between) {
    const c = 1 / (2 * Math.PI * theta ** ((2 * i) / headDim));
    const s = (1 / divisors[i] - 1 / F) / (1 - 1 / F);
    scc += c * c;
    scs += c * s;
    sss += s * s;
    sc += c;
    ss += s;
  }
  // Normal equations of min Σ (orig·c − y·s − 1)², y = high − 1.
  const det = -scc * sss + scs * scs;
  if (det === 0) return 'its blended divisors do not determine the llama3 parameters';
  const orig = Math.round((-sc * sss + ss * scs) / det);
  const y = (scc * ss - scs * sc) / det;
  const factor = shortest(F, (v) => Math.fround(v) === Math.fround(F)) ?? F;
  const high = shortest(1 + y, (v) =>
    matches(divisors, llama3Divisors(theta, headDim, { factor, low: 1, high: v, orig })),
  );
  if (high === null || !(orig > 0)) {
    return 'no llama3 parameters (with low_freq_factor 1) reproduce its divisors';
  }
  return {
    rope_type: 'llama3',
    factor,
    low_freq_factor: 1,
    high_freq_factor: high,
    original_max_position_embeddings: orig,
  };
}
