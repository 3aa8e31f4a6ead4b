/**
 * Block diffusion (BD3-LM, kuleshov-group/bd3lms diffusion.py `_semi_ar_sampler` and
 * `_ddpm_caching_update`): blocks are generated left to right; inside a block a masked-diffusion
 * sampler denoises it while attending to the committed blocks before it, whose K/V are exact.
 *
 * The model's attention is block-causal (attention `block_causal: B`, src/ops/attention.ts): a
 * key is visible iff its block ⌊k / B⌋ is at most the query's. So a row's K/V depend only on the
 * tokens of its own block and earlier ones: once a block is committed, its K/V never change, and
 * a cache of them is exact (unlike Fast-dLLM's caches under full bidirectional attention).
 *
 * Blocks are the model's, aligned at position 0 (as bd3lms's training mask, block_diff_mask),
 * with the sampler's block length L a multiple of B. The canvas is the prompt followed by
 * genLength masks; block k covers [kL, (k+1)L) ∩ [0, n). With a prompt of P tokens the first
 * block the sampler denoises is the one holding position P: it starts with the prompt's last
 * P mod L tokens, which stay as they are (bd3lms's first block holds BOS the same way). The last
 * block may be partial (it ends with the canvas).
 *
 * Inside a block, one of bd3lms's two rules (`sampling.first_hitting`):
 *  - `first_hitting` (their default; `_ddpm_caching_update` with first_hitting): every step
 *    unmasks exactly one position, chosen uniformly among the block's masked positions, with a
 *    token drawn from the model's distribution there. A block takes as many steps as it has
 *    masks; `steps` bounds it (at least L, else masks would stay, as in the reference's loop).
 *  - `ddpm` (first_hitting false): step i of S has t = 1 − i/(S−1) (linspace(1, 0, S); t = 1
 *    when S = 1) and s = t − 1/S; each masked position stays masked with probability s/t
 *    (loglinear noise: move chance = t), else takes a token drawn from the model's
 *    distribution. Where the reference divides by t = 0 or s < 0 (its last steps), the
 *    probability is clamped to 0: the block's last step commits every mask left. A block's
 *    steps stop once it holds no mask.
 * The model's distribution at a masked row (`_subs_parameterization`, `_nucleus_sample`): the
 * softmax of its logits with the mask id excluded, at `temperature` (bd3lms samples at 1;
 * 0 = argmax, lowest id on ties), cut to the nucleus: tokens sorted by probability (ties: lower
 * id first) are kept while the running sum stays ≤ nucleusP, and always the first. Drawn by
 * Gumbel-max over the kept tokens' scaled logits with the seeded noise of src/ops/diffusion.ts
 * (the reference's _sample_categorical, probs / Exp(1), is the same race).
 *
 * Which positions a step commits depends on the noise and the canvas only, never on the logits
 * (first_hitting's uniform choice; ddpm's stay draws, which the reference's joint categorical
 * over q_xs = (1 − s/t)·p_x0 with mass s/t on the mask gives the same marginals). So a step
 * chooses its positions first and asks the forward for just those rows, and a step that commits
 * nothing runs no forward. The reference spends as many: the forward it runs at a step that
 * commits nothing serves the next step through its p_x0 cache (the model has no time
 * conditioning and the canvas has not changed). For the same reason the first-hitting time
 * t ← t·u^(1/masks) of the reference changes no draw, and is not kept.
 *
 * Block length 1 (with B = 1, the causal mask) is left-to-right decoding, one forward a token:
 * position p is drawn from row p of a causal forward over the committed prefix and one mask id at
 * p (no shift: the row fed the mask predicts its own position, where an AR LM's row p − 1 would).
 *
 * Every draw is a pure function of (seed, step, position, stream): step counts every step of the
 * generation, so a cached run and a recompute-everything run draw the same numbers.
 */
import { noiseUniform, gumbel, type Span } from './diffusion.ts';

export type BlockSampler = 'first_hitting' | 'ddpm';
export const BLOCK_SAMPLERS: readonly BlockSampler[] = ['first_hitting', 'ddpm'];

/** The settings of a block-diffusion run (the spec's `diffusion bd3lm(...)` gives defaults). */
export interface BlockDiffusionRun {
  genLength: number;
  /** Sampler block, a multiple of the model's attention block (bd3lms: equal to it). */
  blockLength: number;
  /** Most steps a block takes (first_hitting), or its steps S (ddpm; bd3lms's algo.T). */
  steps: number;
  sampler: BlockSampler;
  temperature: number;
  /** Nucleus (top-p) mass in (0, 1]; 1: the whole distribution. */
  nucleusP: number;
  maskId: number;
  seed: number;
}

export type BlockSettings = Omit<BlockDiffusionRun, 'maskId' | 'seed'>;

/** A broken setting: the field, and a message given the field's name in the caller's vocabulary. */
export interface BlockIssue {
  field: keyof BlockSettings;
  message: (name: (field: keyof BlockSettings) => string) => string;
}

