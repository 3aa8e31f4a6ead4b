/** Small ModelIR models built directly (independent of the DSL) for end-to-end tests. */
import { DEFAULT_ROUTER } from '../../src/spec/kinds/moe.ts';
import type { Mamba2Spec } from '../../src/mixers/mamba2.ts';
import type { Rwkv7Spec } from '../../src/mixers/rwkv7.ts';
import type {
  AttentionSpec,
  GatedDeltaNetSpec,
  MlpSpec,
  ModelIR,
  MoeSpec,
} from '../../src/spec/model.ts';

export function attention(over: Partial<AttentionSpec> = {}): AttentionSpec {
  const headDim = over.headDim ?? 16;
  return {
    kind: 'attention',
    heads: 4,
    kvHeads: 2,
    headDim,
    rope: { theta: 10000, rotaryDim: headDim, scaling: { kind: 'none' } },
    qkNorm: false,
    qkvBias: false,
    outBias: false,
    causal: true,
    window: null,
    sinkTokens: null,
    evict: null,
    scale: 1 / Math.sqrt(headDim),
    softcap: null,
    sinks: false,
    outputGate: false,
    ...over,
  };
}

export function mlp(over: Partial<MlpSpec> = {}): MlpSpec {
  return { kind: 'mlp', hidden: 72, act: 'silu', gated: true, bias: false, ...over };
}

/** A small Mamba-2 mixer over dim 48 (6 heads of 12), odd sizes on purpose: no width is a tile's multiple. */
export function mamba2(over: Partial<Mamba2Spec> = {}): Mamba2Spec {
  return {
    kind: 'mamba2',
    heads: 6,
    headDim: 12,
    dState: 10,
    groups: 2,
    dConv: 4,
    chunk: 8,
    convBias: true,
    projBias: true,
    normGroup: 36,
    normEps: 1e-5,
    dtMin: 0,
    dtMax: null,
    ...over,
  };
}

/** A small gated DeltaNet (Qwen3-Next's linear layer): 2 key heads of 12 shared by 6 value heads of 10. */
export const GATED_DELTANET: GatedDeltaNetSpec = {
  kind: 'gated_deltanet',
  keyHeads: 2,
  valueHeads: 6,
  keyHeadDim: 12,
  valueHeadDim: 10,
  dConv: 4,
  normEps: 1e-6,
};

/** A Mixtral-style MoE: its default router, no clamp, no shared experts. */
export function moe(over: Pick<MoeSpec, 'experts' | 'topK' | 'expert'>): MoeSpec {
  return {
    kind: 'moe',
    clamp: null,
    router: { ...DEFAULT_ROUTER },
    shared: null,
    sharedGate: false,
    ...over,
  };
}

/**
 * tinyLlama with every layer's attention bidirectional (causal: false), plus `attn` (e.g.
 * blockCausal): the masked-diffusion tests' model.
 */
export function tinyBidirectional(
  layers: number,
  attn: Partial<AttentionSpec> = {},
  over: Partial<ModelIR> = {},
): ModelIR {
  const model = tinyLlama(over, layers);
  model.layers = model.layers.map((l) => ({ ...l, mixer: attention({ causal: false, ...attn }) }));
  return model;
}

/** A tiny GQA llama: vocab 260 (byte tokenizer + a few), dim 48, odd sizes on purpose. */
export function tinyLlama(over: Partial<ModelIR> = {}, layers = 3): ModelIR {
  return {
    version: 1,
    name: 'tiny-test',
    vocab: 260,
    dim: 48,
    norm: { kind: 'rms', eps: 1e-5, unitOffset: false, bias: false },
    postNorms: false,
    tieEmbeddings: true,
    embeddingScale: 1,
    residualScale: 1,
    logitScale: 1,
    logitSoftcap: null,
    maxContext: 256,
    layers: Array.from({ length: layers }, (_, index) => ({
      index,
      mixerName: 'attn',
      mixer: attention(),
      ffnName: 'mlp',
      ffn: mlp(),
    })),
    ...over,
  };
}

/**
 * A 4-layer LayerNorm model with RWKV-7 time mixing (3 heads of 16, values of 8, small LoRA ranks)
 * and channel mixing at layers 1 and 3, attention and SwiGLU at 0 and 2.
 */
export function rwkv7Hybrid(): ModelIR {
  const tmix: Rwkv7Spec = {
    kind: 'rwkv7',
    heads: 3,
    headDim: 16,
    valueHeadDim: 8,
    decayRank: 8,
    aRank: 6,
    vRank: 4,
    gateRank: 12,
    normEps: 1e-5,
    kkEps: 1e-6,
    normFirst: true,
  };
  const cmix = mlp({ hidden: 40, act: 'relu2', gated: false, tokenShift: true });
  const m = tinyLlama(
    { norm: { kind: 'layer', eps: 1e-5, unitOffset: false, bias: true }, tieEmbeddings: false },
    4,
  );
  for (const i of [1, 3]) {
    m.layers[i] = { ...m.layers[i]!, mixerName: 'tmix', mixer: tmix, ffnName: 'cmix', ffn: cmix };
  }
  return m;
}
