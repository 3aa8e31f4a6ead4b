/**
 * Masked-diffusion sampling (LLaDA's generate(), ML-GSAI/LLaDA generate.py): the rules of the
 * schedule, the seeded noise, the per-step pick, and a whole-generation reference that runs any
 * forward function (the CPU interpreter, or the GPU model).
 *
 * The sampler, as the reference defines it:
 *  - the canvas is the prompt followed by genLength mask ids;
 *  - it is decoded in genLength / blockLength blocks, left to right, each in steps / blocks steps;
 *  - every step runs one full bidirectional forward over the whole canvas (no KV reuse: each
 *    step's keys change as tokens are committed), and for each masked position of the current
 *    block takes a candidate x0 = argmax(logits + Gumbel noise) (plain argmax at temperature 0);
 *  - its confidence is the softmax probability of x0 under the un-noised logits
 *    (`low_confidence`), or a uniform draw (`random`);
 *  - masked positions past the current block are never candidates (those before it are: a mask
 *    id in the prompt gets filled in, as in the reference);
 *  - the k most confident candidates are committed, k from the even schedule: a block's m masks
 *    over s steps give ⌊m/s⌋ each, the first m mod s steps one more. Committed tokens are never
 *    remasked.
 *
 * Fast-dLLM (NVlabs/Fast-dLLM llada/generate.py) adds, as options of the same loop: a confidence
 * threshold that commits more than the schedule's count when candidates are confident (and skips
 * a block's steps once it is full), and the prefix / dual caches, whose steps after a block's
 * first recompute only part of the canvas (DiffusionCache, stepSpan). With neither, the loop is
 * the reference's exactly.
 *
 * Noise: the reference draws torch.rand; here every draw is a pure function of
 * (seed, step, position, vocab id) through nested PCG hashes in u32 arithmetic, so the GPU pick
 * kernel (codegen/kernels/diffusion-pick.ts; WGSL has the same u32 ops) and this reference draw
 * identical bits. Gumbel-max is taken in
 * log form, argmax(l − T·log(−log u)), which is the reference's argmax(exp(l) / (−log u)^T)
 * without exponentiating the logits.
 *
 * Ties: argmax takes the lowest id (torch.argmax); top-k takes the higher confidence, then the
 * lower position (torch.topk leaves the order of ties unspecified).
 *
 * Dream (HKUNLP Dream, its diffusion_generate as NVlabs/Fast-dLLM dream/model/generation_utils.py
 * carries it) runs the same loop with two differences, both options of the schedule:
 *  - `shiftLogits`: the model predicts the token after each position, so the candidate of canvas
 *    position p is picked from logits row p − 1 (row 0 for p = 0, which Dream repeats);
 *  - `transfer: 'dream'`: the count of a step is not the even split of the block fixed at its
 *    start but Dream's linear-in-time rule on the masks left, ⌊m·(1 − s/t)⌋ with t, s consecutive
 *    points of linspace(1, eps, steps + 1), every remaining mask at the last step (dreamCount).
 *    Its `maskgit_plus` confidence at temperature 0 is low_confidence's (the top probability).
 */
import { pcgHash } from './sampling.ts';
import type { DiffusionSpec } from '../spec/model.ts';

/**
 * The confidence that ranks a step's candidates: `low_confidence` (LLaDA; Dream's maskgit_plus)
 * the softmax probability of the candidate, `random` a uniform draw (LLaDA), `margin` the top
 * probability minus the second (Dream's topk_margin), `entropy` Σ p·log(p + 1e-10), the negative
 * entropy of the row (Dream's entropy). All from the un-noised logits.
 */
export type Remasking = 'low_confidence' | 'random' | 'margin' | 'entropy';
export const REMASKINGS: readonly Remasking[] = ['low_confidence', 'random', 'margin', 'entropy'];
/** Dream's alg names for the confidences it shares with strata. */
export const DREAM_ALGS: Readonly<Record<string, Remasking>> = {
  maskgit_plus: 'low_confidence',
  topk_margin: 'margin',
  entropy: 'entropy',
};

