/** fla's gla model type: the golden fixtures' configs, the hybrid attn key, options and refusals. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { expectedTensors } from '../../src/import/names.ts';
import type { GlaSpec } from '../../src/mixers/gla.ts';
import type { AttentionSpec } from '../../src/spec/model.ts';
import { fixtureConfig } from '../helpers/hf-config.ts';
import { mlp } from '../helpers/models.ts';

const FLA = join(import.meta.dirname, '..', 'fixtures', 'fla');
const GLA = fixtureConfig('fla/gla/config.json');
const HYBRID = fixtureConfig('fla/gla_hybrid/config.json');

const TINY_GLA: GlaSpec = {
  kind: 'gla',
  heads: 2,
  kvHeads: 1,
  keyHeadDim: 16,
  valueHeadDim: 16,
  featureMap: null,
  dConv: null,
  outputGate: true,
  gateRank: 16,
  gateNormalizer: 16,
  clampMin: null,
  normEps: 1e-6,
};

const imported = (overrides: Record<string, unknown>) =>
  importHfConfig({ ...GLA, ...overrides }, 'tiny');

describe('fla gla import', () => {
  it('reads the golden config: 2 query heads over 1 kv head, widths from expand_k/expand_v', () => {
    const { model } = importHfConfig(GLA, 'tiny');
    expect(model.layers.map((l) => l.mixer)).toEqual([TINY_GLA, TINY_GLA]);
    expect(model.layers[0].ffn).toEqual(mlp({ hidden: 16 }));
    expect(model).toMatchObject({
      vocab: 256,
      dim: 64,
      tieEmbeddings: false,
      norm: { kind: 'rms', eps: 1e-6 },
    });
  });

  it('puts fla attention at the layers the attn key lists', () => {
    const { model } = importHfConfig(HYBRID, 'tiny');
    expect(model.layers.map((l) => l.mixerName)).toEqual(['gla', 'attn']);
    expect(model.layers[0].mixer).toEqual(TINY_GLA);
    const attn = model.layers[1].mixer as AttentionSpec;
    expect(attn).toMatchObject({
      heads: 4,
      kvHeads: 2,
      headDim: 16,
      window: 8,
      qkvBias: false,
      rope: { theta: 10000, rotaryDim: 16 },
    });
  });

  it.each(['gla', 'gla_hybrid'])('maps exactly the tensors of the %s checkpoint', async (f) => {
    const dir = join(FLA, f);
    const hf = await importHfFolder(dir);
    await hf.close();
    const file = await openSafetensors(dir);
    const stored = file.listTensors().map((t) => t.name);
    await file.close();
    expect(Object.values(hf.weightMap).sort()).toEqual(stored.sort());
    expect(hf.weightMap['model.layers.0.attn.gk_proj.1.bias']).toBe(
      'model.layers.0.attn.gk_proj.1.bias',
    );
  });

  it('maps feature maps, short convs, a log-gate floor and the unfused output norm', () => {
    const { model, weightMap, storedShapes } = imported({
      feature_map: 'sqrelu',
      use_short_conv: true,
      conv_size: 3,
      clamp_min: -0.5,
      fuse_norm: false,
    });
    expect(model.layers[0].mixer).toEqual({
      ...TINY_GLA,
      featureMap: 'relu2',
      dConv: 3,
      clampMin: -0.5,
    });
    const p = 'model.layers.0.attn';
    expect(storedShapes[`${p}.k_conv1d.weight`]).toEqual([16, 1, 3]);
    expect(storedShapes[`${p}.q_conv1d.weight`]).toEqual([32, 1, 3]);
    // Unfused, fla's per-head norm is an RMSNorm named g_norm.
    expect(weightMap[`${p}.g_norm_swish_gate.weight`]).toBe(`${p}.g_norm.weight`);
    expect(imported({ feature_map: 'swish' }).model.layers[0].mixer).toMatchObject({
      featureMap: 'silu',
    });
    expect(imported({ feature_map: 'gelu' }).model.layers[0].mixer).toMatchObject({
      featureMap: 'gelu_tanh',
    });
  });

  it('drops g_proj without the output gate, and the norm is g_norm', () => {
    const { model } = imported({ use_output_gate: false });
    const names = expectedTensors(model).map((t) => t.name);
    expect(names).toContain('model.layers.0.attn.g_norm.weight');
    expect(names.some((n) => n.includes('g_proj') || n.includes('swish_gate'))).toBe(false);
  });

  it('reads the older fla-hub keys when they agree with what fla 0.5.2 uses', () => {
    const { model } = imported({ rms_norm_eps: 1e-6, share_conv_kernel: true });
    expect(model.layers[0].mixer).toEqual(TINY_GLA);
  });

  it('names what it cannot honour', () => {
    const refused: [Record<string, unknown>, string][] = [
      [{ feature_map: 'hedgehog' }, "config key 'feature_map' 'hedgehog' is not a feature map"],
      [{ feature_map: 'bias_gelu' }, "config key 'feature_map' 'bias_gelu' takes a bias"],
      [{ clamp_min: 0.5 }, "config key 'clamp_min' is 0.5: a floor above 0"],
      [{ expand_k: 0.3 }, "config key 'expand_k' gives width int(64 × 0.3) = 19"],
      [{ num_kv_heads: 3 }, "config key 'num_kv_heads' 3 does not divide num_heads 2"],
      [{ rms_norm_eps: 1e-5 }, "config key 'rms_norm_eps' (an older fla name) is 0.00001"],
      [
        { use_short_conv: true, share_conv_kernel: true },
        "config key 'share_conv_kernel' is set with use_short_conv",
      ],
      [{ use_short_conv: true, conv_size: 1 }, "config key 'conv_size' must be at least 2"],
      [{ hidden_act: 'gelu' }, "config key 'hidden_act' must be swish"],
      [{ use_gate_norm: true }, "config key 'use_gate_norm' is not understood"],
    ];
    for (const [overrides, message] of refused) {
      expect(() => imported(overrides), JSON.stringify(overrides)).toThrow(message);
    }
  });
});
