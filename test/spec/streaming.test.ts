/** `attention(window: W, sink_tokens: S)`: StreamingLLM's sinks and rolling window in every form. */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseSpec } from '../../src/spec/load.ts';
import { blamed, bodyError, mixerOf, resolve, roundTrip } from './helpers.ts';

describe('sink_tokens', () => {
  it('resolves, prints and reloads from the DSL, YAML and JSON', () => {
    const m = resolve('mixer a = attention(heads: 4, window: 32, sink_tokens: 4)\nlayers 2 x a');
    expect(m.layers[0].mixer).toMatchObject({ window: 32, sinkTokens: 4 });
    expect(roundTrip(m)).toContain('sink_tokens: 4');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(parseSpec(JSON.stringify(m), 'm.json')).toEqual(m);
  });

  it('defaults to none; 0 keeps a ring of the window alone', () => {
    expect(mixerOf('attention(heads: 4)')).toMatchObject({ sinkTokens: null });
    expect(mixerOf('attention(heads: 4, window: 8, sink_tokens: 0)')).toMatchObject({
      sinkTokens: 0,
    });
  });

  it('a spec written before sink_tokens (JSON without the key) loads with none', () => {
    const m = resolve('mixer a = attention(heads: 4, window: 32)\nlayers 1 x a');
    const json = JSON.parse(JSON.stringify(m)) as { layers: { mixer: Record<string, unknown> }[] };
    delete json.layers[0].mixer.sinkTokens;
    expect(parseSpec(JSON.stringify(json), 'old.json')).toEqual(m);
  });

  it('needs a window on causal attention, and names the setting', () => {
    const e = bodyError('mixer a = attention(heads: 4, sink_tokens: 4)\nlayers 1 x a');
    expect(e.message).toMatch(/sink_tokens 4 needs a rolling window: set window/);
    expect(blamed(e)).toBe('sink_tokens: 4');
    const nc = bodyError(
      'mixer a = attention(heads: 4, window: 8, causal: false, sink_tokens: 2)\nlayers 1 x a',
    );
    expect(nc.message).toMatch(/on causal attention/);
    expect(
      bodyError('mixer a = attention(heads: 4, window: 8, sink_tokens: -1)\nlayers 1 x a').message,
    ).toMatch(/sink_tokens/);
  });
});
