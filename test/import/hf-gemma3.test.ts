/** gemma3_text: both config spellings, the Gemma specifics, checkpoint names and refusals. */
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import type { AttentionSpec } from '../../src/spec/model.ts';
import { countParams } from '../../src/spec/params.ts';
import { fixtureConfig, tinyConfig } from '../helpers/hf-config.ts';

/** The golden fixture's config, as transformers 5.17 writes it (per-layer-type rope_parameters). */
const TINY = tinyConfig('gemma3_text');
const attn = (m: ReturnType<typeof importHfConfig>['model'], i: number) =>
  m.layers[i]!.mixer as AttentionSpec;

describe('gemma3_text import', () => {
  it('reads the transformers 5 config: local and global layers, Gemma norms and scales', () => {
    const { model, weightMap } = importHfConfig(TINY, 'tiny');
    expect(model.norm).toEqual({ kind: 'rms', eps: 1e-6, unitOffset: true, bias: false });
    expect(model.postNorms).toBe(true);
    expect(model.embeddingScale).toBe(8);
    expect(model.tieEmbeddings).toBe(true);
    expect(model.logitSoftcap).toBeNull();
    expect(model.layers.map((l) => l.mixerName)).toEqual(['sliding_attention', 'full_attention']);
    expect(attn(model, 0)).toEqual({
      kind: 'attention',
      heads: 4,
      kvHeads: 2,
      headDim: 16,
      rope: { theta: 10000, rotaryDim: 16, scaling: { kind: 'none' } },
      qkNorm: true,
      qkvBias: false,
      outBias: false,
      causal: true,
      window: 8,
      scale: 0.25,
      softcap: null,
      sinkTokens: null,
      evict: null,
      sinks: false,
      outputGate: false,
    });
    expect(attn(model, 1)).toMatchObject({ window: null, rope: { theta: 1e6 } });
    expect(model.layers[0]!.ffn).toEqual({
      kind: 'mlp',
      hidden: 128,
      act: 'gelu_tanh',
      gated: true,
      bias: false,
    });
    // Gemma's names for the four layer norms.
    expect(weightMap['model.layers.1.input_layernorm.weight']).toBe(
      'model.layers.1.input_layernorm.weight',
    );
    expect(weightMap['model.layers.1.post_mixer_layernorm.weight']).toBe(
      'model.layers.1.post_attention_layernorm.weight',
    );
    expect(weightMap['model.layers.1.post_attention_layernorm.weight']).toBe(
      'model.layers.1.pre_feedforward_layernorm.weight',
    );
    expect(weightMap['model.layers.1.post_feedforward_layernorm.weight']).toBe(
      'model.layers.1.post_feedforward_layernorm.weight',
    );
    expect(new Set(Object.values(weightMap)).size).toBe(Object.keys(weightMap).length);
  });

  it('reads the transformers 4 config: pattern, rope_local_base_freq, rope_scaling on global only', () => {
    const { model } = importHfConfig(
      {
        model_type: 'gemma3_text',
        hidden_size: 64,
        intermediate_size: 96,
        num_hidden_layers: 7,
        num_attention_heads: 4,
        num_key_value_heads: 1,
        head_dim: 32,
        vocab_size: 100,
        query_pre_attn_scalar: 144,
        rope_theta: 500000,
        rope_local_base_freq: 5000,
        rope_scaling: { rope_type: 'linear', factor: 8 },
        sliding_window: 16,
        sliding_window_pattern: 3,
        attn_logit_softcapping: 50,
        final_logit_softcapping: 30,
        cache_implementation: 'hybrid',
      },
      'old',
    );
    expect(model.layers.map((l) => (attn(model, l.index).window ? 's' : 'F')).join('')).toBe(
      'ssFssFs',
    );
    expect(attn(model, 0).rope).toEqual({
      theta: 5000,
      rotaryDim: 32,
      scaling: { kind: 'none' },
    });
    expect(attn(model, 2).rope).toEqual({
      theta: 500000,
      rotaryDim: 32,
      scaling: { kind: 'linear', factor: 8 },
    });
    expect(attn(model, 0)).toMatchObject({ window: 16, scale: 1 / 12, softcap: 50 });
    expect(model.logitSoftcap).toBe(30);
    expect(model.embeddingScale).toBe(Math.fround(8));
    // sqrt(hidden_size) rounded to f32 as HF's float32 buffer holds it.
    const wide = importHfConfig({ ...TINY, hidden_size: 1152 }, 'wide').model;
    expect(wide.embeddingScale).toBe(Math.fround(Math.sqrt(1152)));
    expect(wide.embeddingScale).not.toBe(Math.sqrt(1152));
  });

  it('fills a layer type without rope_theta from the legacy bases, then the class defaults', () => {
    const rope = (params: object, extra: object = {}) => {
      const m = importHfConfig({ ...TINY, rope_parameters: params, ...extra }, 't').model;
      return [attn(m, 0).rope!.theta, attn(m, 1).rope!.theta];
    };
    const bare = { full_attention: { rope_type: 'default' }, sliding_attention: {} };
    expect(rope(bare)).toEqual([10000, 1e6]);
    expect(rope(bare, { rope_theta: 2e5, rope_local_base_freq: 300 })).toEqual([300, 2e5]);
  });

  it('counts Gemma 3 1B within 0.5% of the published 1.0B (302M embedding + 698M other)', () => {
    const { model } = importHfConfig(fixtureConfig('configs/gemma-3-1b.json'), 'g');
    const c = countParams(model);
    expect(Math.abs(c.total - 1.0e9) / 1.0e9).toBeLessThan(0.005);
    expect(Math.abs(c.embedding - 302e6) / 302e6).toBeLessThan(0.005);
    expect(Math.abs(c.total - c.embedding - 698e6) / 698e6).toBeLessThan(0.005);
  });

  it('refuses what it cannot run or would guess', () => {
    expect(() => importHfConfig({ ...TINY, use_bidirectional_attention: true }, 't')).toThrow(
      /config key 'use_bidirectional_attention' is true \(an encoder such as EmbeddingGemma\)/,
    );
    expect(() =>
      importHfConfig(
        { ...TINY, rope_parameters: { ...(TINY.rope_parameters as object), chunked: {} } },
        't',
      ),
    ).toThrow(/config key 'rope_parameters.chunked' is not a layer type/);
    expect(() =>
      importHfConfig({ ...TINY, rope_scaling: { rope_type: 'linear', factor: 2 } }, 't'),
    ).toThrow(/config key 'rope_scaling' is given beside per-layer-type rope_parameters/);
    expect(() => importHfConfig({ ...TINY, layer_types: ['full_attention'] }, 't')).toThrow(
      /config key 'layer_types' has 1 entries for 2 layers/,
    );
    expect(() => importHfConfig({ ...TINY, hidden_activation: 'gelu_fancy' }, 't')).toThrow(
      /config key 'hidden_activation' 'gelu_fancy' is not supported/,
    );
    expect(() => importHfConfig({ ...TINY, final_logit_softcapping: -1 }, 't')).toThrow(
      /config key 'final_logit_softcapping' must be positive or null/,
    );
    expect(() => importHfConfig({ ...TINY, hidden_act: 'gelu' }, 't')).toThrow(
      /config key 'hidden_act' is not understood by strata's gemma3_text importer/,
    );
  });
});
