/** The model-level settings (`vocab 512`, `norm rms(eps: 1e-5)`, ...), resolved like a kind's parameters. */
import { defineKind, opt, req, toDslCall } from './kind.ts';
import { NORMS } from './kinds/index.ts';
import { DIFFUSIONS } from './kinds/diffusion.ts';
import type { ModelIR } from './model.ts';
import { block, bool, int, orNone, positive } from './values.ts';

/** The ModelIR fields that the model-level settings set. */
const SETTING_KEYS = [
  'vocab',
  'dim',
  'maxContext',
  'norm',
  'postNorms',
  'tieEmbeddings',
  'embeddingScale',
  'logitSoftcap',
  'residualScale',
  'logitScale',
  'diffusion',
  'layerScalars',
  'headBias',
] as const satisfies readonly (keyof ModelIR)[];

export type ModelSettings = Pick<ModelIR, (typeof SETTING_KEYS)[number]>;

/** A model's settings, the rest of its ModelIR left out. */
export function settingsOf(m: ModelIR): ModelSettings {
  // An absent optional setting (diffusion) stays absent, as the resolver builds it.
  return Object.fromEntries(
    SETTING_KEYS.filter((k) => m[k] !== undefined).map((k) => [k, m[k]]),
  ) as ModelSettings;
}

export const modelSettings = defineKind({
  name: 'model',
  label: 'the model',
  paramNoun: 'setting',
  params: {
    vocab: req(int(1)),
    dim: req(int(1)),
    max_context: req(int(1)),
    norm: req(block(NORMS)),
    post_norms: opt(bool),
    tie_embeddings: opt(bool),
    embedding_scale: opt(positive),
    residual_scale: opt(positive),
    logit_scale: opt(positive),
    logit_softcap: opt(orNone(positive)),
    diffusion: opt(orNone(block(DIFFUSIONS))),
    layer_scalars: opt(bool),
    head_bias: opt(bool),
  },
  build: (a): ModelSettings => ({
    vocab: a.vocab,
    dim: a.dim,
    maxContext: a.max_context,
    norm: a.norm({ dim: a.dim }),
    postNorms: a.post_norms ?? false,
    tieEmbeddings: a.tie_embeddings ?? false,
    embeddingScale: a.embedding_scale ?? 1,
    residualScale: a.residual_scale ?? 1,
    logitScale: a.logit_scale ?? 1,
    logitSoftcap: a.logit_softcap ?? null,
    // Left out of autoregressive models, as before diffusion models existed.
    ...(a.diffusion ? { diffusion: a.diffusion({ dim: a.dim }) } : {}),
    // Left out unless set, as before it existed.
    ...(a.layer_scalars ? { layerScalars: true } : {}),
    ...(a.head_bias ? { headBias: true } : {}),
  }),
  toArgs: (s) => [
    { name: 'vocab', value: s.vocab },
    { name: 'dim', value: s.dim },
    { name: 'max_context', value: s.maxContext },
    { name: 'norm', value: toDslCall(NORMS, s.norm).value },
    { name: 'post_norms', value: s.postNorms },
    { name: 'tie_embeddings', value: s.tieEmbeddings },
    { name: 'embedding_scale', value: s.embeddingScale },
    { name: 'residual_scale', value: s.residualScale },
    { name: 'logit_scale', value: s.logitScale },
    { name: 'logit_softcap', value: s.logitSoftcap },
    // Only diffusion models name it: `diffusion none` would be noise in every other spec.
    ...(s.diffusion
      ? [{ name: 'diffusion', value: toDslCall(DIFFUSIONS, s.diffusion).value }]
      : []),
    ...(s.layerScalars ? [{ name: 'layer_scalars', value: true }] : []),
    ...(s.headBias ? [{ name: 'head_bias', value: true }] : []),
  ],
});
