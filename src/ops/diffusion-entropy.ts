/**
 * Block diffusion over uniform noise with an entropy-bound sampler: DiffusionGemma's generate()
 * (transformers models/diffusion_gemma/generation_diffusion_gemma.py). It is not LLaDA's sampler
 * (src/ops/diffusion.ts), whose canvas starts as mask ids and never changes a committed token:
 *
 *  - generation is block-autoregressive: a canvas of `canvasLength` tokens after the context; the
 *    context (prompt, then each finished canvas) is encoded once, causally, into a KV cache that
 *    the denoiser reads (model.encode), and each denoising step reads that cache and the canvas
 *    (model.denoise), bidirectionally;
 *  - a canvas starts as uniformly random tokens (no mask id), and every step may change any of
 *    its tokens: the denoiser's token is drawn at temperature t(k) = tMin + (tMax − tMin)·k/N at
 *    step k = N, N−1, …, 1 (N = maxSteps; k counts the steps left);
 *  - acceptance: the tokens are sorted by the entropy of softmax(logits / t), lowest first, and
 *    the first j are accepted while the sum of the entropies before j is at most `entropyBound`
 *    (so the lowest-entropy token always is); the others are renoised with fresh random tokens;
 *  - the step's logits / t feed the next step (self-conditioning: the denoiser adds an embedding
 *    of their softmax), none at a canvas's first step;
 *  - a canvas stops early once stable and confident: its argmax (the argmax of the logits) equals
 *    that of each of the last `stabilityThreshold` steps, and the mean entropy is below
 *    `confidenceThreshold`. The committed canvas is the last step's argmax, not the sampled one;
 *  - after a canvas holding an eos id, generation stops; the tokens after its first eos become
 *    `pad` (when given).
 *
 * Temperature 0 (tMax = 0): the reference needs tMax > tMin, so its "temperature 0" is a tiny
 * tMax, where every softmax is one-hot. Here t = 0 is that limit exactly: the denoiser takes the
 * argmax, every entropy is 0 (so the whole canvas is accepted and nothing is renoised), and the
 * self-conditioning softmax is the one-hot of the argmax.
 *
 * Noise: the reference draws torch.randint and torch.multinomial; here every draw is a pure
 * function of (seed, draw, position, id) through src/ops/diffusion.ts's PCG hashes (a sampled
 * token is Gumbel-max, argmax(l/t − log(−log u))). Canvases can also be given (`starts`), which
 * is how a test replays the reference's own random starting canvases.
 *
 * Ties: argmax takes the lowest id (torch.argmax); the entropy sort keeps position order among
 * equal entropies (torch.sort leaves it unspecified; at t = 0 every entropy is 0 and the order
 * does not matter, as every token is accepted).
 */
import type { EntropyBoundSpec } from '../spec/model.ts';
import { noiseUniform } from './diffusion.ts';
import {
  ambiguousRows,
  entropyRowStats,
  NONFINITE_ROW,
  type RowNoise,
  type RowStats,
} from './entropy-rows.ts';
import { softmaxRowsInto } from './softmax-rows.ts';

/**
 * The settings of one generation: the spec's sampler settings (EntropyBoundSpec, where each is
 * described) and the run's own.
 */
export interface EntropyBoundRun extends Omit<EntropyBoundSpec, 'kind' | 'selfCondition'> {
  /** Ids that end generation after the canvas holding them; empty: none. */
  eos: readonly number[];
  /** Written after the first eos of the last canvas; null: left as generated. */
  pad: number | null;
  seed: number;
}

/**
 * A run of a spec's sampler: its settings under the caller's gen length, step count and greedy
 * choice (temperature 0: t_min and t_max 0). Unchecked: entropyBoundIssues says what is wrong.
 */
export function entropyBoundRunOf(
  d: EntropyBoundSpec,
  o: {
    genLength?: number;
    maxSteps?: number;
    greedy: boolean;
    eos: readonly number[];
    seed: number;
  },
): EntropyBoundRun {
  return {
    canvasLength: d.canvasLength,
    genLength: o.genLength ?? d.genLength,
    maxSteps: o.maxSteps ?? d.maxSteps,
    tMin: o.greedy ? 0 : d.tMin,
    tMax: o.greedy ? 0 : d.tMax,
    entropyBound: d.entropyBound,
    stabilityThreshold: d.stabilityThreshold,
    confidenceThreshold: d.confidenceThreshold,
    eos: o.eos,
    pad: null,
    seed: o.seed,
  };
}

