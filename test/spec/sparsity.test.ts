/**
 * `attention(pattern: block_sparse(block:, layout:))` and `attention(window:, global:)` in the
 * DSL, YAML and JSON, and their errors at file:line:col.
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseSpec } from '../../src/spec/load.ts';
import { blamed, bodyError, mixerOf, resolve, roundTrip } from './helpers.ts';

describe('pattern: block_sparse', () => {
  it('resolves, prints and reloads from the DSL, YAML and JSON', () => {
    const m = resolve(
      'mixer a = attention(heads: 4, pattern: block_sparse(block: 64, layout: strided(local: 2, stride: 4, global: 1)))\n' +
        'mixer b = attention(heads: 4, pattern: block_sparse(block: 32, layout: local(blocks: 3)))\nlayers 2 x [1 a : 1 b]',
    );
    expect(m.layers[0].mixer).toMatchObject({
      window: null,
      pattern: {
        kind: 'block_sparse',
        block: 64,
        layout: { kind: 'strided', local: 2, stride: 4, global: 1 },
      },
    });
    expect(m.layers[1].mixer).toMatchObject({
      pattern: { block: 32, layout: { kind: 'local', blocks: 3, global: 0 } },
    });
    const text = roundTrip(m);
    expect(text).toContain(
      'pattern: block_sparse(block: 64, layout: strided(local: 2, stride: 4, global: 1))',
    );
    expect(parseSpec(text, 'again.strata')).toEqual(m);
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(parseSpec(JSON.stringify(m), 'm.json')).toEqual(m);
  });

  it('is left out when unset, and overrides set it per layer', () => {
    expect(mixerOf('attention(heads: 4)')).not.toHaveProperty('pattern');
    expect(mixerOf('attention(heads: 4, pattern: none)')).not.toHaveProperty('pattern');
    const m = resolve(
      'mixer a = attention(heads: 4)\nlayers 2 x a\n' +
        'override layer 1 { a.pattern: block_sparse(block: 16, layout: local(blocks: 2)) }',
    );
    expect(m.layers[0].mixer).not.toHaveProperty('pattern');
    expect(m.layers[1].mixer).toMatchObject({ pattern: { block: 16 } });
    expect(parseSpec(roundTrip(m), 'again.strata')).toEqual(m);
  });

  it('settings that cannot work name the setting and the limit, where written', () => {
    const win = bodyError(
      'mixer a = attention(heads: 4, window: 128, pattern: block_sparse(block: 64, layout: local(blocks: 2)))\nlayers 1 x a',
    );
    expect(win.message).toMatch(/pattern block_sparse takes no window: its layout's local band/);
    expect(blamed(win)).toBe('window: 128');
    expect(win.message).toMatch(/m\.strata:\d+:\d+: error/);
    const stride = bodyError(
      'mixer a = attention(heads: 4, pattern: block_sparse(block: 64, layout: strided(local: 4, stride: 3)))\nlayers 1 x a',
    );
    expect(stride.message).toMatch(/stride 3 must exceed local 4/);
    expect(blamed(stride)).toBe('stride: 3');
    const big = bodyError(
      'mixer a = attention(heads: 4, pattern: block_sparse(block: 100000, layout: local(blocks: 1)))\nlayers 1 x a',
    );
    expect(big.message).toMatch(/block must be an integer from 1 to 65536, got 100000/);
    expect(blamed(big)).toBe('block: 100000');
    expect(
      bodyError(
        'mixer a = attention(heads: 4, pattern: block_sparse(block: 8, layout: local(blocks: 0)))\nlayers 1 x a',
      ).message,
    ).toMatch(/blocks must be an integer of at least 1, got 0/);
    expect(
      bodyError(
        'mixer a = attention(heads: 4, pattern: block_sparse(block: 8, layout: lokal(blocks: 1)))\nlayers 1 x a',
      ).message,
    ).toMatch(/unknown block layout kind 'lokal', did you mean 'local'/);
    expect(
      bodyError('mixer a = attention(heads: 4, pattern: block_sparse(block: 8))\nlayers 1 x a')
        .message,
    ).toMatch(/block_sparse\(\.\.\.\) needs 'layout'/);
  });

  it('offsets: an explicit list of block distances prints as a list and reloads', () => {
    const m = resolve(
      'mixer a = attention(heads: 4, pattern: block_sparse(block: 16, layout: offsets(keep: [0, 1, 4, 16], global: 2)))\nlayers 1 x a',
    );
    expect(m.layers[0].mixer).toMatchObject({
      pattern: { layout: { kind: 'offsets', keep: [0, 1, 4, 16], global: 2 } },
    });
    const text = roundTrip(m);
    expect(text).toContain('offsets(keep: [0, 1, 4, 16], global: 2)');
    expect(parseSpec(text, 'again.strata')).toEqual(m);
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    const no0 = bodyError(
      'mixer a = attention(heads: 4, pattern: block_sparse(block: 16, layout: offsets(keep: [1, 2])))\nlayers 1 x a',
    );
    expect(no0.message).toMatch(/keep must include 0, the query's own block/);
    expect(blamed(no0)).toBe('keep: [1, 2]');
    expect(
      bodyError(
        'mixer a = attention(heads: 4, pattern: block_sparse(block: 16, layout: offsets(keep: [0, -1])))\nlayers 1 x a',
      ).message,
    ).toMatch(/keep must list integers of at least 0/);
    expect(
      bodyError(
        'mixer a = attention(heads: 4, pattern: block_sparse(block: 16, layout: offsets(keep: 3)))\nlayers 1 x a',
      ).message,
    ).toMatch(/keep must be a list of integers of at least 0, got 3/);
  });

  it('the JSON form checks the same rules', () => {
    const m = resolve(
      'mixer a = attention(heads: 4, pattern: block_sparse(block: 8, layout: strided(local: 1, stride: 2)))\nlayers 1 x a',
    );
    const json = JSON.parse(JSON.stringify(m)) as {
      layers: { mixer: { pattern: { layout: { stride: number } }; window: number | null } }[];
    };
    json.layers[0].mixer.pattern.layout.stride = 1;
    expect(() => parseSpec(JSON.stringify(json), 'bad.json')).toThrow(/stride/);
    json.layers[0].mixer.pattern.layout.stride = 2;
    json.layers[0].mixer.window = 16;
    expect(() => parseSpec(JSON.stringify(json), 'bad.json')).toThrow(
      /pattern block_sparse takes no window/,
    );
  });
});

describe('pattern: block_sparse with BigBird random blocks', () => {
  const bb = (random: string, layout = 'local(blocks: 3, global: 2)') =>
    `mixer a = attention(heads: 4, pattern: block_sparse(block: 64, layout: ${layout}, random: ${random}))\nlayers 1 x a`;

  it('resolves, prints and reloads from the DSL, YAML and JSON', () => {
    const m = resolve(bb('random(r: 3, seed: 42)'));
    expect(m.layers[0].mixer).toMatchObject({
      pattern: {
        block: 64,
        layout: { kind: 'local', blocks: 3, global: 2 },
        random: { kind: 'random', r: 3, seed: 42 },
      },
    });
    const text = roundTrip(m);
    expect(text).toContain('random: random(r: 3, seed: 42)');
    expect(parseSpec(text, 'again.strata')).toEqual(m);
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(parseSpec(JSON.stringify(m), 'm.json')).toEqual(m);
    // seed defaults to 0; a pattern without random blocks has no random key.
    expect(resolve(bb('random(r: 1)')).layers[0].mixer).toMatchObject({
      pattern: { random: { r: 1, seed: 0 } },
    });
    expect(
      mixerOf('attention(heads: 4, pattern: block_sparse(block: 8, layout: local(blocks: 1)))'),
    ).not.toHaveProperty('pattern.random');
  });

  it('settings that cannot work name the setting and the limit, where written', () => {
    const neg = bodyError(bb('random(r: -1)'));
    expect(neg.message).toMatch(
      /m\.strata:\d+:\d+: error.*r must be an integer of at least 1, got -1/s,
    );
    expect(blamed(neg)).toBe('-1');
    expect(bodyError(bb('random(r: 1.5)')).message).toMatch(
      /r must be an integer of at least 1, got 1\.5/,
    );
    expect(bodyError(bb('random(r: 2, seed: -3)')).message).toMatch(
      /seed must be an integer of at least 0/,
    );
    const many = bodyError(bb('random(r: 17)'));
    expect(many.message).toMatch(/random r must be an integer from 1 to 16, got 17/);
    expect(many.message).toMatch(/m\.strata:\d+:\d+: error/);
    const seed = bodyError(bb('random(r: 2, seed: 4294967296)'));
    expect(seed.message).toMatch(/seed must be an integer from 0 to 4294967295 \(a u32\)/);
    const strided = bodyError(bb('random(r: 2)', 'strided(local: 1, stride: 3)'));
    expect(strided.message).toMatch(
      /random blocks combine with a local layout \(BigBird: window \+ global \+ random\), not strided/,
    );
    expect(bodyError(bb('rand(r: 2)')).message).toMatch(/unknown random block draw kind 'rand'/);
  });

  it('the JSON form checks the same rules', () => {
    const m = resolve(bb('random(r: 3, seed: 1)'));
    const json = JSON.parse(JSON.stringify(m)) as {
      layers: { mixer: { pattern: { random: { r: number } } } }[];
    };
    json.layers[0].mixer.pattern.random.r = 0;
    expect(() => parseSpec(JSON.stringify(json), 'bad.json')).toThrow(/random/);
    json.layers[0].mixer.pattern.random.r = 2.5;
    expect(() => parseSpec(JSON.stringify(json), 'bad.json')).toThrow(/r/);
  });
});

describe('pattern: block_sparse with per-head random blocks', () => {
  const bb = (random: string) =>
    `mixer a = attention(heads: 4, kv_heads: 2, pattern: block_sparse(block: 64, layout: local(blocks: 3, global: 2), random: ${random}))\nlayers 1 x a`;

  it('per_head: true resolves, prints and reloads from the DSL, YAML and JSON', () => {
    const m = resolve(bb('random(r: 3, seed: 42, per_head: true)'));
    expect(m.layers[0].mixer).toMatchObject({
      pattern: { random: { kind: 'random', r: 3, seed: 42, perHead: true } },
    });
    const text = roundTrip(m);
    expect(text).toContain('random: random(r: 3, seed: 42, per_head: true)');
    expect(parseSpec(text, 'again.strata')).toEqual(m);
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(parseSpec(JSON.stringify(m), 'm.json')).toEqual(m);
  });

  it('defaults to one draw for every head, so existing specs keep their pattern', () => {
    // Absent and false resolve alike, to the IR random blocks had before per_head existed.
    const before = { kind: 'random', r: 3, seed: 1 };
    for (const r of ['random(r: 3, seed: 1)', 'random(r: 3, seed: 1, per_head: false)']) {
      const m = resolve(bb(r));
      expect((m.layers[0].mixer as { pattern: { random: object } }).pattern.random).toEqual(before);
      expect(roundTrip(m)).toContain('random(r: 3, seed: 1)');
      expect(roundTrip(m)).not.toContain('per_head');
    }
  });

  it('bad values name the setting and the limit, where written', () => {
    const notBool = bodyError(bb('random(r: 3, per_head: 1)'));
    expect(notBool.message).toMatch(/m\.strata:\d+:\d+: error.*per_head must be true or false/s);
    expect(blamed(notBool)).toBe('1');
    // The draw's own limits hold per head as they did for the shared draw.
    const many = bodyError(bb('random(r: 17, per_head: true)'));
    expect(many.message).toMatch(/random r must be an integer from 1 to 16, got 17/);
    expect(bodyError(bb('random(r: 2, seed: 4294967296, per_head: true)')).message).toMatch(
      /seed must be an integer from 0 to 4294967295 \(a u32\)/,
    );
    expect(bodyError(bb('random(r: 2, per_hed: true)')).message).toMatch(
      /per_hed.*did you mean 'per_head'/s,
    );
    const strided = bodyError(
      'mixer a = attention(heads: 4, pattern: block_sparse(block: 8, layout: strided(local: 1, stride: 3), random: random(r: 2, per_head: true)))\nlayers 1 x a',
    );
    expect(strided.message).toMatch(/random blocks combine with a local layout/);
  });

  it('the JSON form checks the same rules', () => {
    const m = resolve(bb('random(r: 3, seed: 1, per_head: true)'));
    const json = JSON.parse(JSON.stringify(m)) as {
      layers: { mixer: { pattern: { random: { perHead: unknown } } } }[];
    };
    json.layers[0].mixer.pattern.random.perHead = 'yes';
    expect(() => parseSpec(JSON.stringify(json), 'bad.json')).toThrow(/perHead/);
  });
});

describe('global tokens', () => {
  it('resolves, prints and reloads', () => {
    const m = resolve('mixer a = attention(heads: 4, window: 256, global: 4)\nlayers 1 x a');
    expect(m.layers[0].mixer).toMatchObject({ window: 256, global: 4, sinkTokens: null });
    expect(roundTrip(m)).toContain('global: 4');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(parseSpec(roundTrip(m), 'again.strata')).toEqual(m);
  });

  it('nonsense settings name the setting and the limit', () => {
    const noWin = bodyError('mixer a = attention(heads: 4, global: 4)\nlayers 1 x a');
    expect(noWin.message).toMatch(
      /global 4 needs a window: without one every query sees every key/,
    );
    expect(blamed(noWin)).toBe('global: 4');
    expect(
      bodyError('mixer a = attention(heads: 4, window: 4, global: 4)\nlayers 1 x a').message,
    ).toMatch(/global 4 must be smaller than window 4/);
    expect(
      bodyError(
        'mixer a = attention(heads: 4, window: 64, sink_tokens: 2, global: 4)\nlayers 1 x a',
      ).message,
    ).toMatch(/global 4 cannot be combined with sink_tokens: give one of them/);
    expect(
      bodyError('mixer a = attention(heads: 4, window: 64, global: 0)\nlayers 1 x a').message,
    ).toMatch(/global must be an integer of at least 1/);
  });
});
