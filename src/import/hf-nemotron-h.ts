/**
 * NemotronHConfig (HF `nemotron_h`): one block per layer, each `x + block(norm(x))`: Mamba-2
 * (gated norm per B/C group), attention without positional encoding, an ungated MLP, or an
 * MoE (DeepSeek-V3 routing, ungated experts, one shared MLP). MLP and MoE layers have no
 * mixer. dt is clamped to time_step_limit as in mamba_ssm; transformers' cached decode clamps
 * at time_step_min instead, which only differs where softplus(dt) < time_step_min.
 */
import type { LayerSpec, Mamba2Spec, MlpSpec, MoeSpec } from '../spec/model.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { modelIR } from './hf-model.ts';
import { attentionSpec, readKvHeads } from './hf-attention.ts';
import { readActivation } from './hf-decoder.ts';
import {
  BACKBONE_RULES,
  mapWeights,
  readDtLimit,
  requireSilu,
  rms,
  SSM_INIT_KEYS,
} from './hf-ssm-shared.ts';
import type { FamilyImport } from './registry.ts';

/** transformers 5 layer-type names, and the hybrid_override_pattern characters and old names. */
const NEMOTRON_TYPES: Readonly<Record<string, 'mamba' | 'attention' | 'mlp' | 'moe'>> = {
  linear_attention: 'mamba',
  full_attention: 'attention',
  mlp: 'mlp',
  moe: 'moe',
  mamba: 'mamba',
  attention: 'attention',
  M: 'mamba',
  '*': 'attention',
  '-': 'mlp',
  E: 'moe',
};

function nemotronLayerTypes(cfg: ConfigReader): ('mamba' | 'attention' | 'mlp' | 'moe')[] {
  const list = cfg.optStringList('layers_block_type');
  const pattern = cfg.raw('hybrid_override_pattern');
  if (pattern !== undefined && pattern !== null && typeof pattern !== 'string') {
    cfg.fail('hybrid_override_pattern', `must be a string, got ${show(pattern)}`);
  }
  // NemotronHConfig: layers_block_type wins; hybrid_override_pattern is its legacy spelling.
  const key = list ? 'layers_block_type' : 'hybrid_override_pattern';
  const raw = list ?? (typeof pattern === 'string' ? [...pattern] : null);
  if (!raw) return cfg.fail('layers_block_type', 'is required (or hybrid_override_pattern)');
  if (list) cfg.ignore('hybrid_override_pattern');
  return raw.map((t) => {
    const type = Object.hasOwn(NEMOTRON_TYPES, t) ? NEMOTRON_TYPES[t] : undefined;
    if (!type) cfg.fail(key, `entry ${show(t)} is not a NemotronH layer type`);
    return type;
  });
}

