import { describe, expect, it } from 'vitest';
// The models here are written by hand, not loaded: register the mixer definitions, whose
// lowerings name their weights, as loading a spec would.
import '../../src/mixers/index.ts';
import {
  expectedTensors,
  globalWeightNames,
  layerTensors,
  layerWeightNames,
} from '../../src/import/names.ts';
import { countParams } from '../../src/spec/params.ts';
import {
  MODEL_IR_VERSION,
  type AttentionSpec,
  type LayerSpec,
  type ModelIR,
} from '../../src/spec/model.ts';

function layer(index: number, over: Partial<AttentionSpec>, ffn: LayerSpec['ffn']): LayerSpec {
  return {
    index,
    mixerName: 'attn',
    mixer: {
      kind: 'attention',
      heads: 4,
      kvHeads: 2,
      headDim: 8,
      rope: null,
      qkNorm: false,
      qkvBias: false,
      outBias: false,
      causal: true,
      window: null,
      sinkTokens: null,
      evict: null,
      scale: 1 / Math.sqrt(8),
      softcap: null,
      sinks: false,
      outputGate: false,
      ...over,
    },
    ffnName: ffn ? 'mlp' : null,
    ffn,
  };
}

/** One layer of each shape the names cover: biases, qk norm, ungated MLP, no FFN, LayerNorm bias. */
const MODEL: ModelIR = {
  version: MODEL_IR_VERSION,
  name: 'mixed',
  vocab: 50,
  dim: 16,
  norm: { kind: 'layer', eps: 1e-5, unitOffset: false, bias: true },
  postNorms: false,
  tieEmbeddings: false,
  embeddingScale: 1,
  residualScale: 1,
  logitScale: 1,
  logitSoftcap: null,
  maxContext: 64,
  layers: [
    layer(
      0,
      { qkvBias: true, qkNorm: true },
      { kind: 'mlp', hidden: 24, act: 'gelu', gated: false, bias: true },
    ),
    layer(1, { outBias: true }, null),
    layer(2, {}, { kind: 'mlp', hidden: 24, act: 'silu', gated: true, bias: false }),
  ],
};

function flatNames(o: unknown): string[] {
  if (typeof o === 'string') return [o];
  if (o && typeof o === 'object') return Object.values(o).flatMap(flatNames);
  return [];
}

describe('canonical names', () => {
  it('structured layer names are exactly the layer tensors', () => {
    for (const l of MODEL.layers) {
      const fromNames = flatNames(layerWeightNames(MODEL, l.index)).sort();
      const fromTensors = layerTensors(MODEL, l)
        .map((t) => t.name)
        .sort();
      expect(fromNames).toEqual(fromTensors);
    }
  });

  it('names sandwich norms only for the sublayers a layer has', () => {
    const sandwich: ModelIR = { ...MODEL, postNorms: true };
    for (const l of sandwich.layers) {
      const fromNames = flatNames(layerWeightNames(sandwich, l.index)).sort();
      const fromTensors = layerTensors(sandwich, l)
        .map((t) => t.name)
        .sort();
      expect(fromNames).toEqual(fromTensors);
    }
    const names = layerWeightNames(sandwich, 1);
    // LayerNorm with bias: the post-norms have one too.
    expect(names.postMixerNorm).toEqual({
      weight: 'model.layers.1.post_mixer_layernorm.weight',
      bias: 'model.layers.1.post_mixer_layernorm.bias',
    });
    expect(names.postFfnNorm).toBeNull();
    expect(layerWeightNames(MODEL, 0).postMixerNorm).toBeNull();
  });

  it('gives the HF Llama names and [out, in] shapes', () => {
    const shapes = Object.fromEntries(expectedTensors(MODEL).map((t) => [t.name, t.shape]));
    expect(shapes['model.embed_tokens.weight']).toEqual([50, 16]);
    expect(shapes['model.layers.0.self_attn.q_proj.weight']).toEqual([32, 16]);
    expect(shapes['model.layers.0.self_attn.k_proj.bias']).toEqual([16]);
    expect(shapes['model.layers.0.self_attn.q_norm.weight']).toEqual([8]);
    expect(shapes['model.layers.0.self_attn.o_proj.weight']).toEqual([16, 32]);
    expect(shapes['model.layers.0.self_attn.o_proj.bias']).toBeUndefined();
    expect(shapes['model.layers.0.mlp.up_proj.bias']).toEqual([24]);
    expect(shapes['model.layers.0.mlp.gate_proj.weight']).toBeUndefined();
    expect(shapes['model.layers.0.mlp.down_proj.weight']).toEqual([16, 24]);
    expect(shapes['model.layers.1.self_attn.o_proj.bias']).toEqual([16]);
    expect(shapes['model.layers.1.post_attention_layernorm.weight']).toBeUndefined();
    expect(shapes['model.layers.2.mlp.gate_proj.weight']).toEqual([24, 16]);
    expect(shapes['model.layers.2.input_layernorm.bias']).toEqual([16]);
    expect(shapes['model.norm.bias']).toEqual([16]);
    expect(shapes['lm_head.weight']).toEqual([50, 16]);
    expect(globalWeightNames(MODEL)).toEqual({
      embed: 'model.embed_tokens.weight',
      finalNorm: { weight: 'model.norm.weight', bias: 'model.norm.bias' },
      lmHead: 'lm_head.weight',
    });
    expect(() => layerWeightNames(MODEL, 3)).toThrow(/model 'mixed' has no layer 3 \(it has 3\)/);
  });

  it('counts parameters from the same list, the tied head once', () => {
    const c = countParams(MODEL);
    expect(c.embedding).toBe(800);
    expect(c.lmHead).toBe(800);
    // layer 1 (no FFN): input norm weight+bias, q, k, v, o, o bias
    expect(c.perLayer[1]).toBe(32 + 32 * 16 + 16 * 16 * 2 + 16 * 32 + 16);
    expect(c.total).toBe(800 + 800 + 32 + c.perLayer.reduce((a, b) => a + b));
    const tied = countParams({ ...MODEL, tieEmbeddings: true });
    expect(tied.lmHead).toBe(0);
    expect(tied.total).toBe(c.total - 800);
  });
});

