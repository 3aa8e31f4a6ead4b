import { describe, expect, it } from 'vitest';
import type { AttentionSpec, LayerSpec, MlpSpec } from '../../src/spec/model.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { printSpec } from '../../src/spec/print.ts';
import { resolve } from './helpers.ts';

const ATTN = 'mixer a = attention(heads: 4)\nffn f = swiglu(hidden: 96)';

/** The layer's mixer, which these tests define as attention. */
const attn = (l: LayerSpec): AttentionSpec => l.mixer as AttentionSpec;
/** The layer's ffn, which these tests define as a dense MLP. */
const mlpOf = (l: LayerSpec): MlpSpec => l.ffn as MlpSpec;

function mixer(def: string, dim = 64): AttentionSpec {
  const header = `vocab 256\n  dim ${dim}\n  max_context 128\n  norm rms(eps: 1e-5)`;
  return resolve(`mixer a = ${def}\nlayers 1 x a`, header).layers[0]!.mixer as AttentionSpec;
}

function ffn(def: string): MlpSpec {
  return resolve(`mixer a = attention(heads: 4)\nffn f = ${def}\nlayers 1 x a`).layers[0]!
    .ffn as MlpSpec;
}

const mixerNames = (src: string) =>
  resolve(src)
    .layers.map((l) => l.mixerName)
    .join(' ');
const ffnNames = (src: string) =>
  resolve(src)
    .layers.map((l) => l.ffnName ?? '-')
    .join(' ');

describe('model settings', () => {
  it('resolves required settings and defaults the optional ones', () => {
    const m = resolve('mixer a = attention(heads: 4)\nlayers 1 x a');
    expect(m).toMatchObject({
      version: 1,
      name: 'm',
      vocab: 256,
      dim: 64,
      maxContext: 128,
      norm: { kind: 'rms', eps: 1e-5, unitOffset: false, bias: false },
      postNorms: false,
      tieEmbeddings: false,
      embeddingScale: 1,
      residualScale: 1,
      logitScale: 1,
      logitSoftcap: null,
    });
  });

  it('reads the optional settings', () => {
    const header =
      'vocab 10\n  dim 8\n  max_context 4\n  norm layer(eps: 1e-6, bias: false)\n  tie_embeddings true\n  embedding_scale 2.5\n  logit_softcap 30.0';
    expect(resolve('mixer a = attention(heads: 2)\nlayers 1 x a', header)).toMatchObject({
      norm: { kind: 'layer', eps: 1e-6, unitOffset: false, bias: false },
      postNorms: false,
      tieEmbeddings: true,
      embeddingScale: 2.5,
      residualScale: 1,
      logitScale: 1,
      logitSoftcap: 30,
    });
  });

  it('defaults layer norm to a bias and reads the Gemma unit offset', () => {
    const layer = 'vocab 10\n  dim 8\n  max_context 4\n  norm layer(eps: 1e-5)';
    expect(resolve('mixer a = attention(heads: 2)\nlayers 1 x a', layer).norm.bias).toBe(true);
    const gemma = 'vocab 10\n  dim 8\n  max_context 4\n  norm rms(eps: 1e-6, unit_offset: true)';
    expect(resolve('mixer a = attention(heads: 2)\nlayers 1 x a', gemma).norm).toEqual({
      kind: 'rms',
      eps: 1e-6,
      unitOffset: true,
      bias: false,
    });
  });
});