/** The sampler settings a run uses (the spec's diffusion section gives the defaults). */
export interface DiffusionSchedule {
  genLength: number;
  blockLength: number;
  steps: number;
  remasking: Remasking;
  temperature: number;
  /**
   * Classifier-free guidance scale (0: off). Above 0 every step runs a second forward on the
   * canvas with the prompt masked out, and takes un + (scale + 1)·(cond − un), as the reference.
   */
  cfgScale: number;
  /**
   * How many tokens each step commits: `even` (LLaDA: a block's masks split evenly over its
   * steps, fixed at the block's start) or `dream` (Dream: ⌊m·(1 − s/t)⌋ of the m masks left,
   * dreamCount). Absent: even.
   */
  transfer?: Transfer;
  /** Dream's final time of its linspace(1, eps, steps + 1) (absent: DREAM_EPS). */
  eps?: number;
  /** Position p's candidate comes from logits row p − 1 (Dream); absent: row p. */
  shiftLogits?: boolean;
}

export type Transfer = 'even' | 'dream';
export const TRANSFERS: readonly Transfer[] = ['even', 'dream'];
/** Dream's generation config default eps. */
export const DREAM_EPS = 1e-3;

/**
 * The sampler schedule a spec's diffusion section stands for (its kind picks the counts): here,
 * not in src/spec, so that the web runtime reads a bundle's defaults with the CLI's rule.
 */
export function scheduleOfSpec(s: DiffusionSpec): DiffusionSchedule {
  return {
    genLength: s.genLength,
    blockLength: s.blockLength,
    steps: s.steps,
    remasking: s.remasking,
    temperature: s.temperature,
    cfgScale: s.cfgScale,
    ...(s.kind === 'dream' ? { transfer: 'dream' as const, eps: s.eps ?? DREAM_EPS } : {}),
    ...(s.shiftLogits ? { shiftLogits: true } : {}),
  };
}

/** A broken schedule rule: the IR field it names, and a message given the field's name. */
export interface ScheduleIssue {
  field: keyof DiffusionSchedule;
  message: (name: (field: keyof DiffusionSchedule) => string) => string;
}

/**
 * The reference's asserts (block length divides gen length; steps a multiple of the number of
 * blocks, hence at least it), plus what this sampler supports (no CFG yet). `name` renders a
 * field in the caller's vocabulary: block_length in .strata, blockLength in YAML, --block-length
 * on the command line.
 */
export function scheduleIssues(s: DiffusionSchedule): ScheduleIssue[] {
  const out: ScheduleIssue[] = [];
  const int = (f: 'genLength' | 'blockLength' | 'steps') => {
    if (!Number.isSafeInteger(s[f]) || s[f] < 1)
      out.push({
        field: f,
        message: (n) => `${n(f)} must be an integer of at least 1, got ${s[f]}`,
      });
  };
  int('genLength');
  int('blockLength');
  int('steps');
  if (out.length) return out;
  if (s.genLength % s.blockLength !== 0) {
    out.push({
      field: 'blockLength',
      message: (n) =>
        `${n('blockLength')} (${s.blockLength}) must divide ${n('genLength')} (${s.genLength}): the canvas is decoded in whole blocks`,
    });
    return out;
  }
  const blocks = s.genLength / s.blockLength;
  if (s.steps % blocks !== 0) {
    out.push({
      field: 'steps',
      message: (n) =>
        `${n('steps')} (${s.steps}) must be a multiple of the number of blocks ${blocks} (${n('genLength')} / ${n('blockLength')}), at least ${blocks}: every block gets the same number of steps`,
    });
  }
  if (!(s.temperature >= 0) || !Number.isFinite(s.temperature)) {
    out.push({
      field: 'temperature',
      message: (n) => `${n('temperature')} must be a number of at least 0, got ${s.temperature}`,
    });
  }
  if (!REMASKINGS.includes(s.remasking)) {
    out.push({
      field: 'remasking',
      message: (n) =>
        `${n('remasking')} must be one of ${REMASKINGS.join(', ')}, got ${s.remasking}`,
    });
  }
  if (s.transfer !== undefined && !TRANSFERS.includes(s.transfer)) {
    out.push({
      field: 'transfer',
      message: (n) => `${n('transfer')} must be one of ${TRANSFERS.join(', ')}, got ${s.transfer}`,
    });
  }
  if (s.eps !== undefined && !(s.eps > 0 && s.eps < 1)) {
    out.push({
      field: 'eps',
      message: (n) =>
        `${n('eps')} must lie in (0, 1) (the final time of the schedule), got ${s.eps}`,
    });
  }
  if (!(s.cfgScale >= 0) || !Number.isFinite(s.cfgScale)) {
    out.push({
      field: 'cfgScale',
      message: (n) => `${n('cfgScale')} must be a number of at least 0, got ${s.cfgScale}`,
    });
  }
  return out;
}

