/** fla's delta_net importer: the fixture config, its options, what it refuses, the weight map. */
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import type { DeltaNetSpec } from '../../src/mixers/deltanet.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { fixtureConfig } from '../helpers/hf-config.ts';

const DIR = 'test/fixtures/fla/delta_net';
const tiny = () => fixtureConfig('fla/delta_net/config.json');

describe('fla delta_net import', () => {
  it('reads the fixture config: DeltaNet layers with SiLU short convs, l2 q/k, β, o_norm', () => {
    const { model } = importHfConfig(tiny(), 'tiny');
    const expected: DeltaNetSpec = {
      kind: 'deltanet',
      heads: 2,
      valueHeads: 2,
      keyHeadDim: 16,
      valueHeadDim: 16,
      dConv: 4,
      qkActivation: 'silu',
      useBeta: true,
      allowNegEigval: false,
      decay: 'none',
      outputGate: false,
      normEps: 1e-6,
    };
    expect(model.layers.map((l) => l.mixer)).toEqual([expected, expected]);
    expect(model.layers.map((l) => l.ffn)).toEqual([
      { kind: 'mlp', hidden: 16, act: 'silu', gated: true, bias: false },
      { kind: 'mlp', hidden: 16, act: 'silu', gated: true, bias: false },
    ]);
    expect(model.norm).toEqual({ kind: 'rms', eps: 1e-6, unitOffset: false, bias: false });
    expect([model.dim, model.vocab, model.tieEmbeddings]).toEqual([64, 256, false]);
  });

  it("maps exactly the checkpoint's tensors, conv weights stored [C, 1, K]", async () => {
    const { weightMap, storedShapes } = importHfConfig(tiny(), 'tiny');
    const file = await openSafetensors(`${DIR}/model.safetensors`);
    const stored = file.listTensors();
    await file.close();
    expect(Object.values(weightMap).sort()).toEqual(stored.map((t) => t.name).sort());
    const shapeOf = new Map(stored.map((t) => [t.name, t.shape]));
    for (const [canonical, shape] of Object.entries(storedShapes)) {
      expect(shapeOf.get(weightMap[canonical]!), canonical).toEqual(shape);
    }
    expect(weightMap['model.layers.0.input_layernorm.weight']).toBe(
      'model.layers.0.attn_norm.weight',
    );
    expect(storedShapes['model.layers.1.attn.v_conv1d.weight']).toEqual([32, 1, 4]);
  });

  it('reads the options: no short conv, other feature maps, no β, ×2 β, the output gate', () => {
    const cfg = {
      ...tiny(),
      use_short_conv: false,
      qk_activation: 'elu',
      use_beta: false,
      allow_neg_eigval: true,
      use_gate: true,
      expand_k: 1,
    };
    const { model, weightMap } = importHfConfig(cfg, 'tiny');
    expect(model.layers[0].mixer).toMatchObject({
      keyHeadDim: 32,
      valueHeadDim: 16,
      dConv: null,
      qkActivation: 'elu1',
      useBeta: false,
      allowNegEigval: true,
      outputGate: true,
    });
    const names = Object.values(weightMap);
    expect(names).toContain('model.layers.0.attn.g_proj.weight');
    expect(names.filter((n) => /conv1d|b_proj/.test(n))).toEqual([]);
    for (const act of ['relu', 'identity'] as const) {
      const m = importHfConfig({ ...tiny(), qk_activation: act }, 'tiny').model;
      expect((m.layers[0].mixer as DeltaNetSpec).qkActivation).toBe(act);
    }
  });

  it("puts fla's hybrid attention at the layers its attn key lists", () => {
    const cfg = { ...tiny(), attn: { layers: [1], num_heads: 4, num_kv_heads: 2 } };
    const { model } = importHfConfig(cfg, 'tiny');
    expect(model.layers.map((l) => l.mixer?.kind)).toEqual(['deltanet', 'attention']);
  });

  it('refuses what it cannot honour, naming the key and value', () => {
    expect(() => importHfConfig({ ...tiny(), qk_norm: 'sum' }, 'tiny')).toThrow(
      "config key 'qk_norm' is 'sum'; strata supports only l2",
    );
    expect(() => importHfConfig({ ...tiny(), qk_activation: 'gelu' }, 'tiny')).toThrow(
      "config key 'qk_activation' is 'gelu'; fla's DeltaNet takes silu, relu, elu or identity",
    );
    expect(() => importHfConfig({ ...tiny(), expand_k: 0.3 }, 'tiny')).toThrow(
      "config key 'expand_k' 0.3 makes 19 channels, not a positive multiple of num_heads 2",
    );
    expect(() => importHfConfig({ ...tiny(), conv_bias: true }, 'tiny')).toThrow(
      "config key 'conv_bias' is not understood",
    );
    // L2Wrap returns the loss unchanged (only the training gradient differs): accepted.
    expect(() => importHfConfig({ ...tiny(), use_l2warp: true }, 'tiny')).not.toThrow();
  });
});
