/**
 * The one place importers build an AttentionSpec: the shape (heads, kv heads, head size, RoPE)
 * plus only what a family changes; everything else is plain causal softmax attention at
 * head_dim^-0.5 without bias, window, softcap, sinks or output gate. Also the readers of the
 * attention shape's config keys that every family shares.
 */
import type { Activation, AttentionSpec, LayerSpec, RopeSpec } from '../spec/model.ts';
import type { ConfigReader } from './config-reader.ts';

/** What a family may change from plain attention; `bias` sets the q/k/v and output biases. */
export type AttentionOptions = Partial<
  Pick<AttentionSpec, 'qkNorm' | 'window' | 'scale' | 'softcap' | 'sinks' | 'outputGate'>
> & { bias?: boolean };

export function attentionSpec(
  heads: number,
  kvHeads: number,
  headDim: number,
  rope: RopeSpec | null,
  options: AttentionOptions = {},
): AttentionSpec {
  const { bias = false, ...rest } = options;
  return {
    kind: 'attention',
    heads,
    kvHeads,
    headDim,
    rope,
    qkNorm: false,
    qkvBias: bias,
    outBias: bias,
    causal: true,
    window: null,
    sinkTokens: null,
    evict: null,
    scale: headDim ** -0.5,
    softcap: null,
    sinks: false,
    outputGate: false,
    ...rest,
  };
}

/**
 * The layers of the masked-diffusion LMs (LLaDA, Dream): `n` alike layers of bidirectional
 * attention (the references never mask) at SDPA's default scale 1 / sqrt(head_dim), each with a
 * gated MLP without bias, named 'attention' and 'mlp'.
 */
export function bidirectionalLayers(
  n: number,
  attn: { heads: number; kvHeads: number; headDim: number; rope: RopeSpec; qkvBias: boolean },
  ffn: { hidden: number; act: Activation },
): LayerSpec[] {
  const { heads, kvHeads, headDim, rope, qkvBias } = attn;
  const mixer: AttentionSpec = {
    ...attentionSpec(heads, kvHeads, headDim, rope, { scale: 1 / Math.sqrt(headDim) }),
    causal: false,
    qkvBias,
  };
  return Array.from({ length: n }, (_, index) => ({
    index,
    mixerName: 'attention',
    mixer: { ...mixer },
    ffnName: 'mlp',
    ffn: { kind: 'mlp', hidden: ffn.hidden, act: ffn.act, gated: true, bias: false },
  }));
}

/**
 * num_key_value_heads, which must divide the query heads. `whenAbsent` is the config class's
 * default: a number, null for "as many as the query heads", or 'required' where the class's
 * default is not one to assume.
 */
export function readKvHeads(
  cfg: ConfigReader,
  heads: number,
  whenAbsent: number | null | 'required',
): number {
  // HF: an explicit null always means "same as num_attention_heads".
  const raw = cfg.raw('num_key_value_heads');
  const fallback = whenAbsent === 'required' ? undefined : (whenAbsent ?? heads);
  const kv = raw === null ? heads : cfg.positiveInt('num_key_value_heads', fallback);
  if (heads % kv !== 0)
    cfg.fail('num_key_value_heads', `${kv} does not divide num_attention_heads ${heads}`);
  return kv;
}

/**
 * head_dim, or the config class's default `whenAbsent`; null derives it as
 * hidden_size / num_attention_heads, which must then divide.
 */
export function readHeadDim(
  cfg: ConfigReader,
  dim: number,
  heads: number,
  whenAbsent: number | null,
): number {
  if (cfg.has('head_dim') || whenAbsent !== null)
    return cfg.positiveInt('head_dim', whenAbsent ?? undefined);
  cfg.ignore('head_dim');
  if (dim % heads !== 0) {
    cfg.fail(
      'hidden_size',
      `${dim} is not a multiple of num_attention_heads ${heads} and head_dim is not given`,
    );
  }
  return dim / heads;
}
