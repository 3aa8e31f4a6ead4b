import { describe, expect, it } from 'vitest';
import { SpecError } from '../../src/spec/errors.ts';
import { loadSpec } from '../../src/spec/load.ts';
import type { AttentionSpec, ModelIR } from '../../src/spec/model.ts';
import { printSpec } from '../../src/spec/print.ts';
import { resolve, roundTrip, specError } from './helpers.ts';

function layersLines(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => /^ {2}(layers|override) /.test(l))
    .map((l) => l.trim());
}

const DEFS = 'mixer a = attention(heads: 4)\nmixer b = attention(heads: 2, window: 8)';

describe('printSpec', () => {
  it('prints a readable spec with aligned definitions and only non-default parameters', () => {
    expect(roundTrip(loadSpec('specs/tiny-hybrid.strata'))).toBe(
      [
        'model "tiny-hybrid" {',
        '  vocab 256',
        '  dim 64',
        '  max_context 512',
        '  norm rms(eps: 1e-6)',
        '  tie_embeddings true',
        '',
        '  mixer local  = attention(heads: 4, kv_heads: 1, window: 32)',
        '  mixer global = attention(heads: 4, kv_heads: 2, rope: rope(theta: 100000))',
        '  ffn   mlp    = swiglu(hidden: 128)',
        '  ffn   wide   = mlp(hidden: 256, act: relu2)',
        '',
        '  layers 2 x [2 local : 1 global] with ffn [mlp, wide]',
        '  override layer 3 { local.window: 64 }',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('prints attention sinks and untruncated yarn only when set', () => {
    const text = roundTrip(
      resolve(
        'mixer a = attention(heads: 4, window: 8, sinks: true, rope: rope(scaling: yarn(factor: 32, original_max_positions: 64, truncate: false)))\nmixer b = attention(heads: 4)\nlayers [a, b]',
      ),
    );
    expect(text).toContain('sinks: true');
    expect(text).toContain('truncate: false');
    expect(text.match(/sinks/g)).toHaveLength(1);
  });

  it('round-trips proportional RoPE (factor printed only when set)', () => {
    const m = resolve(
      'mixer a = attention(heads: 2, head_dim: 32, rope: rope(theta: 1000000, scaling: proportional(pairs: 4)))\nlayers [a]',
    );
    const mixer = m.layers[0].mixer as { rope: unknown };
    expect(mixer.rope).toEqual({
      theta: 1e6,
      rotaryDim: 32,
      scaling: { kind: 'proportional', pairs: 4, factor: 1 },
    });
    expect(roundTrip(m)).toContain('proportional(pairs: 4)');
  });

  it('wraps long definitions one argument per line', () => {
    const text = roundTrip(loadSpec('specs/llama-3.2-1b.strata'));
    expect(text).toContain(
      [
        '  mixer attn = attention(',
        '    heads: 32,',
        '    kv_heads: 8,',
        '    rope: rope(',
        '      theta: 500000,',
        '      scaling: llama3(',
        '        factor: 32,',
      ].join('\n'),
    );
    expect(text.split('\n').every((l) => l.length <= 100)).toBe(true);
  });

  it('folds ratio groups, with `at` where the minority sits inside the group', () => {
    expect(layersLines(roundTrip(resolve(`${DEFS}\nlayers 4 x [7 a : 1 b at 4]`)))).toEqual([
      'layers 4 x [7 a : 1 b at 4]',
    ]);
    expect(layersLines(roundTrip(resolve(`${DEFS}\nlayers 3 x [2 a : 1 b]`)))).toEqual([
      'layers 3 x [2 a : 1 b]',
    ]);
    expect(layersLines(roundTrip(resolve(`${DEFS}\nlayers 2 x [a, b]`)))).toEqual([
      'layers 2 x [a, b]',
    ]);
  });

  it('uses index placements when they are shorter than any group', () => {
    expect(layersLines(roundTrip(resolve(`${DEFS}\nlayers 32 x a, b at [9, 18, 27]`)))).toEqual([
      'layers 32 x a, b at [9, 18, 27]',
    ]);
  });

  it('prints whole groups and the remainder as two statements', () => {
    expect(
      layersLines(roundTrip(resolve(`${DEFS}\nlayers 4 x [5 a : 1 b]\nlayers 2 x a`))),
    ).toEqual(['layers 4 x [5 a : 1 b]', 'layers 2 x a']);
  });

  it('keeps the group structure of a Gemma-style 5:1 stack with a partial tail', () => {
    const m = resolve(
      `${DEFS}\nffn m = swiglu(hidden: 96)\nlayers 26 x a, b at [5, 11, 17, 23] with ffn m`,
    );
    expect(layersLines(roundTrip(m))).toEqual([
      'layers 4 x [5 a : 1 b] with ffn m',
      'layers 2 x a with ffn m',
    ]);
  });

  it('prints ffn schedules in their shortest form', () => {
    const ffns = `${DEFS}\nffn m = swiglu(hidden: 96)\nffn e = mlp(hidden: 32, act: relu)`;
    const schedule = (s: string) => layersLines(roundTrip(resolve(`${ffns}\nlayers ${s}`)))[0];
    expect(schedule('6 x a with ffn e, first 2 m')).toBe('layers 6 x a with ffn e, first 2 m');
    expect(schedule('6 x a with ffn [m, e, e]')).toBe('layers 6 x a with ffn [m, e, e]');
    expect(schedule('8 x a with ffn m, none at [1, 6]')).toBe(
      'layers 8 x a with ffn m, none at [1, 6]',
    );
    // ffn definitions no layer uses are not part of the model, so nothing needs naming.
    expect(schedule('3 x a with ffn none')).toBe('layers 3 x a');
    expect(layersLines(roundTrip(resolve(`${DEFS}\nlayers 2 x a`)))).toEqual(['layers 2 x a']);
  });

  it('prints per-layer differences as overrides, grouping identical ones', () => {
    const m = resolve(
      `${DEFS}\nffn m = swiglu(hidden: 96)\nlayers 6 x a with ffn m\noverride layers [1, 4] { a.window: 128, m.hidden: 8 }\noverride layer 2 { a.rope: none }`,
    );
    expect(layersLines(roundTrip(m))).toEqual([
      'layers 6 x a with ffn m',
      'override layers [1, 4] { a.window: 128, m.hidden: 8 }',
      'override layer 2 { a.rope: none }',
    ]);
  });

  it('spells out every parameter when a changed one moved a default', () => {
    const m = resolve(`${DEFS}\nlayers 3 x a\noverride layer 1 { a.heads: 8, a.head_dim: 16 }`);
    const text = roundTrip(m);
    expect(layersLines(text)[1]).toMatch(
      /^override layer 1 \{ a\.heads: 8, a\.kv_heads: 8, a\.head_dim: 16, /,
    );
  });

  it('round-trips mla with its defaults left out and its other settings spelled out', () => {
    const plain = roundTrip(
      resolve(
        'mixer m = mla(heads: 4, q_rank: 32, kv_rank: 16, nope_dim: 8, rope_dim: 4, v_dim: 6)\nlayers 1 x m',
      ),
    );
    expect(plain).toContain(
      'mixer m = mla(heads: 4, q_rank: 32, kv_rank: 16, nope_dim: 8, rope_dim: 4, v_dim: 6)',
    );
    const m = resolve(
      'mixer m = mla(heads: 2, kv_rank: 8, nope_dim: 6, rope_dim: 4, v_dim: 10, rope_pairs: half, bias: true, latent_eps: 1e-5, scale: 0.5, rope: rope(theta: 500, scaling: yarn(factor: 4, original_max_positions: 16)))\nlayers 2 x m',
    );
    const mla = m.layers[0]!.mixer;
    expect(mla).toMatchObject({
      kind: 'mla',
      qRank: null,
      ropePairs: 'half',
      bias: true,
      latentEps: 1e-5,
      scale: 0.5,
      cache: 'latent',
      rope: { theta: 500, rotaryDim: 4 },
    });
    expect(roundTrip(m)).toContain('rope_pairs: half');
    expect(roundTrip(loadSpec('specs/deepseek-v3.strata'))).toContain('mla(');
    expect(roundTrip(loadSpec('specs/deepseek-v3.2.strata'))).toContain(
      'index: indexer(heads: 64, dim: 128, topk: 2048)',
    );
  });

  it('mla: rope rotates exactly the rope dims', () => {
    const e = specError(() =>
      resolve(
        'mixer m = mla(heads: 2, kv_rank: 8, nope_dim: 6, rope_dim: 4, v_dim: 6, rope: rope(rotary_dim: 2))\nlayers 1 x m',
      ),
    );
    expect(e.message).toMatch(/rotary_dim \(2\) must equal rope_dim \(4\)/);
  });

  it('prints non-default settings', () => {
    const header =
      'vocab 10\n  dim 8\n  max_context 4\n  norm layer(eps: 1e-6, bias: false)\n  embedding_scale 2.5\n  residual_scale 0.22\n  logit_scale 0.125\n  logit_softcap 30';
    const text = roundTrip(resolve('mixer a = attention(heads: 2)\nlayers 1 x a', header));
    expect(text).toContain(
      '  norm layer(eps: 0.000001, bias: false)\n  embedding_scale 2.5\n  residual_scale 0.22\n  logit_scale 0.125\n  logit_softcap 30\n'.replace(
        '0.000001',
        '1e-6',
      ),
    );
    expect(text).not.toContain('tie_embeddings');
    expect(text).not.toContain('post_norms');
  });

  it('prints sandwich norms and the unit-offset RMSNorm', () => {
    const header = 'vocab 10\n  dim 8\n  max_context 4\n  norm rms(eps: 1e-6, unit_offset: true)';
    const m = resolve(
      'mixer a = attention(heads: 2)\nlayers 1 x a',
      `${header}\n  post_norms true`,
    );
    expect(m.postNorms).toBe(true);
    expect(roundTrip(m)).toContain(`${header}\n  post_norms true\n`);
    expect(resolve('mixer a = attention(heads: 2)\nlayers 1 x a', header).postNorms).toBe(false);
  });

  it('chooses a kind that can express every use of a name', () => {
    // A YAML spec may give one ffn name both a SwiGLU and a ReLU² MLP.
    const m = resolve('mixer a = attention(heads: 4)\nffn f = swiglu(hidden: 8)\nlayers 3 x a');
    m.layers[2]!.ffn = { kind: 'mlp', hidden: 8, act: 'relu2', gated: false, bias: false };
    const text = roundTrip(m);
    expect(text).toContain('ffn   f = mlp(hidden: 8, act: silu, gated: true)');
    expect(layersLines(text)).toContain('override layer 2 { f.act: relu2, f.gated: false }');
  });

  it('refuses a model that is not valid ModelIR', () => {
    const m = resolve('mixer a = attention(heads: 4)\nlayers 1 x a');
    (m.layers[0]!.mixer as AttentionSpec).kvHeads = 3;
    const e = specError(() => printSpec(m));
    expect(e).toBeInstanceOf(SpecError);
    expect(e.message).toBe(
      "model 'm': error: layers[0].mixer.kvHeads: heads (4) must be a multiple of kvHeads (3)",
    );
    (m.layers[0]!.mixer as AttentionSpec).kvHeads = 4;
    m.layers[0]!.mixerName = 'layers';
    expect(specError(() => printSpec(m)).reason).toBe(
      "layers[0].mixerName: 'layers' is a reserved word and cannot name a mixer",
    );
  });
});