describe('canonical names of the state-space mixers', () => {
  const SSM: ModelIR = {
    ...MODEL,
    norm: { kind: 'rms', eps: 1e-5, unitOffset: false, bias: false },
    postNorms: false,
    layers: [
      {
        index: 0,
        mixerName: 'm1',
        mixer: {
          kind: 'mamba1',
          dInner: 32,
          dState: 4,
          dConv: 4,
          dtRank: 2,
          convBias: true,
          projBias: true,
          innerNorms: { eps: 1e-6 },
        },
        ffnName: null,
        ffn: null,
      },
      {
        index: 1,
        mixerName: 'm2',
        mixer: {
          kind: 'mamba2',
          heads: 4,
          headDim: 8,
          dState: 4,
          groups: 2,
          dConv: 4,
          chunk: 16,
          convBias: false,
          projBias: false,
          normGroup: 16,
          normEps: 1e-5,
          dtMin: 0,
          dtMax: null,
        },
        ffnName: 'mlp',
        ffn: { kind: 'mlp', hidden: 24, act: 'silu', gated: true, bias: false },
      },
      {
        index: 2,
        mixerName: 'c',
        mixer: { kind: 'shortconv', lCache: 3, bias: true },
        ffnName: null,
        ffn: null,
      },
    ],
  };

  it('structured layer names are exactly the layer tensors', () => {
    for (const l of SSM.layers) {
      const fromNames = flatNames(layerWeightNames(SSM, l.index)).sort();
      const fromTensors = layerTensors(SSM, l)
        .map((t) => t.name)
        .sort();
      expect(fromNames).toEqual(fromTensors);
    }
  });

  it('gives HF-Mamba names under mixer., conv weights as [channels, kernel]', () => {
    const shapes = Object.fromEntries(expectedTensors(SSM).map((t) => [t.name, t.shape]));
    const p = (i: number, n: string) => shapes[`model.layers.${i}.${n}`];
    expect(p(0, 'input_layernorm.weight')).toEqual([16]);
    expect(p(0, 'mixer.in_proj.weight')).toEqual([64, 16]);
    expect(p(0, 'mixer.in_proj.bias')).toEqual([64]);
    expect(p(0, 'mixer.conv1d.weight')).toEqual([32, 4]);
    expect(p(0, 'mixer.x_proj.weight')).toEqual([2 + 2 * 4, 32]);
    expect(p(0, 'mixer.dt_layernorm.weight')).toEqual([2]);
    expect(p(0, 'mixer.dt_proj.weight')).toEqual([32, 2]);
    expect(p(0, 'mixer.dt_proj.bias')).toEqual([32]);
    expect(p(0, 'mixer.A_log')).toEqual([32, 4]);
    expect(p(0, 'mixer.out_proj.weight')).toEqual([16, 32]);
    // z (32) + x (32) + B and C (2 groups × 4 each) + dt (4 heads)
    expect(p(1, 'mixer.in_proj.weight')).toEqual([32 + 32 + 16 + 4, 16]);
    expect(p(1, 'mixer.conv1d.weight')).toEqual([48, 4]);
    expect(p(1, 'mixer.conv1d.bias')).toBeUndefined();
    expect(p(1, 'mixer.A_log')).toEqual([4]);
    expect(p(1, 'mixer.dt_bias')).toEqual([4]);
    expect(p(1, 'mixer.norm.weight')).toEqual([32]);
    expect(p(2, 'mixer.in_proj.weight')).toEqual([48, 16]);
    expect(p(2, 'mixer.conv1d.weight')).toEqual([16, 3]);
    expect(p(2, 'mixer.out_proj.bias')).toEqual([16]);
    // mamba2 layer: norm 16 + in_proj 84·16 + conv 48·4 + dt_bias, A_log, D 3·4 + norm 32 + out 16·32
    expect(countParams(SSM).perLayer[1]).toBe(
      16 + 84 * 16 + 48 * 4 + 12 + 32 + 16 * 32 + (16 + 3 * 24 * 16),
    );
  });
});
