/** Mamba2Config (HF `mamba2`): Mamba-2 layers only, no FFN. */
import type { LayerSpec } from '../spec/model.ts';
import type { ConfigReader } from './config-reader.ts';
import { modelIR } from './hf-model.ts';
import {
  BACKBONE_RULES,
  mapWeights,
  readMamba2,
  requireSilu,
  rms,
  SSM_INIT_KEYS,
  SSM_MAX_CONTEXT,
} from './hf-ssm-shared.ts';
import type { FamilyImport } from './registry.ts';

export function importMamba2(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 4096);
  requireSilu(cfg, 'hidden_act');
  if (!cfg.bool('rms_norm', true)) {
    cfg.fail('rms_norm', "is false; transformers' Mamba2Mixer applies its gated RMSNorm anyway");
  }
  const norm = rms(cfg, 'layer_norm_epsilon', 1e-5);
  const mixer = readMamba2(
    cfg,
    dim,
    {
      heads: 'num_heads',
      headDim: 'head_dim',
      dState: 'state_size',
      groups: 'n_groups',
      dConv: 'conv_kernel',
      expand: 'expand',
      chunk: 'chunk_size',
      convBias: 'use_conv_bias',
      projBias: 'use_bias',
    },
    { heads: 128, headDim: 64, dState: 128, groups: 8, chunk: 256 },
    // HF's Mamba2 MambaRMSNormGated normalises the whole inner width, whatever n_groups is.
    { eps: norm.eps, perGroup: false },
  );
  // Mamba2Mixer reads time_step_rank but never uses it.
  cfg.ignore(...SSM_INIT_KEYS, 'time_step_rank');
  const n = cfg.positiveInt('num_hidden_layers', 64);
  const layers = Array.from({ length: n }, (_, index): LayerSpec => ({
    index,
    mixerName: 'mamba2',
    mixer,
    ffnName: null,
    ffn: null,
  }));
  const model = modelIR(name, layers, norm, {
    vocab: cfg.positiveInt('vocab_size', 32768),
    dim,
    tie: cfg.bool('tie_word_embeddings', false),
    maxContext: SSM_MAX_CONTEXT,
  });
  return { model, ...mapWeights(model, BACKBONE_RULES) };
}