export function importNemotronH(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 4096);
  const types = nemotronLayerTypes(cfg);
  const n = cfg.raw('num_hidden_layers');
  if (n !== undefined && n !== null && n !== types.length) {
    cfg.fail('num_hidden_layers', `is ${show(n)} but the layer types list ${types.length} layers`);
  }
  const norm = rms(cfg, 'layer_norm_epsilon', 1e-5);
  const legacyEps = cfg.raw('rms_norm_eps');
  if (legacyEps !== undefined && legacyEps !== null && legacyEps !== norm.eps) {
    cfg.fail('rms_norm_eps', `is ${show(legacyEps)} but layer_norm_epsilon is ${norm.eps}`);
  }
  const heads = cfg.positiveInt('num_attention_heads', 32);
  const kvHeads = readKvHeads(cfg, heads, 8);
  const headDim = cfg.positiveInt('head_dim', 128);
  const legacyHeadDim = cfg.raw('attention_head_dim');
  if (legacyHeadDim !== undefined && legacyHeadDim !== null && legacyHeadDim !== headDim) {
    cfg.fail('attention_head_dim', `is ${show(legacyHeadDim)} but head_dim is ${headDim}`);
  }
  if (cfg.bool('attention_bias', false)) cfg.fail('attention_bias', 'is true; not supported');
  if (cfg.has('sliding_window')) cfg.fail('sliding_window', 'is set; not supported');
  cfg.ignore('sliding_window');
  const attn = attentionSpec(heads, kvHeads, headDim, null);

  requireSilu(cfg, 'mamba_hidden_act');
  const projBias = cfg.bool('use_bias', false);
  const legacyProjBias = cfg.raw('mamba_proj_bias');
  if (legacyProjBias !== undefined && legacyProjBias !== null && legacyProjBias !== projBias) {
    cfg.fail(
      'mamba_proj_bias',
      `is ${show(legacyProjBias)} but use_bias (in_proj/out_proj) is ${projBias}`,
    );
  }
  const mHeads = cfg.positiveInt('mamba_num_heads', 128);
  const mHeadDim = cfg.positiveInt('mamba_head_dim', 64);
  const groups = cfg.positiveInt('n_groups', 8);
  if (mHeads % groups !== 0)
    cfg.fail('n_groups', `${groups} does not divide mamba_num_heads ${mHeads}`);
  const inner = mHeads * mHeadDim;
  const mamba: Mamba2Spec = {
    kind: 'mamba2',
    heads: mHeads,
    headDim: mHeadDim,
    dState: cfg.positiveInt('ssm_state_size', 128),
    groups,
    dConv: cfg.positiveInt('conv_kernel', 4),
    chunk: cfg.positiveInt('chunk_size', 128),
    convBias: cfg.bool('use_conv_bias', true),
    projBias,
    // Zamba2RMSNormGated with group_size = intermediate_size // n_groups.
    normGroup: inner / groups,
    normEps: norm.eps,
    ...readDtLimit(cfg),
  };
  // The mixer's width is mamba_num_heads × mamba_head_dim; expand only seeds initialisation.
  cfg.ignore('expand', 'time_step_rank', 'mamba_ssm_cache_dtype', 'use_mamba_kernels');
  cfg.ignore(...SSM_INIT_KEYS, 'hidden_dropout');

  const act = readActivation(cfg, 'mlp_hidden_act', 'relu2');
  const mlpBias = cfg.bool('mlp_bias', false);
  const dense: MlpSpec = {
    kind: 'mlp',
    hidden: cfg.positiveInt('intermediate_size', 21504),
    act,
    gated: false,
    bias: mlpBias,
  };
  let moe: MoeSpec | null = null;
  if (types.includes('moe')) {
    if (cfg.has('moe_latent_size'))
      cfg.fail('moe_latent_size', 'is set; latent MoE projections are not supported');
    const experts = cfg.positiveInt('n_routed_experts', 8);
    const topK = cfg.positiveInt('num_experts_per_tok', 2);
    if (topK > experts)
      cfg.fail('num_experts_per_tok', `${topK} exceeds n_routed_experts ${experts}`);
    const groupsE = cfg.positiveInt('n_group', 1);
    const topkGroups = cfg.positiveInt('topk_group', 1);
    if (experts % groupsE !== 0 || topkGroups > groupsE) {
      cfg.fail(
        'n_group',
        `${groupsE} groups with topk_group ${topkGroups} do not fit ${experts} experts`,
      );
    }
    moe = {
      kind: 'moe',
      experts,
      topK,
      expert: {
        kind: 'mlp',
        hidden: cfg.positiveInt('moe_intermediate_size', 7688),
        act,
        gated: false,
        bias: mlpBias,
      },
      clamp: null,
      router: {
        scoring: 'sigmoid',
        normalize: cfg.bool('norm_topk_prob', true),
        scale: cfg.num('routed_scaling_factor', 1),
        bias: false,
        correctionBias: true,
        groups: groupsE,
        topkGroups,
      },
      shared: {
        kind: 'mlp',
        hidden: cfg.positiveInt('moe_shared_expert_intermediate_size', 7688),
        act,
        gated: false,
        bias: mlpBias,
      },
      sharedGate: false,
    };
  }
  // NemotronHMoE's shared expert is one MLP of moe_shared_expert_intermediate_size whatever
  // n_shared_experts says; the rest schedule compute or only matter with MoE layers.
  cfg.ignore(
    'moe_latent_size',
    'n_routed_experts',
    'num_experts_per_tok',
    'n_group',
    'topk_group',
    'norm_topk_prob',
    'routed_scaling_factor',
    'moe_intermediate_size',
    'moe_shared_expert_intermediate_size',
    'n_shared_experts',
    'moe_shared_expert_overlap',
    'num_logits_to_keep',
  );
  // Multi-token-prediction heads are training-time extras (and not in the checkpoint's layers).
  if (cfg.int('num_nextn_predict_layers', 0) !== 0) {
    cfg.fail(
      'num_nextn_predict_layers',
      'is not 0; multi-token prediction layers are not supported',
    );
  }
  cfg.ignore('mtp_layers_block_type', 'mtp_hybrid_override_pattern');
  // The original release points at its own modeling code; strata follows transformers' class.
  cfg.ignore('auto_map');

  const layers = types.map((t, index): LayerSpec => {
    switch (t) {
      case 'mamba':
        return { index, mixerName: 'mamba', mixer: mamba, ffnName: null, ffn: null };
      case 'attention':
        return { index, mixerName: 'attention', mixer: attn, ffnName: null, ffn: null };
      case 'mlp':
        return { index, mixerName: 'no_mixer', mixer: null, ffnName: 'mlp', ffn: dense };
      case 'moe':
        return { index, mixerName: 'no_mixer', mixer: null, ffnName: 'moe', ffn: moe };
    }
  });
  const model = modelIR(name, layers, norm, {
    vocab: cfg.positiveInt('vocab_size', 131072),
    dim,
    tie: cfg.bool('tie_word_embeddings', false),
    maxContext: cfg.positiveInt('max_position_embeddings', 4096),
  });
  return {
    model,
    ...mapWeights(model, [
      ...BACKBONE_RULES,
      // Every block sits under `mixer` behind the layer's one norm.
      [/^model\.layers\.(\d+)\.post_attention_layernorm\./, 'backbone.layers.$1.norm.'],
      [/^model\.layers\.(\d+)\.self_attn\./, 'backbone.layers.$1.mixer.'],
      [/^model\.layers\.(\d+)\.mlp\.shared_expert\./, 'backbone.layers.$1.mixer.shared_experts.'],
      [/^model\.layers\.(\d+)\.mlp\./, 'backbone.layers.$1.mixer.'],
    ]),
  };
}
