/**
 * entropy_rows: what DiffusionGemma's entropy-bound sampler (src/ops/diffusion-entropy.ts) needs
 * of one denoising step's logits, per canvas row, so that the host reads a few words a row rather
 * than the [canvas, vocab] logits (268 MB a step at canvas 256, vocab 262144):
 *  - the argmax (lowest id among equal logits, torch.argmax): the stability test and the
 *    committed canvas;
 *  - the drawn token: Gumbel-max over l/t with the seeded noise of (seed, draw, row, id)
 *    (src/ops/diffusion.ts gumbel), the argmax at t = 0;
 *  - the entropy of softmax(l / t) in nats, 0 at t = 0 (the one-hot limit): the acceptance and
 *    the confidence test.
 *
 * entropyRowStats is the one host implementation: the sampler's own loop calls it on logits it
 * holds, and the op's reference packs its result into the words the kernel writes
 * (codegen/kernels/entropy-rows.ts), so the two cannot drift.
 *
 * Words per row (ENTROPY_ROW_WORDS, RowWord): argmax, token, then f32 bits of the entropy, of a
 * bound on its error, of the token's logit, of the best noisy score of any other id and of the
 * row's largest |l| / t. A row holding a NaN or an Inf writes NONFINITE_ROW as its argmax and
 * token (NaN elsewhere): the sampler throws.
 *
 * Precision of the kernel against this f64 reference, and how the host stays exact: the argmax is
 * exact at every t, and at t = 0 so are the token and the entropy (0). At t > 0 the kernel works
 * in f32 (WGSL's log, exp and division, within the WGSL spec's accuracy), so the last five words
 * let the host prove its results equal the f64 ones or else recompute the row from its logits
 * (src/ops/diffusion-entropy.ts):
 *  - the token: its f64 score (its logit, exact, over t plus the host's own Gumbel term) beats
 *    every other id's f64 score when it exceeds the runner-up's f32 score by scoreError (a bound
 *    on |f32 − f64| of any score, from the largest |l| / t);
 *  - the entropy: within its error word of the f64 entropy (a relative bound on the f32 sums'
 *    rounding, rowEntropyError, that the kernel and this reference compute alike).
 */
import type { EntropyRowsAttrs } from '../graph/ops.ts';
import { gumbel } from './diffusion.ts';
import { rowsTemperature } from './softmax-rows.ts';
import { rule, type OpDefinition } from './types.ts';

/** The words of a row, in order (the last five are f32 bits). */
export const RowWord = {
  argmax: 0,
  token: 1,
  entropy: 2,
  entropyError: 3,
  tokenLogit: 4,
  runnerUp: 5,
  maxScaled: 6,
} as const;

/** u32 words per row (RowWord). */
export const ENTROPY_ROW_WORDS = 7;

/**
 * Ids a kernel thread sums at most, for the error bounds: the kernel's workgroup is at least
 * min(vocab, 64) threads (WebGPU guarantees 256 invocations), so a thread sums ⌈vocab / 64⌉.
 */
export function idsPerThread(vocab: number): number {
  return Math.ceil(vocab / 64);
}

/**
 * Relative error bound of the kernel's f32 entropy sums: a thread's sequential sum of n terms and
 * a tree of up to 8 levels (n + 8 roundings), each term's exp within 3 + 2|d| ULP and the
 * rescalings' exps (d and the maximum's total rise are below ~140 where a term is not flushed
 * to 0), all doubled: (n + 300) · 2^-22.
 */
export function entropyRelError(vocab: number): number {
  return (idsPerThread(vocab) + 300) * 2 ** -22;
}

/**
 * Bound on |entropy (f32 kernel) − entropy (f64)| of a row whose softmax has S = 1 + sOther
 * (sOther: the sum of exp(x − max) over all ids but one maximum) and Σ p·(max − x) = wOverS,
 * H = log1p(sOther) + wOverS: sOther within the relative error ρ above moves log1p(sOther) by
 * ρ·sOther / (1 + sOther) at most (the kernel takes log1p by its series below 0.25, and WGSL's
 * log above, whose 2^-21 absolute error near 1 is added); the ratio wOverS, its two sums each
 * within ρ, by 2ρ·wOverS; plus 1e-12 for the f64 reference's own rounding.
 */
