/**
 * DiffusionGemma (transformers 5.18 models/diffusion_gemma, DiffusionGemmaForBlockDiffusion):
 * the config and checkpoint reader, and its import as a ModelIR (diffusionGemmaModel,
 * importDiffusionGemma): each part of the architecture below maps onto a strata setting —
 * attention `phased` (encoder and denoiser in one set of layers), the MoE's branch norms and
 * Gemma 4 router (`branch_norms`, `input_scale`, `expert_scale`), and `diffusion entropy_bound`
 * (the sampler's defaults and the self-conditioning input, src/graph/blocks/self-condition.ts).
 *
 * The architecture, from modeling_diffusion_gemma.py:
 *  - one text transformer used twice with the same weights: as a causal *encoder* over the
 *    context (prompt, then each finished canvas), which writes a KV cache, and as a *denoiser*
 *    (HF: decoder) over a canvas of `canvas_length` tokens at the positions after the context,
 *    which reads that cache read-only and attends bidirectionally over [cache, canvas]. Its
 *    sliding layers see the cache rows the window of the canvas's first position holds (the last
 *    window − 1 encoded rows: the DynamicSlidingWindowLayer) and the whole canvas;
 *  - Gemma 4 layers: plain-weight RMSNorms (x·w, not Gemma 3's x·(1 + w)); q_norm and k_norm
 *    per head, and a weightless RMS v_norm on the values; attention scale 1; sliding layers have
 *    head_dim and num_key_value_heads, full layers their per_layer_config override (HF default
 *    global_head_dim 512) and no v_proj: the values are the raw k_proj output (k_eq_v), v-normed
 *    (strata's attention `value_from_key` and `value_norm`);
 *  - RoPE per layer type: sliding `default`; full `proportional` (rotate_half pairs (i, i + D/2)
 *    over the whole head, frequencies θ^(−2i/D) for the first ⌊f·D/2⌋ pairs, 0 for the rest:
 *    strata's RopeScaling kind 'proportional');
 *  - every layer runs a dense GeGLU MLP and a MoE side by side on the post-attention residual r:
 *    y = post_ff(post_ff_1(mlp(pre_ff(r))) + post_ff_2(experts(pre_ff_2(r)))), the router reading
 *    rms(r)·scale·dim^−½ (weightless norm), softmax over all experts, top-k renormalised, then
 *    multiplied by per_expert_scale[e]; then h = (r + y)·layer_scalar (strata's layer_scalars);
 *  - embeddings × sqrt(dim); the denoiser's input is v_rms(emb(canvas) + SC(soft)), where SC is
 *    a GeGLU MLP after a weighted RMSNorm of soft = softmax(previous logits) · E · sqrt(dim)
 *    (zero at a canvas's first step; v_rms weightless); final norm, tied lm_head, logit softcap.
 */
import { SpecError } from '../../grammar/diagnostics.ts';
import type { Activation, LayerSpec, MlpSpec, ModelIR, RopeSpec } from '../spec/model.ts';
import { ENTROPY_BOUND_DEFAULTS } from '../ops/diffusion-entropy.ts';
import type { StoredSlice } from './convert.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { EMBED, expectedTensors } from './names.ts';
import type { FamilyImport } from './registry.ts';
import {
  ConfigReader,
  isConfigObject,
  show,
  type ConfigObject,
  type ConfigOrigin,
} from './config-reader.ts';
import { readActivation } from './hf-decoder.ts';
import { attentionSpec } from './hf-attention.ts';
import { HARMLESS_CONFIG_KEYS } from './hf-keys.ts';
import { moeSpec, softmaxRouter } from './hf-moe.ts';

export const DIFFUSION_GEMMA_TYPES = ['diffusion_gemma', 'diffusion_gemma_text'] as const;

export interface DiffusionGemmaLayer {
  index: number;
  type: 'sliding_attention' | 'full_attention';
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Full layers have no v_proj: the values are the raw keys (before k_norm and RoPE). */
  valueFromKey: boolean;
  /** Sliding layers: the window (HF's sliding_window, keys within window − 1 back); else null. */
  window: number | null;
  /** Over the whole head; full layers' `proportional` scaling (strata's RopeScaling kind). */
  rope: RopeSpec;
}

