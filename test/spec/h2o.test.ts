/** `attention(evict: h2o(budget:, recent:))`: H2O eviction in the DSL, YAML and JSON, and its errors. */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseSpec } from '../../src/spec/load.ts';
import { blamed, bodyError, mixerOf, resolve, roundTrip } from './helpers.ts';

describe('evict: h2o', () => {
  it('resolves, prints and reloads from the DSL, YAML and JSON', () => {
    const m = resolve(
      'mixer a = attention(heads: 4, sink_tokens: 4, evict: h2o(budget: 64, recent: 16))\nlayers 2 x a',
    );
    expect(m.layers[0].mixer).toMatchObject({
      window: null,
      sinkTokens: 4,
      evict: { kind: 'h2o', budget: 64, recent: 16 },
    });
    expect(roundTrip(m)).toContain('evict: h2o(budget: 64, recent: 16)');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(parseSpec(JSON.stringify(m), 'm.json')).toEqual(m);
  });

  it('defaults to none; recent defaults to half the budget (the paper split)', () => {
    expect(mixerOf('attention(heads: 4)')).toMatchObject({ evict: null });
    expect(mixerOf('attention(heads: 4, evict: h2o(budget: 33))')).toMatchObject({
      evict: { kind: 'h2o', budget: 33, recent: 16 },
    });
  });

  it('per-layer overrides set or clear it, and print back', () => {
    const m = resolve(
      'mixer a = attention(heads: 4, evict: h2o(budget: 64, recent: 16))\nlayers 3 x a\n' +
        'override layer 1 { a.evict: h2o(budget: 24, recent: 4) }\noverride layer 2 { a.evict: none }',
    );
    expect(m.layers.map((l) => (l.mixer as { evict: unknown }).evict)).toEqual([
      { kind: 'h2o', budget: 64, recent: 16 },
      { kind: 'h2o', budget: 24, recent: 4 },
      null,
    ]);
    expect(parseSpec(roundTrip(m), 'again.strata')).toEqual(m);
  });

  it('a spec written before evict (JSON without the key) loads with none', () => {
    const m = resolve('mixer a = attention(heads: 4)\nlayers 1 x a');
    const json = JSON.parse(JSON.stringify(m)) as { layers: { mixer: Record<string, unknown> }[] };
    delete json.layers[0].mixer.evict;
    expect(parseSpec(JSON.stringify(json), 'old.json')).toEqual(m);
  });

  it('a policy that cannot work names the setting and the limit, where it is written', () => {
    const small = bodyError(
      'mixer a = attention(heads: 4, sink_tokens: 4, evict: h2o(budget: 12, recent: 8))\nlayers 1 x a',
    );
    expect(small.message).toMatch(/h2o budget 12 must exceed recent 8 \+ sink_tokens 4 \(= 12\)/);
    expect(blamed(small)).toBe('budget: 12');
    expect(small.message).toMatch(/:\d+:\d+/);
    const win = bodyError(
      'mixer a = attention(heads: 4, window: 16, evict: h2o(budget: 32))\nlayers 1 x a',
    );
    expect(win.message).toMatch(
      /evict h2o takes no window \(got 16\): its recent tokens are the window/,
    );
    expect(blamed(win)).toBe('window: 16');
    expect(
      bodyError('mixer a = attention(heads: 4, causal: false, evict: h2o(budget: 8))\nlayers 1 x a')
        .message,
    ).toMatch(/evict h2o needs causal attention/);
    expect(
      bodyError('mixer a = attention(heads: 4, sinks: true, evict: h2o(budget: 8))\nlayers 1 x a')
        .message,
    ).toMatch(/learned attention sinks is not supported/);
    expect(
      bodyError('mixer a = attention(heads: 4, evict: h2o(budget: 0))\nlayers 1 x a').message,
    ).toMatch(/budget/);
    expect(
      bodyError('mixer a = attention(heads: 4, evict: h2o(recent: 3))\nlayers 1 x a').message,
    ).toMatch(/h2o\(\.\.\.\) needs 'budget'/);
    expect(
      bodyError('mixer a = attention(heads: 4, evict: h2p(budget: 3))\nlayers 1 x a').message,
    ).toMatch(/h2p.*did you mean 'h2o'/);
  });

  it('the JSON form checks the same rules', () => {
    const m = resolve(
      'mixer a = attention(heads: 4, evict: h2o(budget: 8, recent: 2))\nlayers 1 x a',
    );
    const json = JSON.parse(JSON.stringify(m)) as {
      layers: { mixer: { evict: { budget: number } } }[];
    };
    json.layers[0].mixer.evict.budget = 2;
    expect(() => parseSpec(JSON.stringify(json), 'bad.json')).toThrow(
      /h2o budget 2 must exceed recent 2/,
    );
  });
});
