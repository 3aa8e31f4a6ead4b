/**
 * GraniteMoeHybridConfig (HF `granitemoehybrid`, IBM Granite 4.0 hybrids): each layer is a
 * Mamba-2 mixer (Bamba's: gated RMSNorm over the whole inner width) or attention (RoPE only
 * when position_embedding_type is "rope"), then an FFN that is a top-k MoE plus a shared SwiGLU
 * MLP (only the shared MLP when num_local_experts is 0). Granite's multipliers map onto ModelIR:
 * embedding_multiplier → embeddingScale, attention_multiplier → the attention softmax scale,
 * residual_multiplier → residualScale, and logits are divided by logits_scaling → logitScale.
 *
 * The checkpoint fuses expert tensors: block_sparse_moe.input_linear [experts, 2·hidden, dim]
 * holds each expert's gate rows then up rows (the MoE chunks its output in two and applies the
 * activation to the first half), output_linear [experts, dim, hidden] its down projections, and
 * shared_mlp.input_linear [2·shared, dim] the shared MLP's gate then up rows. The import maps
 * each canonical per-expert tensor to a slice of those (storedSlices).
 */
import { type LayerSpec, type MlpSpec, type FfnSpec, type RopeSpec } from '../spec/model.ts';
import { expertRows } from '../../formats/tensor-slice.ts';
import type { StoredSlice } from './convert.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { attentionSpec, readHeadDim, readKvHeads } from './hf-attention.ts';
import { modelIR } from './hf-model.ts';
import { moeSpec, softmaxRouter } from './hf-moe.ts';
import { readRope } from './hf-rope.ts';
import { mapWeights, readBambaMamba2, requireSilu, rms, SSM_INIT_KEYS } from './hf-ssm-shared.ts';
import type { FamilyImport } from './registry.ts';
import { layerPrefix, mlpNames } from './names.ts';
import { moeNames } from '../graph/blocks/moe.ts';

/** layer_types entries: transformers 5 writes linear_attention / full_attention. */
const LAYER_TYPES: Readonly<Record<string, 'mamba' | 'attention'>> = {
  mamba: 'mamba',
  attention: 'attention',
  linear_attention: 'mamba',
  full_attention: 'attention',
};

function layerTypes(cfg: ConfigReader, n: number): ('mamba' | 'attention')[] {
  // layers_block_type is the config class's attribute alias of layer_types.
  const key = cfg.has('layer_types') ? 'layer_types' : 'layers_block_type';
  const other = key === 'layer_types' ? 'layers_block_type' : 'layer_types';
  if (cfg.has(other) && cfg.raw(other) !== null) {
    cfg.fail(other, `is given beside ${key}; give one`);
  }
  cfg.ignore(other);
  const list = cfg.optStringList(key);
  // GraniteMoeHybridConfig: without layer types every layer is mamba.
  if (!list) return Array<'mamba'>(n).fill('mamba');
  if (list.length !== n) cfg.fail(key, `has ${list.length} entries for ${n} layers`);
  return list.map((t) => {
    const type = Object.hasOwn(LAYER_TYPES, t) ? LAYER_TYPES[t] : undefined;
    if (!type)
      cfg.fail(key, `entry ${show(t)} is not mamba, attention, linear_attention or full_attention`);
    return type;
  });
}

/** A multiplier that must be a positive finite number (HF default 1.0). */
function multiplier(cfg: ConfigReader, key: string): number {
  const v = cfg.num(key, 1);
  if (!(v > 0) || !Number.isFinite(v)) cfg.fail(key, `must be a positive number, got ${v}`);
  return v;
}

const ROPE_KEYS = ['rope_theta', 'rope_scaling', 'rope_parameters', 'partial_rotary_factor'];