export function rowEntropyError(sOther: number, wOverS: number, vocab: number): number {
  const near1 = sOther >= 0.25 ? 2 ** -20 : 0;
  return entropyRelError(vocab) * (sOther / (1 + sOther) + 2 * wOverS) + near1 + 1e-12;
}

/**
 * Bound on |f32 − f64| of a noisy score l/t − log(−log u) when |l| / t ≤ maxScaled: l / t within
 * 2.5 ULP (WGSL division) plus t's own rounding to f32 (1 ULP), the Gumbel term within 1e-5 (the
 * kernel takes −log u by its series near u = 1, so every log argument stays accurate), the sum's
 * rounding, all doubled.
 */
export function scoreError(maxScaled: number): number {
  return (2 * maxScaled + 18) * 1e-6 + 2e-5;
}

/** The argmax and token word of a row whose logits were not all finite. */
export const NONFINITE_ROW = 0xffffffff;

/** One row's statistics (see the file comment). */
export interface EntropyRowStat {
  argmax: number;
  token: number;
  entropy: number;
}

/** A row's statistics with what the kernel's words add (RowWord), in f64. */
export interface EntropyRowWords extends EntropyRowStat {
  entropyError: number;
  tokenLogit: number;
  runnerUp: number;
  maxScaled: number;
}

/** The noise a step's draw uses: the seed and the sampler's draw index. */
export interface RowNoise {
  seed: number;
  draw: number;
}

/**
 * Row `row` of logits [*, vocab] at temperature t (see the file comment); `position` is the
 * row's noise position (its canvas row). Argmax and Gumbel scores take the first (lowest) id of
 * equal values; the entropy is H = log z − Σ p·x over the max-shifted x = l/t − max, in f64.
 */
export function entropyRowStats(
  logits: ArrayLike<number>,
  row: number,
  vocab: number,
  t: number,
  noise: RowNoise,
  position = row,
): EntropyRowStat {
  const base = row * vocab;
  let best = 0;
  for (let v = 0; v < vocab; v++) {
    const l = logits[base + v];
    if (!Number.isFinite(l)) return { argmax: NONFINITE_ROW, token: NONFINITE_ROW, entropy: NaN };
    if (l > logits[base + best]) best = v;
  }
  if (t === 0) return { argmax: best, token: best, entropy: 0 };
  let token = 0;
  let top = -Infinity;
  for (let v = 0; v < vocab; v++) {
    const score = logits[base + v] / t + gumbel(noise.seed, noise.draw, position, v);
    if (score > top) {
      token = v;
      top = score;
    }
  }
  const max = logits[base + best] / t;
  let z = 0;
  let s = 0;
  for (let v = 0; v < vocab; v++) {
    const x = logits[base + v] / t - max;
    const e = Math.exp(x);
    z += e;
    s += e * x;
  }
  return { argmax: best, token, entropy: Math.log(z) - s / z };
}

/**
 * Row `row`'s words as the kernel means them (see RowWord), in f64: the statistics of
 * entropyRowStats, from the same arguments, and the error words' exact counterparts.
 */
