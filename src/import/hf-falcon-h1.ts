/**
 * FalconH1Config (HF `falcon_h1`): every layer runs attention and a Mamba-2 mixer in parallel on
 * the same input-normed hidden state and sums them, then a SwiGLU FFN. The muP multipliers
 * become parameters of the kinds they scale (FalconH1DecoderLayer, FalconH1Attention,
 * FalconH1Mixer, FalconH1MLP, FalconH1ForCausalLM in transformers' modeling_falcon_h1.py):
 *   embedding_multiplier      embeddings            → embedding_scale
 *   attention_in_multiplier   attention's input     → parallel attn_in_scale
 *   key_multiplier            k before RoPE         → attention scale (q·(m k) = m (q·k))
 *   attention_out_multiplier  attention's output    → parallel attn_out_scale
 *   ssm_in_multiplier         the mixer's input     → parallel ssm_in_scale
 *   ssm_multipliers           in_proj's z, x, B, C, dt parts (mup_vector) → mamba2 z_scale, ...
 *   ssm_out_multiplier        the mixer's output    → parallel ssm_out_scale
 *   mlp_multipliers           [gate, down]          → swiglu gate_scale, down_scale
 *   lm_head_multiplier        logits                → logit_scale
 */
import {
  type LayerSpec,
  type Mamba2ProjScales,
  type Mamba2Spec,
  type MlpSpec,
  type ParallelSpec,
} from '../spec/model.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { attentionSpec, readKvHeads } from './hf-attention.ts';
import { modelIR } from './hf-model.ts';
import { readRope } from './hf-rope.ts';
import {
  mapWeights,
  readDtLimit,
  requireSilu,
  rms,
  JAMBA_STYLE_RULES,
  FEED_FORWARD_RULE,
} from './hf-ssm-shared.ts';
import type { FamilyImport } from './registry.ts';

/** A positive multiplier (HF default 1 when absent or null). */
function multiplier(cfg: ConfigReader, key: string): number {
  const v = cfg.num(key, 1);
  if (!(v > 0) || !Number.isFinite(v)) cfg.fail(key, `must be a positive number, got ${v}`);
  return v;
}

/** A list of `n` positive multipliers (HF default all 1 when absent or null). */
function multipliers(cfg: ConfigReader, key: string, n: number): number[] {
  const raw = cfg.raw(key);
  if (raw === undefined || raw === null) return Array<number>(n).fill(1);
  const ok =
    Array.isArray(raw) &&
    raw.length === n &&
    raw.every((v) => typeof v === 'number' && Number.isFinite(v) && v > 0);
  if (!ok) cfg.fail(key, `must list ${n} positive numbers, got ${show(raw)}`);
  return raw as number[];
}

function readMixer(cfg: ConfigReader, dim: number, eps: number): Mamba2Spec {
  // FalconH1Mixer: intermediate_size is mamba_d_ssm, else mamba_expand × hidden_size.
  const expand = cfg.positiveInt('mamba_expand', 2);
  const inner =
    cfg.raw('mamba_d_ssm') === null ? expand * dim : cfg.positiveInt('mamba_d_ssm', 1024);
  const heads = cfg.positiveInt('mamba_n_heads', 128);
  const rawHeadDim = cfg.raw('mamba_d_head');
  let headDim: number;
  if (rawHeadDim === undefined || rawHeadDim === null || rawHeadDim === 'auto') {
    if (inner % heads !== 0)
      cfg.fail('mamba_n_heads', `${heads} does not divide the mixer width ${inner}`);
    headDim = inner / heads;
  } else headDim = cfg.positiveInt('mamba_d_head');
  if (heads * headDim !== inner) {
    cfg.fail('mamba_d_head', `${headDim} × mamba_n_heads ${heads} is not the mixer width ${inner}`);
  }
  const groups = cfg.positiveInt('mamba_n_groups', 1);
  if (heads % groups !== 0)
    cfg.fail('mamba_n_groups', `${groups} does not divide mamba_n_heads ${heads}`);
  // in_proj's bias is mamba_proj_bias, out_proj's projectors_bias; Mamba2Spec has one switch.
  const projBias = cfg.bool('mamba_proj_bias', false);
  if (cfg.bool('projectors_bias', false) !== projBias) {
    cfg.fail(
      'projectors_bias',
      `must equal mamba_proj_bias (${projBias}): strata has one bias switch for in_proj and out_proj`,
    );
  }
  const rmsNorm = cfg.bool('mamba_rms_norm', false);
  const normBeforeGate = cfg.bool('mamba_norm_before_gate', true);
  const scales = multipliers(cfg, 'ssm_multipliers', 5) as Mamba2ProjScales;
  return {
    kind: 'mamba2',
    heads,
    headDim,
    dState: cfg.positiveInt('mamba_d_state', 256),
    groups,
    dConv: cfg.positiveInt('mamba_d_conv', 4),
    chunk: cfg.positiveInt('mamba_chunk_size', 256),
    convBias: cfg.bool('mamba_conv_bias', true),
    projBias,
    // FalconH1RMSNormGated normalises each of the n_groups groups separately.
    normGroup: inner / groups,
    normEps: eps,
    ...readDtLimit(cfg),
    ...(scales.some((s) => s !== 1) ? { projScales: scales } : {}),
    // Without the norm, mamba_norm_before_gate has nothing to order: y · silu(z).
    ...(rmsNorm ? {} : { gateNorm: false as const }),
    ...(rmsNorm && normBeforeGate ? { normBeforeGate: true as const } : {}),
  };
}