describe('attention', () => {
  it('fills every default', () => {
    expect(mixer('attention(heads: 4)')).toEqual({
      kind: 'attention',
      heads: 4,
      kvHeads: 4,
      headDim: 16,
      rope: { theta: 10000, rotaryDim: 16, scaling: { kind: 'none' } },
      qkNorm: false,
      qkvBias: false,
      outBias: false,
      causal: true,
      window: null,
      scale: 0.25,
      softcap: null,
      sinkTokens: null,
      evict: null,
      sinks: false,
      outputGate: false,
    });
  });

  it('takes every parameter', () => {
    expect(
      mixer(
        'attention(heads: 8, kv_heads: 2, head_dim: 32, rope: none, qk_norm: true, qkv_bias: true, out_bias: true, causal: false, window: 64, scale: 0.1, softcap: 50, sinks: true, output_gate: true)',
      ),
    ).toEqual({
      kind: 'attention',
      heads: 8,
      kvHeads: 2,
      headDim: 32,
      rope: null,
      qkNorm: true,
      qkvBias: true,
      outBias: true,
      causal: false,
      window: 64,
      scale: 0.1,
      softcap: 50,
      sinkTokens: null,
      evict: null,
      sinks: true,
      outputGate: true,
    });
  });

  it('derives scale from an explicit head_dim (head_dim^-0.5)', () => {
    expect(mixer('attention(heads: 2, head_dim: 128)').scale).toBe(128 ** -0.5);
  });

  it('defaults rope rotary_dim to head_dim and reads partial rotary', () => {
    expect(mixer('attention(heads: 4, rope: rope(theta: 1e6))').rope).toEqual({
      theta: 1e6,
      rotaryDim: 16,
      scaling: { kind: 'none' },
    });
    expect(mixer('attention(heads: 4, rope: rope(rotary_dim: 8))').rope!.rotaryDim).toBe(8);
    expect(mixer('attention(heads: 4, rope: rope)').rope).toEqual({
      theta: 10000,
      rotaryDim: 16,
      scaling: { kind: 'none' },
    });
  });

  it('reads every rope scaling', () => {
    const scaling = (s: string) =>
      mixer(`attention(heads: 4, rope: rope(scaling: ${s}))`).rope!.scaling;
    expect(scaling('none')).toEqual({ kind: 'none' });
    expect(scaling('linear(factor: 2)')).toEqual({ kind: 'linear', factor: 2 });
    expect(
      scaling(
        'llama3(factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_positions: 8192)',
      ),
    ).toEqual({
      kind: 'llama3',
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8192,
    });
    expect(scaling('yarn(factor: 4, original_max_positions: 4096)')).toEqual({
      kind: 'yarn',
      factor: 4,
      originalMaxPositions: 4096,
      betaFast: 32,
      betaSlow: 1,
      attentionFactor: 0.1 * Math.log(4) + 1,
      truncate: true,
    });
    expect(
      scaling('yarn(factor: 32, original_max_positions: 4096, truncate: false)'),
    ).toMatchObject({ truncate: false });
    expect(
      scaling('yarn(factor: 1, original_max_positions: 4, beta_fast: 8, beta_slow: 2)'),
    ).toMatchObject({ betaFast: 8, betaSlow: 2, attentionFactor: 1 });
  });
});

describe('ffn kinds', () => {
  it('swiglu, geglu and mlp with their defaults', () => {
    expect(ffn('swiglu(hidden: 96)')).toEqual({
      kind: 'mlp',
      hidden: 96,
      act: 'silu',
      gated: true,
      bias: false,
    });
    expect(ffn('geglu(hidden: 96)')).toEqual({
      kind: 'mlp',
      hidden: 96,
      act: 'gelu',
      gated: true,
      bias: false,
    });
    expect(ffn('geglu(hidden: 96, act: gelu_tanh, bias: true)')).toEqual({
      kind: 'mlp',
      hidden: 96,
      act: 'gelu_tanh',
      gated: true,
      bias: true,
    });
    expect(ffn('mlp(hidden: 96, act: relu2)')).toEqual({
      kind: 'mlp',
      hidden: 96,
      act: 'relu2',
      gated: false,
      bias: false,
    });
    expect(ffn('mlp(hidden: 96, act: gelu, gated: true, bias: true)')).toMatchObject({
      gated: true,
      bias: true,
    });
  });
});

