/**
 * The masked-diffusion sampler (LLaDA, with Fast-dLLM's threshold and caches) on a compiled
 * bundle: src/ops/diffusion.ts's loop, with each step's bidirectional forward run on the GPU.
 *
 * A full step resets the sequence and recomputes the whole canvas from position 0: the model's
 * attention is bidirectional, so a committed token changes every position's keys and values.
 * A cached step (Fast-dLLM, see DiffusionCache) rewinds the sequence to the block's start and
 * recomputes only its span there: the K/V rows before it (and, for `dual`, after it, made
 * visible through the step's `keys`) keep what the block's first, full step wrote. The canvas
 * must fit in one prefill chunk: split over two, the first chunk would not see the second.
 *
 * Where the pick runs: on the host by default, over the span's logits rows read back (argmax
 * with seeded Gumbel noise, softmax confidence); top-k and the threshold always run on the host,
 * over (token, confidence) pairs.
 */
import {
  diffusionSample,
  hostPicks,
  type CanvasForward,
  type DiffusionRun,
  type StepCommit,
} from '../src/ops/diffusion.ts';
import type { Sequence } from './model.ts';

export type { DiffusionRun, StepCommit } from '../src/ops/diffusion.ts';

/** Longest canvas (prompt + gen length) a sequence can denoise in one forward. */
export function maxCanvas(seq: Sequence): number {
  return Math.min(seq.model.manifest.phases.prefill.maxT, seq.capacity);
}

/**
 * Why this bundle cannot run the dual cache, or null: its bidirectional attention kernels must
 * read the step's `keys` (bundles compiled before it see only [0, pos + T), which would silently
 * drop the cached suffix).
 */
export function dualCacheIssue(seq: Sequence): string | null {
  const m = seq.model;
  const stale = m.manifest.kernels
    .filter((k) => k.name.startsWith('attention_') && /_full(_|$)/.test(k.name))
    .filter((k) => !(m.kernelCode(k.name) ?? '').includes('step.keys'))
    .map((k) => k.name);
  return stale.length
    ? `the bundle's attention kernels (${stale.join(', ')}) predate the dual cache (they cannot see cached rows after a block); recompile the bundle`
    : null;
}

/** The GPU forward of a canvas span: a full forward from 0, or a rewind and a partial one. */
export function gpuCanvasForward(seq: Sequence): CanvasForward {
  return async (canvas, span) => {
    if (span.from === 0 && span.to === canvas.length) {
      seq.reset();
      return (await seq.forward(canvas)).logits;
    }
    seq.rewind(span.from);
    const ids = canvas.subarray(span.from, span.to);
    return (await seq.forward(ids, undefined, { keys: canvas.length })).logits;
  };
}

/**
 * Generate with the LLaDA sampler (threshold and cache as `run` says); `onStep` sees each step's
 * commits, the canvas after them and that step's logits (rows span.from..span.to − 1). Returns
 * the final canvas (prompt included).
 */
export async function diffusionGenerateGpu(
  seq: Sequence,
  prompt: ArrayLike<number>,
  run: DiffusionRun,
  onStep?: (
    c: StepCommit,
    canvas: Uint32Array,
    logits: Float32Array | null,
  ) => void | Promise<void>,
): Promise<Uint32Array> {
  const n = prompt.length + run.genLength;
  const limit = maxCanvas(seq);
  if (n > limit) {
    const maxT = seq.model.manifest.phases.prefill.maxT;
    throw new Error(
      `the canvas of ${prompt.length} prompt + ${run.genLength} generated tokens (${n}) does not fit in one bidirectional forward: ` +
        `the bundle holds ${limit} (prefill maxT ${maxT}, capacity ${seq.capacity}); compile with --max-t ${n} --capacity ${n} or more, or shorten --gen-length`,
    );
  }
  if (run.cache === 'dual') {
    const issue = dualCacheIssue(seq);
    if (issue) throw new Error(`--cache dual: ${issue}`);
  }
  const vocab = seq.model.vocab;
  return diffusionSample(hostPicks(gpuCanvasForward(seq), vocab), prompt, vocab, run, onStep);
}