/** Tokens committed at each of a block's `steps` steps when it holds `masks` masks. */
export function transferCounts(masks: number, steps: number): number[] {
  const base = Math.floor(masks / steps);
  const extra = masks % steps;
  return Array.from({ length: steps }, (_, i) => base + (i < extra ? 1 : 0));
}

/**
 * torch.linspace(1, eps, n) in f32, as its CPU kernel computes it: the first half steps up from
 * the start, the second half steps down from the end, step = (end − start) / (n − 1) in f32.
 */
export function linspaceF32(start: number, end: number, n: number): number[] {
  const f = Math.fround;
  const a = f(start);
  const b = f(end);
  if (n === 1) return [a];
  const step = f(f(b - a) / (n - 1));
  const half = Math.floor(n / 2);
  return Array.from({ length: n }, (_, i) =>
    i < half ? f(a + f(step * i)) : f(b - f(step * (n - 1 - i))),
  );
}

/**
 * Dream's count for step i of `steps` with `masks` masks left: int(m · (1 − s/t)) in f32, t and s
 * the i-th and (i+1)-th points of linspace(1, eps, steps + 1); the last step takes every mask.
 */
export function dreamCount(masks: number, i: number, steps: number, eps: number): number {
  if (i >= steps - 1) return masks;
  const f = Math.fround;
  const ts = linspaceF32(1, eps, steps + 1);
  return Math.trunc(f(f(masks) * f(1 - f(ts[i + 1] / ts[i]))));
}

/** Vocab id slot of the `random` remasking draw: above any vocab (capped at 2^20). */
const CONFIDENCE_STREAM = 0xffffffff;

/** A u32 hash of (seed, step, position, id): each coordinate goes through its own PCG round. */
export function noiseBits(seed: number, step: number, position: number, id: number): number {
  let h = pcgHash(seed >>> 0);
  h = pcgHash((h ^ step) >>> 0);
  h = pcgHash((h ^ position) >>> 0);
  return pcgHash((h ^ id) >>> 0);
}

/**
 * A uniform in (0, 1), never 0 or 1 so that −log(−log u) is finite: the top 24 bits,
 * ((bits >> 8) + 0.5) / 2^24. f32 holds it exactly only below 1/2 (above, k + 0.5 needs 25 bits,
 * and the top draw rounds to 1), so the GPU kernels take −log u through the WGSL helper
 * neg_log_unit, which computes it from the exact 1 − u there.
 */
export function noiseUniform(seed: number, step: number, position: number, id: number): number {
  return ((noiseBits(seed, step, position, id) >>> 8) + 0.5) / 16777216;
}

/** The Gumbel term added to logit `id` at (step, position): −log(−log u). */
export function gumbel(seed: number, step: number, position: number, id: number): number {
  return -Math.log(-Math.log(noiseUniform(seed, step, position, id)));
}

/** One row's candidate: its token and that token's confidence. */
export interface Candidate {
  token: number;
  confidence: number;
}

/**
 * The candidate of one canvas row (logits row `row` of [*, vocab]) at global step `step` and
 * canvas position `position`: argmax of the logits plus temperature-scaled Gumbel noise, and its
 * confidence (see Remasking: from the un-noised logits, or a uniform draw for `random`).
 */
export function pickRow(
  logits: ArrayLike<number>,
  row: number,
  vocab: number,
  o: { seed: number; step: number; position: number; temperature: number; remasking: Remasking },
): Candidate {
  const base = row * vocab;
  let best = -1;
  let bestScore = -Infinity;
  let max = -Infinity;
  // The second largest logit, counting a tie with the largest (margin's second probability).
  let second = -Infinity;
  for (let v = 0; v < vocab; v++) {
    const l = logits[base + v];
    if (l > max) {
      second = max;
      max = l;
    } else if (l > second) second = l;
    const score = o.temperature > 0 ? l + o.temperature * gumbel(o.seed, o.step, o.position, v) : l;
    if (score > bestScore || best < 0) {
      best = v;
      bestScore = score;
    }
  }
  if (o.remasking === 'random') {
    return { token: best, confidence: noiseUniform(o.seed, o.step, o.position, CONFIDENCE_STREAM) };
  }
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[base + v] - max);
  if (o.remasking === 'margin')
    return { token: best, confidence: (1 - Math.exp(second - max)) / sum };
  if (o.remasking === 'entropy') {
    let h = 0;
    for (let v = 0; v < vocab; v++) {
      const p = Math.exp(logits[base + v] - max) / sum;
      h += p * Math.log(p + 1e-10);
    }
    return { token: best, confidence: h };
  }
  return { token: best, confidence: Math.exp(logits[base + best] - max) / sum };
}