describe('layer patterns', () => {
  const defs =
    'mixer a = attention(heads: 4)\nmixer b = attention(heads: 2)\nmixer c = attention(heads: 1)';

  it('repeats a single mixer', () => {
    expect(mixerNames(`${defs}\nlayers 3 x a`)).toBe('a a a');
  });

  it('lists a ratio group in order by default', () => {
    expect(mixerNames(`${defs}\nlayers 2 x [3 a : 1 b]`)).toBe('a a a b a a a b');
    expect(mixerNames(`${defs}\nlayers [1 a : 2 b : 1 c]`)).toBe('a b b c');
  });

  it('places the part marked `at` at its offset in every group (Jamba)', () => {
    expect(mixerNames(`${defs}\nlayers 2 x [7 a : 1 b at 4]`)).toBe(
      'a a a a b a a a a a a a b a a a',
    );
    expect(mixerNames(`${defs}\nlayers [3 a : 2 b at 1]`)).toBe('a b b a a');
    expect(mixerNames(`${defs}\nlayers [1 b at 0 : 3 a]`)).toBe('b a a a');
  });

  it('expands explicit sequences, once or repeated', () => {
    expect(mixerNames(`${defs}\nlayers [a, b, a]`)).toBe('a b a');
    expect(mixerNames(`${defs}\nlayers 2 x [a, b]`)).toBe('a b a b');
  });

  it('puts mixers at explicit indices', () => {
    expect(mixerNames(`${defs}\nlayers 8 x a, b at [2, 5], c at 7`)).toBe('a a b a a b a c');
  });

  it('splits a total into groups with `as`', () => {
    expect(mixerNames(`${defs}\nlayers 6 as [2 a : 1 b]`)).toBe('a a b a a b');
  });

  it('concatenates several layers statements', () => {
    expect(mixerNames(`${defs}\nlayers 2 x a\nlayers [b, c]\nlayers 1 x a`)).toBe('a a b c a');
    expect(resolve(`${defs}\nlayers 2 x a\nlayers 1 x b`).layers.map((l) => l.index)).toEqual([
      0, 1, 2,
    ]);
  });
});

describe('ffn schedules', () => {
  const defs =
    'mixer a = attention(heads: 4)\nffn m = swiglu(hidden: 96)\nffn e = mlp(hidden: 32, act: relu)';

  it('gives every layer one ffn, or none', () => {
    expect(ffnNames(`${defs}\nlayers 3 x a with ffn m`)).toBe('m m m');
    const none = resolve(`${defs}\nlayers 2 x a with ffn none`).layers;
    expect(none.map((l) => [l.ffnName, l.ffn])).toEqual([
      [null, null],
      [null, null],
    ]);
  });

  it('cycles through a list', () => {
    expect(ffnNames(`${defs}\nlayers 5 x a with ffn [m, e]`)).toBe('m e m e m');
    expect(ffnNames(`${defs}\nlayers 4 x a with ffn [m, none, e]`)).toBe('m - e m');
  });

  it('uses a different ffn for the first k layers', () => {
    expect(ffnNames(`${defs}\nlayers 5 x a with ffn e, first 3 m`)).toBe('m m m e e');
  });

  it('uses an ffn every n-th layer from an offset', () => {
    expect(ffnNames(`${defs}\nlayers 6 x a with ffn m, e every 2 offset 1`)).toBe('m e m e m e');
    expect(ffnNames(`${defs}\nlayers 7 x a with ffn m, e every 3`)).toBe('e m m e m m e');
  });

  it('uses an ffn at explicit indices, later modifiers winning', () => {
    expect(ffnNames(`${defs}\nlayers 4 x a with ffn m, e at [1, 2], none at 2`)).toBe('m e - m');
    expect(ffnNames(`${defs}\nlayers 4 x a with ffn e, first 2 m, e at 0`)).toBe('e m e e');
  });

  it('indexes each statement from its own first layer', () => {
    expect(ffnNames(`${defs}\nlayers 3 x a with ffn m\nlayers 4 x a with ffn [e, m]`)).toBe(
      'm m m e m e m',
    );
  });

  it('defaults to the only ffn defined, or to none when there is none', () => {
    expect(ffnNames('mixer a = attention(heads: 4)\nffn m = swiglu(hidden: 8)\nlayers 2 x a')).toBe(
      'm m',
    );
    expect(ffnNames('mixer a = attention(heads: 4)\nlayers 2 x a')).toBe('- -');
  });
});

