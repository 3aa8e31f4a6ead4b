/**
 * The masked-diffusion sampler (LLaDA) on a compiled bundle: src/ops/diffusion.ts's generation
 * loop, with each step's bidirectional forward run on the GPU.
 *
 * Every step recomputes the whole canvas from position 0 (the sequence is reset first): the
 * model's attention is bidirectional, so a committed token changes every position's keys and
 * values, and no KV survives a step exactly (Fast-dLLM's approximate reuse is a later sampler
 * that will plug in here as another CanvasForward). The canvas must fit in one prefill chunk:
 * split over two, the first chunk would not see the second.
 *
 * Where the pick runs: on the host, over the logits rows read back (argmax with seeded Gumbel
 * noise, softmax confidence, top-k of the current block). That reads [canvas, vocab] f32 per
 * step, which costs little for small vocabs but is the part to move to a GPU kernel for
 * LLaDA's 126k vocab (a per-row reduction writing (token, confidence) pairs, with the same
 * noiseBits hash in WGSL); the pick's rules live in one place so that kernel can be checked
 * against them.
 */
import { diffusionGenerate, type DiffusionRun, type StepCommit } from '../src/ops/diffusion.ts';
import type { Sequence } from './model.ts';

export type { DiffusionRun, StepCommit } from '../src/ops/diffusion.ts';

/** Longest canvas (prompt + gen length) a sequence can denoise in one forward. */
export function maxCanvas(seq: Sequence): number {
  return Math.min(seq.model.manifest.phases.prefill.maxT, seq.capacity);
}

/**
 * Generate with the exact LLaDA sampler; `onStep` sees each step's commits, the canvas after
 * them and that step's logits ([canvas, vocab]). Returns the final canvas (prompt included).
 */
export async function diffusionGenerateGpu(
  seq: Sequence,
  prompt: ArrayLike<number>,
  run: DiffusionRun,
  onStep?: (c: StepCommit, canvas: Uint32Array, logits: Float32Array) => void | Promise<void>,
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
  return diffusionGenerate(
    async (canvas) => {
      seq.reset();
      return (await seq.forward(canvas)).logits;
    },
    prompt,
    seq.model.vocab,
    run,
    onStep,
  );
}