/** The text model and its block size, as the config gives them. */
export interface DiffusionGemmaText {
  vocab: number;
  dim: number;
  /** Dense MLP width (and the self-conditioning MLP's). */
  hidden: number;
  act: Activation;
  eps: number;
  experts: number;
  topK: number;
  expertHidden: number;
  /** Final logit softcap c: c·tanh(logits / c). */
  logitSoftcap: number;
  /** Embedding multiplier: sqrt(dim) rounded to f32, as HF's buffer holds it. */
  embeddingScale: number;
  tie: boolean;
  maxContext: number;
  /** Tokens per canvas (the top-level config's canvas_length; 256 by default). */
  canvasLength: number;
  /** Generation's special ids (the sampler's eos / pad defaults). */
  eos: number[];
  pad: number | null;
  layers: DiffusionGemmaLayer[];
}

const LAYER_TYPES = ['sliding_attention', 'full_attention'] as const;
type LayerType = (typeof LAYER_TYPES)[number];

/** Reads diffusion_gemma (with text_config) or a bare diffusion_gemma_text config. */
export function readDiffusionGemmaConfig(
  config: object,
  source: string,
  origin?: ConfigOrigin,
): DiffusionGemmaText {
  const where = `${source} config`;
  if (!isConfigObject(config)) throw new SpecError('config.json is not a JSON object', where);
  const top: ConfigReader = new ConfigReader(config, where, origin ?? null);
  const type = top.str('model_type');
  if (!(DIFFUSION_GEMMA_TYPES as readonly string[]).includes(type))
    top.fail('model_type', `is ${show(type)}, not one of ${DIFFUSION_GEMMA_TYPES.join(', ')}`);
  if (type === 'diffusion_gemma_text') {
    const t = readText(top, 256);
    top.finish(HARMLESS_CONFIG_KEYS, type);
    return t;
  }
  const vision = top.raw('vision_config');
  if (vision !== undefined && vision !== null) {
    const vt = isConfigObject(vision) ? ` (${show(vision.model_type ?? 'gemma4_vision')})` : '';
    top.fail(
      'vision_config',
      `is set${vt}: strata imports DiffusionGemma's text model only; a checkpoint with a vision tower is refused (give vision_config null and drop the model.encoder.vision_tower.* and model.encoder.embed_vision.* tensors)`,
    );
  }
  // Image placeholders: the text model never sees them without a vision tower.
  top.ignore('boi_token_id', 'eoi_token_id', 'image_token_id');
  if (!top.bool('tie_word_embeddings', true))
    top.fail(
      'tie_word_embeddings',
      'is false: HF then unties the encoder from the denoiser (two sets of layer weights), which strata does not read',
    );
  const canvas = top.positiveInt('canvas_length', 256);
  const text = top.raw('text_config');
  if (!isConfigObject(text)) top.fail('text_config', `must be an object, got ${show(text)}`);
  const sub = top.derived(text, `${where} (text_config)`, (k) => `text_config.${k}`);
  const t = readText(sub, canvas);
  sub.finish(HARMLESS_CONFIG_KEYS, 'diffusion_gemma_text');
  top.finish(HARMLESS_CONFIG_KEYS, type);
  return t;
}

function positive(cfg: ConfigReader, key: string, v: number): number {
  if (!(v > 0)) cfg.fail(key, `must be positive, got ${v}`);
  return v;
}

