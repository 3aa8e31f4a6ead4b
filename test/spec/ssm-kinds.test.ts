/** The state-space mixer kinds: mamba1, mamba2 and shortconv in the DSL, YAML and the printer. */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseSpec } from '../../src/spec/load.ts';
import type { Mamba1Spec, Mamba2Spec, ShortConvSpec } from '../../src/spec/model.ts';
import { blamed, bodyError, mixerOf, resolve, roundTrip } from './helpers.ts';

describe('mamba1(...)', () => {
  it('defaults like MambaConfig: d_inner 2 × dim, d_state 16, d_conv 4, dt_rank ceil(dim / 16)', () => {
    const expected: Mamba1Spec = {
      kind: 'mamba1',
      dInner: 128,
      dState: 16,
      dConv: 4,
      dtRank: 4,
      convBias: true,
      projBias: false,
      innerNorms: null,
    };
    expect(mixerOf('mamba1')).toEqual(expected);
    expect(mixerOf('mamba1()')).toEqual(expected);
  });

  it('takes expand or d_inner, and Jamba-style inner norms', () => {
    expect(mixerOf('mamba1(expand: 3)')).toMatchObject({ dInner: 192 });
    expect(
      mixerOf(
        'mamba1(d_inner: 100, d_state: 8, dt_rank: 7, proj_bias: true, inner_norm_eps: 1e-6)',
      ),
    ).toMatchObject({
      dInner: 100,
      dState: 8,
      dtRank: 7,
      projBias: true,
      innerNorms: { eps: 1e-6 },
    });
    const e = bodyError('mixer m = mamba1(d_inner: 100, expand: 2)\nlayers 2 x m');
    expect(e.message).toContain('give d_inner or expand, not both');
    expect(blamed(e)).toBe('expand: 2');
  });

  it('names a kernel too short to carry state', () => {
    const e = bodyError('mixer m = mamba1(d_conv: 1)\nlayers 2 x m');
    expect(e.message).toContain('d_conv must be at least 2');
    expect(blamed(e)).toBe('d_conv: 1');
  });
});

describe('mamba2(...)', () => {
  it('resolves the brief example with Mamba2Config-like defaults', () => {
    const expected: Mamba2Spec = {
      kind: 'mamba2',
      heads: 8,
      headDim: 64,
      dState: 128,
      groups: 1,
      dConv: 4,
      chunk: 256,
      convBias: true,
      projBias: false,
      normGroup: 512,
      normEps: 1e-5,
      dtMin: 0,
      dtMax: null,
    };
    expect(mixerOf('mamba2(heads: 8, head_dim: 64, d_state: 128)')).toEqual(expected);
  });

  it('derives heads from expand × dim / head_dim, and norm groups from groups', () => {
    expect(mixerOf('mamba2(head_dim: 32)')).toMatchObject({ heads: 4, headDim: 32 });
    expect(mixerOf('mamba2(heads: 8, head_dim: 16, groups: 2)')).toMatchObject({ normGroup: 64 });
    expect(mixerOf('mamba2(heads: 8, head_dim: 16, groups: 2, norm_group: 128)')).toMatchObject({
      normGroup: 128,
    });
    expect(mixerOf('mamba2(heads: 4, dt_min: 0.001, dt_max: 0.1)')).toMatchObject({
      dtMin: 0.001,
      dtMax: 0.1,
    });
  });

  it('names inconsistent parameters', () => {
    const cases: [string, string, string][] = [
      ['mamba2(heads: 6, groups: 4)', 'heads (6) must be a multiple of groups (4)', 'groups: 4'],
      [
        'mamba2(heads: 4, head_dim: 16, norm_group: 48)',
        'norm_group (48) must divide',
        'norm_group: 48',
      ],
      [
        'mamba2(heads: 4, dt_min: 0.5, dt_max: 0.1)',
        'dt_max (0.1) must not be below dt_min (0.5)',
        'dt_max: 0.1',
      ],
      ['mamba2(heads: 4, expand: 2)', 'give heads or expand, not both', 'expand: 2'],
      [
        'mamba2(head_dim: 48)',
        'expand × dim (128) is not a multiple of head_dim 48; give heads',
        'mamba2',
      ],
      ['mamba2(heads: 4, dt_min: -1)', 'dt_min must be a number of at least 0, got -1', '-1'],
    ];
    for (const [def, message, blame] of cases) {
      const e = bodyError(`mixer m = ${def}\nlayers 2 x m`);
      expect(e.message).toContain(message);
      expect(blamed(e)).toBe(blame);
    }
  });
});

describe('shortconv(...)', () => {
  it('defaults like Lfm2Config: a 3-tap conv without bias', () => {
    const expected: ShortConvSpec = { kind: 'shortconv', lCache: 3, bias: false };
    expect(mixerOf('shortconv')).toEqual(expected);
    expect(mixerOf('shortconv(l_cache: 4, bias: true)')).toEqual({
      ...expected,
      lCache: 4,
      bias: true,
    });
  });

  it('names an unknown parameter with a suggestion', () => {
    const e = bodyError('mixer m = shortconv(l_cach: 3)\nlayers 2 x m');
    expect(e.message).toContain(
      "unknown parameter 'l_cach' for shortconv(...), did you mean 'l_cache'?",
    );
  });
});

