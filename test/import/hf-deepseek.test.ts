import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { countParams } from '../../src/spec/params.ts';
import type { MlaSpec, MoeSpec } from '../../src/spec/model.ts';
import { fixtureConfig, tinyConfig } from '../helpers/hf-config.ts';

const TINY = tinyConfig('deepseek_v3');
const RELEASED = (() => {
  const c = fixtureConfig('configs/deepseek-v3.json');
  delete c.quantization_config;
  return c;
})();

describe('deepseek_v3 import', () => {
  it('the tiny fixture: MLA everywhere, dense layer 0, MoE from first_k_dense_replace', () => {
    const { model, weightMap } = importHfConfig(TINY, 'tiny');
    const mla = model.layers[0].mixer as MlaSpec;
    expect(mla).toEqual({
      kind: 'mla',
      heads: 4,
      qRank: 32,
      kvRank: 32,
      nopeDim: 16,
      ropeDim: 8,
      vHeadDim: 16,
      rope: { theta: 10000, rotaryDim: 8, scaling: { kind: 'none' } },
      ropePairs: 'interleaved',
      bias: false,
      latentEps: 1e-6,
      scale: 24 ** -0.5,
      cache: 'latent',
      index: null,
    });
    expect(model.layers.map((l) => l.ffn?.kind)).toEqual(['mlp', 'moe']);
    const moe = model.layers[1].ffn as MoeSpec;
    expect(moe.router).toEqual({
      scoring: 'sigmoid',
      normalize: true,
      scale: 2.5,
      bias: false,
      correctionBias: true,
      groups: 2,
      topkGroups: 1,
    });
    expect(moe.shared?.hidden).toBe(32);
    expect(weightMap['model.layers.1.mlp.shared_expert.up_proj.weight']).toBe(
      'model.layers.1.mlp.shared_experts.up_proj.weight',
    );
    expect(weightMap['model.layers.1.mlp.gate.e_score_correction_bias']).toBe(
      'model.layers.1.mlp.gate.e_score_correction_bias',
    );
    expect(weightMap['model.layers.0.self_attn.kv_a_proj_with_mqa.weight']).toBeDefined();
  });

  it('the released config: YaRN mscale² on the softmax scale, 3 dense layers, 58 MoE', () => {
    const { model } = importHfConfig(RELEASED, 'DeepSeek-V3');
    const mla = model.layers[0].mixer as MlaSpec;
    const m = 0.1 * Math.log(40) + 1;
    expect(mla.scale).toBeCloseTo(192 ** -0.5 * m * m, 12);
    expect(mla.rope.scaling).toMatchObject({ kind: 'yarn', factor: 40, attentionFactor: 1 });
    expect(model.layers.filter((l) => l.ffn?.kind === 'mlp').map((l) => l.index)).toEqual([
      0, 1, 2,
    ]);
    const c = countParams(model);
    // Published: 671B total, 37B activated (MTP module excluded, as here).
    expect(Math.abs(c.total - 671e9) / 671e9).toBeLessThan(0.005);
    expect(Math.abs(c.active - 37e9) / 37e9).toBeLessThan(0.02);
  });

  it('ignores moe_layer_freq, as transformers does', () => {
    const a = importHfConfig({ ...TINY, num_hidden_layers: 4, moe_layer_freq: 2 }, 'x').model;
    expect(a.layers.map((l) => l.ffn?.kind)).toEqual(['mlp', 'moe', 'moe', 'moe']);
  });

  it('q_lora_rank null gives a plain q_proj', () => {
    const { model, weightMap } = importHfConfig({ ...TINY, q_lora_rank: null }, 'x');
    expect((model.layers[0].mixer as MlaSpec).qRank).toBeNull();
    expect(weightMap['model.layers.0.self_attn.q_proj.weight']).toBeDefined();
    expect(weightMap['model.layers.0.self_attn.q_a_proj.weight']).toBeUndefined();
  });

  it('rope_interleave false pairs halves', () => {
    const { model } = importHfConfig({ ...TINY, rope_interleave: false }, 'x');
    expect((model.layers[0].mixer as MlaSpec).ropePairs).toBe('half');
  });

  it('refuses what it cannot compute exactly', () => {
    expect(() => importHfConfig({ ...TINY, num_key_value_heads: 2 }, 'x')).toThrow(
      /num_key_value_heads' is 2 but MLA gives every one of the 4 heads/,
    );
    expect(() => importHfConfig({ ...TINY, scoring_func: 'softmax' }, 'x')).toThrow(
      /scoring_func' is "softmax"; strata \(like transformers\) implements sigmoid only/,
    );
    expect(() => importHfConfig({ ...TINY, qk_head_dim: 20 }, 'x')).toThrow(
      /qk_head_dim' must be qk_nope_head_dim \+ qk_rope_head_dim \(24\)/,
    );
    expect(() => importHfConfig({ ...TINY, n_group: 3 }, 'x')).toThrow(
      /n_group' \(3\) must divide/,
    );
  });
});

