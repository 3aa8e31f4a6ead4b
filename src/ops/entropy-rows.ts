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
 * Words per row (ENTROPY_ROW_WORDS): argmax, token, entropy's f32 bits. A row holding a NaN or an
 * Inf writes NONFINITE_ROW as its argmax and token (and a NaN entropy): the sampler throws.
 *
 * Precision of the kernel against this f64 reference: the argmax is exact at every t; at t = 0
 * the token and the entropy are too. At t > 0 the kernel scores l/t − log(−log u) in f32 (WGSL's
 * log), so a row whose two best noisy scores lie within f32 error of each other may draw the
 * other id, and the entropy is f32 (absolute error ~1e-6 for a vocab of 1000, growing with the
 * vocab's sum); the sampler uses the kernel at t > 0 only when asked to (EntropyBoundOptions).
 */
import type { EntropyRowsAttrs, StepShape } from '../graph/ops.ts';
import { gumbel } from './diffusion.ts';
import { rule, type OpDefinition } from './types.ts';

/** u32 words per row: argmax, token, entropy (f32 bits). */
export const ENTROPY_ROW_WORDS = 3;

/** The argmax and token word of a row whose logits were not all finite. */
export const NONFINITE_ROW = 0xffffffff;

/** One row's statistics (see the file comment). */
export interface EntropyRowStat {
  argmax: number;
  token: number;
  entropy: number;
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

function checkAttrs(a: EntropyRowsAttrs): void {
  if (!Number.isInteger(a.vocab) || a.vocab < 1)
    throw new Error(`entropy_rows: vocab must be a positive integer, got ${a.vocab}`);
}

/** The step's temperature (absent sampling: 0, the argmax); refused when not a finite ≥ 0. */
function temperatureOf(step: StepShape): number {
  const t = step.sampling?.temperature ?? 0;
  if (!(t >= 0) || !Number.isFinite(t))
    throw new Error(`entropy_rows: the temperature must be a finite number ≥ 0, got ${t}`);
  return t;
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
    const t = temperatureOf(step);
    const noise = { seed: step.sampling?.seed ?? 0, draw: step.sampling?.draw ?? 0 };
    const stats = new Uint32Array(step.T * ENTROPY_ROW_WORDS);
    const bits = new Float32Array(1);
    const word = new Uint32Array(bits.buffer);
    for (let r = 0; r < step.T; r++) {
      const s = entropyRowStats(logits, r, a.vocab, t, noise, step.pos + r);
      bits[0] = s.entropy;
      stats.set([s.argmax, s.token, word[0]], r * ENTROPY_ROW_WORDS);
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
