/** The qwen3_next importer: layer types, gated attention, DeltaNet widths, shared-gated MoE. */
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import type { GatedDeltaNetSpec, MoeSpec } from '../../src/spec/model.ts';
import { tinyConfig } from '../helpers/hf-config.ts';

const tiny = tinyConfig('qwen3_next');

describe('qwen3_next import', () => {
  it('reads the tiny golden config: layer types, mlp_only_layers, zero-centred norms', () => {
    const { model, weightMap, storedShapes } = importHfConfig(tiny, 'tiny');
    expect(model.norm).toEqual({ kind: 'rms', eps: 1e-6, unitOffset: true, bias: false });
    expect(model.layers.map((l) => `${l.mixer?.kind}/${l.ffn?.kind}`)).toEqual([
      'gated_deltanet/moe',
      'attention/moe',
      'gated_deltanet/mlp',
    ]);
    const dn: GatedDeltaNetSpec = {
      kind: 'gated_deltanet',
      keyHeads: 2,
      valueHeads: 4,
      keyHeadDim: 16,
      valueHeadDim: 16,
      dConv: 4,
      normEps: 1e-6,
    };
    expect(model.layers[0].mixer).toEqual(dn);
    const attn = model.layers[1].mixer;
    expect(attn?.kind === 'attention' && attn.outputGate && attn.qkNorm).toBe(true);
    expect(attn?.kind === 'attention' && attn.rope?.rotaryDim).toBe(4);
    const moe = model.layers[0].ffn as MoeSpec;
    expect(moe.shared?.hidden).toBe(32);
    expect(moe.sharedGate).toBe(true);
    expect(moe.router.normalize).toBe(true);
    expect(weightMap['model.layers.0.linear_attn.in_proj_qkvz.weight']).toBe(
      'model.layers.0.linear_attn.in_proj_qkvz.weight',
    );
    expect(storedShapes['model.layers.0.linear_attn.conv1d.weight']).toEqual([128, 1, 4]);
  });

  it('defaults layer_types from full_attention_interval and partial rotary to 0.25', () => {
    const { layer_types: _t, rope_parameters: _r, partial_rotary_factor: _p, ...rest } = tiny;
    const { model } = importHfConfig(
      { ...rest, num_hidden_layers: 4, full_attention_interval: 2, mlp_only_layers: [] },
      'tiny',
    );
    expect(model.layers.map((l) => l.mixer?.kind)).toEqual([
      'gated_deltanet',
      'attention',
      'gated_deltanet',
      'attention',
    ]);
    const attn = model.layers[1].mixer;
    expect(attn?.kind === 'attention' && attn.rope?.rotaryDim).toBe(4);
  });

  it('names value heads that key heads do not divide', () => {
    expect(() => importHfConfig({ ...tiny, linear_num_value_heads: 3 }, 'tiny')).toThrow(
      "tiny config: error: config key 'linear_num_value_heads' 3 is not a multiple of linear_num_key_heads 2",
    );
  });

  it('names what it cannot honour: another activation, an unknown layer type, a window', () => {
    expect(() => importHfConfig({ ...tiny, hidden_act: 'gelu' }, 'tiny')).toThrow(
      "config key 'hidden_act' must be silu (it is also the DeltaNet activation)",
    );
    const types = ['linear_attention', 'sliding_attention', 'linear_attention'];
    expect(() => importHfConfig({ ...tiny, layer_types: types }, 'tiny')).toThrow(
      'config key \'layer_types\' entry "sliding_attention" is not linear_attention or full_attention',
    );
    expect(() => importHfConfig({ ...tiny, use_sliding_window: true }, 'tiny')).toThrow(
      "config key 'use_sliding_window' is set; Qwen3-Next has no sliding window",
    );
  });

  it('makes every layer dense without experts, and drops the shared expert at width 0', () => {
    const dense = importHfConfig({ ...tiny, num_experts: 0 }, 'tiny').model;
    expect(dense.layers.map((l) => l.ffn?.kind)).toEqual(['mlp', 'mlp', 'mlp']);
    const unshared = importHfConfig({ ...tiny, shared_expert_intermediate_size: 0 }, 'tiny').model;
    expect((unshared.layers[0].ffn as MoeSpec).shared).toBeNull();
    expect((unshared.layers[0].ffn as MoeSpec).sharedGate).toBe(false);
  });
});
