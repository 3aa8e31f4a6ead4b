/**
 * Diffusion bundles in the web runtime (runtime/web.ts generate()): a model whose spec has a
 * `diffusion` section is sampled with its own sampler, never decoded left to right — BD3-LM
 * (`bd3lm`) with the block sampler and its exact KV cache (runtime/block-diffusion.ts), LLaDA and
 * Dream (`llada`, `dream`) with the masked-diffusion sampler (runtime/diffusion.ts). The settings
 * are the bundle's defaults (its spec's diffusion section) under the caller's, with `strata
 * run`'s rules: maxTokens is the generated length, and the checks are the sampler's own.
 *
 * DiffusionGemma (`entropy_bound`) refines a canvas of random tokens instead
 * (runtime/entropy-diffusion.ts, the GPU row statistics by default, as `strata run`).
 *
 * Text streams as the canvas settles: the generated tokens up to the first position still
 * masked are final (both masked samplers fill blocks left to right); an entropy_bound canvas is
 * final when it stops. After each step the newly final ones are delivered — a block or canvas at
 * a time for BD3-LM and DiffusionGemma. onCanvas sees every step's commits and the canvas after
 * them, rendered as `strata run` prints it (runtime/canvas-view.ts).
 */
import type { BlockDiffusionSpec, DiffusionSpec, EntropyBoundSpec } from '../src/spec/model.ts';
import {
  blockScheduleIssues,
  type BlockDiffusionRun,
  type BlockSampler,
} from '../src/ops/block-diffusion.ts';
import {
  fastIssues,
  scheduleIssues,
  scheduleOfSpec,
  type DiffusionCache,
  type DiffusionRun,
  type Remasking,
} from '../src/ops/diffusion.ts';
import { attentionBlock, blockDiffusionGenerateGpu } from './block-diffusion.ts';
import { diffusionGenerateGpu, type DiffusionPick } from './diffusion.ts';
import {
  entropyBoundGenerate,
  entropyBoundIssues,
  entropyBoundRunOf,
  type EntropyBoundField,
  type EntropyBoundRun,
} from '../src/ops/diffusion-entropy.ts';
import { entropyBoundOnSequence } from './entropy-diffusion.ts';
import type { Sequence } from './model.ts';

/** Sampler settings over a diffusion bundle's defaults; each applies to the kinds named. */
export interface WebDiffusionSettings {
  /** Generated tokens (default: maxTokens when given, else the bundle's gen length). */
  genLength?: number;
  blockLength?: number;
  steps?: number;
  /** bd3lm: first_hitting or ddpm. */
  sampler?: BlockSampler;
  /** bd3lm: nucleus (top-p) mass in (0, 1]. */
  nucleusP?: number;
  /** llada / dream. */
  remasking?: Remasking;
  /** llada / dream: classifier-free guidance scale (0: off). */
  cfgScale?: number;
  /** llada / dream: Fast-dLLM confidence threshold (null: the exact schedule). */
  threshold?: number | null;
  /** llada / dream: KV reuse inside a block. */
  cache?: DiffusionCache;
  /**
   * llada / dream: where a step picks its tokens (default host); bd3lm: where its rows are drawn
   * (default host: gpu reads back a token a row, not the row's logits); entropy_bound: where its
   * rows are reduced (default gpu).
   */
  pick?: DiffusionPick;
}

const BLOCK_ONLY = ['sampler', 'nucleusP'] as const;
const LLADA_ONLY = ['remasking', 'cfgScale', 'threshold', 'cache'] as const;

const ENTROPY_BOUND_TAKES = ['genLength', 'steps', 'pick'] as const;

/** The settings a kind takes, as errors list them: `genLength, blockLength, steps, …`. */
export function settingsOf(kind: 'bd3lm' | 'llada' | 'dream' | 'entropy_bound'): string {
  if (kind === 'entropy_bound') return ENTROPY_BOUND_TAKES.join(', ');
  const own = kind === 'bd3lm' ? BLOCK_ONLY : LLADA_ONLY;
  return ['genLength', 'blockLength', 'steps', ...own, 'pick'].join(', ');
}

