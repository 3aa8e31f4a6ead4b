/**
 * Token sampling from the last row of logits [L, vocab], on the GPU so that
 * decode needs no CPU round trip: the token goes to `token[0]` and to `ids[0]`
 * (the next step's input), and `token[1]` is a status word, NONFINITE_LOGITS when the
 * row holds a NaN or an Inf (else 0), which the runtime turns into an error.
 *
 * Semantics, given the Step uniform's temperature, topK, topP, seed and draw:
 *  - temperature ≤ 0 (or NaN): greedy argmax; ties → the lowest index (torch.argmax).
 *  - otherwise p_i = exp((l_i − max) / temperature), unnormalised; the max token has p = 1.
 *  - top-k (topK = 0 or ≥ vocab: off) keeps tokens whose logit is ≥ the k-th largest
 *    logit, ties at the threshold kept (so possibly more than k tokens).
 *  - top-p (topP ≥ 1: off) then keeps the tokens whose logit is ≥ the largest threshold τ
 *    for which the kept mass Σ_{l_i ≥ τ} p_i is ≥ topP · (mass kept by top-k): the
 *    smallest set of most probable tokens reaching topP, ties at τ kept.
 *  - u = uniformDraw(seed, draw) ∈ [0, 1), a PCG hash of (seed, draw) with 24 bits;
 *    the token is the first index in vocab order whose running sum of kept p exceeds
 *    u · (total kept p). If rounding leaves no such index, the greedy token.
 *
 * The algorithm is written for one workgroup of SAMPLE_THREADS threads, thread t
 * owning the contiguous chunk [t·C, (t+1)·C) with C = ceil(vocab / SAMPLE_THREADS),
 * and this CPU reference does the same float32 operations in the same order
 * (Math.fround), so both pick the same token except when a float decision lands
 * within a few ulps (the GPU's exp and 1/temperature may differ in the last bits):
 *  - thresholds are searched on the logits' order-preserving u32 keys by bisection,
 *    at most SEARCH_STEPS = 32 counting (top-k, exact integer counts) or mass
 *    (top-p) passes, which ends on an exact logit value;
 *  - a mass is per-thread sequential chunk sums combined by a fixed halving tree;
 *  - the final pick uses a Hillis–Steele inclusive scan of the chunk sums, then each
 *    thread walks its own chunk from its exclusive prefix; the lowest hit wins.
 */
import type { Cost, SampleAttrs, SamplingShape, StepShape } from '../graph/ops.ts';
import { f32, indices, inPlace, rule, type OpDefinition } from './types.ts';

/** Threads of the sampling workgroup; fixed (the WebGPU minimum) so every device picks alike. */
export const SAMPLE_THREADS = 256;
/** Bisection passes that pin a threshold to an exact f32 key. */
export const SEARCH_STEPS = 32;
/** token[1] when the sampled row holds a NaN or an Inf. */
export const NONFINITE_LOGITS = 1;
/** "No candidate" marker in the final pick. */
const NONE = 0xffffffff;

const GREEDY: SamplingShape = { seed: 0, draw: 0, topK: 0, temperature: 0, topP: 1 };

const fr = Math.fround;
const bitsF = new Float32Array(1);
const bitsU = new Uint32Array(bitsF.buffer);

