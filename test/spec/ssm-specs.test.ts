/** The state-space and hybrid specs in specs/: their layouts, sizes, and agreement with HF import. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { parsePythonJson } from '../../src/import/json.ts';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { countParams } from '../../src/spec/params.ts';

/**
 * One letter per layer: m mamba1, 2 mamba2, c shortconv, a attention, - no mixer; + where there
 * is an FFN.
 */
function layout(m: ModelIR): string {
  const letter = {
    mamba1: 'm',
    mamba2: '2',
    shortconv: 'c',
    attention: 'a',
    gated_deltanet: 'd',
  } as const;
  return m.layers.map((l) => (l.mixer ? letter[l.mixer.kind] : '-') + (l.ffn ? '+' : '')).join(' ');
}

const blocks = (m: ModelIR) => m.layers.map((l) => ({ mixer: l.mixer, ffn: l.ffn }));

describe('specs/mamba-2.8b.strata', () => {
  const m = loadSpec('specs/mamba-2.8b.strata');

  it('is 64 Mamba-1 layers without FFN, 2.77B parameters', () => {
    expect(layout(m)).toBe(Array(64).fill('m').join(' '));
    expect(m.layers[0].mixer).toEqual({
      kind: 'mamba1',
      dInner: 5120,
      dState: 16,
      dConv: 4,
      dtRank: 160,
      convBias: true,
      projBias: false,
      innerNorms: null,
    });
    expect(countParams(m).total).toBe(2_768_345_600);
  });

  it('is what the HF release config imports to', () => {
    const hf = importHfConfig(
      {
        model_type: 'mamba',
        vocab_size: 50280,
        hidden_size: 2560,
        intermediate_size: 5120,
        num_hidden_layers: 64,
        state_size: 16,
        conv_kernel: 4,
        expand: 2,
        time_step_rank: 160,
        use_bias: false,
        use_conv_bias: true,
        layer_norm_epsilon: 1e-5,
      },
      'mamba-2.8b',
    ).model;
    expect(blocks(m)).toEqual(blocks(hf));
    expect({ ...m, layers: [] }).toEqual({ ...hf, layers: [] });
  });
});

describe('specs/mamba2-2.7b.strata', () => {
  it('is 64 Mamba-2 layers of 80 heads, 2.70B parameters', () => {
    const m = loadSpec('specs/mamba2-2.7b.strata');
    expect(layout(m)).toBe(Array(64).fill('2').join(' '));
    expect(m.layers[63].mixer).toMatchObject({
      heads: 80,
      headDim: 64,
      dState: 128,
      groups: 1,
      normGroup: 5120,
      dtMin: 0,
      dtMax: null,
    });
    expect(countParams(m).total).toBe(2_702_599_680);
  });
});

describe('specs/lfm2-1.2b.strata', () => {
  it('has attention at 2, 5, 8, 10, 12, 14 and equals the published config import', () => {
    const m = loadSpec('specs/lfm2-1.2b.strata');
    expect(layout(m)).toBe('c+ c+ a+ c+ c+ a+ c+ c+ a+ c+ a+ c+ a+ c+ a+ c+');
    const file = 'test/fixtures/configs/lfm2-1.2b.json';
    const hf = importHfConfig(parsePythonJson(readFileSync(file, 'utf8'), file) as object, 'x');
    expect(blocks(m)).toEqual(blocks(hf.model));
    expect(countParams(m).total).toBe(1_170_340_608);
  });
});

describe('specs/bamba-9b.strata', () => {
  it('has attention at 9, 18, 27 of 32 layers, 9.78B parameters, like the HF import', () => {
    const m = loadSpec('specs/bamba-9b.strata');
    const expected = Array.from({ length: 32 }, (_, i) =>
      [9, 18, 27].includes(i) ? 'a+' : '2+',
    ).join(' ');
    expect(layout(m)).toBe(expected);
    const hf = importHfConfig(
      {
        model_type: 'bamba',
        vocab_size: 128256,
        hidden_size: 4096,
        intermediate_size: 14336,
        num_hidden_layers: 32,
        num_attention_heads: 32,
        num_key_value_heads: 8,
        attn_layer_indices: [9, 18, 27],
        mamba_n_heads: 128,
        mamba_d_head: 64,
        mamba_n_groups: 1,
        mamba_d_state: 128,
        rope_theta: 10000,
        tie_word_embeddings: false,
      },
      'bamba-9b',
    ).model;
    expect(blocks(m)).toEqual(blocks(hf));
    expect(countParams(m).total).toBe(9_780_235_392);
  });
});

describe('specs/nemotron-h-8b.strata', () => {
  it('follows the release pattern, 8.10B parameters, like the published config import', () => {
    const m = loadSpec('specs/nemotron-h-8b.strata');
    const pattern = 'M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-';
    const want = [...pattern].map((c) => ({ M: '2', '*': 'a', '-': '-+' })[c]).join(' ');
    expect(layout(m)).toBe(want);
    const file = 'test/fixtures/configs/nemotron-h-8b.json';
    const hf = importHfConfig(parsePythonJson(readFileSync(file, 'utf8'), file) as object, 'x');
    expect(blocks(m)).toEqual(blocks(hf.model));
    expect(countParams(m).total).toBe(8_100_852_736);
  });
  it('resolves its pattern string to the same ModelIR as the explicit layer list', () => {
    const path = 'specs/nemotron-h-8b.strata';
    const text = readFileSync(path, 'utf8');
    const mlp =
      '[1, 3, 5, 8, 10, 12, 14, 16, 19, 21, 23, 25, 27, 30, 32, 34, 36, 38, 41, 43, 45, 47, 49, 51]';
    const explicit = text.replace(
      /^ {2}layers "[^"]*" with \{[^}]*\}$/m,
      `  layers 52 x mamba, mlp_only at ${mlp}, attn at [7, 18, 29, 40]\n    with ffn none, mlp at ${mlp}`,
    );
    expect(explicit).not.toBe(text);
    expect(parseSpec(text, path)).toEqual(parseSpec(explicit, path));
  });
});

describe('specs/jamba-v0.1.strata', () => {
  it('has attention at 4, 12, 20, 28 and MoE on odd layers, 51.6B parameters, as imported', () => {
    const m = loadSpec('specs/jamba-v0.1.strata');
    const want = Array.from({ length: 32 }, (_, i) => (i % 8 === 4 ? 'a+' : 'm+')).join(' ');
    expect(layout(m)).toBe(want);
    expect(m.layers.map((l) => l.ffnName)).toEqual(
      Array.from({ length: 32 }, (_, i) => (i % 2 === 1 ? 'moe' : 'mlp')),
    );
    const file = 'test/fixtures/configs/jamba-v0.1.json';
    const hf = importHfConfig(
      parsePythonJson(readFileSync(file, 'utf8'), file) as object,
      'jamba-v0.1',
    );
    // The whole ModelIR, not only the blocks: the spec is the import's printSpec output.
    expect(m).toEqual(hf.model);
    const c = countParams(m);
    expect(c.total).toBe(51_570_323_328);
    expect(c.active).toBe(12_110_311_296);
  });
});
