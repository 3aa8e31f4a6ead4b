/**
 * Importer for gemma3_text (Gemma 3's decoder, HF Gemma3TextConfig / Gemma3ForCausalLM). Beside
 * Llama's layout it has: unit-offset RMSNorms (x · (1 + w)) everywhere, qk-norm included;
 * sandwich norms (each sublayer's output normed before its residual add); embeddings scaled by
 * sqrt(hidden_size); softmax scale query_pre_attn_scalar^-0.5; GeGLU with tanh-GELU; sliding-window
 * layers (layer_types, or every layer but each sliding_window_pattern-th) with their own RoPE
 * base; optional attention and final logit softcaps. Defaults are Gemma3TextConfig's.
 */
import type { LayerSpec, ModelIR, RopeSpec } from '../spec/model.ts';
import { isConfigObject, show, type ConfigReader } from './config-reader.ts';
import { positiveWindow, readActivation } from './hf-decoder.ts';
import { attentionSpec, readHeadDim, readKvHeads } from './hf-attention.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { readRope } from './hf-rope.ts';
import type { FamilyImport } from './registry.ts';
import { expectedTensors } from './names.ts';

const LAYER_TYPES = ['full_attention', 'sliding_attention'] as const;
type LayerType = (typeof LAYER_TYPES)[number];

/** Gemma3TextConfig.default_theta: the global (full) and local (sliding) RoPE bases. */
const DEFAULT_THETA: Record<LayerType, number> = {
  full_attention: 1_000_000,
  sliding_attention: 10_000,
};

