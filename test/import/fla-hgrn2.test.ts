/** fla's hgrn2 model type: sizes, the per-layer lower bounds read out of lower_bounds, refusals. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { finishSlice, slicedShape } from '../../src/import/convert.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { expectedTensors } from '../../src/import/names.ts';
import type { Hgrn2Spec } from '../../src/mixers/hgrn2.ts';
import { fixtureConfig } from '../helpers/hf-config.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'fla', 'hgrn2');
const HGRN2 = fixtureConfig('fla/hgrn2/config.json');

const TINY: Hgrn2Spec = {
  kind: 'hgrn2',
  heads: 4,
  keyHeadDim: 16,
  valueHeadDim: 16,
  dConv: null,
  lowerBound: true,
  // fla's rms_norm_linear default: HGRN2Attention never passes norm_eps to it.
  normEps: 1e-5,
};

const imported = (overrides: Record<string, unknown>) =>
  importHfConfig({ ...HGRN2, ...overrides }, 'tiny');

describe('fla hgrn2 import', () => {
  it('reads the golden config: heads = hidden / expand_ratio, every layer an hgrn2', () => {
    const { model } = importHfConfig(HGRN2, 'tiny');
    expect(model.layers.map((l) => l.mixer)).toEqual([TINY, TINY, TINY]);
    expect(model.norm).toEqual({ kind: 'rms', eps: 1e-6, unitOffset: false, bias: false });
  });

  it('reads each layer after the first its lower bound from model.lower_bounds', () => {
    const { weightMap, storedSlices, storedShapes } = importHfConfig(HGRN2, 'tiny');
    const lb = (i: number) => `model.layers.${i}.attn.lower_bound`;
    expect(weightMap[lb(0)]).toBeUndefined();
    for (const i of [1, 2]) {
      expect(weightMap[lb(i)]).toBe('model.lower_bounds');
      expect(storedShapes[lb(i)]).toEqual([3, 64]);
      expect(storedSlices[lb(i)]).toEqual({
        start: [0, 0],
        size: [3, 64],
        cumulativeSoftmax: { row: i },
      });
    }
  });

  it('maps exactly the tensors of the checkpoint, lower_bounds included', async () => {
    const hf = await importHfFolder(DIR);
    const file = await openSafetensors(DIR);
    const stored = file.listTensors().map((t) => t.name);
    const raw = await file.readTensorF32('model.lower_bounds');
    await file.close();
    expect([...new Set(Object.values(hf.weightMap))].sort()).toEqual(stored.sort());
    // Layer 2's bound, computed here as fla does it: cumsum(softmax over layers) − softmax[0].
    const got = await hf.readTensorF32('model.layers.2.attn.lower_bound');
    await hf.close();
    for (const c of [0, 17, 63]) {
      const e = [0, 1, 2].map((r) => Math.exp(raw[r * 64 + c]));
      expect(got[c]).toBeCloseTo((e[1] + e[2]) / (e[0] + e[1] + e[2]), 6);
    }
  });

  it('computes the cumulative softmax post-step and checks its box', () => {
    const s = { start: [0, 0], size: [3, 2], cumulativeSoftmax: { row: 1 } };
    expect(slicedShape('t', s)).toEqual([2]);
    const box = Float32Array.of(0, 1000, 0, 1000, 0, 1000);
    // Equal rows: each softmax weight is 1/3 (the large column must not overflow).
    expect(Array.from(finishSlice('t', box, s)).map((v) => v.toFixed(6))).toEqual([
      '0.333333',
      '0.333333',
    ]);
    expect(Array.from(finishSlice('t', box, { ...s, cumulativeSoftmax: { row: 0 } }))).toEqual([
      0, 0,
    ]);
    expect(() => slicedShape('t', { ...s, cumulativeSoftmax: { row: 3 } })).toThrow(
      'cumulative softmax row 3 is not one of its rows',
    );
    expect(() => slicedShape('t', { ...s, transpose: true })).toThrow('takes no other post-step');
  });

  it('derives heads from num_heads when expand_ratio is null, and reads short convs', () => {
    const { model, storedShapes } = imported({
      expand_ratio: null,
      num_heads: 2,
      use_short_conv: true,
      conv_size: 3,
    });
    expect(model.layers[0].mixer).toEqual({
      ...TINY,
      heads: 2,
      keyHeadDim: 32,
      valueHeadDim: 32,
      dConv: 3,
    });
    expect(storedShapes['model.layers.0.attn.f_conv1d.weight']).toEqual([64, 1, 3]);
  });

  it('has no lower bound without use_lower_bound, and none for attention layers', () => {
    const plain = imported({ use_lower_bound: false }).model;
    expect(expectedTensors(plain).some((t) => t.name.includes('lower_bound'))).toBe(false);
    const hybrid = imported({ attn: { layers: [1], num_heads: 4 } });
    expect(hybrid.model.layers.map((l) => l.mixer?.kind)).toEqual(['hgrn2', 'attention', 'hgrn2']);
    expect(Object.keys(hybrid.storedSlices)).toEqual(['model.layers.2.attn.lower_bound']);
  });

  it('names what it cannot honour', () => {
    expect(() => imported({ expand_ratio: 24 })).toThrow(
      "config key 'expand_ratio' 24 does not divide hidden_size 64",
    );
    expect(() => imported({ expand_ratio: null, num_heads: null })).toThrow(
      "config key 'expand_ratio' is null and num_heads is not given",
    );
    expect(() => imported({ expand_ratio: null, num_heads: 5 })).toThrow(
      "config key 'num_heads' 5 does not divide hidden_size 64",
    );
    expect(() => imported({ use_short_conv: true, conv_size: 1 })).toThrow(
      "config key 'conv_size' must be at least 2",
    );
    expect(() => imported({ feature_map: 'relu' })).toThrow(
      "config key 'feature_map' is not understood",
    );
  });
});