export function importFalconH1(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 4096);
  const n = cfg.positiveInt('num_hidden_layers', 32);
  const heads = cfg.positiveInt('num_attention_heads', 32);
  const kvHeads = readKvHeads(cfg, heads, 8);
  // FalconH1Attention: getattr(config, "head_dim", hidden_size // num_attention_heads).
  const headDim = cfg.has('head_dim') ? cfg.positiveInt('head_dim') : Math.floor(dim / heads);
  requireSilu(cfg, 'hidden_act');
  const norm = rms(cfg, 'rms_norm_eps', 1e-5);
  const maxContext = cfg.positiveInt('max_position_embeddings', 8192);
  const rope = readRope(cfg, {
    headDim,
    maxPositions: maxContext,
    defaultTheta: 10000,
    family: 'falcon_h1',
  });
  const attnBias = cfg.bool('attention_bias', false);
  const attn = attentionSpec(heads, kvHeads, headDim, rope, {
    bias: attnBias,
    scale: headDim ** -0.5 * multiplier(cfg, 'key_multiplier'),
  });
  const mixer: ParallelSpec = {
    kind: 'parallel',
    attn,
    ssm: readMixer(cfg, dim, norm.eps),
    attnInScale: multiplier(cfg, 'attention_in_multiplier'),
    attnOutScale: multiplier(cfg, 'attention_out_multiplier'),
    ssmInScale: multiplier(cfg, 'ssm_in_multiplier'),
    ssmOutScale: multiplier(cfg, 'ssm_out_multiplier'),
  };
  const [gateScale, downScale] = multipliers(cfg, 'mlp_multipliers', 2);
  const ffn: MlpSpec = {
    kind: 'mlp',
    hidden: cfg.positiveInt('intermediate_size', 14336),
    act: 'silu',
    gated: true,
    bias: cfg.bool('mlp_bias', false),
    ...(gateScale !== 1 ? { gateScale } : {}),
    ...(downScale !== 1 ? { downScale } : {}),
  };
  // Initialisation only, and generation-time logit trimming.
  cfg.ignore('time_step_min', 'time_step_max', 'num_logits_to_keep');
  // Older releases write attn_layer_indices (null); FalconH1Config has no such key and every
  // layer is hybrid whatever it says, so strata follows transformers and ignores it.
  cfg.ignore('attn_layer_indices');
  const layers = Array.from({ length: n }, (_, index): LayerSpec => ({
    index,
    mixerName: 'hybrid',
    mixer,
    ffnName: 'mlp',
    ffn,
  }));
  const model = modelIR(
    name,
    layers,
    norm,
    {
      vocab: cfg.positiveInt('vocab_size', 128000),
      dim,
      tie: cfg.bool('tie_word_embeddings', false),
      maxContext,
    },
    {
      embeddingScale: multiplier(cfg, 'embedding_multiplier'),
      logitScale: multiplier(cfg, 'lm_head_multiplier'),
    },
  );
  return {
    model,
    ...mapWeights(model, [...JAMBA_STYLE_RULES, FEED_FORWARD_RULE]),
  };
}
