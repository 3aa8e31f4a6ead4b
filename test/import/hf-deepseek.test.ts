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
