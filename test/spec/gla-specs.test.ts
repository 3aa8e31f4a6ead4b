/**
 * gla(...) and hgrn2(...) in the DSL, YAML, the printer and `strata check`'s table, and
 * specs/gla-1.3b-hybrid.strata against the import of fla-hub/gla-1.3B-100B's released config:
 * https://huggingface.co/fla-hub/gla-1.3B-100B/blob/3c83818640f4e84d36cd1a9996c7e6938f6504cb/config.json
 * (test/fixtures/configs/gla-1.3b-100b.json, byte for byte).
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { importHfConfig } from '../../src/import/hf.ts';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import { countParams } from '../../src/spec/params.ts';
import { layerTable } from '../../src/spec/table.ts';
import type { GlaSpec } from '../../src/mixers/gla.ts';
import type { Hgrn2Spec } from '../../src/mixers/hgrn2.ts';
import { fixtureConfig } from '../helpers/hf-config.ts';
import { bodyError, mixerOf, resolve, roundTrip } from './helpers.ts';

describe('gla(...)', () => {
  it("defaults like fla's GLAConfig: 4 heads, expand_k 0.5, expand_v 1, gate rank 16 / 16", () => {
    const expected: GlaSpec = {
      kind: 'gla',
      heads: 4,
      kvHeads: 4,
      keyHeadDim: 8,
      valueHeadDim: 16,
      featureMap: null,
      dConv: null,
      outputGate: true,
      gateRank: 16,
      gateNormalizer: 16,
      clampMin: null,
      normEps: 1e-6,
    };
    expect(mixerOf('gla')).toEqual(expected);
  });

  it('checks its parameters and names misspelt ones', () => {
    expect(bodyError('mixer m = gla(heads: 4, kv_heads: 3)\nlayers 2 x m').message).toContain(
      'heads (4) must be a multiple of kv_heads (3)',
    );
    expect(bodyError('mixer m = gla(feature_map: rleu)\nlayers 2 x m').message).toContain(
      "unknown feature map 'rleu', did you mean 'relu'?",
    );
    expect(bodyError('mixer m = gla(clamp_min: 0.5)\nlayers 2 x m').message).toContain(
      'clamp_min must be a number of at most 0 or none, got 0.5',
    );
    expect(bodyError('mixer m = gla(d_conv: 1)\nlayers 2 x m').message).toContain(
      'd_conv must be an integer of at least 2 or none, got 1',
    );
    expect(bodyError('mixer m = gla(gate_rank: 100000)\nlayers 2 x m').message).toContain(
      'gate_rank',
    );
    expect(bodyError('mixer m = gla(heads: 3)\nlayers 2 x m').message).toContain(
      'key_head_dim (dim × 0.5 = 32) is not a multiple of heads 3; give key_head_dim',
    );
  });

  it('prints back to text and YAML that resolve to the same model, and has a table line', () => {
    const m = resolve(
      [
        'mixer g    = gla(heads: 4, kv_heads: 2, key_head_dim: 8, value_head_dim: 16,',
        '                 feature_map: gelu_tanh, d_conv: 4, clamp_min: -0.5, output_gate: false)',
        'mixer attn = attention(heads: 4)',
        'layers 2 x [3 g : 1 attn]',
      ].join('\n'),
    );
    const text = roundTrip(m);
    expect(text).toContain('feature_map: gelu_tanh');
    expect(text).toContain('clamp_min: -0.5');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(layerTable(m).split('\n')[1]).toContain(
      'heads 4, kv 2, key_head_dim 8, value_head_dim 16, d_conv 4, feature_map gelu_tanh',
    );
  });

  it('refuses in YAML what the DSL refuses', () => {
    const m = resolve('mixer g = gla\nlayers 2 x g');
    const bad = structuredClone(m);
    (bad.layers[0].mixer as GlaSpec).clampMin = 0.25;
    expect(() => parseSpec(YAML.stringify(bad), 'm.yaml')).toThrow('clampMin');
  });
});

describe('hgrn2(...)', () => {
  it("defaults like fla's HGRN2Config: expand_ratio 128, or heads splitting dim", () => {
    const expected: Hgrn2Spec = {
      kind: 'hgrn2',
      heads: 2,
      keyHeadDim: 128,
      valueHeadDim: 128,
      dConv: null,
      lowerBound: true,
      normEps: 1e-6,
    };
    const header = 'vocab 256\n  dim 256\n  max_context 128\n  norm rms(eps: 1e-5)';
    expect(resolve('mixer m = hgrn2\nlayers 2 x m', header).layers[0].mixer).toEqual(expected);
    expect(mixerOf('hgrn2(heads: 4)')).toMatchObject({
      heads: 4,
      keyHeadDim: 16,
      valueHeadDim: 16,
    });
    expect(bodyError('mixer m = hgrn2\nlayers 2 x m').message).toContain(
      'dim 64 does not split into heads of key_head_dim; give heads and key_head_dim',
    );
  });

  it('prints back to text and YAML that resolve to the same model, and has a table line', () => {
    const m = resolve(
      'mixer h = hgrn2(heads: 4, d_conv: 3, lower_bound: false, norm_eps: 1e-5)\nlayers 3 x h',
    );
    const text = roundTrip(m);
    expect(text).toContain('lower_bound: false');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(layerTable(m).split('\n')[1]).toContain(
      'heads 4, key_head_dim 16, value_head_dim 16, d_conv 3',
    );
  });
});

describe('specs/gla-1.3b-hybrid.strata', () => {
  const config = fixtureConfig('configs/gla-1.3b-100b.json');
  const spec = loadSpec('specs/gla-1.3b-hybrid.strata');

  it('has the released GLA-1.3B layers, with attention at every fourth', () => {
    const released = importHfConfig(config, 'gla-1.3B-100B').model;
    expect(countParams(released).total).toBe(1_365_514_240);
    const gla = released.layers[0].mixer;
    expect(spec.layers.map((l) => (l.mixer?.kind === 'gla' ? 'g' : 'a')).join('')).toBe(
      'gggagggagggagggagggaggga',
    );
    for (const [i, layer] of spec.layers.entries()) {
      if (layer.mixer?.kind === 'gla') expect(layer.mixer).toEqual(gla);
      expect(layer.ffn).toEqual(released.layers[i].ffn);
    }
    expect({ ...spec, name: '', layers: [] }).toEqual({ ...released, name: '', layers: [] });
  });

  it("is the import of that config with fla's attn key at layers 3, 7, ..., 23", () => {
    const attn = { layers: [3, 7, 11, 15, 19, 23], num_heads: 16, rope_theta: 10000 };
    const hybrid = importHfConfig({ ...config, attn }, 'gla-1.3b-hybrid').model;
    expect(spec).toEqual(hybrid);
    expect(countParams(spec).total).toBe(1_365_210_112);
  });
});
