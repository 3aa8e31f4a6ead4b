/**
 * Importers for the state-space and hybrid families: mamba (Mamba-1), mamba2, bamba
 * (Mamba-2 + attention, dense FFN in every layer), jamba (Mamba-1 with inner norms + attention,
 * dense or MoE FFN in every layer), lfm2 (short gated conv + attention) and nemotron_h (one
 * Mamba-2, attention, MLP or MoE block per layer). Each reads its transformers config class's
 * keys with that class's defaults and maps strata's canonical tensor names to the checkpoint's
 * (HF Mamba and Nemotron-H keep everything under `backbone.`, Bamba and Jamba their mixer under
 * `mamba.`, LFM2 under `conv.` with its own norm names).
 */
import {
  type LayerSpec,
  type Mamba1Spec,
  type Mamba2Spec,
  type MlpSpec,
  type ModelIR,
  type MoeSpec,
  type NormSpec,
} from '../spec/model.ts';
import type { StoredSlice } from './convert.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { attentionSpec, readHeadDim, readKvHeads } from './hf-attention.ts';
import { readActivation } from './hf-decoder.ts';
import { moeSpec, softmaxRouter } from './hf-moe.ts';
import { readRope } from './hf-rope.ts';
import { expectedTensors } from './names.ts';

export interface FamilyImport {
  model: ModelIR;
  /** Canonical strata tensor name → tensor name in the checkpoint. */
  weightMap: Record<string, string>;
  /** Canonical name → the checkpoint's shape where it differs (conv weights [C, 1, K]). */
  storedShapes: Record<string, number[]>;
  /** Canonical tensors that are parts of a fused stored tensor (see HfImport.storedSlices). */
  storedSlices?: Record<string, StoredSlice>;
}

export type FamilyImporter = (cfg: ConfigReader, name: string) => FamilyImport;

export type Rule = [RegExp, string];

/** The weight map and stored shapes of a model whose checkpoint renames by `rules` (first match). */
export function mapWeights(model: ModelIR, rules: readonly Rule[]): Omit<FamilyImport, 'model'> {
  const weightMap: Record<string, string> = {};
  const storedShapes: Record<string, number[]> = {};
  for (const t of expectedTensors(model)) {
    const rule = rules.find(([re]) => re.test(t.name));
    weightMap[t.name] = rule ? t.name.replace(rule[0], rule[1]) : t.name;
    // nn.Conv1d(groups=channels) stores [channels, 1, kernel]: the same elements as [C, K].
    if (/\.conv1d\.weight$/.test(t.name)) storedShapes[t.name] = [t.shape[0], 1, t.shape[1]];
  }
  return { weightMap, storedShapes };
}

export function rms(cfg: ConfigReader, key: string, fallback: number): NormSpec {
  const eps = cfg.num(key, fallback);
  if (!(eps > 0)) cfg.fail(key, `must be positive, got ${eps}`);
  return rmsNorm(eps);
}

/** Mamba's conv and gate activation: the kernels implement SiLU only. */
export function requireSilu(cfg: ConfigReader, key: string): void {
  if (readActivation(cfg, key, 'silu') !== 'silu') {
    cfg.fail(key, 'must be silu for the mamba mixers (the conv and gate activation)');
  }
}

/** time_step_limit [min, max] → dtMin / dtMax (null for +inf); HF default (0, inf). */
export function readDtLimit(
  cfg: ConfigReader,
  key = 'time_step_limit',
): { dtMin: number; dtMax: number | null } {
  const raw = cfg.raw(key);
  if (raw === undefined || raw === null) return { dtMin: 0, dtMax: null };
  const ok =
    Array.isArray(raw) &&
    raw.length === 2 &&
    raw.every((v) => typeof v === 'number') &&
    (raw[0] as number) >= 0 &&
    Number.isFinite(raw[0]) &&
    (raw[1] as number) >= (raw[0] as number);
  if (!ok) cfg.fail(key, `must be [min, max] with 0 <= min <= max, got ${show(raw)}`);
  const [lo, hi] = raw as number[];
  return { dtMin: lo, dtMax: Number.isFinite(hi) ? hi : null };
}

/** Keys that only seed the training-time initialisation of the SSM parameters. */
export const SSM_INIT_KEYS = [
  'time_step_min',
  'time_step_max',
  'time_step_floor',
  'time_step_scale',
  'time_step_init_scheme',
  'rescale_prenorm_residual',
  // f32 everywhere: keeping the residual in f32 changes nothing.
  'residual_in_fp32',
  // Training-time kernel choices in MambaConfig.
  'use_mambapy',
  'use_associative_scan',
] as const;

