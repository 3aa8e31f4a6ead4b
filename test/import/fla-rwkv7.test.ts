/**
 * fla's rwkv7 importer: the golden fixture's config to its ModelIR, the checkpoint's tensors
 * mapped one to one, fla's head and value-width rules, and options strata refuses by name.
 */
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import type { Rwkv7Spec } from '../../src/mixers/rwkv7.ts';
import type { MlpSpec, ModelIR } from '../../src/spec/model.ts';
import { countParams } from '../../src/spec/params.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { fixtureConfig } from '../helpers/hf-config.ts';

const DIR = 'test/fixtures/fla/rwkv7';
const tiny = () => fixtureConfig('fla/rwkv7/config.json');

/** The fixture config with some keys changed (undefined removes a key). */
function withKeys(changes: Record<string, unknown>): Record<string, unknown> {
  const c = tiny();
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete c[k];
    else c[k] = v;
  }
  return c;
}

const mixer = (m: ModelIR) => m.layers[0].mixer as Rwkv7Spec;
const importError = (changes: Record<string, unknown>) => () =>
  importHfConfig(withKeys(changes), 'tiny');

describe('fla rwkv7 import', () => {
  it('reads the golden fixture: rwkv7 time mixing, rwkv7_cmix, LayerNorms with bias', () => {
    const { model } = importHfConfig(tiny(), 'tiny');
    expect(model.norm).toEqual({ kind: 'layer', eps: 1e-5, unitOffset: false, bias: true });
    expect(model.tieEmbeddings).toBe(false);
    const tmix: Rwkv7Spec = {
      kind: 'rwkv7',
      heads: 4,
      headDim: 16,
      valueHeadDim: 16,
      decayRank: 8,
      aRank: 8,
      vRank: 8,
      gateRank: 16,
      normEps: 1e-5,
      kkEps: 1e-6,
      normFirst: true,
    };
    const cmix: MlpSpec = {
      kind: 'mlp',
      hidden: 16,
      act: 'relu2',
      gated: false,
      bias: false,
      tokenShift: true,
    };
    expect(model.layers.map((l) => [l.mixer, l.ffn])).toEqual([
      [tmix, cmix],
      [tmix, cmix],
    ]);
  });

  it('maps exactly the checkpoint tensors, in their stored shapes', async () => {
    const { model, weightMap, storedShapes } = importHfConfig(tiny(), 'tiny');
    const file = await openSafetensors(`${DIR}/model.safetensors`);
    const stored = new Map(file.listTensors().map((t) => [t.name, t.shape]));
    await file.close();
    expect(Object.values(weightMap).sort()).toEqual([...stored.keys()].sort());
    // Layer 0 makes v_first (no v_lora) and carries pre_norm; layer 1 the reverse.
    expect(weightMap['model.layers.1.attn.v_lora.lora.2.bias']).toBeDefined();
    expect(weightMap['model.layers.0.attn.v_lora.lora.2.bias']).toBeUndefined();
    expect(weightMap['model.layers.0.pre_norm.weight']).toBe('model.layers.0.pre_norm.weight');
    expect(weightMap['model.layers.1.mlp.up_proj.weight']).toBe('model.layers.1.ffn.key.weight');
    expect(weightMap['model.layers.1.post_attention_layernorm.bias']).toBe(
      'model.layers.1.ffn_norm.bias',
    );
    for (const [canonical, name] of Object.entries(weightMap)) {
      expect(stored.get(name), canonical).toEqual(storedShapes[canonical] ?? stored.get(name));
    }
    expect(storedShapes['model.layers.0.attn.x_r']).toEqual([1, 1, 64]);
    expect(storedShapes['model.layers.0.attn.r_k']).toEqual([4, 16]);
    const elements = [...stored.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
    expect(countParams(model).total).toBe(elements);
  });

  it('derives heads as fla does: head_dim wins, num_heads only when head_dim is null', () => {
    expect(mixer(importHfConfig(withKeys({ num_heads: null }), 't').model).heads).toBe(4);
    const byHeads = importHfConfig(withKeys({ head_dim: null, num_heads: 2 }), 't').model;
    expect([mixer(byHeads).heads, mixer(byHeads).headDim]).toEqual([2, 32]);
    expect(importError({ num_heads: 8 })).toThrow(
      /'num_heads' is 8, but hidden_size \/ head_dim is 4/,
    );
    expect(importError({ head_dim: 24, num_heads: null })).toThrow(/'head_dim' 24 does not divide/);
    expect(importError({ head_dim: null, num_heads: null })).toThrow(/'head_dim'.*both null/);
  });

  it('reads value_dim as one width or one per layer, and fuse_norm as the kk norm', () => {
    const wide = importHfConfig(withKeys({ value_dim: 128 }), 't').model;
    expect(mixer(wide).valueHeadDim).toBe(32);
    expect(importError({ value_dim: [64, 128] })).toThrow(/'value_dim' differs between layers/);
    expect(importError({ value_dim: [64] })).toThrow(/'value_dim' must be multiples/);
    expect(importError({ value_dim: 96 })).toThrow(/'value_dim' must be multiples/);
    const unfused = importHfConfig(withKeys({ fuse_norm: false }), 't').model;
    expect(mixer(unfused).kkEps).toBe(1e-24);
  });

  it('sizes a null LoRA rank as RWKV7Attention does, from the width and head_dim', () => {
    const released = fixtureConfig('configs/rwkv7-1.5b-world.json');
    for (const k of ['decay', 'a', 'v', 'gate']) released[`${k}_low_rank_dim`] = null;
    const m = mixer(importHfConfig(released, 'x').model);
    // max(32, round(c·√2048·head_dim/64 / 32)·32) with c = 2.5, 2.5, 1.7 and 5 (no head factor).
    expect([m.decayRank, m.aRank, m.vRank, m.gateRank]).toEqual([128, 128, 64, 224]);
    // Absent keys take RWKV7Config's defaults instead.
    const absent = withKeys({ decay_low_rank_dim: undefined, v_low_rank_dim: undefined });
    expect([
      mixer(importHfConfig(absent, 't').model).decayRank,
      mixer(importHfConfig(absent, 't').model).vRank,
    ]).toEqual([64, 16]);
  });

  it('sizes the channel mix from hidden_ratio, rounded up to 32, when intermediate_size is unset', () => {
    const m = importHfConfig(withKeys({ intermediate_size: null, hidden_ratio: 3.3 }), 't').model;
    expect((m.layers[0].ffn as MlpSpec).hidden).toBe(224);
    const noNormFirst = importHfConfig(withKeys({ norm_first: false }), 't').model;
    expect(mixer(noNormFirst).normFirst).toBe(false);
  });

  it('refuses what it cannot compute, naming the key and its value', () => {
    expect(importError({ hidden_act: 'gelu' })).toThrow(/'hidden_act' is 'gelu'/);
    expect(importError({ attn: { layers: [1], num_heads: 4 } })).toThrow(/'attn' is .*Attention/);
    expect(importError({ elementwise_affine: false })).toThrow(/'elementwise_affine'/);
    expect(importError({ use_deep_embed: true })).toThrow(/'use_deep_embed'/);
    expect(importError({ architectures: ['Rwkv7ForCausalLM'] })).toThrow(/native Rwkv7ForCausalLM/);
  });

  it('accepts use_l2warp, which changes only the training gradient', () => {
    expect(() => importHfConfig(withKeys({ use_l2warp: true }), 't')).not.toThrow();
  });
});
