/**
 * ModelIR → GraphIR for one phase: embedding, each layer's mixer and FFN via
 * its block lowering, final norm, LM head over the last L rows, optional logit
 * softcap, GPU sampling.
 */
import { GraphBuilder } from './builder.ts';
import type { Graph, Phase } from './ir.ts';
import type { MixerKind, MixerSpec, ModelIR } from '../spec/model.ts';
import { EMBED, FINAL_NORM, LM_HEAD } from '../import/names.ts';
import { lowerAttention } from './blocks/attention.ts';
import { lowerMlp } from './blocks/mlp.ts';
import { lowerMoe } from './blocks/moe.ts';
import { lowerMamba1 } from './blocks/mamba1.ts';
import { lowerMamba2 } from './blocks/mamba2.ts';
import { lowerShortConv } from './blocks/shortconv.ts';
import { lowerGatedDeltaNet } from './blocks/deltanet.ts';
import { linear, preNorm } from './blocks/common.ts';

export interface LowerOptions {
  phase: Phase;
  /** Largest prefill chunk (ignored for decode, which is 1). */
  maxT: number;
  /** KV cache rows. */
  capacity: number;
}

/** Each mixer kind's block lowering: x → x + mixer(norm(x)). */
type MixerLowering<S extends MixerSpec> = (
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  layer: number,
  spec: S,
) => number;

const MIXERS: { [K in MixerKind]: MixerLowering<Extract<MixerSpec, { kind: K }>> } = {
  attention: lowerAttention,
  mamba1: lowerMamba1,
  mamba2: lowerMamba2,
  shortconv: lowerShortConv,
  gated_deltanet: lowerGatedDeltaNet,
};

function lowerMixer(b: GraphBuilder, model: ModelIR, x: number, i: number, m: MixerSpec): number {
  return (MIXERS[m.kind] as MixerLowering<MixerSpec>)(b, model, x, i, m);
}

export function lower(model: ModelIR, opts: LowerOptions): Graph {
  const maxT = opts.phase === 'decode' ? 1 : opts.maxT;
  const b = new GraphBuilder(opts.phase, maxT, opts.capacity);
  const ids = b.tensor('ids', ['T'], 'input', 'u32');
  const table = b.param(EMBED, [model.vocab, model.dim]);
  let x = b.op(
    {
      op: 'embed',
      vocab: model.vocab,
      dim: model.dim,
      scale: model.embeddingScale,
      rowStart: 0,
      rows: model.vocab,
    },
    'embed',
    { ids, table },
    { out: { name: 'embed', shape: ['T', model.dim] } },
  ).out;
  for (const layer of model.layers) {
    b.layer = layer.index;
    if (layer.mixer) x = lowerMixer(b, model, x, layer.index, layer.mixer);
    if (layer.ffn?.kind === 'moe') x = lowerMoe(b, model, x, layer.index, layer.ffn);
    else if (layer.ffn) x = lowerMlp(b, model, x, layer.index, layer.ffn);
  }
  b.layer = null;
  const h = preNorm(b, model, x, FINAL_NORM, 'final');
  const head = model.tieEmbeddings ? EMBED : LM_HEAD;
  let logits = linear(
    b,
    h,
    head.replace(/\.weight$/, ''),
    model.vocab,
    model.dim,
    false,
    'lm_head',
    'L',
  );
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
      token: { name: 'token', shape: [1], dtype: 'u32' },
      ids,
    },
  ).token;
  return b.finish(ids, logits, token);
}