/**
 * State-space models have no context limit of their own; strata still sizes buffers from
 * max_context, so SSM-only checkpoints get a generous default.
 */
const SSM_MAX_CONTEXT = 1 << 20;

const BACKBONE_RULES: readonly Rule[] = [
  [/^model\.embed_tokens\./, 'backbone.embeddings.'],
  [/^model\.norm\./, 'backbone.norm_f.'],
  [/^model\.layers\.(\d+)\.input_layernorm\./, 'backbone.layers.$1.norm.'],
  [/^model\.layers\.(\d+)\.mixer\./, 'backbone.layers.$1.mixer.'],
];

/** MambaConfig (HF `mamba`): Mamba-1 layers only, no FFN, tied head by default. */
function importMamba(cfg: ConfigReader, name: string): FamilyImport {
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

interface Mamba2Keys {
  heads: string;
  headDim: string;
  dState: string;
  groups: string;
  dConv: string;
  expand: string;
  chunk: string;
  convBias: string;
  projBias: string;
}

/**
 * A Mamba-2 mixer from a config's keys (names differ per family). heads × headDim must be
 * the inner width expand × dim, as every HF Mamba-2 class assumes when it reshapes.
 */
export function readMamba2(
  cfg: ConfigReader,
  dim: number,
  k: Mamba2Keys,
  defaults: {
    heads: number;
    dState: number;
    groups: number;
    chunk: number;
    headDim: number | 'auto';
  },
  norm: { eps: number; perGroup: boolean },
): Mamba2Spec {
  const expand = cfg.positiveInt(k.expand, 2);
  const inner = expand * dim;
  const heads = cfg.positiveInt(k.heads, defaults.heads);
  const rawHeadDim = cfg.raw(k.headDim);
  let headDim: number;
  if (
    rawHeadDim === 'auto' ||
    ((rawHeadDim === undefined || rawHeadDim === null) && defaults.headDim === 'auto')
  ) {
    if (inner % heads !== 0)
      cfg.fail(k.heads, `${heads} does not divide ${k.expand} × hidden_size (${inner})`);
    headDim = inner / heads;
  } else {
    headDim = cfg.positiveInt(
      k.headDim,
      defaults.headDim === 'auto' ? undefined : defaults.headDim,
    );
  }
  if (heads * headDim !== inner) {
    cfg.fail(
      k.headDim,
      `${headDim} × ${k.heads} ${heads} = ${heads * headDim} is not ${k.expand} × hidden_size (${inner})`,
    );
  }
  const groups = cfg.positiveInt(k.groups, defaults.groups);
  if (heads % groups !== 0) cfg.fail(k.groups, `${groups} does not divide ${k.heads} ${heads}`);
  return {
    kind: 'mamba2',
    heads,
    headDim,
    dState: cfg.positiveInt(k.dState, defaults.dState),
    groups,
    dConv: cfg.positiveInt(k.dConv, 4),
    chunk: cfg.positiveInt(k.chunk, defaults.chunk),
    convBias: cfg.bool(k.convBias, true),
    projBias: cfg.bool(k.projBias, false),
    normGroup: norm.perGroup ? inner / groups : inner,
    normEps: norm.eps,
    ...readDtLimit(cfg),
  };
}

/** Mamba2Config (HF `mamba2`): Mamba-2 layers only, no FFN. */
function importMamba2(cfg: ConfigReader, name: string): FamilyImport {
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

/** Indices into `n` layers: each an integer in range, none repeated. */
function readIndexList(cfg: ConfigReader, key: string, n: number): number[] | null {
  const raw = cfg.raw(key);
  if (raw === undefined || raw === null) return null;
  const ok =
    Array.isArray(raw) &&
    raw.every((v) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < n) &&
    new Set(raw).size === raw.length;
  if (!ok) cfg.fail(key, `must list distinct layer indices in [0, ${n}), got ${show(raw)}`);
  return raw as number[];
}

/**
 * Bamba's Mamba-2 mixer: its mamba_* keys and BambaConfig's defaults, which
 * GraniteMoeHybridConfig shares; BambaRMSNormGated (eps rms_norm_eps) normalises the whole inner
 * width.
 */
export function readBambaMamba2(cfg: ConfigReader, dim: number, eps: number): Mamba2Spec {
  return readMamba2(
    cfg,
    dim,
    {
      heads: 'mamba_n_heads',
      headDim: 'mamba_d_head',
      dState: 'mamba_d_state',
      groups: 'mamba_n_groups',
      dConv: 'mamba_d_conv',
      expand: 'mamba_expand',
      chunk: 'mamba_chunk_size',
      convBias: 'mamba_conv_bias',
      projBias: 'mamba_proj_bias',
    },
    { heads: 128, headDim: 'auto', dState: 256, groups: 1, chunk: 256 },
    { eps, perGroup: false },
  );
}

/**
 * BambaConfig (HF `bamba`): Mamba-2 layers with attention at attn_layer_indices, a SwiGLU FFN
 * in every layer. The config class hard-codes partial_rotary_factor 0.5 and no attention/MLP
 * biases whatever the keys say.
 */
function importBamba(cfg: ConfigReader, name: string): FamilyImport {
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
    ...mapWeights(model, [
      [/^model\.norm\./, 'model.final_layernorm.'],
      [/^model\.layers\.(\d+)\.mixer\./, 'model.layers.$1.mamba.'],
      [/^model\.layers\.(\d+)\.post_attention_layernorm\./, 'model.layers.$1.pre_ff_layernorm.'],
      [/^model\.layers\.(\d+)\.mlp\./, 'model.layers.$1.feed_forward.'],
    ]),
  };
}

/** A layer period and offset (JambaConfig requires offset < period). */
function readPeriod(
  cfg: ConfigReader,
  periodKey: string,
  offsetKey: string,
  fallback: { period: number; offset: number },
): { period: number; offset: number } {
  const period = cfg.positiveInt(periodKey, fallback.period);
  const offset = cfg.int(offsetKey, fallback.offset);
  if (offset < 0 || offset >= period) {
    cfg.fail(offsetKey, `${offset} must be in [0, ${periodKey} ${period})`);
  }
  return { period, offset };
}

/**
 * JambaConfig (HF `jamba`): layer i is attention (no positional encoding) when
 * i % attn_layer_period == attn_layer_offset, else a Mamba-1 mixer with RMSNorms on dt, B and C;
 * every layer then has a SwiGLU FFN, an MoE of num_experts (softmax top-k, not renormalised)
 * when i % expert_layer_period == expert_layer_offset and num_experts > 1, otherwise dense.
 */
function importJamba(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 4096);
  const n = cfg.positiveInt('num_hidden_layers', 32);
  const heads = cfg.positiveInt('num_attention_heads', 32);
  const kvHeads = readKvHeads(cfg, heads, 8);
  // JambaAttention derives head_dim from hidden_size; the config class has no head_dim.
  if (dim % heads !== 0) {
    cfg.fail('hidden_size', `${dim} is not a multiple of num_attention_heads ${heads}`);
  }
  const headDim = dim / heads;
  const act = readActivation(cfg, 'hidden_act', 'silu');
  if (act !== 'silu') cfg.fail('hidden_act', 'must be silu (it is also the mamba conv activation)');
  const norm = rms(cfg, 'rms_norm_eps', 1e-6);
  if (cfg.raw('sliding_window') !== undefined && cfg.raw('sliding_window') !== null) {
    cfg.fail('sliding_window', 'is set; not supported');
  }
  cfg.ignore('sliding_window');
  const attn = attentionSpec(heads, kvHeads, headDim, null);

  const expand = cfg.positiveInt('mamba_expand', 2);
  const rankRaw = cfg.raw('mamba_dt_rank');
  const dtRank =
    rankRaw === undefined || rankRaw === null || rankRaw === 'auto'
      ? Math.ceil(dim / 16)
      : cfg.positiveInt('mamba_dt_rank');
  const mamba: Mamba1Spec = {
    kind: 'mamba1',
    dInner: expand * dim,
    dState: cfg.positiveInt('mamba_d_state', 16),
    dConv: cfg.positiveInt('mamba_d_conv', 4),
    dtRank,
    convBias: cfg.bool('mamba_conv_bias', true),
    projBias: cfg.bool('mamba_proj_bias', false),
    // JambaMambaMixer builds its dt/B/C norms with the model's rms_norm_eps.
    innerNorms: { eps: norm.eps },
  };
  // Kernel choice and generation-time logit trimming: the same numbers either way.
  cfg.ignore('use_mamba_kernels', 'num_logits_to_keep', ...SSM_INIT_KEYS);

  const attnAt = readPeriod(cfg, 'attn_layer_period', 'attn_layer_offset', {
    period: 8,
    offset: 4,
  });
  const expertAt = readPeriod(cfg, 'expert_layer_period', 'expert_layer_offset', {
    period: 2,
    offset: 1,
  });
  const dense: MlpSpec = {
    kind: 'mlp',
    hidden: cfg.positiveInt('intermediate_size', 14336),
    act,
    gated: true,
    bias: false,
  };
  const experts = cfg.positiveInt('num_experts', 16);
  const topK = cfg.positiveInt('num_experts_per_tok', 2);
  if (experts > 1 && topK > experts) {
    cfg.fail('num_experts_per_tok', `${topK} exceeds num_experts ${experts}`);
  }
  // JambaSparseMoeBlock: softmax over all experts, top-k, no renormalisation.
  const moe = moeSpec(experts, topK, dense, softmaxRouter(false));
  const types = Array.from({ length: n }, (_, i) =>
    i % attnAt.period === attnAt.offset ? 'attention' : 'mamba',
  );
  // JambaConfig computes layers_block_type / layers_num_experts; a config that writes them out
  // must agree with the periods (transformers ignores the written copies).
  const writtenTypes = cfg.optStringList('layers_block_type');
  if (writtenTypes && writtenTypes.join() !== types.join()) {
    cfg.fail('layers_block_type', `disagrees with attn_layer_period/offset (${types.join(', ')})`);
  }
  const numExperts = types.map((_, i) => (i % expertAt.period === expertAt.offset ? experts : 1));
  const writtenExperts = cfg.raw('layers_num_experts');
  if (
    writtenExperts !== undefined &&
    writtenExperts !== null &&
    show(writtenExperts) !== show(numExperts)
  ) {
    cfg.fail(
      'layers_num_experts',
      `disagrees with expert_layer_period/offset and num_experts (${show(numExperts)})`,
    );
  }
  cfg.ignore('layers_num_experts');

  const layers = types.map((t, index): LayerSpec => {
    const sparse = numExperts[index] > 1;
    return {
      index,
      mixerName: t,
      mixer: t === 'attention' ? attn : mamba,
      ffnName: sparse ? 'moe' : 'mlp',
      ffn: sparse ? structuredClone(moe) : { ...dense },
    };
  });
  const model = modelIR(name, layers, norm, {
    vocab: cfg.positiveInt('vocab_size', 65536),
    dim,
    tie: cfg.bool('tie_word_embeddings', false),
    maxContext: cfg.positiveInt('max_position_embeddings', 262144),
  });
  return {
    model,
    ...mapWeights(model, [
      [/^model\.norm\./, 'model.final_layernorm.'],
      [/^model\.layers\.(\d+)\.mixer\./, 'model.layers.$1.mamba.'],
      [/^model\.layers\.(\d+)\.post_attention_layernorm\./, 'model.layers.$1.pre_ff_layernorm.'],
      [/^model\.layers\.(\d+)\.mlp\.gate\./, 'model.layers.$1.feed_forward.router.'],
      [/^model\.layers\.(\d+)\.mlp\./, 'model.layers.$1.feed_forward.'],
    ]),
  };
}

