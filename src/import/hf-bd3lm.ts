/**
 * BD3-LM (`bd3lm`, remote code: kuleshov-group/bd3lm-owt-block_size{4,8,16}, whose
 * modeling_bd3lm.py is kuleshov-group/bd3lms models/hf/): a DiT-style block-diffusion LM,
 * imported as strata's block-causal transformer with the `diffusion bd3lm` sampler.
 *
 * What the reference computes when sampling (BD3LM.forward with sample_mode, no KV cache: the
 * x0 × x0 quarter of block_diff_mask, so key k is visible from query q iff ⌊k/B⌋ ≤ ⌊q/B⌋, B =
 * block_size, blocks aligned at position 0 — strata's `attention(block_causal: B)`):
 *  - x = vocab_embed.embedding[ids];
 *  - per block: x += gate_msa ⊙ attn_out(attn(modulate(norm1(x), shift_msa, scale_msa))), with
 *    q, k, v the rows [0, D), [D, 2D), [2D, 3D) of attn_qkv (no bias), heads head-major, rotary
 *    (rotate-half, base 10000, the whole head) on q and k, SDPA at 1/√head_dim; then
 *    x += gate_mlp ⊙ mlp(modulate(norm2(x), shift_mlp, scale_mlp)), mlp = Linear(D, 4D) with
 *    bias, GELU (tanh), Linear(4D, D) with bias;
 *  - logits = output_layer.linear(modulate(norm_final(x), shift, scale)), a linear with bias.
 * norm1/norm2/norm_final are F.layer_norm (eps 1e-5, no bias) times a weight. With adaln the
 * six (final: two) chunks come from adaLN_modulation(c), c = silu(sigma_map(σ)); without
 * time_conditioning σ is 0, so c is constant and every chunk folds into a norm's weight and
 * bias or a linear's rows (src/import/adaln-fold.ts). Without adaln the norms have no bias and
 * the gates are 1.
 *
 * Refused by key: time_conditioning (σ, hence the modulation, changes every step; strata's
 * forward has no time input), cross_attn false (no block mask at all: the MDLM form attends
 * bidirectionally over the whole sequence), causal (the reference passes is_causal together with
 * the block mask, which SDPA refuses). The mask token is the last id (bd3lms appends it to a
 * tokenizer without one: mask_index = vocab_size − 1 of the saved config).
 */
import type { AttentionSpec, LayerSpec } from '../spec/model.ts';
import { BD3LM_DEFAULTS } from '../spec/kinds/diffusion.ts';
import type { AdaLnFold } from './adaln-fold.ts';
import type { ConfigReader } from './config-reader.ts';
import { attentionSpec } from './hf-attention.ts';
import { modelIR } from './hf-model.ts';
import { expectedTensors, LM_HEAD, LM_HEAD_BIAS } from './names.ts';
import type { FamilyImport } from './registry.ts';
import type { StoredSlice } from './convert.ts';

/** The reference's TimestepEmbedder(cond_dim) default frequency_embedding_size. */
const FREQUENCIES = 256;
/** F.layer_norm's default eps, which the reference's LayerNorm uses. */
const LN_EPS = 1e-5;
/** Rotary's base (fixed in the reference; no config key). */
const ROPE_BASE = 10000;

/** Keys of training and kernel choice: the same function when sampling. */
const INERT_KEYS = [
  'dropout',
  // flex_attention and SDPA compute the same masked softmax (sampling asserts sdpa anyway).
  'attn_backend',
  // The training noise interval (the buffers sampling_eps_min/max, check.ts skips them).
  'var_min',
  'sampling_eps_min',
  'sampling_eps_max',
];

const B = 'backbone';
/** attn_qkv's row blocks, in order ('b s (three h d)'). */
const QKV = ['q', 'k', 'v'];

/** The checkpoint name of a canonical tensor, and how to read it (slice of attn_qkv / adaLN fold). */
interface Source {
  tensor: string;
  slice?: StoredSlice;
  storedShape?: number[];
  fold?: AdaLnFold;
}