export function entropyRowWords(...args: Parameters<typeof entropyRowStats>): EntropyRowWords {
  const [logits, row, vocab, t, noise, position = row] = args;
  const s = entropyRowStats(...args);
  const base = row * vocab;
  if (s.argmax === NONFINITE_ROW)
    return { ...s, entropyError: NaN, tokenLogit: NaN, runnerUp: NaN, maxScaled: NaN };
  if (t === 0)
    return { ...s, entropyError: 0, tokenLogit: logits[base + s.token], runnerUp: 0, maxScaled: 0 };
  let runnerUp = -Infinity;
  let maxScaled = 0;
  const max = logits[base + s.argmax] / t;
  let sOther = -1;
  let w = 0;
  for (let v = 0; v < vocab; v++) {
    const x = logits[base + v] / t;
    maxScaled = Math.max(maxScaled, Math.abs(x));
    if (v !== s.token)
      runnerUp = Math.max(runnerUp, x + gumbel(noise.seed, noise.draw, position, v));
    const e = Math.exp(x - max);
    sOther += e;
    w += e * (max - x);
  }
  const wOverS = w / (1 + sOther);
  return {
    ...s,
    entropyError: rowEntropyError(sOther, wOverS, vocab),
    tokenLogit: logits[base + s.token],
    // A vocab of one: no other id; the kernel writes −3e38.
    runnerUp: vocab === 1 ? -3e38 : runnerUp,
    maxScaled,
  };
}

function checkAttrs(a: EntropyRowsAttrs): void {
  if (!Number.isInteger(a.vocab) || a.vocab < 1)
    throw new Error(`entropy_rows: vocab must be a positive integer, got ${a.vocab}`);
}

export const entropyRows: OpDefinition<EntropyRowsAttrs> = {
  check: checkAttrs,
  inputs: (a) => ({ logits: rule(['T', a.vocab]) }),
  outputs: () => ({ stats: rule(['T', ENTROPY_ROW_WORDS], 'read', 'u32') }),
  reference(a, inputs, step) {
    checkAttrs(a);
    const logits = inputs.logits;
    if (!(logits instanceof Float32Array)) throw new Error(`op input 'logits' must be f32`);
    if (logits.length < step.T * a.vocab)
      throw new Error(
        `entropy_rows: logits of ${logits.length} elements, a step of ${step.T} rows needs ${step.T * a.vocab}`,
      );
    const t = rowsTemperature('entropy_rows', step);
    const noise = { seed: step.sampling?.seed ?? 0, draw: step.sampling?.draw ?? 0 };
    const stats = new Uint32Array(step.T * ENTROPY_ROW_WORDS);
    const f = new Float32Array(stats.buffer);
    for (let r = 0; r < step.T; r++) {
      const s = entropyRowWords(logits, r, a.vocab, t, noise, step.pos + r);
      const o = r * ENTROPY_ROW_WORDS;
      stats[o + RowWord.argmax] = s.argmax;
      stats[o + RowWord.token] = s.token;
      f[o + RowWord.entropy] = s.entropy;
      f[o + RowWord.entropyError] = s.entropyError;
      f[o + RowWord.tokenLogit] = s.tokenLogit;
      f[o + RowWord.runnerUp] = s.runnerUp;
      f[o + RowWord.maxScaled] = s.maxScaled;
    }
    return { stats };
  },
  // One pass over the row: compare, scale, exp and the Gumbel draw (four hashes, two logs).
  cost: (a, step) => ({
    flops: step.T * a.vocab * 20,
    bytesRead: step.T * a.vocab * 4,
    bytesWritten: step.T * ENTROPY_ROW_WORDS * 4,
  }),
};

/**
 * A step's row statistics as the sampler takes them, with how far each may be from the host's
 * f64 reference: exact where entropyError is 0 and tokenSure is 1.
 */
export interface RowStats {
  argmax: Uint32Array;
  token: Uint32Array;
  entropy: Float64Array;
  /** Bound on |entropy − the f64 entropy| (0: exact). */
  entropyError: Float64Array;
  /** 1: the token is provably the f64 reference's. */
  tokenSure: Uint8Array;
}

/**
 * The kernel's words of `rows` rows (RowWord) as RowStats: the token is sure when its f64 score
 * (its logit, exact, over t plus the host's Gumbel term: the reference's very expression) exceeds
 * the runner-up's f32 score by scoreError, so no other id's f64 score can reach it.
 */