/**
 * Fast-dLLM's KV reuse inside a block (NVlabs/Fast-dLLM, llada/generate.py). The block's first
 * step is always a full forward, which fills every row's K/V; its later steps recompute only
 *  - `prefix`: the block and everything after it, attending to the cached K/V of the rows before
 *    the block;
 *  - `dual`: the block alone, attending to the cached K/V of the rows before and after it.
 * Approximate: a committed token changes, under bidirectional attention, the deeper layers' K/V
 * of every other row, and the cached rows keep their values from the block's first step.
 */
export type DiffusionCache = 'none' | 'prefix' | 'dual';
export const DIFFUSION_CACHES: readonly DiffusionCache[] = ['none', 'prefix', 'dual'];

/** Settings of one generation: the schedule, the mask id and the noise seed. */
export interface DiffusionRun extends DiffusionSchedule {
  maskId: number;
  seed: number;
  /**
   * Confidence-threshold parallel decoding (Fast-dLLM): a step commits every candidate whose
   * confidence is above this, and never fewer than the schedule's count (nor fewer than one). A
   * block then fills in at most its steps, and the sampler moves on once it is full. Null or 1:
   * the exact schedule (a confidence never exceeds 1). Fast-dLLM's own rule, at least one per
   * step, is this with --steps equal to the gen length.
   */
  threshold?: number | null;
  /** KV reuse inside a block; absent: none. */
  cache?: DiffusionCache;
}

/** A broken Fast-dLLM setting: `threshold` or `cache`, and a message given the field's name. */
export interface FastIssue {
  field: 'threshold' | 'cache';
  message: (name: (field: 'threshold' | 'cache') => string) => string;
}

/** The threshold lies in (0, 1]; the cache is one of DIFFUSION_CACHES. */
export function fastIssues(r: Pick<DiffusionRun, 'threshold' | 'cache'>): FastIssue[] {
  const out: FastIssue[] = [];
  const t = r.threshold;
  if (t !== undefined && t !== null && !(t > 0 && t <= 1))
    out.push({
      field: 'threshold',
      message: (n) =>
        `${n('threshold')} must lie in (0, 1] (a confidence; 1 = the exact schedule), got ${t}`,
    });
  if (r.cache !== undefined && !DIFFUSION_CACHES.includes(r.cache))
    out.push({
      field: 'cache',
      message: (n) => `${n('cache')} must be one of ${DIFFUSION_CACHES.join(', ')}, got ${r.cache}`,
    });
  return out;
}

/** Canvas rows [from, to) that one step recomputes. */
export interface Span {
  from: number;
  to: number;
}

/**
 * The rows step `i` of a block [start, end) recomputes on a canvas of n: all of them at a
 * block's first step or without a cache; else [start, n) (prefix) or [start, end) (dual).
 */
export function stepSpan(cache: DiffusionCache, i: number, block: Span, n: number): Span {
  if (i === 0 || cache === 'none') return { from: 0, to: n };
  return { from: block.from, to: cache === 'prefix' ? n : block.to };
}

/** What a step's pick is drawn with (noise is a function of seed, step, position and id). */
export interface PickSettings {
  seed: number;
  step: number;
  temperature: number;
  remasking: Remasking;
  /** Read position p's candidate from logits row p − 1 (pickRowOf). */
  shiftLogits?: boolean;
}

/**
 * The canvas row whose logits hold position p's prediction: p, or p − 1 with shifted logits
 * (row 0 for p = 0, as Dream's logits[:, :1] repeat). The pick's noise is that row's.
 */
export function pickRowOf(p: number, shift: boolean | undefined): number {
  return shift ? Math.max(p - 1, 0) : p;
}

