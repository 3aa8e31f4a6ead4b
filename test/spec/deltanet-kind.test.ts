/** gated_deltanet(...) and attention's output_gate in the DSL, YAML, the printer and the importer. */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import type { GatedDeltaNetSpec } from '../../src/spec/model.ts';
import { countParams } from '../../src/spec/params.ts';
import { bodyError, mixerOf, resolve, roundTrip } from './helpers.ts';
import { importConfigFile } from '../helpers/hf-config.ts';

describe('gated_deltanet(...)', () => {
  it("defaults like Qwen3NextConfig's linear_* keys", () => {
    const expected: GatedDeltaNetSpec = {
      kind: 'gated_deltanet',
      keyHeads: 16,
      valueHeads: 32,
      keyHeadDim: 128,
      valueHeadDim: 128,
      dConv: 4,
      normEps: 1e-6,
    };
    expect(mixerOf('gated_deltanet')).toEqual(expected);
  });

  it('checks that key heads divide value heads and names misspelt parameters', () => {
    expect(
      bodyError('mixer m = gated_deltanet(key_heads: 3, value_heads: 4)\nlayers 2 x m').message,
    ).toContain('value_heads (4) must be a multiple of key_heads (3)');
    expect(bodyError('mixer m = gated_deltanet(key_head: 3)\nlayers 2 x m').message).toContain(
      "did you mean 'key_heads'?",
    );
  });

  it('prints back to text and YAML that resolve to the same model', () => {
    const m = resolve(
      [
        'mixer dn   = gated_deltanet(key_heads: 2, value_heads: 4, key_head_dim: 16, value_head_dim: 8, d_conv: 3)',
        'mixer attn = attention(heads: 4, qk_norm: true, output_gate: true)',
        'layers 2 x [3 dn : 1 attn]',
      ].join('\n'),
      'vocab 256\n  dim 64\n  max_context 128\n  norm rms(eps: 1e-6, unit_offset: true)',
    );
    const text = roundTrip(m);
    expect(text).toContain('mixer dn   = gated_deltanet(\n    key_heads: 2,\n    value_heads: 4,');
    expect(text).toContain('output_gate: true');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
  });

  it('loads YAML written before output_gate existed (it defaults to false)', () => {
    const m = resolve('mixer attn = attention(heads: 4)\nlayers 2 x attn');
    const old = YAML.stringify(m).replace(/\n\s*outputGate: false/g, '');
    expect(old).not.toContain('outputGate');
    expect(parseSpec(old, 'old.yaml')).toEqual(m);
  });
});

describe('specs/qwen3-next-80b-a3b.strata', () => {
  it('is the model the importer makes of the released config', () => {
    const file = 'test/fixtures/configs/qwen3-next-80b-a3b.json';
    const imported = importConfigFile(file, 'x').model;
    const spec = loadSpec('specs/qwen3-next-80b-a3b.strata');
    expect(countParams(spec).total).toBe(79_674_391_296);
    expect(spec.layers.map((l) => [l.mixer, l.ffn])).toEqual(
      imported.layers.map((l) => [l.mixer, l.ffn]),
    );
    expect(spec.norm).toEqual(imported.norm);
  });
});
