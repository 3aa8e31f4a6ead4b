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
 * what the sequence's state holds.
 *
 * denoiseRows (the sampler's device path, src/ops/diffusion-entropy.ts) runs the same step with
 * no logits readback: in the step's submission, after the self-conditioning softmax, the
 * entropy_rows kernel (codegen/kernels/entropy-rows.ts) reduces each canvas row to its argmax,
 * drawn token and entropy with their error bounds, and the host reads those ENTROPY_ROW_WORDS
 * words a row (7 KiB for a canvas of 256 rather than its 268 MB of logits at vocab 262144); the
 * logits are read only when asked (--dump-logits), or one row at a time when the sampler must
 * recompute a row its bounds leave open (check.rowLogits, before the sequence's next step
 * overwrites the buffer). Its self-condition holds no logits: the model knows it by identity. The canvas must fit one prefill chunk (its rows attend to each
 * other within one step).
 */
import {
  SELF_CONDITION_PROBS,
  selfConditionProbs,
  type BlockDiffusionModel,
  type DenoisedRows,
  type SelfCondition,
} from '../src/ops/diffusion-entropy.ts';
import { decodeRowWords, type RowNoise } from '../src/ops/entropy-rows.ts';
import { softmaxRowsKernel } from '../codegen/kernels/softmax-rows.ts';
import { ENTROPY_ROW_WORDS, entropyRowsKernel } from '../codegen/kernels/entropy-rows.ts';
import { denoisingOnly, GREEDY, type StepParams } from '../codegen/kernel-ir.ts';
import { createStorage, logitsKernel, readBuffer } from './gpu.ts';
import type { Sequence } from './model.ts';

export type { EntropyBoundRun, SelfCondition } from '../src/ops/diffusion-entropy.ts';

/** Whether the bundle skips the denoising-only self-conditioning branch in encoding steps. */
function skipsBranchWhenEncoding(seq: Sequence): boolean {
  return seq.model.manifest.phases.prefill.dispatches.some((d) => denoisingOnly(d.grid));
}

/** The Step of a kernel over the first C rows of a canvas's logits. */
const rowsStep = (C: number): StepParams => ({ T: C, pos: 0, L: C });

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
  // Each kernel has its own Step uniform: both are written before the one submission they share.
  const softmax = logitsKernel(device, launch, { probs });
  // The per-row statistics (denoiseRows): seed and draw besides T and t, and an output of maxT rows.
  const rowsLaunch = entropyRowsKernel({ op: 'entropy_rows', vocab }, { caps, maxT }).launches[0];
  const stats = createStorage(device, maxT * ENTROPY_ROW_WORDS * 4, 'entropy_rows.stats');
  const rowStats = logitsKernel(device, rowsLaunch, { stats });
  // The model lives as long as its sequence (one per sequence): freed with it.
  seq.onDestroy(() => {
    softmax.destroy();
    rowStats.destroy();
    stats.destroy();
  });
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
  const fits = (C: number) => {
    if (C > maxT)
      throw new Error(
        `a canvas of ${C} tokens does not fit one prefill chunk of ${maxT}: compile with --max-t ${C} or more`,
      );
  };
  /** Make the state hold softmax(sc) (zeros for null) before a denoising step of C rows. */
  const selfCondition = (sc: SelfCondition | null, C: number) => {
    if (!sc) zero(C);
    else if (
      typeof held !== 'object' ||
      (sc !== held && (sc.logits === null || sc.logits !== held.logits)) ||
      sc.temperature !== held.temperature
    ) {
      // Not the model's own last step: the host computes and uploads it.
      seq.writeState(SELF_CONDITION_PROBS, selfConditionProbs(sc, vocab));
      held = 'other';
    }
  };
  // Steps this model has run (denoise, denoiseRows, encode): a row reader checks it is current.
  let steps = 0;
  seq.reset();
  seq.clearState(SELF_CONDITION_PROBS);
  return {
    vocab,
    async encode(ids: Uint32Array): Promise<void> {
      steps++;
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
      fits(C);
      steps++;
      const at = seq.pos;
      selfCondition(sc, C);
      // The next step's self-conditioning, from this step's logits, in this step's submission.
      const prepare = Number.isFinite(temperature) && temperature >= 0;
      const after = prepare
        ? (enc: GPUCommandEncoder, logits: GPUBuffer) =>
            softmax.record(enc, logits, rowsStep(C), { ...GREEDY, temperature })
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
    async denoiseRows(
      canvas: Uint32Array,
      sc: SelfCondition | null,
      temperature: number,
      noise: RowNoise,
      withLogits: boolean,
    ): Promise<DenoisedRows> {
      const C = canvas.length;
      fits(C);
      if (!(temperature >= 0) || !Number.isFinite(temperature))
        throw new Error(
          `denoiseRows: the temperature must be a finite number ≥ 0, got ${temperature}`,
        );
      const at = seq.pos;
      selfCondition(sc, C);
      held = 'other';
      let logitsBuf: GPUBuffer | null = null;
      const stepAt = ++steps;
      try {
        await seq.forwardOnDevice(
          canvas,
          (enc, logits) => {
            logitsBuf = logits;
            softmax.record(enc, logits, rowsStep(C), { ...GREEDY, temperature });
            rowStats.record(enc, logits, rowsStep(C), {
              ...GREEDY,
              temperature,
              seed: noise.seed,
              draw: noise.draw,
            });
          },
          { keys: at + C },
        );
        // The logits buffer keeps this step's logits until the sequence's next step.
        const buf = logitsBuf as GPUBuffer | null;
        if (!buf) throw new Error('denoiseRows: the step recorded no logits buffer');
        const label = `denoising step (draw ${noise.draw})`;
        const read = async (from: GPUBuffer, bytes: number, offset = 0) =>
          seq.model.readback(label, readBuffer(device, from, bytes, offset));
        const words = new Uint32Array(await read(stats, C * ENTROPY_ROW_WORDS * 4));
        const logits = withLogits ? new Float32Array(await read(buf, C * vocab * 4)) : null;
        const rs = decodeRowWords(words, C, temperature, noise);
        const out: DenoisedRows = {
          argmax: rs.argmax,
          token: rs.token,
          entropy: rs.entropy,
          logits,
          self: { logits, temperature },
          check: {
            entropyError: rs.entropyError,
            tokenSure: rs.tokenSure,
            rowLogits: async (p: number) => {
              if (!Number.isInteger(p) || p < 0 || p >= C)
                throw new Error(`rowLogits(${p}): the canvas has rows 0..${C - 1}`);
              if (steps !== stepAt)
                throw new Error(`rowLogits(${p}): the sequence has run another step since`);
              const bytes = vocab * 4;
              return new Float32Array(await read(buf, bytes, p * bytes));
            },
          },
        };
        held = out.self;
        return out;
      } finally {
        seq.rewind(at);
      }
    },
  };
}