/** HF's defaults (DiffusionGemmaGenerationConfig._get_default_generation_params). */
export const ENTROPY_BOUND_DEFAULTS = {
  maxSteps: 48,
  tMin: 0.4,
  tMax: 0.8,
  entropyBound: 0.1,
  stabilityThreshold: 1,
  confidenceThreshold: 0.005,
} as const;

export type EntropyBoundField = keyof EntropyBoundRun;

/** A broken setting: the field, and a message given the caller's name for a field. */
export interface EntropyBoundIssue {
  field: EntropyBoundField;
  message: (name: (f: EntropyBoundField) => string) => string;
}

/** The reference's validate() rules, plus a whole number of canvases and t = 0 allowed. */
export function entropyBoundIssues(r: EntropyBoundRun, vocab: number): EntropyBoundIssue[] {
  const out: EntropyBoundIssue[] = [];
  const intAtLeast = (f: 'canvasLength' | 'genLength' | 'maxSteps', min: number) => {
    if (!Number.isSafeInteger(r[f]) || r[f] < min)
      out.push({
        field: f,
        message: (n) => `${n(f)} must be an integer of at least ${min}, got ${r[f]}`,
      });
  };
  intAtLeast('canvasLength', 1);
  intAtLeast('genLength', 1);
  intAtLeast('maxSteps', 1);
  if (!out.length && r.genLength % r.canvasLength !== 0)
    out.push({
      field: 'genLength',
      message: (n) =>
        `${n('genLength')} (${r.genLength}) must be a multiple of ${n('canvasLength')} (${r.canvasLength}): generation appends whole canvases`,
    });
  if (!(r.tMin >= 0) || !Number.isFinite(r.tMin))
    out.push({
      field: 'tMin',
      message: (n) => `${n('tMin')} must be a number of at least 0, got ${r.tMin}`,
    });
  else if (!(r.tMax >= r.tMin) || !Number.isFinite(r.tMax))
    out.push({
      field: 'tMax',
      message: (n) =>
        `${n('tMax')} must be a number of at least ${n('tMin')} (${r.tMin}), got ${r.tMax}`,
    });
  if (!(r.entropyBound > 0) || !Number.isFinite(r.entropyBound))
    out.push({
      field: 'entropyBound',
      message: (n) => `${n('entropyBound')} must be a number above 0, got ${r.entropyBound}`,
    });
  if (!Number.isSafeInteger(r.stabilityThreshold) || r.stabilityThreshold < 0)
    out.push({
      field: 'stabilityThreshold',
      message: (n) =>
        `${n('stabilityThreshold')} must be an integer of at least 0, got ${r.stabilityThreshold}`,
    });
  if (!(r.confidenceThreshold > 0) || !Number.isFinite(r.confidenceThreshold))
    out.push({
      field: 'confidenceThreshold',
      message: (n) =>
        `${n('confidenceThreshold')} must be a number above 0, got ${r.confidenceThreshold}`,
    });
  const bad = [...r.eos, ...(r.pad === null ? [] : [r.pad])].find(
    (id) => !Number.isInteger(id) || id < 0 || id >= vocab,
  );
  if (bad !== undefined)
    out.push({
      field: r.eos.includes(bad) ? 'eos' : 'pad',
      message: (n) =>
        `${n(r.eos.includes(bad) ? 'eos' : 'pad')}: ${bad} is not a token of the vocab (${vocab})`,
    });
  return out;
}

/** Temperature at step k of N (k = N first, 1 last). */
export function stepTemperature(r: Pick<EntropyBoundRun, 'tMin' | 'tMax'>, k: number, n: number) {
  return r.tMin + (r.tMax - r.tMin) * (k / n);
}

/**
 * Entropy (nats) of softmax(row / t), in f64; 0 at t = 0 (the one-hot limit; a tie at the top
 * would give log(ties), but the limit the reference's tiny t reaches is taken as one-hot). The
 * sampler's own row statistics (src/ops/entropy-rows.ts entropyRowStats) compute it.
 */