/** LFM2's legacy config keys that repeat another key; they must agree with it. */
const LFM2_ALIASES: readonly [string, string][] = [
  ['block_dim', 'hidden_size'],
  ['conv_dim', 'hidden_size'],
  ['conv_dim_out', 'hidden_size'],
  ['num_heads', 'num_attention_heads'],
  ['block_norm_eps', 'norm_eps'],
];

/**
 * Lfm2Config (HF `lfm2`): each layer is a short gated conv or attention (qk-norm, RoPE), then
 * a SwiGLU FFN; the final norm is called embedding_norm. Reads the original release's key
 * spellings too (block_ff_dim, full_attn_idxs, tie_embedding, theta).
 */
function importLfm2(cfg: ConfigReader, name: string): FamilyImport {
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

/**
 * NemotronHConfig (HF `nemotron_h`): one block per layer, each `x + block(norm(x))`: Mamba-2
 * (gated norm per B/C group), attention without positional encoding, an ungated MLP, or an
 * MoE (DeepSeek-V3 routing, ungated experts, one shared MLP). MLP and MoE layers have no
 * mixer. dt is clamped to time_step_limit as in mamba_ssm; transformers' cached decode clamps
 * at time_step_min instead, which only differs where softplus(dt) < time_step_min.
 */
function importNemotronH(cfg: ConfigReader, name: string): FamilyImport {
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

export const SSM_FAMILIES: Readonly<Record<string, FamilyImporter>> = {
  mamba: importMamba,
  mamba2: importMamba2,
  bamba: importBamba,
  jamba: importJamba,
  lfm2: importLfm2,
  nemotron_h: importNemotronH,
};
