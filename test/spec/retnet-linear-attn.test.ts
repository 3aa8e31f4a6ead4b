/**
 * retnet(...) and linear_attn(...) in the DSL, YAML, the printer and `strata check`'s table, and
 * specs/retnet-1.3b.strata against the import of fla-hub/retnet-1.3B-100B's published config
 * (https://huggingface.co/fla-hub/retnet-1.3B-100B/blob/main/config.json).
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { LinearAttnSpec } from '../../src/mixers/linear-attn.ts';
import type { RetNetSpec } from '../../src/mixers/retnet.ts';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import { countParams } from '../../src/spec/params.ts';
import { layerTable } from '../../src/spec/table.ts';
import { importConfigFile } from '../helpers/hf-config.ts';
import { blamed, bodyError, mixerOf, resolve, roundTrip, specError } from './helpers.ts';

describe('retnet(...)', () => {
  it("defaults like fla's RetNetConfig, head widths from dim (expand_k 1, expand_v 2)", () => {
    const expected: RetNetSpec = {
      kind: 'retnet',
      heads: 8,
      kvHeads: 8,
      keyHeadDim: 8,
      valueHeadDim: 16,
      decayExponent: 5,
      ropeTheta: 10000,
      outputGate: true,
      gateAct: 'silu',
      normEps: 1e-6,
    };
    expect(mixerOf('retnet')).toEqual(expected);
    expect(mixerOf('retnet(heads: 2, kv_heads: 1)')).toMatchObject({
      kvHeads: 1,
      keyHeadDim: 32,
      valueHeadDim: 64,
    });
  });

  it('names what is wrong: kv heads, an odd key head, a dim heads do not divide', () => {
    expect(bodyError('mixer m = retnet(heads: 4, kv_heads: 3)\nlayers 2 x m').message).toContain(
      'heads (4) must be a multiple of kv_heads (3)',
    );
    const odd = bodyError('mixer m = retnet(heads: 2, key_head_dim: 7)\nlayers 2 x m');
    expect(odd.message).toContain('key_head_dim must be even (RoPE rotates pairs of it), got 7');
    expect(blamed(odd)).toBe('key_head_dim: 7');
    expect(bodyError('mixer m = retnet(heads: 5)\nlayers 2 x m').message).toContain(
      'key_head_dim (dim 64) is not a multiple of heads 5; give key_head_dim',
    );
    expect(bodyError('mixer m = retnet(gate_act: swish)\nlayers 2 x m').message).toContain(
      "unknown activation 'swish'",
    );
  });

  it('prints back to text and YAML that resolve to the same model, with a table line', () => {
    const m = resolve(
      [
        'mixer ret  = retnet(heads: 4, kv_heads: 2, key_head_dim: 16, value_head_dim: 8, decay_exponent: 6, output_gate: false)',
        'mixer attn = attention(heads: 4)',
        'layers 2 x [1 ret : 1 attn]',
      ].join('\n'),
    );
    const text = roundTrip(m);
    expect(text).toContain('retnet(\n    heads: 4,\n    kv_heads: 2,');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(parseSpec(JSON.stringify(m), 'm.json')).toEqual(m);
    expect(layerTable(m)).toContain('heads 4, kv_heads 2, key 16, value 8, decay 1 - 2^-(6+h)');
  });

  it('rejects a YAML retnet that breaks the schema or the checks', () => {
    const m = resolve('mixer ret = retnet(heads: 2)\nlayers 2 x ret');
    const yaml = (over: Record<string, unknown>) =>
      YAML.stringify({
        ...m,
        layers: m.layers.map((l) => ({ ...l, mixer: { ...l.mixer, ...over } })),
      });
    expect(specError(() => parseSpec(yaml({ gateAct: 'swish' }), 'm.yaml')).message).toContain(
      'gateAct',
    );
    expect(specError(() => parseSpec(yaml({ decayExponent: 0 }), 'm.yaml')).message).toContain(
      'decayExponent',
    );
    expect(specError(() => parseSpec(yaml({ kvHeads: 3 }), 'm.yaml')).message).toContain(
      'heads (2) must be a multiple of kvHeads (3)',
    );
  });
});

describe('linear_attn(...)', () => {
  it('asks for a feature map and defaults the rest like LinearAttentionConfig', () => {
    const expected: LinearAttnSpec = {
      kind: 'linear_attn',
      heads: 4,
      kvHeads: 4,
      keyHeadDim: 16,
      valueHeadDim: 16,
      featureMap: 'elu1',
      normQ: false,
      normK: false,
      normalize: false,
      normEps: 1e-6,
    };
    expect(mixerOf('linear_attn(feature_map: elu1)')).toEqual(expected);
    expect(bodyError('mixer m = linear_attn\nlayers 2 x m').message).toContain(
      "linear_attn(...) needs 'feature_map'",
    );
    const hedgehog = bodyError('mixer m = linear_attn(feature_map: hedgehog)\nlayers 2 x m');
    expect(hedgehog.message).toContain(
      "unknown feature map 'hedgehog' (expected one of elu1, relu, identity)",
    );
    expect(blamed(hedgehog)).toBe('hedgehog');
  });

  it('prints back to text and YAML that resolve to the same model, with a table line', () => {
    const m = resolve(
      [
        'mixer la = linear_attn(feature_map: relu, heads: 2, kv_heads: 1, key_head_dim: 8, norm_q: true, normalize: true)',
        'layers 3 x la',
      ].join('\n'),
    );
    roundTrip(m);
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(layerTable(m)).toContain(
      'heads 2, kv_heads 1, key 8, value 32, relu, sum-norm q, normalized',
    );
  });
});

describe('specs/retnet-1.3b.strata', () => {
  it('is the model the importer makes of the released config', () => {
    const imported = importConfigFile('test/fixtures/configs/retnet-1.3b-100b.json', 'x').model;
    const spec = loadSpec('specs/retnet-1.3b.strata');
    // The model card's 1.35B.
    expect(countParams(spec).total).toBe(1_351_727_104);
    expect(spec.layers.map((l) => [l.mixer, l.ffn])).toEqual(
      imported.layers.map((l) => [l.mixer, l.ffn]),
    );
    expect([spec.norm, spec.vocab, spec.dim, spec.tieEmbeddings, spec.maxContext]).toEqual([
      imported.norm,
      imported.vocab,
      imported.dim,
      imported.tieEmbeddings,
      imported.maxContext,
    ]);
  });
});
