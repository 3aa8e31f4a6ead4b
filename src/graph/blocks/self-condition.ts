/**
 * DiffusionGemma's denoiser input (ModelIR.diffusion kind entropy_bound), lowered to existing ops:
 *   soft = p·E·embeddingScale          p: the state self_condition.probs [chunk, vocab], the
 *                                         previous step's softmax (zero at a canvas's first step)
 *   sc   = mlp(rmsnorm(soft))          the self-conditioning MLP (gated, no bias)
 *   x    = rms(e + sc)                 a phased add and a phased weightless norm: applied in a
 *                                         denoising step only
 * where e is the scaled token embedding. An encoding step's input is e (the reference runs no
 * self-conditioning in its encoder): the branch from p to sc is denoising-only (GraphNode.
 * denoising), so an encoding step skips its launches (the embedding-table matmul among them), the
 * phased add passes e through without reading sc, and the phased norm passes e through. At a
 * canvas's first denoising step the runtime leaves p at zero: soft = 0, rmsnorm(0) = 0 and a gated
 * MLP without bias gives act(0)·0 = 0, so x = rms(e). The probabilities are a state the runtime
 * writes on the GPU (runtime/entropy-diffusion.ts, the softmax_rows op) rather than a second graph
 * input: state buffers already travel with a sequence in both phases and in the interpreter.
 */
import type { GraphBuilder } from '../builder.ts';
import type { EntropyBoundSpec, ModelIR } from '../../spec/model.ts';
import { EMBED, mlpProjections, normTensors, type TensorSpec } from '../../import/names.ts';
import { plainMatmul } from '../ops.ts';
import { SELF_CONDITION_PROBS } from '../../ops/diffusion-entropy.ts';
import { sharedMlp } from './moe.ts';
import { preNorm } from './common.ts';

/** The self-conditioning MLP's and its pre-norm's weight names. */
export function selfConditionNames() {
  const p = 'model.self_condition';
  return {
    preNorm: `${p}.pre_norm`,
    gate: `${p}.gate_proj`,
    up: `${p}.up_proj`,
    down: `${p}.down_proj`,
  };
}

/** The weights this block reads (src/import/names.ts expectedTensors lists them). */
export function selfConditionTensors(model: ModelIR, d: EntropyBoundSpec): TensorSpec[] {
  const n = selfConditionNames();
  return [
    ...normTensors(model, n.preNorm, model.dim),
    ...mlpProjections(model, n, d.selfCondition),
  ];
}

export function selfConditionedInput(
  b: GraphBuilder,
  model: ModelIR,
  d: EntropyBoundSpec,
  embeddings: number,
): number {
  const V = model.vocab;
  const D = model.dim;
  const n = selfConditionNames();
  b.denoising = true;
  const probs = b.op(
    { op: 'state_rows', rows: b.chunk, width: V },
    'self_condition probs',
    { state: b.state(SELF_CONDITION_PROBS, [b.chunk, V]) },
    { out: { name: 'self_condition.probs', shape: ['T', V] } },
  ).out;
  // p·E is a matmul whose [dim, vocab] weight is the embedding table transposed.
  const table = b.param(`${EMBED}#transposed`, [D, V], {
    kind: 'transposed',
    of: b.weight(EMBED, [V, D]),
    rows: V,
    cols: D,
  });
  const soft = b.op(
    { ...plainMatmul(D, V, 'T'), scale: model.embeddingScale },
    'self_condition soft embedding',
    { x: probs, w: table },
    { out: { name: 'self_condition.soft', shape: ['T', D] } },
  ).out;
  const h = preNorm(b, model, soft, n.preNorm, 'self_condition');
  const sc = sharedMlp(b, h, n, d.selfCondition, D, 'self_condition');
  b.denoising = false;
  const sum = b.op(
    { op: 'add', width: D, scale: 1, phased: true },
    'self_condition residual',
    { a: embeddings, b: sc },
    { out: { name: 'self_condition.res', shape: ['T', D] } },
  ).out;
  return b.op(
    {
      op: 'norm',
      norm: { kind: 'rms', eps: model.norm.eps, unitOffset: false, bias: false },
      width: D,
      group: D,
      residual: false,
      phased: true,
    },
    'denoiser input norm',
    {
      x: sum,
      w: b.param('self_condition.input_norm#ones', [D], {
        kind: 'constant',
        values: new Array<number>(D).fill(1),
      }),
    },
    { out: { name: 'self_condition.input', shape: ['T', D] } },
  ).out;
}