export function importGraniteMoeHybrid(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 4096);
  const n = cfg.positiveInt('num_hidden_layers', 32);
  const types = layerTypes(cfg, n);
  // hidden_act is the SwiGLU activation and the mamba conv/gate activation alike.
  requireSilu(cfg, 'hidden_act');
  const norm = rms(cfg, 'rms_norm_eps', 1e-6);
  const maxContext = cfg.positiveInt('max_position_embeddings', 2048);

  const heads = cfg.positiveInt('num_attention_heads', 32);
  const kvHeads = readKvHeads(cfg, heads, heads);
  const headDim = readHeadDim(cfg, dim, heads, null);
  const pos = cfg.raw('position_embedding_type');
  // The model builds its rotary embedding only for "rope"; None and "nope" mean none.
  if (pos !== undefined && pos !== null && pos !== 'rope' && pos !== 'nope') {
    cfg.fail('position_embedding_type', `must be "rope", "nope" or null, got ${show(pos)}`);
  }
  cfg.ignore('position_embedding_type');
  let rope: RopeSpec | null = null;
  if (pos === 'rope') {
    rope = readRope(cfg, {
      headDim,
      maxPositions: maxContext,
      defaultTheta: 10000,
      family: 'granitemoehybrid',
    });
  } else {
    cfg.ignore(...ROPE_KEYS);
  }
  const bias = cfg.bool('attention_bias', false);
  const attn = attentionSpec(heads, kvHeads, headDim, rope, {
    bias,
    // Granite's attention_multiplier replaces head_dim^-0.5 as the softmax scale.
    scale: multiplier(cfg, 'attention_multiplier'),
  });

  const mamba = readBambaMamba2(cfg, dim, norm.eps);
  cfg.ignore(...SSM_INIT_KEYS);

  const experts = cfg.int('num_local_experts', 8);
  if (experts < 0) cfg.fail('num_local_experts', `must be at least 0, got ${experts}`);
  const shared: MlpSpec = {
    kind: 'mlp',
    hidden: cfg.positiveInt('shared_intermediate_size', 1024),
    act: 'silu',
    gated: true,
    bias: false,
  };
  let ffn: FfnSpec = shared;
  if (experts > 0) {
    const topK = cfg.positiveInt('num_experts_per_tok', 2);
    if (topK > experts)
      cfg.fail('num_experts_per_tok', `${topK} exceeds num_local_experts ${experts}`);
    const expert: MlpSpec = { ...shared, hidden: cfg.positiveInt('intermediate_size', 11008) };
    // The router softmaxes the top-k logits: renormalised softmax weights.
    ffn = moeSpec(experts, topK, expert, softmaxRouter(true), { shared });
  } else {
    cfg.ignore('num_experts_per_tok', 'intermediate_size');
  }

  const layers = types.map((t, index): LayerSpec => ({
    index,
    mixerName: t,
    mixer: t === 'attention' ? attn : mamba,
    ffnName: ffn.kind === 'moe' ? 'moe' : 'mlp',
    ffn: structuredClone(ffn),
  }));
  const model = modelIR(
    name,
    layers,
    norm,
    {
      vocab: cfg.positiveInt('vocab_size', 32000),
      dim,
      tie: cfg.bool('tie_word_embeddings', false),
      maxContext,
    },
    {
      embeddingScale: multiplier(cfg, 'embedding_multiplier'),
      residualScale: multiplier(cfg, 'residual_multiplier'),
      logitScale: 1 / multiplier(cfg, 'logits_scaling'),
    },
  );
  const mapped = mapWeights(model, [
    [/^model\.layers\.(\d+)\.mixer\./, 'model.layers.$1.mamba.'],
    [/^model\.layers\.(\d+)\.mlp\.gate\./, 'model.layers.$1.block_sparse_moe.router.layer.'],
  ]);
  const storedSlices: Record<string, StoredSlice> = {};
  const fused = { ...mapped, storedSlices };
  for (const layer of layers) mapFusedFfn(fused, layer.index, dim, layer.ffn!);
  return { model, ...fused };
}

/** Points the layer's canonical expert and shared-MLP tensors at slices of the fused ones. */
function mapFusedFfn(
  m: Omit<FamilyImport, 'model'> & { storedSlices: Record<string, StoredSlice> },
  i: number,
  dim: number,
  f: FfnSpec,
): void {
  const slice = (canonical: string, stored: string, shape: number[], s: StoredSlice) => {
    m.weightMap[canonical] = stored;
    m.storedShapes[canonical] = shape;
    m.storedSlices[canonical] = s;
  };
  const p = layerPrefix(i);
  const sharedIn = `${p}.shared_mlp.input_linear.weight`;
  const sharedOut = `${p}.shared_mlp.output_linear.weight`;
  const sharedNames = f.kind === 'moe' ? moeNames(i).shared : mlpNames(i);
  const sharedSpec = f.kind === 'moe' ? f.shared! : f;
  const S = sharedSpec.hidden;
  slice(`${sharedNames.gate}.weight`, sharedIn, [2 * S, dim], { start: [0, 0], size: [S, dim] });
  slice(`${sharedNames.up}.weight`, sharedIn, [2 * S, dim], { start: [S, 0], size: [S, dim] });
  m.weightMap[`${sharedNames.down}.weight`] = sharedOut;
  if (f.kind !== 'moe') return;
  const E = f.experts;
  const H = f.expert.hidden;
  const input = `${p}.block_sparse_moe.input_linear.weight`;
  const output = `${p}.block_sparse_moe.output_linear.weight`;
  for (let e = 0; e < E; e++) {
    const n = moeNames(i).expert(e);
    slice(`${n.gate}.weight`, input, [E, 2 * H, dim], expertRows(e, 0, H, dim));
    slice(`${n.up}.weight`, input, [E, 2 * H, dim], expertRows(e, H, H, dim));
    slice(`${n.down}.weight`, output, [E, dim, H], expertRows(e, 0, dim, H));
  }
}