function readText(cfg: ConfigReader, canvasLength: number): DiffusionGemmaText {
  const vocab = cfg.positiveInt('vocab_size', 262_144);
  const dim = cfg.positiveInt('hidden_size', 2304);
  const hidden = cfg.positiveInt('intermediate_size', 9216);
  const nLayers = cfg.positiveInt('num_hidden_layers', 30);
  const heads = cfg.positiveInt('num_attention_heads', 8);
  const kvHeads = cfg.positiveInt('num_key_value_heads', 4);
  const headDim = cfg.positiveInt('head_dim', 256);
  const act = readActivation(cfg, 'hidden_activation', 'gelu_pytorch_tanh');
  const maxContext = cfg.positiveInt('max_position_embeddings', 131_072);
  const eps = positive(cfg, 'rms_norm_eps', cfg.num('rms_norm_eps', 1e-6));
  if (cfg.bool('attention_bias', false))
    cfg.fail(
      'attention_bias',
      'is true; DiffusionGemma checkpoints have no attention biases and strata reads none',
    );
  const bidi = cfg.raw('use_bidirectional_attention');
  // 'vision' makes only image tokens bidirectional: a text-only encoder is causal, as with null.
  if (bidi !== undefined && bidi !== null && bidi !== 'vision') {
    cfg.fail(
      'use_bidirectional_attention',
      `is ${show(bidi)}: only null or 'vision' (a causal text encoder) are read; 'all' makes the encoder bidirectional and halves the window`,
    );
  }
  const window = cfg.positiveInt('sliding_window', 512);
  if (window < 2) cfg.fail('sliding_window', `must be at least 2, got ${window}`);
  const types = readLayerTypes(cfg, nLayers);
  const perLayer = readPerLayer(cfg, types, headDim, kvHeads);
  const ropes = readRopes(cfg);
  // A class attribute in DiffusionGemmaTextConfig, not a field: config.json omits it, and the
  // model always divides by it (30), so an explicit null is refused rather than read as "none".
  if (cfg.raw('final_logit_softcapping') === null)
    cfg.fail(
      'final_logit_softcapping',
      'is null; DiffusionGemma always softcaps its logits (30 by default)',
    );
  const softcap = positive(cfg, 'final_logit_softcapping', cfg.num('final_logit_softcapping', 30));
  const experts = cfg.positiveInt('num_experts');
  const topK = cfg.positiveInt('top_k_experts');
  if (topK > experts) cfg.fail('top_k_experts', `(${topK}) exceeds num_experts (${experts})`);
  const expertHidden = cfg.positiveInt('moe_intermediate_size');
  const tie = cfg.bool('tie_word_embeddings', true);
  const eosRaw = cfg.raw('eos_token_id');
  const eos =
    eosRaw === null || eosRaw === undefined ? [] : Array.isArray(eosRaw) ? eosRaw : [eosRaw];
  if (!eos.every((x) => Number.isInteger(x) && x >= 0 && x < vocab))
    cfg.fail('eos_token_id', `must be token ids below ${vocab}, got ${show(eosRaw)}`);
  const pad = cfg.optInt('pad_token_id');
  cfg.ignore('bos_token_id', 'global_head_dim', 'num_global_key_value_heads', 'attention_k_eq_v');

  const layers = types.map((type, index): DiffusionGemmaLayer => {
    const o = perLayer[index];
    if (heads % o.kvHeads !== 0)
      cfg.fail(
        'num_attention_heads',
        `(${heads}) is not a multiple of layer ${index}'s ${o.kvHeads} KV heads`,
      );
    const rope = ropes[type];
    if (o.headDim % 2 !== 0) cfg.fail('head_dim', `layer ${index}'s head_dim ${o.headDim} is odd`);
    return {
      index,
      type,
      heads,
      kvHeads: o.kvHeads,
      headDim: o.headDim,
      valueFromKey: type === 'full_attention',
      window: type === 'sliding_attention' ? window : null,
      rope: {
        theta: rope.theta,
        rotaryDim: o.headDim,
        scaling:
          rope.kind === 'default'
            ? { kind: 'none' }
            : {
                kind: 'proportional',
                // HF: int(partial_rotary_factor * head_dim // 2) rotated pairs.
                pairs: Math.floor((rope.partial * o.headDim) / 2),
                factor: rope.factor,
              },
      },
    };
  });
  return {
    vocab,
    dim,
    hidden,
    act,
    eps,
    experts,
    topK,
    expertHidden,
    logitSoftcap: softcap,
    embeddingScale: Math.fround(Math.sqrt(dim)),
    tie,
    maxContext,
    canvasLength,
    eos: eos as number[],
    pad,
    layers,
  };
}

/** layer_types, else HF's rule (every 6th layer full); the last layer is forced full, as HF. */
function readLayerTypes(cfg: ConfigReader, n: number): LayerType[] {
  const given = cfg.optStringList('layer_types');
  let types: LayerType[];
  if (given) {
    if (given.length !== n) cfg.fail('layer_types', `has ${given.length} entries for ${n} layers`);
    const bad = given.find((t) => !(LAYER_TYPES as readonly string[]).includes(t));
    if (bad !== undefined)
      cfg.fail('layer_types', `entry ${show(bad)} is not sliding_attention or full_attention`);
    types = given as LayerType[];
  } else {
    types = Array.from({ length: n }, (_, i) =>
      (i + 1) % 6 ? 'sliding_attention' : 'full_attention',
    );
  }
  if (types[n - 1] !== 'full_attention')
    cfg.fail(
      'layer_types',
      'must end with full_attention (HF forces the last layer full with a warning; give it explicitly)',
    );
  return types;
}

