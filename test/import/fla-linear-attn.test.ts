/**
 * fla's linear_attn model type: feature maps by fla's names, the options it refuses, the weight
 * names. The committed fixture's config is read with feature_map set to 'elu' (the regenerated
 * fixture's own value; the first one used hedgehog, which strata refuses).
 */
import { describe, expect, it } from 'vitest';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { expectedTensors } from '../../src/import/names.ts';
import type { LinearAttnSpec } from '../../src/mixers/linear-attn.ts';
import { fixtureConfig } from '../helpers/hf-config.ts';

const tiny = () => ({ ...fixtureConfig('fla/linear_attn/config.json'), feature_map: 'elu' });
const load = (over: Record<string, unknown> = {}) => importHfConfig({ ...tiny(), ...over }, 'tiny');
const mixer = (over: Record<string, unknown> = {}) =>
  load(over).model.layers[0].mixer as LinearAttnSpec;

describe('linear_attn import', () => {
  it('reads the fixture config: 2 heads of 16, elu + 1, the normaliser on', () => {
    const { model } = load();
    const spec: LinearAttnSpec = {
      kind: 'linear_attn',
      heads: 2,
      kvHeads: 2,
      keyHeadDim: 16,
      valueHeadDim: 16,
      featureMap: 'elu1',
      normQ: false,
      normK: false,
      normalize: true,
      normEps: 1e-6,
    };
    expect(model.layers.map((l) => l.mixer)).toEqual([spec, spec]);
    expect(model.layers[1].ffn).toMatchObject({ kind: 'mlp', hidden: 16, act: 'silu' });
  });

  it('maps fla’s relu, identity, norm_q, norm_k and norm_feature_map', () => {
    expect(mixer({ feature_map: 'relu', norm_feature_map: false })).toMatchObject({
      featureMap: 'relu',
      normalize: false,
    });
    expect(mixer({ feature_map: 'identity', norm_q: true, norm_k: true })).toMatchObject({
      featureMap: 'identity',
      normQ: true,
      normK: true,
    });
    // Tying q's and k's maps shares learnt weights; the supported maps have none.
    expect(mixer({ tie_feature_map_qk: true })).toEqual(mixer());
  });

  it('maps onto the checkpoint’s tensors, names and shapes (less the learnt feature maps)', async () => {
    const imp = load();
    const st = await openSafetensors('test/fixtures/fla/linear_attn/model.safetensors');
    // The first fixture's hedgehog maps add feature_map_{q,k}.layer.*; the regenerated one has none.
    const stored = st
      .listTensors()
      .filter((t) => !t.name.includes('.feature_map_'))
      .map((t) => `${t.name} [${t.shape}]`);
    await st.close();
    const expected = expectedTensors(imp.model).map(
      (t) => `${imp.weightMap[t.name]} [${imp.storedShapes[t.name] ?? t.shape}]`,
    );
    expect(expected.sort()).toEqual(stored.sort());
  });

  it('refuses fla’s learnt feature maps and unknown ones, naming the key and value', () => {
    for (const map of ['hedgehog', 't2r', 'elementwise_product', 'dpfp', 'elu1', 'softmax']) {
      expect(() => load({ feature_map: map })).toThrow(
        `config key 'feature_map' is "${map}"; strata supports elu, relu, identity (fla's learnt maps hedgehog, t2r, elementwise_product and dpfp are not implemented)`,
      );
    }
  });

  it('refuses the learnt default map when the config leaves feature_map out', () => {
    const { feature_map: _f, ...rest } = tiny();
    expect(() => importHfConfig(rest, 'tiny')).toThrow(
      `config key 'feature_map' is "elementwise_product"`,
    );
  });

  it('shares key/value heads over groups and refuses uneven widths and unknown keys', () => {
    expect(mixer({ num_heads: 4, num_kv_heads: 1 })).toMatchObject({
      heads: 4,
      kvHeads: 1,
      keyHeadDim: 8,
      valueHeadDim: 8,
    });
    expect(() => load({ expand_v: 0.3 })).toThrow(
      "config key 'expand_v' 0.3 gives a width of 19, not a positive multiple of num_heads 2",
    );
    expect(() => load({ output_norm: 'identity' })).toThrow("config key 'output_norm'");
  });
});