export function rowEntropy(logits: ArrayLike<number>, row: number, vocab: number, t: number) {
  return entropyRowStats(logits, row, vocab, t, { seed: 0, draw: 0 }).entropy;
}

/**
 * The entropy-bound acceptance (EntropyBoundSampler.accept_canvas): position i is accepted when
 * the entropies sorted before it (ascending; ties in position order) sum to at most `bound`.
 */
export function acceptByEntropy(entropy: ArrayLike<number>, bound: number): boolean[] {
  const order = Array.from({ length: entropy.length }, (_, i) => i);
  order.sort((a, b) => entropy[a] - entropy[b] || a - b);
  const accepted = new Array<boolean>(entropy.length).fill(false);
  let before = 0;
  for (const i of order) {
    accepted[i] = before <= bound;
    before += entropy[i];
  }
  return accepted;
}

/**
 * The state a compiled entropy_bound model reads the self-conditioning probabilities from
 * ([prefill chunk, vocab], src/graph/blocks/self-condition.ts): written before each denoising
 * step, zero otherwise.
 */
export const SELF_CONDITION_PROBS = 'self_condition.probs';

/**
 * The previous step's logits and temperature: the denoiser embeds softmax(logits / t). `logits`
 * null: the step ran on the device without reading them back (denoiseRows), and only the model
 * that returned this very object holds them.
 */
export interface SelfCondition {
  logits: Float32Array | null;
  temperature: number;
}

/**
 * One denoising step's per-row statistics (src/ops/entropy-rows.ts: argmax, drawn token,
 * entropy, one entry per canvas row), its logits when they were read back, and the
 * self-condition the next step passes back as `sc`.
 */
export interface DenoisedRows {
  argmax: Uint32Array;
  token: Uint32Array;
  entropy: Float64Array;
  logits: Float32Array | null;
  self: SelfCondition;
  /**
   * Statistics computed in f32 on the device: how far each may be from the host's f64 ones
   * (RowStats: 0 / sure is exact) and a reader of one canvas row's logits (valid until the
   * model's next call), with which the sampler recomputes the rows that could change a decision.
   * Absent: exact.
   */
  check?: Pick<RowStats, 'entropyError' | 'tokenSure'> & {
    rowLogits(p: number): Promise<Float32Array>;
  };
}

/** The model side of the sampler: a causal encoder into a KV cache and a cache-reading denoiser. */
export interface BlockDiffusionModel {
  vocab: number;
  /** Encode `ids` causally after the context encoded so far, appending to its cache. */
  encode(ids: Uint32Array): Promise<void>;
  /**
   * Logits [canvas length, vocab] of `canvas`, placed after the context; reads the cache only.
   * `sc`: the previous step's logits and temperature, or null at a canvas's first step.
   * `temperature`: the one the sampler applies to these logits, so that a model can prepare the
   * next step's self-conditioning, softmax(logits / temperature), where the logits are
   * (runtime/entropy-diffusion.ts does it on the GPU, and uses it when `sc` holds the very array
   * it returned, at that temperature: the sampler passes it back unmodified).
   */
  denoise(
    canvas: Uint32Array,
    sc: SelfCondition | null,
    temperature: number,
  ): Promise<Float32Array>;
  /**
   * Optional: the same step with the row statistics computed where the logits are (the
   * entropy_rows op; runtime/entropy-diffusion.ts runs its kernel on the GPU), so only a few
   * words a row come back. `noise`: the draw's seed and index (the Gumbel noise of row p is that
   * of (seed, draw, p, id)); `withLogits`: read the logits back too (for a caller that needs
   * them). Exact at t = 0; at t > 0 its token and entropy are f32 (src/ops/entropy-rows.ts),
   * returned with their error bounds (DenoisedRows.check), and the sampler recomputes from the
   * row's logits every row that could make a decision differ from the host path's: the
   * generation is the host path's, token for token.
   */
  denoiseRows?(
    canvas: Uint32Array,
    sc: SelfCondition | null,
    temperature: number,
    noise: RowNoise,
    withLogits: boolean,
  ): Promise<DenoisedRows>;
}