/** Each layer's head_dim and KV heads: per_layer_config overrides, else HF's full-layer defaults. */
function readPerLayer(
  cfg: ConfigReader,
  types: LayerType[],
  headDim: number,
  kvHeads: number,
): { headDim: number; kvHeads: number }[] {
  const base = types.map(() => ({ headDim, kvHeads }));
  const given = cfg.optObject('per_layer_config');
  if (given === null) {
    // HF's __post_init__: full layers get global_head_dim (512) and num_global_key_value_heads.
    const g = cfg.positiveInt('global_head_dim', 512);
    const gkv = cfg.optInt('num_global_key_value_heads');
    return types.map((t, i) =>
      t === 'full_attention' ? { headDim: g, kvHeads: gkv ?? kvHeads } : base[i],
    );
  }
  for (const [k, v] of Object.entries(given)) {
    const i = Number(k);
    const key = `per_layer_config.${k}`;
    if (!Number.isInteger(i) || i < 0 || i >= types.length)
      cfg.fail(key, `is not a layer index below ${types.length}`);
    if (!isConfigObject(v)) cfg.fail(key, `must be an object, got ${show(v)}`);
    for (const [field, x] of Object.entries(v)) {
      if (!Number.isInteger(x) || (x as number) < 1)
        cfg.fail(`${key}.${field}`, `must be a positive integer, got ${show(x)}`);
      if (field === 'head_dim') base[i].headDim = x as number;
      else if (field === 'num_key_value_heads') base[i].kvHeads = x as number;
      else
        cfg.fail(
          `${key}.${field}`,
          'is not a per-layer override strata reads (head_dim, num_key_value_heads)',
        );
    }
  }
  return base;
}

/** rope_parameters per layer type (HF's defaults when absent). */
function readRopes(
  cfg: ConfigReader,
): Record<
  LayerType,
  { kind: 'default' | 'proportional'; theta: number; factor: number; partial: number }
> {
  const defaults: Record<LayerType, ConfigObject> = {
    sliding_attention: { rope_type: 'default', rope_theta: 10_000 },
    full_attention: {
      rope_type: 'proportional',
      partial_rotary_factor: 0.25,
      rope_theta: 1_000_000,
    },
  };
  const params = cfg.optObject('rope_parameters');
  const read = (type: LayerType) => {
    const key = `rope_parameters.${type}`;
    const d = params === null ? defaults[type] : params[type];
    if (!isConfigObject(d)) cfg.fail(key, `must be an object, got ${show(d)}`);
    const kind = d.rope_type ?? 'default';
    if (kind !== 'default' && kind !== 'proportional')
      cfg.fail(`${key}.rope_type`, `is ${show(kind)}; strata reads default and proportional`);
    for (const k of Object.keys(d))
      if (!['rope_type', 'rope_theta', 'partial_rotary_factor', 'factor'].includes(k))
        cfg.fail(`${key}.${k}`, 'is not a RoPE key strata reads');
    const theta = d.rope_theta;
    if (typeof theta !== 'number' || !(theta > 0))
      cfg.fail(`${key}.rope_theta`, `must be positive, got ${show(theta)}`);
    const f = d.partial_rotary_factor ?? 1;
    if (typeof f !== 'number' || !(f > 0 && f <= 1))
      cfg.fail(`${key}.partial_rotary_factor`, `must lie in (0, 1], got ${show(f)}`);
    const factor = d.factor ?? 1;
    if (typeof factor !== 'number' || !(factor > 0))
      cfg.fail(`${key}.factor`, `must be positive, got ${show(factor)}`);
    if (kind === 'default' && factor !== 1)
      cfg.fail(`${key}.factor`, 'applies to proportional RoPE only');
    if (kind === 'default' && f !== 1)
      cfg.fail(
        `${key}.partial_rotary_factor`,
        'is set for rope_type default, which HF cannot run (its cos/sin are shorter than the head)',
      );
    return { kind: kind as 'default' | 'proportional', theta, factor, partial: f };
  };
  if (params !== null)
    for (const k of Object.keys(params))
      if (!(LAYER_TYPES as readonly string[]).includes(k))
        cfg.fail(`rope_parameters.${k}`, 'is not a layer type (sliding_attention, full_attention)');
  return { sliding_attention: read('sliding_attention'), full_attention: read('full_attention') };
}

