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
 * Noise: the reference draws torch.rand; here every draw is a pure function of
 * (seed, step, position, vocab id) through nested PCG hashes in u32 arithmetic, so a GPU kernel
 * (WGSL has the same u32 ops) and this reference compute identical bits. Gumbel-max is taken in
 * log form, argmax(l − T·log(−log u)), which is the reference's argmax(exp(l) / (−log u)^T)
 * without exponentiating the logits.
 *
 * Ties: argmax takes the lowest id (torch.argmax); top-k takes the higher confidence, then the
 * lower position (torch.topk leaves the order of ties unspecified).
 */
import { pcgHash } from './sampling.ts';

export type Remasking = 'low_confidence' | 'random';
export const REMASKINGS: readonly Remasking[] = ['low_confidence', 'random'];

/** The sampler settings a run uses (the spec's diffusion section gives the defaults). */
export interface DiffusionSchedule {
  genLength: number;
  blockLength: number;
  steps: number;
  remasking: Remasking;
  temperature: number;
  /** Classifier-free guidance scale; only 0 (off) is supported yet. */
  cfgScale: number;
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
  if (s.cfgScale !== 0) {
    out.push({
      field: 'cfgScale',
      message: (n) =>
        `${n('cfgScale')} ${s.cfgScale}: classifier-free guidance is not supported yet (only 0)`,
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

/** Vocab id slot of the `random` remasking draw: above any vocab (capped at 2^20). */
const CONFIDENCE_STREAM = 0xffffffff;

/** A u32 hash of (seed, step, position, id): each coordinate goes through its own PCG round. */
export function noiseBits(seed: number, step: number, position: number, id: number): number {
  let h = pcgHash(seed >>> 0);
  h = pcgHash((h ^ step) >>> 0);
  h = pcgHash((h ^ position) >>> 0);
  return pcgHash((h ^ id) >>> 0);
}

/** A uniform in (0, 1), never 0 or 1 so that −log(−log u) is finite: (bits + 0.5) / 2^32. */
export function noiseUniform(seed: number, step: number, position: number, id: number): number {
  return (noiseBits(seed, step, position, id) + 0.5) / 4294967296;
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
 * confidence (softmax probability of the un-noised logits, or a uniform draw for `random`).
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
  for (let v = 0; v < vocab; v++) {
    const l = logits[base + v];
    if (l > max) max = l;
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
  return { token: best, confidence: Math.exp(logits[base + best] - max) / sum };
}

/** Settings of one generation: the schedule, the mask id and the noise seed. */
export interface DiffusionRun extends DiffusionSchedule {
  maskId: number;
  seed: number;
}

/** What one step committed: canvas positions and their tokens, in commit order. */
export interface StepCommit {
  step: number;
  block: number;
  positions: number[];
  tokens: number[];
}

/** Logits for every canvas row ([canvas.length, vocab]) from one bidirectional forward. */
export type CanvasForward = (canvas: Uint32Array) => Promise<Float32Array>;

/**
 * Masked-diffusion generation (see the file comment): returns the final canvas; `onStep` sees
 * each step's commits and the canvas after them.
 */
export async function diffusionGenerate(
  forward: CanvasForward,
  prompt: ArrayLike<number>,
  vocab: number,
  r: DiffusionRun,
  onStep?: (c: StepCommit, canvas: Uint32Array, logits: Float32Array) => void | Promise<void>,
): Promise<Uint32Array> {
  const issue = scheduleIssues(r)[0];
  if (issue) throw new Error(issue.message((f) => f));
  if (!Number.isInteger(r.maskId) || r.maskId < 0 || r.maskId >= vocab)
    throw new Error(`mask id ${r.maskId} is not a token of the vocab (${vocab})`);
  const P = prompt.length;
  const canvas = new Uint32Array(P + r.genLength).fill(r.maskId);
  for (let i = 0; i < P; i++) canvas[i] = prompt[i];
  const blocks = r.genLength / r.blockLength;
  const perBlock = r.steps / blocks;
  for (let b = 0; b < blocks; b++) {
    const start = P + b * r.blockLength;
    let masks = 0;
    for (let p = start; p < start + r.blockLength; p++) if (canvas[p] === r.maskId) masks++;
    const counts = transferCounts(masks, perBlock);
    for (let i = 0; i < perBlock; i++) {
      const step = b * perBlock + i;
      const logits = await forward(canvas);
      const cands: { position: number; c: Candidate }[] = [];
      // Every masked position up to the block's end competes, as in the reference: earlier
      // blocks are full by then, but a mask id written in the prompt is filled in too.
      for (let p = 0; p < start + r.blockLength; p++) {
        if (canvas[p] !== r.maskId) continue;
        cands.push({
          position: p,
          c: pickRow(logits, p, vocab, { ...r, step, position: p }),
        });
      }
      cands.sort((x, y) => y.c.confidence - x.c.confidence || x.position - y.position);
      const chosen = cands.slice(0, counts[i]);
      for (const { position, c } of chosen) canvas[position] = c.token;
      await onStep?.(
        {
          step,
          block: b,
          positions: chosen.map((x) => x.position),
          tokens: chosen.map((x) => x.c.token),
        },
        canvas,
        logits,
      );
    }
  }
  return canvas;
}