describe('overrides', () => {
  const defs =
    'mixer a = attention(heads: 4, window: 16)\nmixer b = attention(heads: 2)\nffn m = swiglu(hidden: 96)\nffn e = mlp(hidden: 32, act: relu)';

  it('sets a field of the named mixer on one layer only', () => {
    const m = resolve(`${defs}\nlayers 3 x a with ffn m\noverride layer 1 { a.window: 128 }`);
    expect(m.layers.map((l) => attn(l).window)).toEqual([16, 128, 16]);
    expect(m.layers[1]!.mixerName).toBe('a');
  });

  it('re-applies defaults that depend on an overridden field', () => {
    const m = resolve(`${defs}\nlayers 2 x a with ffn m\noverride layer 0 { a.heads: 8 }`);
    expect(m.layers[0]!.mixer).toMatchObject({
      heads: 8,
      kvHeads: 8,
      headDim: 8,
      scale: 8 ** -0.5,
    });
    expect(m.layers[1]!.mixer).toMatchObject({ heads: 4, headDim: 16 });
  });

  it('swaps mixers and ffns on a list of layers', () => {
    const m = resolve(
      `${defs}\nlayers 4 x a with ffn m\noverride layers [0, 3] { mixer: b, ffn: e }`,
    );
    expect(m.layers.map((l) => `${l.mixerName}/${l.ffnName}`)).toEqual([
      'b/e',
      'a/m',
      'a/m',
      'b/e',
    ]);
    expect(attn(m.layers[0]!).heads).toBe(2);
    expect(mlpOf(m.layers[0]!).act).toBe('relu');
  });

  it('removes an ffn with ffn: none', () => {
    const m = resolve(`${defs}\nlayers 2 x a with ffn m\noverride layer 1 { ffn: none }`);
    expect(m.layers[1]).toMatchObject({ ffnName: null, ffn: null });
  });

  it('sets fields of whatever block a layer has through mixer. and ffn.', () => {
    const m = resolve(
      `${defs}\nlayers [a, b] with ffn [m, e]\noverride layers [0, 1] { mixer.softcap: 30, ffn.hidden: 7 }`,
    );
    expect(m.layers.map((l) => [l.mixerName, attn(l).softcap, l.ffnName, mlpOf(l).hidden])).toEqual(
      [
        ['a', 30, 'm', 7],
        ['b', 30, 'e', 7],
      ],
    );
  });

  it('applies overrides in order: later statements win, swaps reset fields', () => {
    const m = resolve(
      `${defs}\nlayers 2 x a with ffn m\noverride layer 0 { a.window: 8 }\noverride layer 0 { a.window: 4, a.softcap: 9 }\noverride layer 1 { a.window: 8, mixer: b }`,
    );
    expect(m.layers[0]!.mixer).toMatchObject({ window: 4, softcap: 9 });
    expect(m.layers[1]).toMatchObject({ mixerName: 'b', mixer: { window: null, heads: 2 } });
  });

  it('sets nested blocks whole', () => {
    const m = resolve(
      `${defs}\nlayers 2 x a with ffn m\noverride layer 1 { a.rope: rope(theta: 1e6) }`,
    );
    expect(m.layers.map((l) => attn(l).rope!.theta)).toEqual([10000, 1e6]);
  });

  it('gives each layer its own objects', () => {
    const m = resolve(`${ATTN}\nlayers 2 x a`);
    expect(m.layers[0]!.mixer).toEqual(m.layers[1]!.mixer);
    expect(m.layers[0]!.mixer).not.toBe(m.layers[1]!.mixer);
  });
});

