/**
 * DiffusionGemma (a model whose spec has `diffusion entropy_bound(...)`) on a compiled bundle:
 * the sampler's BlockDiffusionModel (src/ops/diffusion-entropy.ts) over one Sequence.
 *
 *  - encode(ids): causal steps (Step keys 0) from the sequence's position, appending the context
 *    to the KV cache; the phased attention is causal, the self-conditioning branch is skipped (its
 *    launches are denoising-only, grid symbol D) and the phased add and input norm pass the
 *    embeddings through, so the layers see the plain embeddings, as HF's encoder does;
 *  - denoise(canvas, sc, t): one step over the canvas at the positions after the context with
 *    keys = pos + C (> 0: the denoiser's mask, self-conditioning and input norm); then the
 *    sequence rewinds to the context, so the canvas's K/V rows are overwritten by the next encode
 *    (never kept).
 *
 * The self-conditioning probabilities (the state SELF_CONDITION_PROBS) stay on the GPU: in each
 * denoising step's own submission, after its layers, the softmax_rows kernel (codegen/kernels/
 * softmax-rows.ts) writes softmax(logits / t) of the step's logits into the state, which the
 * next step reads when the sampler passes back that step's logits and t (the same array, as the
 * sampler does). A canvas's first step (sc null) reads zeros: the state's canvas rows are cleared
 * on the device first. A self-condition from anywhere else (other logits, another temperature)
 * is computed on the host and uploaded, as before. One such model per sequence: it keeps track of
 * what the sequence's state holds. The canvas must fit one prefill chunk (its rows attend to each
 * other within one step).
 */
import {
  SELF_CONDITION_PROBS,
  selfConditionProbs,
  type BlockDiffusionModel,
  type SelfCondition,
} from '../src/ops/diffusion-entropy.ts';
import { softmaxRowsKernel } from '../codegen/kernels/softmax-rows.ts';
import { GREEDY } from '../codegen/kernel-ir.ts';
import { bindGroupFor, createStepBuffer, gridFor, pipelineFor, writeStep } from './gpu.ts';
import type { Sequence } from './model.ts';

export type { EntropyBoundRun, SelfCondition } from '../src/ops/diffusion-entropy.ts';

/** Whether the bundle skips the denoising-only self-conditioning branch in encoding steps. */
function skipsBranchWhenEncoding(seq: Sequence): boolean {
  return seq.model.manifest.phases.prefill.dispatches.some((d) =>
    d.grid.some((g) => typeof g === 'object' && g.sym === 'D'),
  );
}

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
  const { device, caps } = seq.model.gpu;
  const probs = seq.stateBuffer(SELF_CONDITION_PROBS);
  const launch = softmaxRowsKernel({ op: 'softmax_rows', rows: maxT, vocab }, { caps, maxT })
    .launches[0];
  const pipeline = pipelineFor(device, launch.kernel);
  const stepBuf = createStepBuffer(device);
  // One bind group per logits buffer (the prefill phase's; the decode phase's for a 1-token canvas).
  const groups = new Map<GPUBuffer, GPUBindGroup>();
  const softmaxInto = (enc: GPUCommandEncoder, logits: GPUBuffer, rows: number, t: number) => {
    let group = groups.get(logits);
    if (!group) {
      group = bindGroupFor(device, launch.kernel, { step: stepBuf, logits, probs });
      groups.set(logits, group);
    }
    const p = { T: rows, pos: 0, L: rows };
    writeStep(device, stepBuf, p, { ...GREEDY, temperature: t });
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(...gridFor(launch, p));
    pass.end();
  };
  // An older bundle runs the branch in encoding steps too, where it must read zeros.
  const encodeReadsState = !skipsBranchWhenEncoding(seq);
  /** What the state's rows hold: softmax(logits / temperature) of these, zeros, or other. */
  let held: SelfCondition | 'zeros' | 'other' = 'zeros';
  const zero = (rows: number) => {
    if (held === 'zeros') return;
    seq.clearState(SELF_CONDITION_PROBS, rows * vocab * 4);
    // Rows past `rows` may keep older values: no step of up to `rows` tokens reads them.
    held = rows === maxT ? 'zeros' : 'other';
  };
  seq.reset();
  seq.clearState(SELF_CONDITION_PROBS);
  return {
    vocab,
    async encode(ids: Uint32Array): Promise<void> {
      for (let s = 0; s < ids.length; s += maxT) {
        const chunk = ids.subarray(s, s + maxT);
        if (encodeReadsState) zero(chunk.length);
        await seq.forwardOnDevice(chunk, () => {});
      }
    },
    async denoise(
      canvas: Uint32Array,
      sc: SelfCondition | null,
      temperature: number,
    ): Promise<Float32Array> {
      const C = canvas.length;
      if (C > maxT)
        throw new Error(
          `a canvas of ${C} tokens does not fit one prefill chunk of ${maxT}: compile with --max-t ${C} or more`,
        );
      const at = seq.pos;
      if (!sc) zero(C);
      else if (
        typeof held !== 'object' ||
        sc.logits !== held.logits ||
        sc.temperature !== held.temperature
      ) {
        // Not the model's own last step: the host computes and uploads it.
        seq.writeState(SELF_CONDITION_PROBS, selfConditionProbs(sc, vocab));
        held = 'other';
      }
      // The next step's self-conditioning, from this step's logits, in this step's submission.
      const prepare = Number.isFinite(temperature) && temperature >= 0;
      const after = prepare
        ? (enc: GPUCommandEncoder, logits: GPUBuffer) => softmaxInto(enc, logits, C, temperature)
        : undefined;
      if (prepare) held = 'other';
      try {
        const { logits } = await seq.forward(canvas, undefined, { keys: at + C, after });
        if (prepare) held = { logits, temperature };
        return logits;
      } finally {
        seq.rewind(at);
      }
    },
  };
}
