/**
 * softmax_rows: the self-conditioning probabilities of DiffusionGemma's denoiser (the reference's
 * `self_conditioning_logits.softmax(dim=-1, dtype=torch.float32)` over the previous step's
 * `processed_logits`, which are its logits divided by the step's temperature), computed where the
 * logits are, so the host never uploads a [canvas, vocab] distribution.
 *
 * Precision, as transformers 5.18's diffusion_gemma: the logits are f32 (after the final softcap),
 * divided by t in f32, and the softmax runs in f32 with the row maximum subtracted. The reference
 * then casts the scaled logits (and the probabilities) to the embedding's dtype, bf16 for the
 * released checkpoint; strata's activations are f32, so that rounding is not reproduced (with an
 * f32 checkpoint, as in the golden fixture, there is none).
 *
 * t = 0 (strata's greedy limit, src/ops/diffusion-entropy.ts) gives the one-hot of the lowest-id
 * argmax, as selfConditionProbs does on the host.
 */
import type { SoftmaxRowsAttrs, StepShape } from '../graph/ops.ts';
import { f32, inPlace, rule, type OpDefinition } from './types.ts';

function checkAttrs(a: SoftmaxRowsAttrs): void {
  for (const k of ['rows', 'vocab'] as const)
    if (!Number.isInteger(a[k]) || a[k] < 1)
      throw new Error(`softmax_rows: ${k} must be a positive integer, got ${a[k]}`);
}

/**
 * The step's temperature for a per-row op over logits, softmax_rows or entropy_rows (absent
 * sampling: 0, the argmax / one-hot limit); refused, naming `op`, when not a finite number ≥ 0.
 */
export function rowsTemperature(op: string, step: StepShape): number {
  const t = step.sampling?.temperature ?? 0;
  if (!(t >= 0) || !Number.isFinite(t))
    throw new Error(`${op}: the temperature must be a finite number ≥ 0, got ${t}`);
  return t;
}

/**
 * softmax(row / t) of `rows` rows of `logits` into `out` (same layout), f64 accumulation; t = 0:
 * the one-hot of the lowest-id argmax. The one host implementation: the op's reference and the
 * runtime's fallback (src/ops/diffusion-entropy.ts selfConditionProbs) both call it.
 */
export function softmaxRowsInto(
  logits: ArrayLike<number>,
  rows: number,
  vocab: number,
  t: number,
  out: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const base = r * vocab;
    if (t === 0) {
      let best = 0;
      for (let v = 1; v < vocab; v++) if (logits[base + v] > logits[base + best]) best = v;
      out.fill(0, base, base + vocab);
      out[base + best] = 1;
      continue;
    }
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, logits[base + v] / t);
    let z = 0;
    for (let v = 0; v < vocab; v++) z += Math.exp(logits[base + v] / t - max);
    for (let v = 0; v < vocab; v++) out[base + v] = Math.exp(logits[base + v] / t - max) / z;
  }
}

export const softmaxRows: OpDefinition<SoftmaxRowsAttrs> = {
  check: checkAttrs,
  inputs: (a) => ({ logits: rule(['T', a.vocab]), probs: inPlace([a.rows, a.vocab]) }),
  outputs: (a) => ({ probs: inPlace([a.rows, a.vocab]) }),
  reference(a, inputs, step) {
    checkAttrs(a);
    if (step.T > a.rows)
      throw new Error(`softmax_rows: a step of ${step.T} rows writes a state of ${a.rows}`);
    const logits = f32(inputs, 'logits');
    const probs = f32(inputs, 'probs');
    if (logits.length < step.T * a.vocab || probs.length < a.rows * a.vocab)
      throw new Error(
        `softmax_rows: logits of ${logits.length} and probs of ${probs.length} elements, the step needs ${step.T * a.vocab} and ${a.rows * a.vocab}`,
      );
    softmaxRowsInto(logits, step.T, a.vocab, rowsTemperature('softmax_rows', step), probs);
    return { probs };
  },
  // The kernel reads each row twice (online max and sum, then the write pass): a row of a large
  // vocab (1 MiB at 262144) does not stay in cache between them.
  cost: (a, step) => ({
    flops: step.T * a.vocab * 5,
    bytesRead: 2 * step.T * a.vocab * 4,
    bytesWritten: step.T * a.vocab * 4,
  }),
};