/** The candidates of the wanted rows, in their order, and the span's logits when read back. */
export interface RowPicks {
  tokens: ArrayLike<number>;
  confidence: ArrayLike<number>;
  /** Logits of rows [span.from, span.to) ([to − from, vocab]), when the step read them. */
  logits: Float32Array | null;
}

/**
 * One sampler step: recompute `span` of the canvas (the full canvas when it covers it; else
 * against the K/V cached by the block's first step) and pick the candidates of canvas positions
 * `want` (ascending, inside the span).
 */
export type CanvasStep = (
  canvas: Uint32Array,
  span: Span,
  want: readonly number[],
  pick: PickSettings,
) => Promise<RowPicks>;

/**
 * Logits of canvas rows [span.from, span.to) ([to − from, vocab]). A forward that ignores the
 * span (always the whole canvas) serves the uncached sampler; a cached one is refused (the
 * length check in hostPicks).
 */
export type CanvasForward = (canvas: Uint32Array, span: Span) => Promise<Float32Array>;

/**
 * Classifier-free guidance over a forward (the reference's cfg_scale): the canvas's logits and
 * those of the same canvas with its first `prompt` positions masked, combined as
 * un + (scale + 1)·(cond − un). Full spans only: Fast-dLLM's caches do not define it.
 */
export function guidedForward(
  forward: CanvasForward,
  prompt: number,
  maskId: number,
  scale: number,
): CanvasForward {
  return async (canvas, span) => {
    if (span.from !== 0 || span.to !== canvas.length)
      throw new Error('classifier-free guidance runs full forwards only (no --cache)');
    const cond = await forward(canvas, span);
    const masked = canvas.slice();
    masked.fill(maskId, 0, prompt);
    const un = await forward(masked, span);
    const out = new Float32Array(cond.length);
    for (let i = 0; i < out.length; i++) out[i] = un[i] + (scale + 1) * (cond[i] - un[i]);
    return out;
  };
}

/** A CanvasStep that picks on the host (pickRow) over the logits `forward` returns. */
export function hostPicks(forward: CanvasForward, vocab: number): CanvasStep {
  return async (canvas, span, want, pick) => {
    const logits = await forward(canvas, span);
    const rows = span.to - span.from;
    if (logits.length !== rows * vocab)
      throw new Error(
        `the forward of canvas rows ${span.from}..${span.to - 1} returned ${logits.length / vocab} rows of logits, not ${rows} (a cached sampler needs a forward over a span)`,
      );
    const tokens: number[] = [];
    const confidence: number[] = [];
    for (const p of want) {
      const row = pickRowOf(p, pick.shiftLogits);
      if (row < span.from)
        throw new Error(
          `position ${p}'s prediction is in row ${row}, before the recomputed span ${span.from}..${span.to - 1}`,
        );
      const c = pickRow(logits, row - span.from, vocab, { ...pick, position: row });
      tokens.push(c.token);
      confidence.push(c.confidence);
    }
    return { tokens, confidence, logits };
  };
}

/** What one step committed: canvas positions and their tokens, in commit order. */
export interface StepCommit {
  step: number;
  block: number;
  /** The rows the step recomputed. */
  span: Span;
  positions: number[];
  tokens: number[];
}

/** How many of a step's candidates (sorted by confidence, highest first) it commits. */
export function commitCount(
  sorted: readonly number[],
  scheduled: number,
  threshold: number | null,
): number {
  if (threshold === null || threshold >= 1) return Math.min(scheduled, sorted.length);
  let above = 0;
  while (above < sorted.length && sorted[above] > threshold) above++;
  return Math.min(Math.max(scheduled, above, 1), sorted.length);
}

/** Sees each step's commits, the canvas after them and the step's logits (host pick only). */
export type OnDiffusionStep = (
  c: StepCommit,
  canvas: Uint32Array,
  logits: Float32Array | null,
) => void | Promise<void>;

/**
 * Masked-diffusion generation with a host-side pick over `forward`'s logits (see the file
 * comment); returns the final canvas. `onStep` sees each step's commits, the canvas after them
 * and the step's logits (rows span.from..span.to − 1).
 */