describe('the language sketch', () => {
  it('resolves the example of the language sketch', () => {
    const m = parseSpec(
      `model "tiny-llama" {
  vocab 512
  dim 128
  max_context 2048
  norm rms(eps: 1e-5)            # or layer(eps: 1e-5, bias: true)
  tie_embeddings true
  embedding_scale 1.0            # optional
  logit_softcap 30.0             # optional

  mixer attn  = attention(heads: 4, kv_heads: 2, head_dim: 32, rope: rope(theta: 10000, rotary_dim: 32,
                          scaling: llama3(factor: 32, low_freq_factor: 1, high_freq_factor: 4,
                          original_max_positions: 8192)), qk_norm: false, qkv_bias: false, window: none)
  mixer local = attention(heads: 4, kv_heads: 1, window: 64)
  ffn mlp  = swiglu(hidden: 256)     # also geglu(...), mlp(...)
  ffn wide = mlp(hidden: 512, act: relu2)

  layers 2 x [3 local : 1 attn at 3] with ffn [mlp, wide]
  override layer 3 { attn.window: 128 }
  override layers [0, 5] { ffn: wide }
}`,
      'sketch.strata',
    );
    expect(m).toMatchObject({ vocab: 512, dim: 128, maxContext: 2048, logitSoftcap: 30 });
    expect(m.layers.map((l) => `${l.mixerName}/${l.ffnName}`)).toEqual([
      'local/wide',
      'local/wide',
      'local/mlp',
      'attn/wide',
      'local/mlp',
      'local/wide',
      'local/mlp',
      'attn/wide',
    ]);
    expect(m.layers.map((l) => attn(l).window)).toEqual([64, 64, 64, 128, 64, 64, 64, null]);
    expect(attn(m.layers[3]!).rope).toEqual({
      theta: 10000,
      rotaryDim: 32,
      scaling: {
        kind: 'llama3',
        factor: 32,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositions: 8192,
      },
    });
    expect(m.layers[0]!.mixer).toMatchObject({ heads: 4, kvHeads: 1, headDim: 32 });
  });
});

describe('pattern strings', () => {
  const defs = [
    'mixer mamba = mamba2(heads: 8, head_dim: 16, d_state: 16)',
    'mixer attn = attention(heads: 4, kv_heads: 2)',
    'ffn mlp = mlp(hidden: 128, act: relu2)',
    'ffn moe = moe(experts: 4, top_k: 2, expert: mlp(hidden: 32, act: relu2))',
  ].join('\n');
  const blocks = (src: string) =>
    resolve(src)
      .layers.map((l) => `${l.mixer ? l.mixerName : '.'}/${l.ffnName ?? '.'}`)
      .join(' ');

  it('gives one layer per symbol: mixers without ffn, ffns without mixer', () => {
    const m = resolve(`${defs}\nlayers "M-M*-E" with { M: mamba, "*": attn, "-": mlp, E: moe }`);
    expect(m.layers.map((l) => [l.mixerName, l.mixer?.kind ?? null, l.ffnName])).toEqual([
      ['mamba', 'mamba2', null],
      ['no_mixer', null, 'mlp'],
      ['mamba', 'mamba2', null],
      ['attn', 'attention', null],
      ['no_mixer', null, 'mlp'],
      ['no_mixer', null, 'moe'],
    ]);
  });

  it('maps Megatron symbols by default when one definition fits, and any symbol by name', () => {
    expect(blocks(`${defs}\nlayers "M-M*-E"`)).toBe('mamba/. ./mlp mamba/. attn/. ./mlp ./moe');
    expect(
      blocks(
        `${defs}\nmixer a2 = attention(heads: 2)\nlayers "*Ax-" with { "*": attn, A: a2, x: moe }`,
      ),
    ).toBe('attn/. a2/. ./moe ./mlp');
  });

  it('uses the one mixer-less definition for ffn-only layers', () => {
    const m = resolve(`${defs}\nmixer mlp_only = none\nlayers "M-"`);
    expect(m.layers.map((l) => l.mixerName)).toEqual(['mamba', 'mlp_only']);
  });

  it('concatenates with other layers statements, overrides counting across them', () => {
    const src = `${defs}\nlayers 2 x attn with ffn mlp\nlayers "M-"\nlayers "*"\noverride layer 3 { ffn: moe }`;
    expect(blocks(src)).toBe('attn/mlp attn/mlp mamba/. ./moe attn/.');
  });

  it('round-trips through printSpec as an explicit layer list', () => {
    const m = resolve(`${defs}\nlayers "M-M*-E"`);
    const text = printSpec(m);
    expect(text).toMatch(/mixer no_mixer = none/);
    expect(parseSpec(text, 'printed.strata')).toEqual(m);
  });
});