/**
 * The rules of a run, given the model's attention block `attnBlock` (null: not known here).
 * `name` renders a field: block_length in .strata, blockLength in YAML, --block-length on the
 * command line.
 */
export function blockScheduleIssues(s: BlockSettings, attnBlock: number | null): BlockIssue[] {
  const out: BlockIssue[] = [];
  for (const f of ['genLength', 'blockLength', 'steps'] as const) {
    if (!Number.isSafeInteger(s[f]) || s[f] < 1)
      out.push({
        field: f,
        message: (n) => `${n(f)} must be an integer of at least 1, got ${s[f]}`,
      });
  }
  if (out.length) return out;
  if (attnBlock !== null && s.blockLength % attnBlock !== 0)
    out.push({
      field: 'blockLength',
      message: (n) =>
        `${n('blockLength')} (${s.blockLength}) must be a multiple of the model's attention block ${attnBlock} (block_causal): a committed block's K/V would otherwise change with the next one (allowed: ${attnBlock}, ${2 * attnBlock}, ...)`,
    });
  if (s.sampler === 'first_hitting' && s.steps < s.blockLength)
    out.push({
      field: 'steps',
      message: (n) =>
        `${n('steps')} (${s.steps}) is below ${n('blockLength')} (${s.blockLength}): the first-hitting sampler commits one token per step, so a block needs as many steps as it has masks (allowed: at least ${s.blockLength}, or sampler ddpm)`,
    });
  if (!BLOCK_SAMPLERS.includes(s.sampler))
    out.push({
      field: 'sampler',
      message: (n) =>
        `${n('sampler')} must be one of ${BLOCK_SAMPLERS.join(', ')}, got ${s.sampler}`,
    });
  if (!(s.temperature >= 0) || !Number.isFinite(s.temperature))
    out.push({
      field: 'temperature',
      message: (n) => `${n('temperature')} must be a number of at least 0, got ${s.temperature}`,
    });
  if (!(s.nucleusP > 0 && s.nucleusP <= 1))
    out.push({
      field: 'nucleusP',
      message: (n) => `${n('nucleusP')} must lie in (0, 1] (1: no nucleus cut), got ${s.nucleusP}`,
    });
  return out;
}

/** The sampler blocks a canvas of n with the prompt's P tokens denoises, in order. */
export function samplerBlocks(P: number, n: number, L: number): Span[] {
  const out: Span[] = [];
  for (let from = Math.floor(P / L) * L; from < n; from += L)
    out.push({ from, to: Math.min(n, from + L) });
  return out;
}

/** Noise streams beside the vocab ids (src/ops/diffusion.ts keeps 0xffffffff). */
const CHOICE_STREAM = 0xfffffffe;
const STAY_STREAM = 0xfffffffd;

/** The probability that a masked position stays masked at ddpm step i of S (see the header). */
export function stayProbability(i: number, S: number): number {
  const t = S === 1 ? 1 : 1 - i / (S - 1);
  const s = t - 1 / S;
  if (!(t > 0) || s <= 0) return 0;
  return Math.min(1, s / t);
}

/**
 * Which ids the nucleus keeps: the top k of the n probabilities p (ids not in play hold -1; sum
 * is their total) in the order of the header (probability descending, lower id first on ties),
 * k the longest run whose running sum stays <= nucleusP, at least 1. Found from a native sort of
 * the values and the k-th of them, not a comparator sort of the ids: at a 126k vocab that sort
 * took about 100 ms a row on the H100's host, more than the block's forward.
 */
function nucleus(p: Float64Array, sum: number, nucleusP: number, n: number): Uint8Array {
  const kept = new Uint8Array(p.length);
  if (nucleusP >= 1) {
    for (let v = 0; v < p.length; v++) kept[v] = p[v] >= 0 ? 1 : 0;
    return kept;
  }
  const desc = p.slice().sort().reverse();
  let cum = 0;
  let k = 0;
  while (k < n) {
    cum += desc[k] / sum;
    if (k > 0 && cum > nucleusP) break;
    k++;
  }
  // Keep every id above the k-th value, and of the ids equal to it the lowest ones, up to k.
  const kth = desc[k - 1];
  let ties = k;
  for (let i = 0; i < k; i++) if (desc[i] > kth) ties--;
  for (let v = 0; v < p.length; v++) if (p[v] > kth || (p[v] === kth && ties-- > 0)) kept[v] = 1;
  return kept;
}

/**
 * The token drawn at one masked row (row `row` of logits [*, vocab]): see the header. Throws on
 * a non-finite logit, naming the position.
 */