export function diffusionGenerate(
  forward: CanvasForward,
  prompt: ArrayLike<number>,
  vocab: number,
  r: DiffusionRun,
  onStep?: OnDiffusionStep,
): Promise<Uint32Array> {
  const f = r.cfgScale > 0 ? guidedForward(forward, prompt.length, r.maskId, r.cfgScale) : forward;
  return diffusionSample(hostPicks(f, vocab), prompt, vocab, r, onStep);
}

/**
 * The sampler's loop over any CanvasStep (host or GPU pick). Per block [start, end):
 *  - its masks m give the schedule's counts over its steps; step i recomputes stepSpan(...);
 *  - the candidates are the masked positions of that span before `end` (at a full step that
 *    includes mask ids written in the prompt, as in the reference; a cached step sees its span
 *    only, as in Fast-dLLM);
 *  - commitCount of them are committed, most confident first (ties: lower position);
 *  - once the block holds no mask, its remaining steps are skipped (they would commit nothing:
 *    the counts left sum to 0 then), so `threshold` saves forwards;
 *  - with `transfer: 'dream'` the count is dreamCount of the candidates left (Dream counts every
 *    mask of the canvas, which is this set when the block is the whole answer).
 */
export async function diffusionSample(
  stepFn: CanvasStep,
  prompt: ArrayLike<number>,
  vocab: number,
  r: DiffusionRun,
  onStep?: OnDiffusionStep,
): Promise<Uint32Array> {
  const issue = scheduleIssues(r)[0];
  if (issue) throw new Error(issue.message((f) => f));
  const fast = fastIssues(r)[0];
  if (fast) throw new Error(fast.message((f) => f));
  if (!Number.isInteger(r.maskId) || r.maskId < 0 || r.maskId >= vocab)
    throw new Error(`mask id ${r.maskId} is not a token of the vocab (${vocab})`);
  if (r.cfgScale > 0 && (r.cache ?? 'none') !== 'none')
    throw new Error(
      `cache ${r.cache} with cfg_scale ${r.cfgScale}: classifier-free guidance runs full forwards only (cache none)`,
    );
  if (r.shiftLogits && (r.cache ?? 'none') !== 'none')
    throw new Error(
      `cache ${r.cache} with shifted logits (Dream): a cached step does not recompute the row before its block, which predicts the block's first position (cache none)`,
    );
  const cache = r.cache ?? 'none';
  const threshold = r.threshold ?? null;
  const P = prompt.length;
  const n = P + r.genLength;
  const canvas = new Uint32Array(n).fill(r.maskId);
  for (let i = 0; i < P; i++) canvas[i] = prompt[i];
  const blocks = r.genLength / r.blockLength;
  const perBlock = r.steps / blocks;
  const masksIn = (from: number, to: number) => {
    let m = 0;
    for (let p = from; p < to; p++) if (canvas[p] === r.maskId) m++;
    return m;
  };
  for (let b = 0; b < blocks; b++) {
    const block = { from: P + b * r.blockLength, to: P + (b + 1) * r.blockLength };
    const counts = transferCounts(masksIn(block.from, block.to), perBlock);
    for (let i = 0; i < perBlock && masksIn(block.from, block.to) > 0; i++) {
      const step = b * perBlock + i;
      const span = stepSpan(cache, i, block, n);
      const want: number[] = [];
      for (let p = span.from; p < block.to; p++) if (canvas[p] === r.maskId) want.push(p);
      const picks = await stepFn(canvas, span, want, {
        seed: r.seed,
        step,
        temperature: r.temperature,
        remasking: r.remasking,
        ...(r.shiftLogits ? { shiftLogits: true } : {}),
      });
      const scheduled =
        r.transfer === 'dream'
          ? dreamCount(want.length, i, perBlock, r.eps ?? DREAM_EPS)
          : counts[i];
      const order = want.map((_, j) => j);
      order.sort((x, y) => picks.confidence[y] - picks.confidence[x] || want[x] - want[y]);
      const k = commitCount(
        order.map((j) => picks.confidence[j]),
        scheduled,
        threshold,
      );
      const chosen = order.slice(0, k);
      for (const j of chosen) canvas[want[j]] = picks.tokens[j];
      await onStep?.(
        {
          step,
          block: b,
          span,
          positions: chosen.map((j) => want[j]),
          tokens: chosen.map((j) => picks.tokens[j]),
        },
        canvas,
        picks.logits,
      );
    }
  }
  return canvas;
}
