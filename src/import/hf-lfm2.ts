/**
 * Lfm2Config (HF `lfm2`): each layer is a short gated conv or attention (qk-norm, RoPE), then
 * a SwiGLU FFN; the final norm is called embedding_norm. Reads the original release's key
 * spellings too (block_ff_dim, full_attn_idxs, tie_embedding, theta).
 */
import type { LayerSpec, MlpSpec } from '../spec/model.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { modelIR } from './hf-model.ts';
import { attentionSpec, readHeadDim, readKvHeads } from './hf-attention.ts';
import { readRope } from './hf-rope.ts';
import { mapWeights, readIndexList, rms } from './hf-ssm-shared.ts';
import type { FamilyImport } from './registry.ts';

/** LFM2's legacy config keys that repeat another key; they must agree with it. */
const LFM2_ALIASES: readonly [string, string][] = [
  ['block_dim', 'hidden_size'],
  ['conv_dim', 'hidden_size'],
  ['conv_dim_out', 'hidden_size'],
  ['num_heads', 'num_attention_heads'],
  ['block_norm_eps', 'norm_eps'],
];

export function importLfm2(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 2560);
  const n = cfg.positiveInt('num_hidden_layers', 32);
  const heads = cfg.positiveInt('num_attention_heads', 32);
  const kvHeads = readKvHeads(cfg, heads, 8);
  const headDim = readHeadDim(cfg, dim, heads, null);
  const norm = rms(cfg, 'norm_eps', 1e-5);
  const values: Record<string, number> = {
    hidden_size: dim,
    num_attention_heads: heads,
    norm_eps: norm.eps,
  };
  for (const [alias, key] of LFM2_ALIASES) {
    const v = cfg.raw(alias);
    if (v !== undefined && v !== null && v !== values[key]) {
      cfg.fail(alias, `is ${show(v)} but ${key} is ${values[key]}`);
    }
  }
  // The original release's switches for parts every LFM2 has.
  for (const key of ['block_use_swiglu', 'use_pos_enc']) {
    if (cfg.raw(key) === false) cfg.fail(key, 'is false; every LFM2 strata knows has it on');
  }
  cfg.ignore(
    'block_mlp_init_scale',
    'block_out_init_scale',
    'block_use_xavier_init',
    'conv_use_xavier_init',
  );
  const maxContext = cfg.positiveInt('max_position_embeddings', 128000);
  let rope = readRope(cfg, {
    headDim,
    maxPositions: maxContext,
    defaultTheta: 1e6,
    family: 'lfm2',
  });
  // Lfm2Config also takes the original release's `theta` (rope_theta wins when both are given).
  if (cfg.has('theta') && !cfg.has('rope_theta') && !cfg.has('rope_parameters')) {
    rope = { ...rope, theta: cfg.num('theta') };
  }
  cfg.ignore('theta');

  // Lfm2Config: intermediate_size comes from block_ff_dim when that is given.
  let hidden = cfg.has('block_ff_dim')
    ? cfg.positiveInt('block_ff_dim')
    : cfg.positiveInt('intermediate_size', 12288);
  if (cfg.has('block_ff_dim')) cfg.ignore('intermediate_size');
  if (cfg.bool('block_auto_adjust_ff_dim', true)) {
    hidden = Math.floor((2 * hidden) / 3);
    const mult = cfg.optNum('block_ffn_dim_multiplier') ?? 1;
    if (cfg.raw('block_ffn_dim_multiplier') !== null) {
      const of = cfg.positiveInt('block_multiple_of', 256);
      hidden = of * Math.ceil(Math.floor(mult * hidden) / of);
    }
  }
  cfg.ignore('block_ffn_dim_multiplier', 'block_multiple_of');
  const ffn: MlpSpec = { kind: 'mlp', hidden, act: 'silu', gated: true, bias: false };

  let types = cfg.optStringList('layer_types');
  const attnIdx = readIndexList(cfg, 'full_attn_idxs', n);
  if (types) {
    if (types.length !== n) cfg.fail('layer_types', `has ${types.length} entries for ${n} layers`);
    const bad = types.find((t) => t !== 'conv' && t !== 'full_attention');
    if (bad !== undefined)
      cfg.fail('layer_types', `entry ${show(bad)} is not conv or full_attention`);
  } else {
    const at = new Set(attnIdx ?? Array.from({ length: n }, (_, i) => i));
    types = Array.from({ length: n }, (_, i) => (at.has(i) ? 'full_attention' : 'conv'));
  }
  const conv = {
    kind: 'shortconv' as const,
    lCache: cfg.positiveInt('conv_L_cache', 3),
    bias: cfg.bool('conv_bias', false),
  };
  const attn = attentionSpec(heads, kvHeads, headDim, rope, { qkNorm: true });
  const layers = types.map((t, index): LayerSpec => ({
    index,
    mixerName: t === 'conv' ? 'conv' : 'attention',
    mixer: t === 'conv' ? conv : attn,
    ffnName: 'mlp',
    ffn,
  }));
  const tie = cfg.has('tie_embedding')
    ? cfg.bool('tie_embedding')
    : cfg.bool('tie_word_embeddings', true);
  if (cfg.has('tie_embedding')) cfg.ignore('tie_word_embeddings');
  const model = modelIR(name, layers, norm, {
    vocab: cfg.positiveInt('vocab_size', 65536),
    dim,
    tie,
    maxContext,
  });
  return {
    model,
    ...mapWeights(model, [
      [/^model\.norm\./, 'model.embedding_norm.'],
      [/^model\.layers\.(\d+)\.input_layernorm\./, 'model.layers.$1.operator_norm.'],
      [/^model\.layers\.(\d+)\.mixer\.conv1d\./, 'model.layers.$1.conv.conv.'],
      [/^model\.layers\.(\d+)\.mixer\./, 'model.layers.$1.conv.'],
      [/^model\.layers\.(\d+)\.self_attn\.o_proj\./, 'model.layers.$1.self_attn.out_proj.'],
      [/^model\.layers\.(\d+)\.self_attn\.q_norm\./, 'model.layers.$1.self_attn.q_layernorm.'],
      [/^model\.layers\.(\d+)\.self_attn\.k_norm\./, 'model.layers.$1.self_attn.k_layernorm.'],
      [/^model\.layers\.(\d+)\.post_attention_layernorm\./, 'model.layers.$1.ffn_norm.'],
      [/^model\.layers\.(\d+)\.mlp\.gate_proj\./, 'model.layers.$1.feed_forward.w1.'],
      [/^model\.layers\.(\d+)\.mlp\.up_proj\./, 'model.layers.$1.feed_forward.w3.'],
      [/^model\.layers\.(\d+)\.mlp\.down_proj\./, 'model.layers.$1.feed_forward.w2.'],
    ]),
  };
}
