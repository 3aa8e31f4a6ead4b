import { describe, expect, it } from 'vitest';
import {
  expectedTensors,
  globalWeightNames,
  layerTensors,
  layerWeightNames,
} from '../../src/import/names.ts';
import { countParams } from '../../src/spec/params.ts';
import { MODEL_IR_VERSION, type LayerSpec, type ModelIR } from '../../src/spec/model.ts';

function layer(index: number, over: Partial<LayerSpec['mixer']>, ffn: LayerSpec['ffn']): LayerSpec {
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
      scale: 1 / Math.sqrt(8),
      softcap: null,
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
  tieEmbeddings: false,
  embeddingScale: 1,
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