export function drawToken(
  logits: ArrayLike<number>,
  row: number,
  vocab: number,
  o: {
    seed: number;
    step: number;
    position: number;
    temperature: number;
    nucleusP: number;
    maskId: number;
  },
): number {
  const base = row * vocab;
  let best = -1;
  for (let v = 0; v < vocab; v++) {
    const l = logits[base + v];
    if (!Number.isFinite(l))
      throw new Error(
        `block diffusion step ${o.step}: logit ${v} at position ${o.position} is ${l}`,
      );
    if (v !== o.maskId && (best < 0 || l > logits[base + best])) best = v;
  }
  if (o.temperature === 0 || best < 0) return best;
  const T = o.temperature;
  // Tempered softmax, in f64, shifted by the max; the mask id gets -1, below every probability.
  const maxZ = logits[base + best] / T;
  const p = new Float64Array(vocab);
  let sum = 0;
  for (let v = 0; v < vocab; v++) {
    if (v === o.maskId) p[v] = -1;
    else sum += p[v] = Math.exp(logits[base + v] / T - maxZ);
  }
  const kept = nucleus(p, sum, o.nucleusP, o.maskId < vocab ? vocab - 1 : vocab);
  let pick = -1;
  let score = -Infinity;
  for (let v = 0; v < vocab; v++) {
    if (!kept[v]) continue;
    const z = logits[base + v] / T + gumbel(o.seed, o.step, o.position, v);
    if (pick < 0 || z > score) {
      pick = v;
      score = z;
    }
  }
  return pick;
}

/**
 * Logits of canvas positions `rows` (ascending, inside `span`, the current block), [rows.length,
 * vocab], given the canvas as it is. A reference forward recomputes the whole canvas under the
 * block-causal mask and returns those rows; the cached one (runtime/block-diffusion.ts) runs the
 * block against the K/V of the committed blocks before it and reads back only those rows.
 */
export type BlockForward = (
  canvas: Uint32Array,
  span: Span,
  rows: readonly number[],
) => Promise<Float32Array>;

/**
 * The tokens drawn at canvas positions `rows` (as drawToken draws them, at sampler step `step`),
 * without their logits leaving the device: the GPU draw (runtime/block-diffusion.ts). Throws a
 * NonFiniteError naming the position of a row with a NaN or Inf logit.
 */
export type BlockDraw = (
  canvas: Uint32Array,
  span: Span,
  rows: readonly number[],
  step: number,
) => Promise<ArrayLike<number>>;

/** What one step committed, in canvas positions (ascending). */
export interface BlockStepCommit {
  step: number;
  block: number;
  span: Span;
  positions: number[];
  tokens: number[];
  /** Whether the step ran a forward (false: it committed nothing). */
  forward: boolean;
}

/**
 * Sees each step's commits, the canvas after them, and the logits of `positions` (null when the
 * step ran no forward, or drew on the device).
 */
export type OnBlockStep = (
  c: BlockStepCommit,
  canvas: Uint32Array,
  logits: Float32Array | null,
) => void | Promise<void>;

/**
 * Block-diffusion generation over `forward` (see the file comment), drawing on the host, or with
 * `draw` where the tokens are drawn next to the logits; returns the final canvas.
 */
export async function blockDiffusionSample(
  forward: BlockForward,
  prompt: ArrayLike<number>,
  vocab: number,
  r: BlockDiffusionRun,
  onStep?: OnBlockStep,
  draw?: BlockDraw,
): Promise<Uint32Array> {
  const issue = blockScheduleIssues(r, null)[0];
  if (issue) throw new Error(issue.message((f) => f));
  if (!Number.isInteger(r.maskId) || r.maskId < 0 || r.maskId >= vocab)
    throw new Error(`mask id ${r.maskId} is not a token of the vocab (${vocab})`);
  const P = prompt.length;
  const n = P + r.genLength;
  const canvas = new Uint32Array(n).fill(r.maskId);
  for (let i = 0; i < P; i++) canvas[i] = prompt[i];
  let step = 0;
  for (const [b, block] of samplerBlocks(P, n, r.blockLength).entries()) {
    for (let i = 0; i < r.steps; i++, step++) {
      const masked: number[] = [];
      for (let p = Math.max(block.from, P); p < block.to; p++)
        if (canvas[p] === r.maskId) masked.push(p);
      if (masked.length === 0) break;
      let positions: number[];
      if (r.sampler === 'first_hitting') {
        const u = noiseUniform(r.seed, step, block.from, CHOICE_STREAM);
        positions = [masked[Math.min(masked.length - 1, Math.floor(u * masked.length))]];
      } else {
        const stay = stayProbability(i, r.steps);
        positions = masked.filter((p) => !(noiseUniform(r.seed, step, p, STAY_STREAM) < stay));
      }
      let logits: Float32Array | null = null;
      let tokens: number[] = [];
      if (positions.length && draw) {
        tokens = Array.from(await draw(canvas, block, positions, step));
      } else if (positions.length) {
        const l = await forward(canvas, block, positions);
        if (l.length !== positions.length * vocab)
          throw new Error(
            `the forward of block ${block.from}..${block.to - 1} returned ${l.length / vocab} rows of logits, not ${positions.length}`,
          );
        tokens = positions.map((p, j) => drawToken(l, j, vocab, { ...r, step, position: p }));
        logits = l;
      }
      positions.forEach((p, j) => (canvas[p] = tokens[j]));
      const c = { step, block: b, span: block, positions, tokens, forward: positions.length > 0 };
      await onStep?.(c, canvas, logits);
    }
  }
  return canvas;
}