/** A checkpoint tensor the text model reads: strata's name for it, where it is, its shape. */
export interface DiffusionGemmaTensor {
  /** Short name the CPU oracle reads it by (test/helpers/diffusion-gemma-ref.ts); strata's own names are importDiffusionGemma's. */
  name: string;
  /** Checkpoint names it may be stored under, in order (tied copies: denoiser, then encoder). */
  stored: string[];
  shape: number[];
}

/**
 * The text model's tensors. HF ties the encoder's layers to the denoiser's, and save_pretrained
 * keeps one copy of each tied pair (the denoiser's, model.decoder.*, in 5.18); a checkpoint may
 * hold the encoder's instead. layer_scalar is a buffer, stored for both (see checkLayerScalars).
 */
export function diffusionGemmaTensors(t: DiffusionGemmaText): DiffusionGemmaTensor[] {
  const out: DiffusionGemmaTensor[] = [];
  const both = (rest: string) => [`model.decoder.${rest}`, `model.encoder.language_model.${rest}`];
  const add = (name: string, stored: string[], shape: number[]) =>
    out.push({ name, stored, shape });
  const d = t.dim;
  add('embed.weight', both('embed_tokens.weight'), [t.vocab, d]);
  for (const l of t.layers) {
    const p = `layers.${l.index}`;
    const a = `${p}.self_attn`;
    add(`${a}.q.weight`, both(`${a}.q_proj.weight`), [l.heads * l.headDim, d]);
    add(`${a}.k.weight`, both(`${a}.k_proj.weight`), [l.kvHeads * l.headDim, d]);
    if (!l.valueFromKey)
      add(`${a}.v.weight`, both(`${a}.v_proj.weight`), [l.kvHeads * l.headDim, d]);
    add(`${a}.o.weight`, both(`${a}.o_proj.weight`), [d, l.heads * l.headDim]);
    add(`${a}.q_norm.weight`, both(`${a}.q_norm.weight`), [l.headDim]);
    add(`${a}.k_norm.weight`, both(`${a}.k_norm.weight`), [l.headDim]);
    for (const n of [
      'input_layernorm',
      'post_attention_layernorm',
      'pre_feedforward_layernorm',
      'post_feedforward_layernorm',
      'post_feedforward_layernorm_1',
      'pre_feedforward_layernorm_2',
      'post_feedforward_layernorm_2',
    ])
      add(`${p}.${n}.weight`, both(`${p}.${n}.weight`), [d]);
    for (const m of ['gate', 'up'])
      add(`${p}.mlp.${m}.weight`, both(`${p}.mlp.${m}_proj.weight`), [t.hidden, d]);
    add(`${p}.mlp.down.weight`, both(`${p}.mlp.down_proj.weight`), [d, t.hidden]);
    add(`${p}.router.weight`, both(`${p}.router.proj.weight`), [t.experts, d]);
    add(`${p}.router.scale`, both(`${p}.router.scale`), [d]);
    add(`${p}.router.expert_scale`, both(`${p}.router.per_expert_scale`), [t.experts]);
    add(`${p}.experts.gate_up`, both(`${p}.experts.gate_up_proj`), [
      t.experts,
      2 * t.expertHidden,
      d,
    ]);
    add(`${p}.experts.down`, both(`${p}.experts.down_proj`), [t.experts, d, t.expertHidden]);
    add(`${p}.layer_scalar`, [`model.decoder.${p}.layer_scalar`], [1]);
  }
  add('norm.weight', both('norm.weight'), [d]);
  const sc = 'self_conditioning';
  add(`${sc}.pre_norm.weight`, [`model.decoder.${sc}.pre_norm.weight`], [d]);
  for (const m of ['gate', 'up'])
    add(`${sc}.${m}.weight`, [`model.decoder.${sc}.${m}_proj.weight`], [t.hidden, d]);
  add(`${sc}.down.weight`, [`model.decoder.${sc}.down_proj.weight`], [d, t.hidden]);
  if (!t.tie) add('lm_head.weight', ['lm_head.weight'], [t.vocab, d]);
  return out;
}