/** Order-preserving u32 key of an f32 (−0 mapped to +0): a < b ⇔ key(a) < key(b). */
export function orderedKey(x: number): number {
  bitsF[0] = x;
  let b = bitsU[0];
  if (b === 0x80000000) b = 0;
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

/** PCG-RXS-M-XS hash of a u32 (Jarkko & Olano's `pcg_hash`), wrapping u32 arithmetic. */
export function pcgHash(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/** The uniform draw for (seed, draw): 24 random bits, exact in f32 on both sides. */
export function uniformDraw(seed: number, draw: number): number {
  return (pcgHash((draw >>> 0) ^ pcgHash(seed >>> 0)) >>> 8) / 16777216;
}

export interface SampleTrace {
  token: number;
  /** Keys ≥ this survived top-k and top-p (0: all). */
  threshold: number;
  /** Greedy argmax of the row. */
  argmax: number;
}

/** Sum of p over kept tokens, as the GPU computes it: sequential per chunk, then a halving tree. */
function treeMass(p: Float32Array, keys: Uint32Array, tau: number, chunk: number): number {
  const cs = chunkMasses(p, keys, tau, chunk);
  for (let h = SAMPLE_THREADS / 2; h > 0; h >>= 1) {
    for (let i = 0; i < h; i++) cs[i] = cs[i] + cs[i + h];
  }
  return cs[0];
}

function chunkMasses(p: Float32Array, keys: Uint32Array, tau: number, chunk: number): Float32Array {
  const cs = new Float32Array(SAMPLE_THREADS);
  for (let t = 0; t < SAMPLE_THREADS; t++) {
    let s = 0;
    const end = Math.min((t + 1) * chunk, p.length);
    for (let i = t * chunk; i < end; i++) if (keys[i] >= tau) s = fr(s + p[i]);
    cs[t] = s;
  }
  return cs;
}

/** Largest key in [lo, hi] accepted by `ok`, given ok(lo); `ok` must be monotone. */
function bisect(lo: number, hi: number, ok: (mid: number) => boolean): number {
  for (let it = 0; it < SEARCH_STEPS && lo < hi; it++) {
    const d = hi - lo;
    const mid = lo + Math.floor(d / 2) + (d % 2);
    if (ok(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Sample row `logits[offset .. offset + vocab)`; see the file header for the semantics. */
export function sampleRow(
  logits: Float32Array,
  offset: number,
  vocab: number,
  s: SamplingShape,
): SampleTrace {
  const row = logits.subarray(offset, offset + vocab);
  if (row.length !== vocab || vocab < 1)
    throw new Error(`sample: logits row needs ${vocab} elements`);
  let m = row[0];
  let argmax = 0;
  for (let i = 1; i < vocab; i++) {
    if (row[i] > m) {
      m = row[i];
      argmax = i;
    }
  }
  // The Step uniform holds temperature and topP as f32.
  const temperature = fr(s.temperature);
  if (!(temperature > 0)) return { token: argmax, threshold: 0, argmax };

  const invT = fr(1 / temperature);
  const keys = new Uint32Array(vocab);
  const p = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++) {
    keys[i] = orderedKey(row[i]);
    p[i] = row[i] === m ? 1 : Math.exp(fr(fr(row[i] - m) * invT));
  }
  const chunk = Math.ceil(vocab / SAMPLE_THREADS);
  const maxKey = orderedKey(m);

  let tau = 0;
  const k = s.topK >>> 0;
  if (k > 0 && k < vocab) {
    tau = bisect(0, maxKey, (mid) => {
      let c = 0;
      for (let i = 0; i < vocab; i++) if (keys[i] >= mid) c++;
      return c >= k;
    });
  }
  const topP = fr(s.topP);
  if (topP < 1) {
    const target = fr(topP * treeMass(p, keys, tau, chunk));
    tau = bisect(tau, maxKey, (mid) => treeMass(p, keys, mid, chunk) >= target);
  }

  // Hillis–Steele inclusive scan of the chunk masses, then each chunk walks from its prefix.
  let scan = chunkMasses(p, keys, tau, chunk);
  for (let off = 1; off < SAMPLE_THREADS; off <<= 1) {
    const next = new Float32Array(scan);
    for (let i = off; i < SAMPLE_THREADS; i++) next[i] = scan[i] + scan[i - off];
    scan = next;
  }
  const r = fr(uniformDraw(s.seed, s.draw) * scan[SAMPLE_THREADS - 1]);
  let token = NONE;
  for (let t = 0; t < SAMPLE_THREADS && token === NONE; t++) {
    let c = t === 0 ? 0 : scan[t - 1];
    const end = Math.min((t + 1) * chunk, vocab);
    for (let i = t * chunk; i < end; i++) {
      if (keys[i] < tau) continue;
      c = fr(c + p[i]);
      if (c > r) {
        token = i;
        break;
      }
    }
  }
  return { token: token === NONE ? argmax : token, threshold: tau, argmax };
}

export const sample: OpDefinition<SampleAttrs> = {
  check(a) {
    if (!Number.isInteger(a.vocab) || a.vocab < 1) {
      throw new Error(`sample: vocab must be a positive integer, got ${a.vocab}`);
    }
  },
  /** ids: the step's token ids; the sampled token goes to ids[0], the next step's input. */
  inputs: (a) => ({ logits: rule(['L', a.vocab]), ids: inPlace(['T'], 'u32') }),
  /** token: [the sampled id, the status word (NONFINITE_LOGITS or 0)]. */
  outputs: () => ({ token: indices([2]), ids: inPlace(['T'], 'u32') }),
  reference(a, inputs, step) {
    const logits = f32(inputs, 'logits');
    const row = Math.max(step.L, 1) - 1;
    if (logits.length < (row + 1) * a.vocab) {
      throw new Error(
        `sample: logits has ${logits.length} elements, L = ${step.L} rows of ${a.vocab} needed`,
      );
    }
    const r = logits.subarray(row * a.vocab, (row + 1) * a.vocab);
    const tok = sampleRow(logits, row * a.vocab, a.vocab, step.sampling ?? GREEDY).token;
    const status = r.every(Number.isFinite) ? 0 : NONFINITE_LOGITS;
    const out: Record<string, Uint32Array> = { token: Uint32Array.of(tok, status) };
    const ids = inputs.ids;
    if (ids instanceof Uint32Array) {
      out.ids = ids.slice();
      out.ids[0] = tok;
    }
    return out;
  },
  cost(a: SampleAttrs, _step: StepShape): Cost {
    // One logical read of the row; the threshold searches re-read it from cache.
    return { flops: a.vocab * 6, bytesRead: a.vocab * 4, bytesWritten: 12 };
  },
};
