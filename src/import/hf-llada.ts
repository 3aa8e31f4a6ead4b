/**
 * LLaDA (`llada`, remote code: GSAI-ML/LLaDA-8B-*, modeling_llada.py as NVlabs/Fast-dLLM carries
 * it): an OLMo-style config (d_model, n_heads, mlp_hidden_size, ...) for a Llama-shaped
 * bidirectional transformer, imported as a masked-diffusion model with LLaDA's sampler.
 *
 * What the reference computes, for the settings it supports (LLaDAModel asserts rope and no
 * alibi; the llama block is the one its checkpoints use):
 *  - x = wte(ids) (· √d_model with input_emb_norm); per block x += attn_out(attn(q, k, v)) with
 *    q/k/v = {q,k,v}_proj(attn_norm(x)), RoPE on q and k (rotate-half, rope_theta, head size
 *    d_model / n_heads), no mask at all (is_causal False);
 *  - then x += ff_out(act(ff_proj(h)) · up_proj(h)), h = ff_norm(x): a gated MLP whose gate is
 *    ff_proj;
 *  - logits = ff_out(ln_f(x)) (wte with weight_tying), over embedding_size rows (· 1/√d_model
 *    with scale_logits).
 * Everything the reference would compute differently (sequential block's fused att_proj, q/k
 * layer norms, ALiBi, block groups, biases outside q/k/v) is refused by key and value.
 */
import type { Activation, NormSpec } from '../spec/model.ts';
import { LLADA_DEFAULTS } from '../spec/kinds/diffusion.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { bidirectionalLayers } from './hf-attention.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { readRope } from './hf-rope.ts';
import { expectedTensors } from './names.ts';
import type { FamilyImport } from './registry.ts';

/** The mask id generate() uses when the config names none (ML-GSAI/LLaDA generate.py). */
export const LLADA_MASK_ID = 126336;

/** activation_type → strata, for the llama block's act(ff_proj(x)) · up_proj(x). */
const LLADA_ACTIVATIONS: Readonly<Record<string, Activation>> = {
  silu: 'silu',
  gelu: 'gelu', // torch.nn.GELU(): the erf form
  relu: 'relu',
};

/** Keys of training, initialisation and kernel choice: the same function at inference. */
const INERT_KEYS = [
  'attention_dropout',
  'residual_dropout',
  'embedding_dropout',
  'init_device',
  'init_fn',
  'init_std',
  'init_cutoff_factor',
  'precision',
  'train_max_sequence_length',
  // flash-attn vs torch SDPA, both unmasked softmax attention.
  'flash_attention',
  // RoPE in f32 regardless of the input type: strata computes it in f32 anyway.
  'rope_full_precision',
];

function requireValue(
  cfg: ConfigReader,
  key: string,
  want: unknown,
  fallback: unknown,
  why: string,
) {
  const raw = cfg.raw(key);
  const v = raw === undefined ? fallback : raw;
  if (v !== want)
    cfg.fail(key, `is ${show(v)}; strata's llada importer supports only ${show(want)} (${why})`);
}

/** effective_n_kv_heads of the reference's ModelConfig. */
function kvHeads(cfg: ConfigReader, heads: number): number {
  const mqaRaw = cfg.raw('multi_query_attention');
  if (mqaRaw !== undefined && mqaRaw !== null && typeof mqaRaw !== 'boolean')
    cfg.fail('multi_query_attention', `must be true, false or null, got ${show(mqaRaw)}`);
  const mqa = (mqaRaw ?? null) as boolean | null;
  const n = cfg.optInt('n_kv_heads');
  let kv: number;
  if (n === null) kv = mqa === true ? 1 : heads;
  else if (mqa === null) kv = n;
  else {
    kv = mqa ? 1 : heads;
    if (n !== kv)
      cfg.fail(
        'n_kv_heads',
        `is ${n} but multi_query_attention ${mqa} says ${kv} (the reference refuses both)`,
      );
  }
  if (kv < 1 || heads % kv !== 0) cfg.fail('n_kv_heads', `${kv} does not divide n_heads ${heads}`);
  return kv;
}

function readNorm(cfg: ConfigReader): NormSpec {
  const type = cfg.str('layer_norm_type', 'default');
  if (type !== 'rms' && type !== 'gemma_rms')
    cfg.fail(
      'layer_norm_type',
      `is ${show(type)}; strata's llada importer supports rms and gemma_rms (LLaDA's checkpoints use rms)`,
    );
  requireValue(cfg, 'layer_norm_with_affine', true, true, 'norms with a weight');
  // RMSLayerNorm adds a bias when bias_for_layer_norm (null: include_bias) is set.
  const includeBias = cfg.bool('include_bias', false);
  const rawNormBias = cfg.raw('bias_for_layer_norm');
  const normBias = rawNormBias === undefined || rawNormBias === null ? includeBias : rawNormBias;
  if (normBias !== false)
    cfg.fail(
      rawNormBias === undefined || rawNormBias === null ? 'include_bias' : 'bias_for_layer_norm',
      `gives the RMS norms a bias (${show(normBias)}), which strata's RMSNorm does not have`,
    );
  if (includeBias)
    cfg.fail(
      'include_bias',
      'is true (biases on every linear and the output head); strata supports include_qkv_bias only',
    );
  const eps = cfg.num('rms_norm_eps', 1e-5);
  if (!(eps > 0)) cfg.fail('rms_norm_eps', `must be positive, got ${eps}`);
  return rmsNorm(eps, type === 'gemma_rms');
}