/** Checkpoint tensors that are a vision tower's: named in the refusal. */
export function isVisionTensor(name: string): boolean {
  return /(^|\.)(vision_tower|embed_vision)\./.test(name);
}

/**
 * Canonical name → checkpoint name, checked against the checkpoint's tensors and shapes: every
 * tensor found with its shape, no vision tensor, nothing else left over (the encoder's copies of
 * tied weights and its layer_scalar buffers are expected extras).
 */
export function resolveDiffusionGemmaWeights(
  t: DiffusionGemmaText,
  shapes: ReadonlyMap<string, readonly number[]>,
): Record<string, string> {
  const vision = [...shapes.keys()].filter(isVisionTensor);
  if (vision.length)
    throw new Error(
      `the checkpoint holds ${vision.length} vision tensors (${vision.slice(0, 3).join(', ')}${vision.length > 3 ? ', …' : ''}): strata imports DiffusionGemma's text model only; drop them and set vision_config null`,
    );
  const map: Record<string, string> = {};
  const used = new Set<string>();
  for (const w of diffusionGemmaTensors(t)) {
    const name = w.stored.find((n) => shapes.has(n));
    if (name === undefined)
      throw new Error(`checkpoint tensor ${w.stored[0]} (strata ${w.name}) is missing`);
    const got = shapes.get(name)!;
    if (got.length !== w.shape.length || got.some((x, i) => x !== w.shape[i]))
      throw new Error(
        `checkpoint tensor ${name} has shape [${got.join(', ')}], expected [${w.shape.join(', ')}]`,
      );
    map[w.name] = name;
    for (const n of w.stored) used.add(n);
  }
  for (const l of t.layers) used.add(`model.encoder.language_model.layers.${l.index}.layer_scalar`);
  const extra = [...shapes.keys()].filter((n) => !used.has(n));
  if (extra.length)
    throw new Error(
      `checkpoint tensors strata does not read: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', …' : ''}`,
    );
  return map;
}

/**
 * The encoder's and the denoiser's layer_scalar buffers are not tied in HF; strata runs one set
 * of layers for both, so they must agree. `value(name)` reads a stored [1] tensor.
 */
export async function checkLayerScalars(
  t: DiffusionGemmaText,
  value: (name: string) => Promise<number | null>,
): Promise<void> {
  for (const l of t.layers) {
    const dec = `model.decoder.layers.${l.index}.layer_scalar`;
    const enc = `model.encoder.language_model.layers.${l.index}.layer_scalar`;
    const [a, b] = [await value(dec), await value(enc)];
    if (a !== null && b !== null && a !== b)
      throw new Error(
        `${enc} (${b}) differs from ${dec} (${a}): strata runs the encoder and the denoiser with one set of layers`,
      );
  }
}

/**
 * The text model as a ModelIR: Gemma 4 layers whose attention is `phased` (the causal encoder and
 * the bidirectional denoiser in one), the MoE with branch norms and Gemma 4's router (the dense
 * MLP as its shared experts), layer scalars, and the entropy_bound diffusion setting with the
 * self-conditioning MLP and HF's sampler defaults (gen length one canvas).
 */
