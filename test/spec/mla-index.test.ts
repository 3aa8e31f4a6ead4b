/**
 * mla(index: indexer(...)) (DeepSeek sparse attention) in every spec form: the DSL, the YAML /
 * JSON ModelIR (its schema fragment, with older specs that lack the field loading as dense), and
 * the errors that name the field.
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import { printSpec } from '../../src/spec/print.ts';

const V32 = loadSpec('specs/deepseek-v3.2.strata');

describe('mla index in the spec forms', () => {
  it('YAML and JSON carry the indexer and load back equal', () => {
    expect(parseSpec(stringify(V32), 'v32.yaml')).toEqual(V32);
    expect(parseSpec(JSON.stringify(V32), 'v32.json')).toEqual(V32);
    expect(parseSpec(printSpec(V32), 'v32.strata')).toEqual(V32);
  });

  it('a spec written before the field loads as dense MLA', () => {
    const old = structuredClone(V32) as unknown as { layers: { mixer: Record<string, unknown> }[] };
    for (const l of old.layers) delete l.mixer.index;
    const back = parseSpec(JSON.stringify(old), 'old.json');
    expect(back.layers.every((l) => l.mixer?.kind === 'mla' && l.mixer.index === null)).toBe(true);
  });

  it('errors name the indexer field', () => {
    const bad = structuredClone(V32) as unknown as {
      layers: { mixer: { index: Record<string, unknown> } }[];
    };
    bad.layers[0].mixer.index.topk = 0;
    expect(() => parseSpec(JSON.stringify(bad), 'bad.json')).toThrow(
      /layers\[0\]\.mixer\.index\.topk: must be >= 1, got 0/,
    );
    expect(() =>
      parseSpec(
        'model "m" { vocab 8 dim 8 max_context 16 norm rms(eps: 1e-6) mixer a = mla(heads: 1, q_rank: 4, kv_rank: 4, nope_dim: 2, rope_dim: 2, v_dim: 2, index: indexer(heads: 1, dim: 4)) layers 1 x a }',
        'm.strata',
      ),
    ).toThrow(/m.strata:1:\d+: error: indexer\(...\) needs 'topk'/);
  });
});