export function importBd3lm(cfg: ConfigReader, name: string): FamilyImport {
  if (cfg.bool('time_conditioning', false))
    cfg.fail(
      'time_conditioning',
      "is true: the adaLN modulation then depends on the noise level σ of each step, and strata's forward has no time input (the released BD3-LM checkpoints set it false, which makes the modulation a constant strata folds into the weights)",
    );
  if (!cfg.bool('cross_attn', true))
    cfg.fail(
      'cross_attn',
      'is false: the reference then attends with no mask at all (MDLM-style bidirectional attention over the whole sequence, no blocks); strata imports BD3-LM as block diffusion only',
    );
  if (cfg.bool('causal', false))
    cfg.fail(
      'causal',
      'is true: the reference passes is_causal together with the block-diffusion mask, which SDPA refuses; a causal BD3-LM is not a model the reference can sample',
    );
  cfg.ignore(...INERT_KEYS);
  const adaln = cfg.bool('adaln', true);
  // The condition's width; the checkpoint check holds sigma_map and adaLN_modulation to it.
  const cond = adaln ? cfg.positiveInt('cond_dim', 129) : 0;
  if (!adaln) cfg.ignore('cond_dim');

  const dim = cfg.positiveInt('hidden_dim', 768);
  const heads = cfg.positiveInt('n_heads', 12);
  const nLayers = cfg.positiveInt('n_blocks', 12);
  if (dim % heads !== 0) cfg.fail('hidden_dim', `${dim} is not a multiple of n_heads ${heads}`);
  const headDim = dim / heads;
  if (headDim % 2 !== 0)
    cfg.fail('hidden_dim', `gives an odd head size ${headDim}, which rotary cannot pair`);
  const block = cfg.positiveInt('block_size', 1);
  const vocab = cfg.positiveInt('vocab_size', 50258);
  if (vocab < 2) cfg.fail('vocab_size', `${vocab} leaves no token besides the mask`);
  const maxContext = cfg.positiveInt('model_length', 1024);

  const mixer: AttentionSpec = {
    ...attentionSpec(heads, heads, headDim, {
      theta: ROPE_BASE,
      rotaryDim: headDim,
      scaling: { kind: 'none' },
    }),
    causal: false,
    blockCausal: block,
  };
  const layers: LayerSpec[] = Array.from({ length: nLayers }, (_, index) => ({
    index,
    mixerName: 'attention',
    mixer: { ...mixer },
    ffnName: 'mlp',
    ffn: { kind: 'mlp', hidden: 4 * dim, act: 'gelu_tanh', gated: false, bias: true },
  }));
  const model = modelIR(
    name,
    layers,
    { kind: 'layer', eps: LN_EPS, unitOffset: false, bias: adaln },
    { vocab, dim, tie: false, maxContext },
  );
  model.headBias = true;
  model.diffusion = {
    kind: 'bd3lm',
    maskId: vocab - 1,
    genLength: BD3LM_DEFAULTS.genLength,
    blockLength: block,
    steps: block,
    sampler: BD3LM_DEFAULTS.sampler,
    temperature: BD3LM_DEFAULTS.temperature,
    nucleusP: BD3LM_DEFAULTS.nucleusP,
  };

  const fold = (modulation: string, chunks: number, chunk: number, form: AdaLnFold['form']) =>
    adaln
      ? {
          fold: {
            form,
            modulation,
            chunks,
            chunk,
            condition: `${B}.sigma_map.mlp`,
            frequencies: FREQUENCIES,
            cond,
          },
        }
      : {};
  // A norm: weight ⊙ (1 + scale) and bias = shift under adaln; the weight alone without.
  const norm = (
    prefix: string,
    mod: string,
    chunks: number,
    shift: number,
    part: string,
  ): Source =>
    part === 'weight'
      ? { tensor: `${prefix}.weight`, ...fold(mod, chunks, shift + 1, 'scale') }
      : {
          tensor: `${mod}.bias`,
          storedShape: [chunks * dim],
          ...fold(mod, chunks, shift, 'shift'),
        };
  const sourceOf = (canonical: string): Source => {
    if (canonical === 'model.embed_tokens.weight') return { tensor: `${B}.vocab_embed.embedding` };
    if (canonical === LM_HEAD) return { tensor: `${B}.output_layer.linear.weight` };
    if (canonical === LM_HEAD_BIAS) return { tensor: `${B}.output_layer.linear.bias` };
    const fin = /^model\.norm\.(weight|bias)$/.exec(canonical);
    if (fin)
      return norm(
        `${B}.output_layer.norm_final`,
        `${B}.output_layer.adaLN_modulation`,
        2,
        0,
        fin[1],
      );
    const m = /^model\.layers\.(\d+)\.(.+)$/.exec(canonical);
    if (!m) throw new Error(`bd3lm import: no checkpoint name for '${canonical}'`);
    const p = `${B}.blocks.${m[1]}`;
    const mod = `${p}.adaLN_modulation`;
    const rest = m[2];
    const qkv = /^self_attn\.([qkv])_proj\.weight$/.exec(rest);
    if (qkv)
      return {
        tensor: `${p}.attn_qkv.weight`,
        storedShape: [3 * dim, dim],
        slice: { start: [QKV.indexOf(qkv[1]) * dim, 0], size: [dim, dim] },
      };
    const ln = /^(input_layernorm|post_attention_layernorm)\.(weight|bias)$/.exec(rest);
    if (ln)
      return norm(
        ln[1] === 'input_layernorm' ? `${p}.norm1` : `${p}.norm2`,
        mod,
        6,
        ln[1] === 'input_layernorm' ? 0 : 3,
        ln[2],
      );
    if (rest === 'self_attn.o_proj.weight')
      return { tensor: `${p}.attn_out.weight`, ...fold(mod, 6, 2, 'rows') };
    const up = /^mlp\.up_proj\.(weight|bias)$/.exec(rest);
    if (up) return { tensor: `${p}.mlp.0.${up[1]}` };
    const down = /^mlp\.down_proj\.(weight|bias)$/.exec(rest);
    if (down) return { tensor: `${p}.mlp.2.${down[1]}`, ...fold(mod, 6, 5, 'rows') };
    throw new Error(`bd3lm import: no checkpoint name for '${canonical}'`);
  };

  const weightMap: Record<string, string> = {};
  const storedShapes: Record<string, number[]> = {};
  const storedSlices: Record<string, StoredSlice> = {};
  const folds: Record<string, AdaLnFold> = {};
  for (const t of expectedTensors(model)) {
    const s = sourceOf(t.name);
    weightMap[t.name] = s.tensor;
    if (s.storedShape) storedShapes[t.name] = s.storedShape;
    if (s.slice) storedSlices[t.name] = s.slice;
    if (s.fold) folds[t.name] = s.fold;
  }
  return { model, weightMap, storedShapes, storedSlices, ...(adaln ? { folds } : {}) };
}
