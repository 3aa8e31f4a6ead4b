/** MambaConfig (HF `mamba`): Mamba-1 layers only, no FFN, tied head by default. */
import type { LayerSpec, Mamba1Spec } from '../spec/model.ts';
import type { ConfigReader } from './config-reader.ts';
import { modelIR } from './hf-model.ts';
import {
  BACKBONE_RULES,
  mapWeights,
  requireSilu,
  rms,
  SSM_INIT_KEYS,
  SSM_MAX_CONTEXT,
} from './hf-ssm-shared.ts';
import type { FamilyImport } from './registry.ts';

export function importMamba(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 768);
  const expand = cfg.positiveInt('expand', 2);
  // MambaConfig derives intermediate_size from expand; saved configs also write it out.
  const dInner = cfg.positiveInt('intermediate_size', expand * dim);
  const rankRaw = cfg.raw('time_step_rank');
  const dtRank =
    rankRaw === undefined || rankRaw === null || rankRaw === 'auto'
      ? Math.ceil(dim / 16)
      : cfg.positiveInt('time_step_rank');
  requireSilu(cfg, 'hidden_act');
  const mixer: Mamba1Spec = {
    kind: 'mamba1',
    dInner,
    dState: cfg.positiveInt('state_size', 16),
    dConv: cfg.positiveInt('conv_kernel', 4),
    dtRank,
    convBias: cfg.bool('use_conv_bias', true),
    projBias: cfg.bool('use_bias', false),
    innerNorms: null,
  };
  const n = cfg.positiveInt('num_hidden_layers', 32);
  cfg.ignore(...SSM_INIT_KEYS);
  const layers = Array.from({ length: n }, (_, index): LayerSpec => ({
    index,
    mixerName: 'mamba',
    mixer,
    ffnName: null,
    ffn: null,
  }));
  const model = modelIR(name, layers, rms(cfg, 'layer_norm_epsilon', 1e-5), {
    vocab: cfg.positiveInt('vocab_size', 50280),
    dim,
    tie: cfg.bool('tie_word_embeddings', true),
    maxContext: SSM_MAX_CONTEXT,
  });
  return { model, ...mapWeights(model, BACKBONE_RULES) };
}
