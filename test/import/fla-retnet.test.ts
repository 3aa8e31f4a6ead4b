/** fla's retnet model type: the golden fixture's config, the options it refuses, the weight names. */
import { describe, expect, it } from 'vitest';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { importHfConfig, type HfImport } from '../../src/import/hf.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { retnetLogDecays, type RetNetSpec } from '../../src/mixers/retnet.ts';
import { fixtureConfig } from '../helpers/hf-config.ts';
import { mlp } from '../helpers/models.ts';

const tiny = () => fixtureConfig('fla/retnet/config.json');
const load = (over: Record<string, unknown> = {}) => importHfConfig({ ...tiny(), ...over }, 'tiny');

const byName = ([a]: [string, unknown], [b]: [string, unknown]) => (a < b ? -1 : a > b ? 1 : 0);

/** The checkpoint's tensor names and shapes as the import expects them. */
function expectedStored(imp: HfImport): [string, number[]][] {
  return expectedTensors(imp.model)
    .map((t): [string, number[]] => [imp.weightMap[t.name], imp.storedShapes[t.name] ?? t.shape])
    .sort(byName);
}

describe('retnet import', () => {
  it('reads the golden fixture config: 2 heads of key 16 and value 16, swish gate', () => {
    const { model } = load();
    const spec: RetNetSpec = {
      kind: 'retnet',
      heads: 2,
      kvHeads: 2,
      keyHeadDim: 16,
      valueHeadDim: 16,
      decayExponent: 5,
      ropeTheta: 10000,
      outputGate: true,
      gateAct: 'silu',
      normEps: 1e-6,
    };
    expect(model.layers.map((l) => l.mixer)).toEqual([spec, spec]);
    expect(model.layers[0].ffn).toEqual(mlp({ hidden: 16 }));
    expect(model.norm).toEqual({ kind: 'rms', eps: 1e-6, unitOffset: false, bias: false });
    expect(model.tieEmbeddings).toBe(false);
  });

  it('maps onto exactly the checkpoint’s tensors, names and shapes', async () => {
    const st = await openSafetensors('test/fixtures/fla/retnet/model.safetensors');
    const stored = st.listTensors().map((t): [string, number[]] => [t.name, t.shape]);
    await st.close();
    expect(expectedStored(load())).toEqual(stored.sort(byName));
  });

  it('decays are log(1 − 2^(−5−h)) per head, a constant and not a weight', () => {
    const d = retnetLogDecays({ heads: 8, decayExponent: 5 });
    for (const [h, g] of d.entries()) expect(g).toBeCloseTo(Math.log(1 - 2 ** (-5 - h)), 7);
    expect(expectedTensors(load().model).some((t) => t.name.includes('decay'))).toBe(false);
  });

  it('names the plain g_norm where fla does not fuse the norm with a swish gate', () => {
    const names = (over: Record<string, unknown>) => Object.values(load(over).weightMap);
    expect(names({ fuse_norm: false })).toContain('model.layers.0.attn.g_norm.weight');
    expect((load().model.layers[0].mixer as RetNetSpec).gateAct).toBe('silu');
    // fla's GatedMLP raises on any hidden_act but swish and powlu, 'silu' spelled so included.
    expect(() => load({ hidden_act: 'silu' })).toThrow(/'hidden_act' must be swish \(got 'silu'\)/);
    const ungated = load({ use_output_gate: false });
    expect((ungated.model.layers[0].mixer as RetNetSpec).outputGate).toBe(false);
    const ungatedNames = Object.values(ungated.weightMap);
    expect(ungatedNames).toContain('model.layers.0.attn.g_norm.weight');
    expect(ungatedNames.some((n) => n.includes('g_proj'))).toBe(false);
  });

  it('puts softmax attention where the hybrid attn key says', () => {
    const imp = load({ attn: { layers: [1], num_heads: 4, num_kv_heads: 2, window_size: 8 } });
    expect(imp.model.layers.map((l) => l.mixer?.kind)).toEqual(['retnet', 'attention']);
    expect(imp.weightMap['model.layers.1.self_attn.k_proj.weight']).toBe(
      'model.layers.1.attn.k_proj.weight',
    );
    expect(imp.weightMap['model.layers.0.attn.g_proj.weight']).toBe(
      'model.layers.0.attn.g_proj.weight',
    );
  });

  it('shares key/value heads over groups of query heads (num_kv_heads)', () => {
    const imp = load({ num_heads: 4, num_kv_heads: 2 });
    expect(imp.model.layers[0].mixer).toMatchObject({ heads: 4, kvHeads: 2, keyHeadDim: 8 });
    const shapes = Object.fromEntries(expectedStored(imp));
    expect(shapes['model.layers.0.attn.q_proj.weight']).toEqual([32, 64]);
    expect(shapes['model.layers.0.attn.k_proj.weight']).toEqual([16, 64]);
    expect(shapes['model.layers.0.attn.v_proj.weight']).toEqual([16, 64]);
  });

  it('takes RetNetConfig’s defaults for absent keys (hidden_ratio 2, expand_v 2)', () => {
    const { hidden_ratio: _r, intermediate_size: _i, expand_k: _k, expand_v: _v, ...rest } = tiny();
    const { model } = importHfConfig(rest, 'tiny');
    expect(model.layers[0].mixer).toMatchObject({ keyHeadDim: 32, valueHeadDim: 64 });
    // GatedMLP: int(64 · 2 · 2/3) = 85, rounded up to 256.
    expect(model.layers[0].ffn).toMatchObject({ hidden: 256 });
  });

  it('refuses a feature map, a width heads do not divide, and unknown keys, by name', () => {
    expect(() => load({ feature_map: 'relu' })).toThrow(
      `config key 'feature_map' is "relu"; strata's retnet supports only null (none)`,
    );
    expect(() => load({ expand_k: 0.4 })).toThrow(
      "config key 'expand_k' 0.4 gives a width of 25, not a positive multiple of num_heads 2",
    );
    expect(() => load({ num_kv_heads: 3 })).toThrow(
      "config key 'num_kv_heads' 3 does not divide num_heads 2",
    );
    expect(() => load({ decay_gamma: 0.9 })).toThrow("config key 'decay_gamma'");
  });

  it('accepts use_l2warp: fla’s L2Wrap returns the loss unchanged (only the gradient differs)', () => {
    expect(() => load({ use_l2warp: true })).not.toThrow();
  });

  it('ignores what fla’s RetNet never reads: short-conv keys and legacy ones', () => {
    const imp = load({
      use_short_conv: true,
      conv_size: 3,
      share_conv_kernel: true,
      rms_norm_eps: 1,
    });
    expect(imp.model).toEqual(load().model);
  });
});
