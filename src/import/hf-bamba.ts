/**
 * BambaConfig (HF `bamba`): Mamba-2 layers with attention at attn_layer_indices, a SwiGLU FFN
 * in every layer. The config class hard-codes partial_rotary_factor 0.5 and no attention/MLP
 * biases whatever the keys say.
 */
import type { LayerSpec, MlpSpec } from '../spec/model.ts';
import type { ConfigReader } from './config-reader.ts';
import { modelIR } from './hf-model.ts';
import { attentionSpec, readHeadDim, readKvHeads } from './hf-attention.ts';
import { readActivation } from './hf-decoder.ts';
import { readRope } from './hf-rope.ts';
import {
  mapWeights,
  readBambaMamba2,
  readIndexList,
  rms,
  JAMBA_STYLE_RULES,
  FEED_FORWARD_RULE,
} from './hf-ssm-shared.ts';
import type { FamilyImport } from './registry.ts';

export function importBamba(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 4096);
  const n = cfg.positiveInt('num_hidden_layers', 32);
  const heads = cfg.positiveInt('num_attention_heads', 32);
  const kvHeads = readKvHeads(cfg, heads, 8);
  const headDim = readHeadDim(cfg, dim, heads, null);
  const act = readActivation(cfg, 'hidden_act', 'silu');
  if (act !== 'silu') cfg.fail('hidden_act', 'must be silu (it is also the mamba conv activation)');
  const norm = rms(cfg, 'rms_norm_eps', 1e-5);
  const maxContext = cfg.positiveInt('max_position_embeddings', 262144);
  const rope = readRope(cfg, {
    headDim,
    maxPositions: maxContext,
    defaultTheta: 10000,
    family: 'bamba',
  });
  const half = Math.floor(headDim * 0.5);
  if (rope.rotaryDim !== headDim && rope.rotaryDim !== half) {
    cfg.fail('partial_rotary_factor', 'must be 0.5: BambaConfig hard-codes it');
  }
  const attn = attentionSpec(heads, kvHeads, headDim, { ...rope, rotaryDim: half });
  // BambaConfig sets attention_bias and mlp_bias to False whatever the config says.
  cfg.ignore('attention_bias', 'mlp_bias', 'z_loss_coefficient', 'num_logits_to_keep');
  cfg.ignore('time_step_min', 'time_step_max', 'time_step_floor');
  const mamba = readBambaMamba2(cfg, dim, norm.eps);
  const ffn: MlpSpec = {
    kind: 'mlp',
    hidden: cfg.positiveInt('intermediate_size', 14336),
    act,
    gated: true,
    bias: false,
  };
  const attnAt = new Set(readIndexList(cfg, 'attn_layer_indices', n) ?? []);
  const layers = Array.from({ length: n }, (_, index): LayerSpec => {
    const isAttn = attnAt.has(index);
    return {
      index,
      mixerName: isAttn ? 'attention' : 'mamba',
      mixer: isAttn ? attn : mamba,
      ffnName: 'mlp',
      ffn,
    };
  });
  const model = modelIR(name, layers, norm, {
    vocab: cfg.positiveInt('vocab_size', 128000),
    dim,
    tie: cfg.bool('tie_word_embeddings', false),
    maxContext,
  });
  return {
    model,
    ...mapWeights(model, [...JAMBA_STYLE_RULES, FEED_FORWARD_RULE]),
  };
}