export function diffusionGemmaModel(t: DiffusionGemmaText, name: string): ModelIR {
  const gated = (hidden: number): MlpSpec => ({
    kind: 'mlp',
    hidden,
    act: t.act,
    gated: true,
    bias: false,
  });
  const layers = t.layers.map((l): LayerSpec => ({
    index: l.index,
    mixerName: l.type === 'full_attention' ? 'full' : 'sliding',
    mixer: {
      ...attentionSpec(l.heads, l.kvHeads, l.headDim, l.rope, {
        qkNorm: true,
        window: l.window,
        // HF scales attention by 1: q_norm and k_norm carry the scale.
        scale: 1,
      }),
      phased: true,
      ...(l.valueFromKey ? { valueFromKey: true } : {}),
      valueNorm: true,
    },
    ffnName: 'moe',
    // Gemma 4's router: softmax, renormalised, with the input and per-expert scales.
    ffn: moeSpec(
      t.experts,
      t.topK,
      gated(t.expertHidden),
      { ...softmaxRouter(true), inputScale: true, expertScale: true },
      { shared: gated(t.hidden), branchNorms: true },
    ),
  }));
  return {
    ...modelIR(
      name,
      layers,
      rmsNorm(t.eps),
      { vocab: t.vocab, dim: t.dim, tie: t.tie, maxContext: t.maxContext },
      { postNorms: true, embeddingScale: t.embeddingScale, logitSoftcap: t.logitSoftcap },
    ),
    layerScalars: true,
    diffusion: {
      kind: 'entropy_bound',
      canvasLength: t.canvasLength,
      genLength: t.canvasLength,
      ...ENTROPY_BOUND_DEFAULTS,
      selfCondition: gated(t.hidden),
    },
  };
}

/** Canonical (Llama-layout) layer tensor suffixes whose DiffusionGemma names differ. */
const LAYER_RENAMES: [RegExp, string][] = [
  [/^post_mixer_layernorm\./, 'post_attention_layernorm.'],
  [/^post_attention_layernorm\./, 'pre_feedforward_layernorm.'],
  [/^mlp\.gate\.weight$/, 'router.proj.weight'],
  [/^mlp\.gate\.scale$/, 'router.scale'],
  [/^mlp\.gate\.per_expert_scale$/, 'router.per_expert_scale'],
  [/^mlp\.shared_expert\./, 'mlp.'],
];

/**
 * The whole import: the model, and each canonical tensor's checkpoint name (the denoiser's copy,
 * model.decoder.*, which save_pretrained keeps of each tied pair in 5.18), with expert e's
 * projections as slices of the fused experts.gate_up_proj [E, 2H, dim] (gate rows first) and
 * experts.down_proj [E, dim, H]. The encoder's layer_scalar buffers are not tied to the
 * denoiser's: they are `duplicates`, checked equal to them when the folder is read.
 */
export function importDiffusionGemma(t: DiffusionGemmaText, name: string): FamilyImport {
  const model = diffusionGemmaModel(t, name);
  const weightMap: Record<string, string> = {};
  const storedShapes: Record<string, number[]> = {};
  const storedSlices: Record<string, StoredSlice> = {};
  const H = t.expertHidden;
  const D = t.dim;
  for (const { name: c } of expectedTensors(model)) {
    const ex = /^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight$/.exec(c);
    if (ex) {
      const [i, e, proj] = [Number(ex[1]), Number(ex[2]), ex[3]];
      const p = `model.decoder.layers.${i}.experts`;
      if (proj === 'down') {
        weightMap[c] = `${p}.down_proj`;
        storedShapes[c] = [t.experts, D, H];
        storedSlices[c] = { start: [e, 0, 0], size: [1, D, H] };
      } else {
        weightMap[c] = `${p}.gate_up_proj`;
        storedShapes[c] = [t.experts, 2 * H, D];
        storedSlices[c] = { start: [e, proj === 'gate' ? 0 : H, 0], size: [1, H, D] };
      }
      continue;
    }
    const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(c);
    if (layer) {
      // The first rule that matches (post_mixer → post_attention must not then become pre_ff).
      const rule = LAYER_RENAMES.find(([from]) => from.test(layer[2]));
      const rest = rule ? layer[2].replace(rule[0], rule[1]) : layer[2];
      weightMap[c] = `model.decoder.layers.${layer[1]}.${rest}`;
    } else if (c === EMBED) weightMap[c] = 'model.decoder.embed_tokens.weight';
    else if (c.startsWith('model.self_condition.'))
      weightMap[c] = c.replace('model.self_condition.', 'model.decoder.self_conditioning.');
    else if (c === 'lm_head.weight') weightMap[c] = c;
    else weightMap[c] = c.replace(/^model\./, 'model.decoder.');
  }
  const duplicates: Record<string, string> = {};
  for (const l of t.layers)
    duplicates[`model.encoder.language_model.layers.${l.index}.layer_scalar`] =
      `model.decoder.layers.${l.index}.layer_scalar`;
  return { model, weightMap, storedShapes, storedSlices, duplicates };
}