/** One sampler step, as the page shows it. */
export interface CanvasProgress {
  /** The step's index over the whole generation (0-based). */
  step: number;
  /** Canvas positions the step committed, and their tokens. */
  positions: number[];
  tokens: number[];
  /** The whole canvas after the step: the prompt, then the generated region. */
  canvas: Uint32Array;
  promptLength: number;
  /** The canvas's mask token (canvasMaskId). */
  maskId: number;
  /** Canvas positions [0, final) hold the prompt and tokens that no later step changes. */
  final: number;
}

/** The mask token of a canvas without one (entropy_bound): no token id equals it. */
const NO_MASK = -1;

/** A diffusion model's mask token as the canvas shows it. */
export function canvasMaskId(d: DiffusionSpec | BlockDiffusionSpec | EntropyBoundSpec): number {
  return d.kind === 'entropy_bound' ? NO_MASK : d.maskId;
}

/** The bd3lm run: the caller's settings over the spec's, checked by the sampler's rules. */
export function blockRunOf(
  d: BlockDiffusionSpec,
  s: WebDiffusionSettings,
  o: { maxTokens?: number; temperature?: number; seed?: number },
  attnBlock: number | null,
): BlockDiffusionRun {
  const other = LLADA_ONLY.filter((k) => s[k] !== undefined);
  if (other.length)
    throw new Error(
      `diffusion.${other.join(', diffusion.')}: LLaDA/Dream sampler settings, but the bundle is a block-diffusion model (bd3lm: ${settingsOf('bd3lm')})`,
    );
  const blockLength = s.blockLength ?? d.blockLength;
  const run: BlockDiffusionRun = {
    genLength: s.genLength ?? o.maxTokens ?? d.genLength,
    blockLength,
    steps: s.steps ?? Math.max(d.steps, blockLength),
    sampler: s.sampler ?? d.sampler,
    temperature: o.temperature ?? d.temperature,
    nucleusP: s.nucleusP ?? d.nucleusP,
    maskId: d.maskId,
    seed: o.seed ?? 0,
  };
  const issue = blockScheduleIssues(run, attnBlock)[0];
  if (issue) throw new Error(issue.message((f) => (f === 'temperature' ? f : `diffusion.${f}`)));
  return run;
}

/** The llada / dream run, as `strata run` builds it from the same settings. */
export function maskedRunOf(
  d: DiffusionSpec,
  s: WebDiffusionSettings,
  o: { maxTokens?: number; temperature?: number; seed?: number },
): DiffusionRun {
  const other = BLOCK_ONLY.filter((k) => s[k] !== undefined);
  if (other.length)
    throw new Error(
      `diffusion.${other.join(', diffusion.')}: block-diffusion (bd3lm) settings, but the bundle is a ${d.kind} model (${settingsOf(d.kind)})`,
    );
  const genLength = s.genLength ?? o.maxTokens ?? d.genLength;
  const changed = genLength !== d.genLength;
  const run: DiffusionRun = {
    ...scheduleOfSpec(d),
    genLength,
    // A spec's block that does not divide another length becomes the whole answer (as `run`).
    blockLength: s.blockLength ?? (genLength % d.blockLength === 0 ? d.blockLength : genLength),
    steps: s.steps ?? (changed ? genLength : d.steps),
    remasking: s.remasking ?? d.remasking,
    temperature: o.temperature ?? d.temperature,
    cfgScale: s.cfgScale ?? d.cfgScale,
    threshold: s.threshold ?? null,
    cache: s.cache ?? 'none',
    maskId: d.maskId,
    seed: o.seed ?? 0,
  };
  const name = (f: string) => (f === 'temperature' ? f : `diffusion.${f}`);
  const schedule = scheduleIssues(run)[0];
  if (schedule) throw new Error(schedule.message(name));
  const fast = fastIssues(run)[0];
  if (fast) throw new Error(fast.message(name));
  return run;
}

/** The caller's name of an entropy_bound run's field, in errors. */
const ENTROPY_NAME: Partial<Record<EntropyBoundField, string>> = {
  genLength: 'diffusion.genLength (or maxTokens)',
  maxSteps: 'diffusion.steps',
  tMin: 'temperature',
  tMax: 'temperature',
};