describe('hybrid layouts', () => {
  const JAMBA_LIKE = [
    'mixer mamba = mamba1(d_state: 16, d_conv: 4, expand: 2)',
    'mixer attn  = attention(heads: 4, kv_heads: 2, rope: none)',
    'ffn   mlp   = swiglu(hidden: 128)',
    'layers 2 x [7 mamba : 1 attn at 4]',
  ].join('\n');

  it('places mamba and attention like Jamba', () => {
    const m = resolve(JAMBA_LIKE);
    expect(m.layers.map((l) => l.mixer?.kind)).toEqual(
      Array.from({ length: 16 }, (_, i) => (i % 8 === 4 ? 'attention' : 'mamba1')),
    );
  });

  it('prints every state-space kind back to text that resolves to the same model', () => {
    const m = resolve(
      [
        'mixer ssm  = mamba2(heads: 8, head_dim: 16, groups: 2, d_state: 32, chunk: 64)',
        'mixer conv = shortconv(l_cache: 4)',
        'mixer m1   = mamba1(dt_rank: 3, inner_norm_eps: 1e-6, conv_bias: false)',
        'mixer attn = attention(heads: 4)',
        'ffn   mlp  = swiglu(hidden: 128)',
        'layers [ssm, conv, m1, attn, ssm, conv]',
        'override layer 4 { ssm.dt_max: 0.1 }',
      ].join('\n'),
    );
    const text = roundTrip(m);
    // heads 8 × head_dim 16 is the default inner width 2 × dim, so heads is left out.
    expect(text).toContain('mixer ssm  = mamba2(head_dim: 16, d_state: 32, groups: 2, chunk: 64)');
    expect(text).toContain('mixer conv = shortconv(l_cache: 4)');
    expect(text).toContain('override layer 4 { ssm.dt_max: 0.1 }');
    expect(roundTrip(resolve(JAMBA_LIKE))).toContain('mixer mamba = mamba1\n');
  });

  it('round-trips through the YAML form, which the schema checks', () => {
    const m = resolve(
      'mixer a = mamba2(heads: 4, head_dim: 32)\nmixer b = mamba1(inner_norm_eps: 1e-6)\nmixer c = shortconv\nlayers [a, b, c]',
    );
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    const bad = YAML.stringify(m).replace('dState: 128', 'dState: 0');
    expect(() => parseSpec(bad, 'm.yaml')).toThrow(/layers\[0\]\.mixer\.dState: must be/);
    const groups = YAML.stringify(m).replace('groups: 1', 'groups: 3');
    expect(() => parseSpec(groups, 'm.yaml')).toThrow(
      /layers\[0\]\.mixer\.groups: heads \(4\) must be a multiple of groups \(3\)/,
    );
  });
});

describe('mixer NAME = none: layers with only an ffn (Nemotron-H)', () => {
  const DEFS = [
    'mixer ssm  = mamba2(heads: 4, head_dim: 32)',
    'mixer skip = none',
    'ffn   mlp  = mlp(hidden: 96, act: relu2)',
  ].join('\n');

  it('gives layers a null mixer under the definition name', () => {
    const m = resolve(`${DEFS}\nlayers 2 x [ssm, skip] with ffn [none, mlp]`);
    expect(m.layers.map((l) => [l.mixerName, l.mixer?.kind ?? null, l.ffnName])).toEqual([
      ['ssm', 'mamba2', null],
      ['skip', null, 'mlp'],
      ['ssm', 'mamba2', null],
      ['skip', null, 'mlp'],
    ]);
    const swapped = resolve(
      `${DEFS}\nlayers 2 x ssm with ffn mlp\noverride layer 1 { mixer: skip }`,
    );
    expect(swapped.layers[1]).toMatchObject({ mixerName: 'skip', mixer: null, ffnName: 'mlp' });
  });

  it('prints `mixer NAME = none` back and round-trips through YAML', () => {
    const m = resolve(`${DEFS}\nlayers 2 x [ssm, skip] with ffn [none, mlp]`);
    const text = roundTrip(m);
    expect(text).toContain('mixer skip = none');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
  });

  it('names a layer with neither a mixer nor an ffn, and fields set on none', () => {
    const e = bodyError(`${DEFS}\nlayers 2 x [ssm, skip] with ffn none`);
    expect(e.message).toContain("layer 1 has neither a mixer ('skip' is none) nor an ffn");
    expect(blamed(e)).toBe('none');
    const f = bodyError(
      `${DEFS}\nlayers 2 x skip with ffn mlp\noverride layer 0 { skip.heads: 4 }`,
    );
    expect(f.message).toContain('a mixer defined as none has no parameters to set');
    const yaml = YAML.stringify(resolve(`${DEFS}\nlayers [ssm, skip] with ffn [none, mlp]`));
    const noFfn = yaml
      .replace('ffnName: mlp', 'ffnName: null')
      .replace(/ffn:\n(\s+\w+:.*\n)+/, 'ffn: null\n');
    expect(() => parseSpec(noFfn, 'm.yaml')).toThrow(
      /layers\[1\]\.mixer: a layer without a mixer needs an ffn/,
    );
  });
});
