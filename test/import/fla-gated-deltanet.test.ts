/** fla's gated_deltanet importer: the fixture config, its options, what it refuses, the weight map. */
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import type { DeltaNetSpec } from '../../src/mixers/deltanet.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { fixtureConfig } from '../helpers/hf-config.ts';

const DIR = 'test/fixtures/fla/gated_deltanet';
const tiny = () => fixtureConfig('fla/gated_deltanet/config.json');

describe('fla gated_deltanet import', () => {
  it('reads the fixture config: 2 key heads, 4 value heads, decay per value head, gate', () => {
    const { model } = importHfConfig(tiny(), 'tiny');
    const expected: DeltaNetSpec = {
      kind: 'deltanet',
      heads: 2,
      valueHeads: 4,
      keyHeadDim: 16,
      valueHeadDim: 8,
      dConv: 4,
      qkActivation: 'silu',
      useBeta: true,
      allowNegEigval: true,
      decay: 'head',
      outputGate: true,
      normEps: 1e-6,
    };
    expect(model.layers.map((l) => l.mixer)).toEqual([expected, expected]);
    expect(model.layers.map((l) => l.ffn?.kind)).toEqual(['mlp', 'mlp']);
  });

  it("maps exactly the checkpoint's tensors, A_log and dt_bias included", async () => {
    const { weightMap, storedShapes } = importHfConfig(tiny(), 'tiny');
    const file = await openSafetensors(`${DIR}/model.safetensors`);
    const stored = file.listTensors();
    await file.close();
    expect(Object.values(weightMap).sort()).toEqual(stored.map((t) => t.name).sort());
    const shapeOf = new Map(stored.map((t) => [t.name, t.shape]));
    for (const [canonical, shape] of Object.entries(storedShapes)) {
      expect(shapeOf.get(weightMap[canonical]!), canonical).toEqual(shape);
    }
    expect(weightMap['model.layers.0.attn.A_log']).toBe('model.layers.0.attn.A_log');
  });

  it("defaults num_v_heads to num_heads and reads fla's other defaults", () => {
    const { num_v_heads: _v, use_gate: _g, allow_neg_eigval: _n, ...rest } = tiny();
    const m = importHfConfig({ ...rest, use_short_conv: false }, 'tiny').model;
    expect(m.layers[0].mixer).toMatchObject({
      heads: 2,
      valueHeads: 2,
      valueHeadDim: 8,
      dConv: null,
      allowNegEigval: false,
      outputGate: true,
    });
    const ungated = importHfConfig({ ...tiny(), use_gate: false }, 'tiny');
    expect(Object.values(ungated.weightMap).some((n) => n.includes('g_proj'))).toBe(false);
  });

  it('refuses what it cannot honour, naming the key and value', () => {
    expect(() => importHfConfig({ ...tiny(), num_v_heads: 3 }, 'tiny')).toThrow(
      "config key 'num_v_heads' 3 is not a multiple of num_heads 2",
    );
    expect(() => importHfConfig({ ...tiny(), expand_v: 0.3 }, 'tiny')).toThrow(
      "config key 'expand_v' 0.3 times head_dim 16 is not a positive whole number",
    );
    // Keys of fla's DeltaNet that its Gated DeltaNet does not have are unknown here.
    expect(() => importHfConfig({ ...tiny(), qk_activation: 'relu' }, 'tiny')).toThrow(
      "config key 'qk_activation' is not understood",
    );
  });
});