/** The entropy_bound run: the caller's settings over the spec's, as `strata run` takes them. */
export function entropyRunOf(
  d: EntropyBoundSpec,
  s: WebDiffusionSettings,
  o: { maxTokens?: number; temperature?: number; seed?: number },
  vocab: number,
): EntropyBoundRun {
  const takes: readonly string[] = ENTROPY_BOUND_TAKES;
  const other = (Object.keys(s) as (keyof WebDiffusionSettings)[]).filter(
    (k) => s[k] !== undefined && !takes.includes(k),
  );
  if (other.length)
    throw new Error(
      `diffusion.${other.join(', diffusion.')}: settings of another diffusion sampler, but the bundle is an entropy_bound (DiffusionGemma) model (${settingsOf('entropy_bound')})`,
    );
  if (o.temperature !== undefined && o.temperature !== 0)
    throw new Error(
      `temperature ${o.temperature}: an entropy_bound model takes temperature 0 (greedy) or none (its spec's t_min ${d.tMin} … t_max ${d.tMax})`,
    );
  const run = entropyBoundRunOf(d, {
    genLength: s.genLength ?? o.maxTokens,
    maxSteps: s.steps,
    greedy: o.temperature === 0,
    // Stop tokens end the stream in generate(), which then stops the sampler.
    eos: [],
    seed: o.seed ?? 0,
  });
  const issue = entropyBoundIssues(run, vocab)[0];
  if (issue) throw new Error(issue.message((f) => ENTROPY_NAME[f] ?? `diffusion.${f}`));
  return run;
}

/**
 * Runs the bundle's diffusion sampler on `seq` from `prompt`; `onStep` sees each step (it may
 * throw to stop the run, which then rejects with that error). Returns the final canvas.
 */
export function diffusionGenerate(
  seq: Sequence,
  prompt: readonly number[],
  s: WebDiffusionSettings,
  o: { maxTokens?: number; temperature?: number; seed?: number },
  onStep: (p: CanvasProgress) => void,
): Promise<Uint32Array> {
  const d = seq.model.manifest.model.diffusion;
  if (!d) throw new Error('the bundle is not a diffusion model');
  const P = prompt.length;
  if (d.kind === 'entropy_bound')
    return entropyGenerate(
      seq,
      prompt,
      entropyRunOf(d, s, o, seq.model.vocab),
      s.pick ?? 'gpu',
      onStep,
    );
  // Final: the prompt and the generated tokens before the first mask.
  const see = (c: { step: number; positions: number[]; tokens: number[] }, canvas: Uint32Array) => {
    let final = P;
    while (final < canvas.length && canvas[final] !== d.maskId) final++;
    onStep({
      step: c.step,
      positions: c.positions,
      tokens: c.tokens,
      canvas,
      promptLength: P,
      maskId: d.maskId,
      final,
    });
  };
  if (d.kind === 'bd3lm') {
    const B = attentionBlock(seq);
    const run = blockRunOf(d, s, o, typeof B === 'number' ? B : null);
    return blockDiffusionGenerateGpu(seq, prompt, run, see, s.pick ?? 'host');
  }
  return diffusionGenerateGpu(seq, prompt, maskedRunOf(d, s, o), see, s.pick ?? 'host');
}

/**
 * DiffusionGemma's sampler: each step shows the prompt, the finished canvases and the current
 * canvas's argmax, committing the rows it accepted; a canvas is final once it stops.
 */
async function entropyGenerate(
  seq: Sequence,
  prompt: readonly number[],
  run: EntropyBoundRun,
  pick: DiffusionPick,
  onStep: (p: CanvasProgress) => void,
): Promise<Uint32Array> {
  const P = prompt.length;
  const done: number[] = [...prompt];
  let step = 0;
  const out = await entropyBoundGenerate(entropyBoundOnSequence(seq), prompt, run, {
    deviceRows: pick === 'gpu',
    onStep: (st) => {
      const ends = st.stopped || st.remaining === 0;
      const at = done.length;
      const canvas = Uint32Array.from([...done, ...st.argmax]);
      if (ends) done.push(...st.argmax);
      const positions = st.accepted.flatMap((a, p) => (a ? [at + p] : []));
      onStep({
        step: step++,
        positions,
        tokens: positions.map((p) => canvas[p]),
        canvas,
        promptLength: P,
        maskId: NO_MASK,
        final: done.length,
      });
    },
  });
  return Uint32Array.from([...prompt, ...out]);
}