/** layer_types, else HF's rule: layer i slides unless (i + 1) is a multiple of the pattern. */
function readLayerTypes(cfg: ConfigReader, layers: number): LayerType[] {
  const types = cfg.optStringList('layer_types');
  // transformers 5 writes the pattern as `_sliding_window_pattern`, 4.x as `sliding_window_pattern`.
  const patternKey = cfg.has('sliding_window_pattern')
    ? 'sliding_window_pattern'
    : '_sliding_window_pattern';
  cfg.ignore('sliding_window_pattern', '_sliding_window_pattern');
  if (types) {
    if (types.length !== layers)
      cfg.fail('layer_types', `has ${types.length} entries for ${layers} layers`);
    const bad = types.find((t) => !(LAYER_TYPES as readonly string[]).includes(t));
    if (bad !== undefined)
      cfg.fail('layer_types', `entry ${show(bad)} is not full_attention or sliding_attention`);
    return types as LayerType[];
  }
  const pattern = cfg.positiveInt(patternKey, 6);
  return Array.from({ length: layers }, (_, i) =>
    (i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention',
  );
}

/**
 * The RoPE of each layer type. transformers 5 writes one `rope_parameters` dict per layer type;
 * older configs give the global base as rope_theta (scaled by rope_scaling) and the local one as
 * rope_local_base_freq, the local RoPE never being scaled (HF builds it with rope_type default).
 */
function readRopes(
  cfg: ConfigReader,
  headDim: number,
  maxPositions: number,
): Record<LayerType, RopeSpec> {
  const ctx = (type: LayerType) => ({
    headDim,
    maxPositions,
    defaultTheta: DEFAULT_THETA[type],
    family: 'gemma3_text',
  });
  const params = cfg.optObject('rope_parameters');
  const perType = params !== null && Object.keys(params).some((k) => isConfigObject(params[k]));
  if (!perType) {
    const local = cfg.num('rope_local_base_freq', DEFAULT_THETA.sliding_attention);
    if (!(local > 0)) cfg.fail('rope_local_base_freq', `must be positive, got ${local}`);
    return {
      full_attention: readRope(cfg, ctx('full_attention')),
      sliding_attention: { theta: local, rotaryDim: headDim, scaling: { kind: 'none' } },
    };
  }
  for (const k of Object.keys(params)) {
    if (!(LAYER_TYPES as readonly string[]).includes(k))
      cfg.fail(`rope_parameters.${k}`, 'is not a layer type (full_attention, sliding_attention)');
  }
  if (cfg.has('rope_scaling'))
    cfg.fail('rope_scaling', 'is given beside per-layer-type rope_parameters; give one of them');
  // HF: the legacy bases fill a layer type's dict only where it has no rope_theta.
  const legacy: Record<LayerType, string> = {
    full_attention: 'rope_theta',
    sliding_attention: 'rope_local_base_freq',
  };
  const read = (type: LayerType): RopeSpec => {
    const dict = params[type] ?? {};
    if (!isConfigObject(dict))
      cfg.fail(`rope_parameters.${type}`, `must be an object, got ${show(dict)}`);
    const theta = cfg.optNum(legacy[type]);
    const fromLegacy = theta !== null && dict.rope_theta === undefined;
    // Errors name the keys as config.json writes them: the layer type's dict, or the legacy base.
    const inDict = `rope_parameters.${type}`;
    const sub = cfg.derived(
      { rope_parameters: fromLegacy ? { ...dict, rope_theta: theta } : dict },
      `${cfg.where} (${inDict})`,
      (key) => {
        if (key === 'rope_theta' || key === 'rope_parameters.rope_theta') {
          return fromLegacy ? legacy[type] : `${inDict}.rope_theta`;
        }
        if (key === 'rope_parameters') return inDict;
        if (key.startsWith('rope_parameters.'))
          return `${inDict}${key.slice('rope_parameters'.length)}`;
        return `${inDict}.${key}`;
      },
    );
    return readRope(sub, ctx(type));
  };
  return { full_attention: read('full_attention'), sliding_attention: read('sliding_attention') };
}

function optSoftcap(cfg: ConfigReader, key: string): number | null {
  const v = cfg.optNum(key);
  if (v !== null && !(v > 0)) cfg.fail(key, `must be positive or null, got ${v}`);
  return v;
}

export function importGemma3Text(cfg: ConfigReader, name: string): FamilyImport {
  const vocab = cfg.positiveInt('vocab_size', 262_208);
  const dim = cfg.positiveInt('hidden_size', 2304);
  const hidden = cfg.positiveInt('intermediate_size', 9216);
  const nLayers = cfg.positiveInt('num_hidden_layers', 26);
  const heads = cfg.positiveInt('num_attention_heads', 8);
  const kvHeads = readKvHeads(cfg, heads, 4);
  const headDim = readHeadDim(cfg, dim, heads, 256);
  const act = readActivation(cfg, 'hidden_activation', 'gelu_pytorch_tanh');
  const eps = cfg.num('rms_norm_eps', 1e-6);
  if (!(eps > 0)) cfg.fail('rms_norm_eps', `must be positive, got ${eps}`);
  const maxContext = cfg.positiveInt('max_position_embeddings', 131_072);
  const bias = cfg.bool('attention_bias', false);
  const scalar = cfg.num('query_pre_attn_scalar', 256);
  if (!(scalar > 0)) cfg.fail('query_pre_attn_scalar', `must be positive, got ${scalar}`);
  if (cfg.bool('use_bidirectional_attention', false)) {
    cfg.fail(
      'use_bidirectional_attention',
      'is true (an encoder such as EmbeddingGemma); strata imports Gemma 3 as a causal decoder',
    );
  }
  const window = positiveWindow(cfg, 'sliding_window', 4096);
  const types = readLayerTypes(cfg, nLayers);
  const ropes = readRopes(cfg, headDim, maxContext);
  const softcap = optSoftcap(cfg, 'attn_logit_softcapping');
  const logitSoftcap = optSoftcap(cfg, 'final_logit_softcapping');
  // The KV-cache layout ("hybrid") is a Python-side choice; it computes the same thing.
  cfg.ignore('cache_implementation');

  const layers: LayerSpec[] = types.map((type, index) => {
    const mixer = attentionSpec(heads, kvHeads, headDim, ropes[type], {
      qkNorm: true,
      bias,
      window: type === 'sliding_attention' ? window : null,
      // HF: scaling = query_pre_attn_scalar ** -0.5 (not head_dim's).
      scale: scalar ** -0.5,
      softcap,
    });
    return {
      index,
      mixerName: type,
      mixer,
      ffnName: 'mlp',
      ffn: { kind: 'mlp', hidden, act, gated: true, bias: false },
    };
  });
  const tie = cfg.bool('tie_word_embeddings', true);
  const model = modelIR(
    name,
    layers,
    rmsNorm(eps, true),
    { vocab, dim, tie, maxContext },
    {
      postNorms: true,
      // HF keeps sqrt(hidden_size) as a float32 tensor cast to the weights' dtype; strata runs
      // in f32, so the f32 rounding is the one that matches (a bf16 run rounds it to bf16).
      embeddingScale: Math.fround(Math.sqrt(dim)),
      logitSoftcap,
    },
  );
  return { model, weightMap: gemma3WeightMap(model), storedShapes: {} };
}

/**
 * Canonical → checkpoint names. Gemma's four layer norms are input_layernorm (mixer pre-norm),
 * post_attention_layernorm (mixer post-norm), pre_feedforward_layernorm (FFN pre-norm) and
 * post_feedforward_layernorm; the canonical (Llama) names differ for the middle two.
 */
function gemma3WeightMap(model: ModelIR): Record<string, string> {
  const rename = (n: string) =>
    n
      .replace(/\.post_attention_layernorm\./, '.pre_feedforward_layernorm.')
      .replace(/\.post_mixer_layernorm\./, '.post_attention_layernorm.');
  return Object.fromEntries(expectedTensors(model).map((t) => [t.name, rename(t.name)]));
}