/** The checkpoint's name of each canonical (HF Llama) tensor name. */
export function lladaWeightName(canonical: string): string {
  const T = 'model.transformer';
  if (canonical === 'model.embed_tokens.weight') return `${T}.wte.weight`;
  if (canonical === 'lm_head.weight') return `${T}.ff_out.weight`;
  if (canonical.startsWith('model.norm.')) return canonical.replace('model.norm.', `${T}.ln_f.`);
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(canonical);
  if (!m) return canonical;
  const renames: Record<string, string> = {
    'self_attn.q_proj': 'q_proj',
    'self_attn.k_proj': 'k_proj',
    'self_attn.v_proj': 'v_proj',
    'self_attn.o_proj': 'attn_out',
    'mlp.gate_proj': 'ff_proj',
    'mlp.up_proj': 'up_proj',
    'mlp.down_proj': 'ff_out',
    input_layernorm: 'attn_norm',
    post_attention_layernorm: 'ff_norm',
  };
  const rest = m[2];
  for (const [from, to] of Object.entries(renames)) {
    if (rest.startsWith(`${from}.`)) return `${T}.blocks.${m[1]}.${to}${rest.slice(from.length)}`;
  }
  return `${T}.blocks.${m[1]}.${rest}`;
}

export function importLlada(cfg: ConfigReader, name: string): FamilyImport {
  requireValue(
    cfg,
    'block_type',
    'llama',
    'sequential',
    'the block with separate q/k/v_proj and up_proj that LLaDA checkpoints use',
  );
  requireValue(cfg, 'rope', true, false, 'LLaDAModel asserts rope');
  requireValue(cfg, 'alibi', false, false, 'LLaDAModel asserts no ALiBi');
  cfg.ignore('alibi_bias_max');
  requireValue(cfg, 'attention_layer_norm', false, false, 'q/k layer norms over all heads');
  cfg.ignore('attention_layer_norm_with_affine');
  requireValue(cfg, 'block_group_size', 1, 1, 'grouped blocks are stored under other names');
  cfg.ignore(...INERT_KEYS);

  const dim = cfg.positiveInt('d_model', 768);
  const heads = cfg.positiveInt('n_heads', 12);
  const nLayers = cfg.positiveInt('n_layers', 12);
  if (dim % heads !== 0) cfg.fail('d_model', `${dim} is not a multiple of n_heads ${heads}`);
  const headDim = dim / heads;
  const kv = kvHeads(cfg, heads);
  const hidden = cfg.has('mlp_hidden_size')
    ? cfg.positiveInt('mlp_hidden_size')
    : cfg.positiveInt('mlp_ratio', 4) * dim;
  cfg.ignore('mlp_ratio', 'mlp_hidden_size');
  const actName = cfg.str('activation_type', 'swiglu');
  if (!Object.hasOwn(LLADA_ACTIVATIONS, actName))
    cfg.fail(
      'activation_type',
      `is ${show(actName)}; the llama block computes act(ff_proj(x)) · up_proj(x), which strata supports for ${Object.keys(LLADA_ACTIVATIONS).join(', ')}`,
    );
  const norm = readNorm(cfg);
  const qkvBias = cfg.bool('include_qkv_bias', false);
  const vocabSize = cfg.positiveInt('vocab_size', 50257);
  // The embedding and the logits have embedding_size rows (padded past vocab_size).
  const rows = cfg.has('embedding_size') ? cfg.positiveInt('embedding_size') : vocabSize;
  cfg.ignore('embedding_size');
  if (rows < vocabSize)
    cfg.fail(
      'embedding_size',
      `${rows} is below vocab_size ${vocabSize} (the reference refuses it)`,
    );
  const maxContext = cfg.positiveInt('max_sequence_length', 1024);
  const rope = readRope(cfg, {
    headDim,
    maxPositions: maxContext,
    defaultTheta: 10000,
    family: 'llada',
  });
  if (rope.scaling.kind !== 'none')
    cfg.fail('rope_scaling', `LLaDA's RoPE has no scaling, got ${show(rope.scaling.kind)}`);
  const mask = cfg.has('mask_token_id') ? cfg.int('mask_token_id') : LLADA_MASK_ID;
  cfg.ignore('mask_token_id');
  if (mask < 0 || mask >= rows)
    cfg.fail('mask_token_id', `${mask} is not a token id below embedding_size ${rows}`);

  const layers = bidirectionalLayers(
    nLayers,
    { heads, kvHeads: kv, headDim, rope, qkvBias },
    { hidden, act: LLADA_ACTIVATIONS[actName] },
  );
  const model = modelIR(
    name,
    layers,
    norm,
    { vocab: rows, dim, tie: cfg.bool('weight_tying', true), maxContext },
    {
      ...(cfg.bool('input_emb_norm', false) ? { embeddingScale: Math.fround(Math.sqrt(dim)) } : {}),
      ...(cfg.bool('scale_logits', false) ? { logitScale: 1 / Math.sqrt(dim) } : {}),
    },
  );
  model.diffusion = { kind: 'llada', maskId: mask, ...LLADA_DEFAULTS };
  const weightMap = Object.fromEntries(
    expectedTensors(model).map((t) => [t.name, lladaWeightName(t.name)]),
  );
  return { model, weightMap, storedShapes: {} };
}
