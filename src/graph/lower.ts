/**
 * ModelIR → GraphIR for one phase: embedding, each layer's mixer and FFN via
 * its block lowering, final norm, LM head over the last L rows (its epilogue applies the
 * model's logit scale), optional logit softcap, GPU sampling.
 */
import { GraphBuilder } from './builder.ts';
import type { Graph, Phase } from './ir.ts';
import type { MixerSpec, ModelIR } from '../spec/model.ts';
import { mixerDef } from '../mixers/index.ts';
import {
  EMBED,
  FINAL_NORM,
  layerScalarName,
  LM_HEAD,
  LM_HEAD_BIAS,
  sharedBlockOf,
} from '../import/names.ts';
import { lowerMlp } from './blocks/mlp.ts';
import { lowerMoe } from './blocks/moe.ts';
import { lowerSharedUse } from './blocks/shared.ts';
import { selfConditionedInput } from './blocks/self-condition.ts';
import { columns, pointwiseOp, preNorm, residualAdd } from './blocks/common.ts';
import { plainMatmul, type KvType } from './ops.ts';

export interface LowerOptions {
  phase: Phase;
  /**
   * Largest prefill chunk. Decode steps are 1 token, but the decode graph reads it too: the ring
   * caches of streaming attention, shared by both phases, are sized by it.
   */
  maxT: number;
  /** Positions a sequence may reach: KV cache rows, except in ring caches, and rope table rows. */
  capacity: number;
  /** Element type of the attention KV caches (default 'f32'; 'f16' halves their bytes). */
  kv?: KvType;
  /**
   * false: streaming attention (sink_tokens) keeps a cache row per position, with the same mask,
   * instead of a ring: the reference that the ring caches are tested against. Default true.
   */
  ringCaches?: boolean;
  /**
   * Sequences a decode step advances together (default 1). Above 1 the decode graph's rows are
   * sequences: the matmuls read each weight once for all of them (M = batch rows), and the
   * stateful ops index their sequence by row (src/ops/batch.ts). Such a build's prefill graph is
   * lowered with batch 1: it fills one sequence's slot at a time (codegen/compile.ts).
   */
  batch?: number;
}

/** x + mixer(norm(input)) for layer i, as its kind's definition (src/mixers) lowers it. */
function lowerMixer(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  m: MixerSpec,
  input: number,
): number {
  const def = mixerDef(m.kind);
  if (!def) throw new Error(`layer ${i}: no lowering for mixer kind '${m.kind}'`);
  return def.lower(b, model, x, i, m, input);
}

export function lower(model: ModelIR, opts: LowerOptions): Graph {
  const batch = opts.batch ?? 1;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch ${batch} must be a count >= 1`);
  const maxT = opts.phase === 'decode' ? batch : opts.maxT;
  const b = new GraphBuilder(
    opts.phase,
    maxT,
    opts.capacity,
    opts.kv ?? 'f32',
    opts.maxT,
    opts.ringCaches ?? true,
    batch,
  );
  const ids = b.tensor('ids', ['T'], 'input', 'u32');
  const table = b.param(EMBED, [model.vocab, model.dim]);
  const embeddings = b.op(
    {
      op: 'embed',
      vocab: model.vocab,
      dim: model.dim,
      scale: model.embeddingScale,
      rowStart: 0,
      rows: model.vocab,
      tableType: 'f32',
    },
    'embed',
    { ids, table },
    { out: { name: 'embed', shape: ['T', model.dim] } },
  ).out;
  // DiffusionGemma: the denoiser's input (the encoder's is the embedding itself).
  let x =
    model.diffusion?.kind === 'entropy_bound'
      ? selfConditionedInput(b, model, model.diffusion, embeddings)
      : embeddings;
  for (const layer of model.layers) {
    b.layer = layer.index;
    const shared = sharedBlockOf(model, layer);
    if (shared && !layer.mixer) {
      throw new Error(
        `layer ${layer.index}: a shared block feeds the layer's mixer, and it has none`,
      );
    }
    // A shared block's output joins the mixer's input only; the residual stays x (Zamba2).
    const input = shared
      ? residualAdd(
          b,
          x,
          lowerSharedUse(b, model, x, embeddings, layer.index, shared),
          model.dim,
          `l${layer.index}.shared`,
        )
      : x;
    if (layer.mixer) x = lowerMixer(b, model, x, layer.index, layer.mixer, input);
    if (layer.ffn?.kind === 'moe') x = lowerMoe(b, model, x, layer.index, layer.ffn);
    else if (layer.ffn) x = lowerMlp(b, model, x, layer.index, layer.ffn);
    if (model.layerScalars) {
      // Gemma 4: the whole residual stream times the layer's learned scalar.
      const s = b.param(layerScalarName(layer.index), [1]);
      x = pointwiseOp(
        b,
        `l${layer.index}.scaled`,
        model.dim,
        {
          x: [x, columns(model.dim)],
          s: [s, { perToken: false, cols: 1, inner: 1, repeat: model.dim }],
        },
        { bin: 'mul', a: { in: 'x' }, b: { in: 's' } },
      );
    }
  }
  b.layer = null;
  const h = preNorm(b, model, x, FINAL_NORM, 'final');
  const head = model.tieEmbeddings ? EMBED : LM_HEAD;
  const headInputs: Record<string, number> = { x: h, w: b.param(head, [model.vocab, model.dim]) };
  if (model.headBias) headInputs.bias = b.param(LM_HEAD_BIAS, [model.vocab]);
  let logits = b.op(
    {
      ...plainMatmul(model.vocab, model.dim, 'L', model.headBias === true),
      scale: model.logitScale,
    },
    'lm_head',
    headInputs,
    { out: { name: 'lm_head', shape: ['L', model.vocab] } },
  ).out;
  if (model.logitSoftcap !== null) {
    logits = b.op(
      { op: 'softcap', cap: model.logitSoftcap, width: model.vocab, rows: 'L' },
      'logit softcap',
      { x: logits },
      {
        out: { name: 'logits.capped', shape: ['L', model.vocab] },
      },
    ).out;
  }
  const token = b.op(
    { op: 'sample', vocab: model.vocab },
    'sample',
    { logits, ids },
    {
      // The sampled id and the sampler's status word (src/ops/sampling.ts), per sequence.
      token: { name: 'token', shape: [2 * batch], dtype: 'u32' },
      ids,
    },
  ).token;
  return b.finish(ids, logits, token);
}