describe('deepseek_v32 import', () => {
  const TINY32 = tinyConfig('deepseek_v32');
  // DeepSeek-V3.2-Exp: V3's config with the indexer's keys (DeepseekV32Config's defaults).
  const RELEASED32 = {
    ...RELEASED,
    model_type: 'deepseek_v32',
    architectures: ['DeepseekV32ForCausalLM'],
    index_n_heads: 64,
    index_head_dim: 128,
    index_topk: 2048,
  };

  it('the tiny fixture: an indexer on every MLA layer, its weights named as HF saves them', () => {
    const { model, weightMap } = importHfConfig(TINY32, 'tiny');
    for (const l of model.layers) {
      const mla = l.mixer as MlaSpec;
      expect(mla.index).toEqual({ kind: 'indexer', heads: 8, dim: 16, topk: 4 });
      expect(mla.ropePairs).toBe('interleaved');
    }
    expect(model.layers.map((l) => l.ffn?.kind)).toEqual(['mlp', 'moe']);
    for (const w of [
      'wq_b.weight',
      'wk.weight',
      'k_norm.weight',
      'k_norm.bias',
      'weights_proj.weight',
    ]) {
      const name = `model.layers.1.self_attn.indexer.${w}`;
      expect(weightMap[name]).toBe(name);
    }
  });

  it('the released config: V3 plus 61 indexers of wq_b, wk, k_norm and weights_proj', () => {
    const v3 = countParams(importHfConfig(RELEASED, 'v3').model);
    const v32 = countParams(importHfConfig(RELEASED32, 'v32').model);
    const perLayer = 64 * 128 * 1536 + 128 * 7168 + 2 * 128 + 64 * 7168;
    expect(v32.total - v3.total).toBe(61 * perLayer);
  });

  it('reads mlp_layer_types over first_k_dense_replace, as transformers does', () => {
    const { model } = importHfConfig(
      {
        ...TINY32,
        num_hidden_layers: 3,
        mlp_layer_types: ['dense', 'sparse', 'dense'],
        layer_types: null,
      },
      'x',
    );
    expect(model.layers.map((l) => l.ffn?.kind)).toEqual(['mlp', 'moe', 'mlp']);
  });

  it('always interleaves MLA rope pairs (rope_interleave is not a V3.2 key)', () => {
    const { model } = importHfConfig({ ...TINY32, rope_interleave: false }, 'x');
    expect((model.layers[0].mixer as MlaSpec).ropePairs).toBe('interleaved');
  });

  it('refuses what it cannot compute exactly', () => {
    expect(() => importHfConfig({ ...TINY32, q_lora_rank: null }, 'x')).toThrow(
      /q_lora_rank' is null, but DeepSeek-V3.2's indexer reads the q latent/,
    );
    expect(() => importHfConfig({ ...TINY32, index_head_dim: 4 }, 'x')).toThrow(
      /index_head_dim' \(4\) must be at least qk_rope_head_dim \(8\)/,
    );
    expect(() =>
      importHfConfig({ ...TINY32, layer_types: ['indexed_attention', 'full_attention'] }, 'x'),
    ).toThrow(/layer_types' must all be 'indexed_attention'/);
    expect(() => importHfConfig({ ...TINY32, mlp_layer_types: ['dense'] }, 'x')).toThrow(
      /mlp_layer_types' must list 'dense' or 'sparse' for each of the 2 layers/,
    );
  });
});
