/**
 * DiffusionGemma (a model whose spec has `diffusion entropy_bound(...)`) on a compiled bundle:
 * the sampler's BlockDiffusionModel (src/ops/diffusion-entropy.ts) over one Sequence.
 *
 *  - encode(ids): causal steps (Step keys 0) from the sequence's position, appending the context
 *    to the KV cache; the phased attention is causal and the phased input norm idle, so the
 *    layers see the plain embeddings, as HF's encoder does;
 *  - denoise(canvas, sc): one step over the canvas at the positions after the context with
 *    keys = pos + C (> 0: the denoiser's mask and input norm), the self-conditioning
 *    probabilities written first into the state SELF_CONDITION_PROBS; then the sequence rewinds
 *    to the context, so the canvas's K/V rows are overwritten by the next encode (never kept).
 *
 * The probabilities state is zero at rest (written back to zero after each denoising step): an
 * encoding step must see none. The canvas must fit one prefill chunk (its rows attend to each
 * other within one step). softmax(logits / t) is computed on the host from the logits the
 * sampler reads back anyway.
 */
import {
  SELF_CONDITION_PROBS,
  selfConditionProbs,
  type BlockDiffusionModel,
  type SelfCondition,
} from '../src/ops/diffusion-entropy.ts';
import type { Sequence } from './model.ts';

export type { EntropyBoundRun, SelfCondition } from '../src/ops/diffusion-entropy.ts';

export function entropyBoundOnSequence(seq: Sequence): BlockDiffusionModel {
  const m = seq.model.manifest;
  if (m.model.diffusion?.kind !== 'entropy_bound')
    throw new Error(
      `model '${m.model.name}' is not an entropy_bound diffusion model (its spec has ${m.model.diffusion ? `diffusion ${m.model.diffusion.kind}` : 'no diffusion setting'})`,
    );
  const maxT = m.phases.prefill.maxT;
  const vocab = seq.model.vocab;
  const state = m.state.find((s) => s.name === SELF_CONDITION_PROBS);
  if (!state) throw new Error(`the bundle has no state '${SELF_CONDITION_PROBS}'`);
  const zeros = new Float32Array(maxT * vocab);
  seq.reset();
  seq.writeState(SELF_CONDITION_PROBS, zeros);
  return {
    vocab,
    async encode(ids: Uint32Array): Promise<void> {
      for (let s = 0; s < ids.length; s += maxT)
        await seq.forwardOnDevice(ids.subarray(s, s + maxT), () => {});
    },
    async denoise(canvas: Uint32Array, sc: SelfCondition | null): Promise<Float32Array> {
      const C = canvas.length;
      if (C > maxT)
        throw new Error(
          `a canvas of ${C} tokens does not fit one prefill chunk of ${maxT}: compile with --max-t ${C} or more`,
        );
      const at = seq.pos;
      if (sc) seq.writeState(SELF_CONDITION_PROBS, selfConditionProbs(sc, vocab));
      try {
        const { logits } = await seq.forward(canvas, undefined, { keys: at + C });
        return logits;
      } finally {
        seq.rewind(at);
        if (sc) seq.writeState(SELF_CONDITION_PROBS, zeros);
      }
    },
  };
}