/** What one denoising step did, for progress display and tests. */
export interface EntropyBoundStep {
  block: number;
  /** Steps left before this one, N − 1 … 0 (the reference's k − 1). */
  remaining: number;
  temperature: number;
  /** The canvas the step denoised, and its logits (null: reduced on the device, not read). */
  canvas: Uint32Array;
  logits: Float32Array | null;
  argmax: Uint32Array;
  accepted: boolean[];
  /** The step ended its canvas (stable and confident). */
  stopped: boolean;
  /** Rows of device statistics recomputed on the host from their logits (0 on the host path). */
  recomputed: number;
}

/** Options: starting canvases (else drawn), and a per-step callback. */
export interface EntropyBoundOptions {
  /**
   * Take the model's device row statistics (BlockDiffusionModel.denoiseRows) when it has them
   * (the same tokens either way); false: every step reads its logits. Absent: true.
   */
  deviceRows?: boolean;
  /** Block b's starting canvas; null or absent: uniformly random tokens from the seed. */
  starts?: (block: number) => Uint32Array | null;
  onStep?: (s: EntropyBoundStep) => void | Promise<void>;
}

/** Draw streams (the id slot of noiseBits) above any vocab, so that they never collide. */
const START_STREAM = 0xfffffff0;
const RENOISE_STREAM = 0xfffffff1;

function randomTokens(seed: number, draw: number, stream: number, n: number, vocab: number) {
  const out = new Uint32Array(n);
  for (let p = 0; p < n; p++)
    out[p] = Math.min(vocab - 1, Math.floor(noiseUniform(seed, draw, p, stream) * vocab));
  return out;
}

/** A step's row statistics on the host, from logits it read (entropyRowStats per row). */
function hostRows(
  logits: Float32Array,
  C: number,
  vocab: number,
  t: number,
  noise: RowNoise,
  sc: SelfCondition,
): DenoisedRows {
  const out: DenoisedRows = {
    argmax: new Uint32Array(C),
    token: new Uint32Array(C),
    entropy: new Float64Array(C),
    logits,
    self: sc,
  };
  for (let p = 0; p < C; p++) {
    const s = entropyRowStats(logits, p, vocab, t, noise);
    out.argmax[p] = s.argmax;
    out.token[p] = s.token;
    out.entropy[p] = s.entropy;
  }
  return out;
}

/**
 * A denoising step's statistics: on the device (denoiseRows) where `deviceRows` allows it at
 * temperature t, else from the logits on the host. Refuses rows of the wrong count and rows
 * whose logits were not finite (NONFINITE_ROW).
 */
async function denoiseStep(
  model: BlockDiffusionModel,
  canvas: Uint32Array,
  sc: SelfCondition | null,
  t: number,
  noise: RowNoise,
  deviceRows: boolean,
): Promise<DenoisedRows> {
  const C = canvas.length;
  const vocab = model.vocab;
  const device = model.denoiseRows && deviceRows;
  let rows: DenoisedRows;
  if (device) {
    rows = await model.denoiseRows!(canvas, sc, t, noise, false);
    if (rows.argmax.length !== C || rows.token.length !== C || rows.entropy.length !== C)
      throw new Error(`denoiseRows returned statistics of ${rows.argmax.length} rows, not ${C}`);
  } else {
    const logits = await model.denoise(canvas, sc, t);
    if (logits.length !== C * vocab)
      throw new Error(`denoise returned ${logits.length} logits, not ${C} × ${vocab}`);
    rows = hostRows(logits, C, vocab, t, noise, { logits, temperature: t });
  }
  const bad = rows.argmax.findIndex((x) => x === NONFINITE_ROW);
  if (bad >= 0)
    throw new Error(
      `denoising step (draw ${noise.draw}): the logits of canvas row ${bad} are not all finite (NaN or Inf)`,
    );
  return rows;
}

/**
 * Generate after `prompt` with the entropy-bound block sampler over `model` (see the file
 * comment); returns the generated tokens (genLength, or fewer canvases' worth after an eos).
 */