export function decodeRowWords(
  words: Uint32Array,
  rows: number,
  t: number,
  noise: RowNoise,
): RowStats {
  const f = new Float32Array(words.buffer, words.byteOffset, words.length);
  const out: RowStats = {
    argmax: new Uint32Array(rows),
    token: new Uint32Array(rows),
    entropy: new Float64Array(rows),
    entropyError: new Float64Array(rows),
    tokenSure: new Uint8Array(rows),
  };
  for (let p = 0; p < rows; p++) {
    const o = p * ENTROPY_ROW_WORDS;
    const token = words[o + RowWord.token];
    out.argmax[p] = words[o + RowWord.argmax];
    out.token[p] = token;
    if (t === 0 || token === NONFINITE_ROW) {
      out.tokenSure[p] = 1;
      continue;
    }
    out.entropy[p] = f[o + RowWord.entropy];
    out.entropyError[p] = f[o + RowWord.entropyError];
    const score = f[o + RowWord.tokenLogit] / t + gumbel(noise.seed, noise.draw, p, token);
    out.tokenSure[p] =
      score > f[o + RowWord.runnerUp] + scoreError(f[o + RowWord.maxScaled]) ? 1 : 0;
  }
  return out;
}

/**
 * The rows whose device statistics could make a step decide otherwise than the f64 reference
 * (src/ops/diffusion-entropy.ts: tokens, the entropy-bound acceptance, the stop test), for the
 * host to recompute from their logits; empty: the decisions are provably the reference's.
 *  - a token not sure;
 *  - the accepted set (the lowest entropies, ties in position order): an accepted row's interval
 *    H ± e reaching a rejected one's;
 *  - its size: the sum of the accepted entropies but the largest (what the last accepted row
 *    sees before it) not provably ≤ `bound`, or, when some row is rejected, their whole sum (what
 *    the first rejected sees) not provably above it;
 *  - `stopAt` (the confidence threshold, when the canvas is stable): the mean entropy not
 *    provably on one side of it.
 * Only inexact rows (error > 0 or token not sure) are listed: once the rows involved are exact,
 * the sampler's own f64 arithmetic is the reference's. Each round lists at least one row or
 * none, so a caller that recomputes them and asks again ends.
 */
export function ambiguousRows(
  s: RowStats,
  accepted: readonly boolean[],
  bound: number,
  stopAt: number | null,
): number[] {
  const C = s.entropy.length;
  const H = s.entropy;
  const e = s.entropyError;
  const out = new Set<number>();
  for (let p = 0; p < C; p++) if (!s.tokenSure[p]) out.add(p);
  const A: number[] = [];
  const B: number[] = [];
  for (let p = 0; p < C; p++) (accepted[p] ? A : B).push(p);
  const inexact = (p: number) => e[p] > 0;
  if (A.some(inexact) || B.some(inexact)) {
    if (A.length && B.length) {
      const maxHiA = Math.max(...A.map((p) => H[p] + e[p]));
      const minLoB = Math.min(...B.map((p) => H[p] - e[p]));
      if (maxHiA >= minLoB) {
        for (const p of A) if (inexact(p) && H[p] + e[p] >= minLoB) out.add(p);
        for (const p of B) if (inexact(p) && H[p] - e[p] <= maxHiA) out.add(p);
      }
    }
    if (A.some(inexact)) {
      const sumHi = A.reduce((x, p) => x + H[p] + e[p], 0);
      const sumLo = A.reduce((x, p) => x + H[p] - e[p], 0);
      // The |A| − 1 smallest true entropies sum to at most the |A| − 1 smallest upper ends.
      const maxHi = Math.max(...A.map((p) => H[p] + e[p]));
      if (sumHi - maxHi > bound || (B.length > 0 && !(sumLo > bound)))
        for (const p of A) if (inexact(p)) out.add(p);
    }
    if (stopAt !== null) {
      const sumHi = Array.from(H).reduce((x, h, p) => x + h + e[p], 0);
      const sumLo = Array.from(H).reduce((x, h, p) => x + h - e[p], 0);
      if (!(sumHi / C < stopAt) && !(sumLo / C >= stopAt))
        for (let p = 0; p < C; p++) if (inexact(p)) out.add(p);
    }
  }
  return [...out].sort((a, b) => a - b);
}