export async function entropyBoundGenerate(
  model: BlockDiffusionModel,
  prompt: ArrayLike<number>,
  r: EntropyBoundRun,
  o: EntropyBoundOptions = {},
): Promise<Uint32Array> {
  const vocab = model.vocab;
  const issue = entropyBoundIssues(r, vocab)[0];
  if (issue) throw new Error(issue.message((f) => f));
  if (prompt.length < 1) throw new Error('the prompt is empty: the encoder needs a context');
  const C = r.canvasLength;
  const N = r.maxSteps;
  const out: number[] = [];
  let draw = 0;
  await model.encode(Uint32Array.from(prompt));
  for (let b = 0; b < r.genLength / C; b++) {
    if (b > 0) await model.encode(Uint32Array.from(out.slice(-C)));
    let canvas = o.starts?.(b) ?? randomTokens(r.seed, draw++, START_STREAM, C, vocab);
    if (canvas.length !== C)
      throw new Error(`starting canvas of block ${b} has ${canvas.length} tokens, not ${C}`);
    let argmax = canvas;
    let sc: SelfCondition | null = null;
    const history: Uint32Array[] = [];
    for (let k = N; k >= 1; k--) {
      const t = stepTemperature(r, k, N);
      const stepDraw = draw++;
      const noise = { seed: r.seed, draw: stepDraw };
      const rows = await denoiseStep(model, canvas, sc, t, noise, o.deviceRows ?? true);
      argmax = rows.argmax;
      // Stable: the argmax equals each of the last stabilityThreshold steps' (all must exist).
      const s = r.stabilityThreshold;
      const stable =
        s === 0 ||
        (history.length >= s && history.slice(-s).every((h) => h.every((x, i) => x === argmax[i])));
      history.push(argmax);
      let accepted = acceptByEntropy(rows.entropy, r.entropyBound);
      let recomputed = 0;
      const check = rows.check;
      if (check) {
        // Device statistics: recompute from its logits each row that could decide otherwise
        // than the f64 host path, until none could (src/ops/entropy-rows.ts ambiguousRows).
        const stats: RowStats = { ...rows, ...check };
        for (;;) {
          const open = ambiguousRows(
            stats,
            accepted,
            r.entropyBound,
            stable ? r.confidenceThreshold : null,
          );
          if (!open.length) break;
          for (const p of open) {
            const x = entropyRowStats(await check.rowLogits(p), 0, vocab, t, noise, p);
            stats.token[p] = x.token;
            stats.entropy[p] = x.entropy;
            stats.entropyError[p] = 0;
            stats.tokenSure[p] = 1;
            recomputed++;
          }
          accepted = acceptByEntropy(stats.entropy, r.entropyBound);
        }
      }
      const entropy = rows.entropy;
      const next = rows.token.slice();
      const renoise = randomTokens(r.seed, stepDraw, RENOISE_STREAM, C, vocab);
      for (let p = 0; p < C; p++) if (!accepted[p]) next[p] = renoise[p];
      const meanEntropy = entropy.reduce((a, x) => a + x, 0) / C;
      const stopped = stable && meanEntropy < r.confidenceThreshold;
      await o.onStep?.({
        block: b,
        remaining: k - 1,
        temperature: t,
        canvas,
        logits: rows.logits,
        argmax,
        accepted,
        stopped,
        recomputed,
      });
      sc = rows.self;
      canvas = next;
      if (stopped) break;
    }
    out.push(...argmax);
    const eosAt = Array.from(argmax).findIndex((x) => r.eos.includes(x));
    if (eosAt >= 0) {
      if (r.pad !== null)
        for (let p = out.length - C + eosAt + 1; p < out.length; p++) out[p] = r.pad;
      break;
    }
  }
  return Uint32Array.from(out);
}

/**
 * softmax(row / t) of [*, vocab] rows (t = 0: the one-hot of the lowest-id argmax), on the host:
 * a self-condition that did not come from the model's own last step (the softmax_rows op,
 * src/ops/softmax-rows.ts, computes the same on the GPU from the step's logits).
 */
export function selfConditionProbs(sc: SelfCondition, vocab: number): Float32Array {
  if (!sc.logits)
    throw new Error(
      'the self-condition came from a step whose logits stayed on the device (denoiseRows): only the model that ran it can use it',
    );
  const out = new Float32Array(sc.logits.length);
  softmaxRowsInto(sc.logits, sc.logits.length / vocab, vocab, sc.temperature, out);
  return out;
}
