/** The state-space and hybrid specs in specs/: their layouts, sizes, and agreement with HF import. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { parsePythonJson } from '../../src/import/json.ts';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { countParams } from '../../src/spec/params.ts';
import { importConfigFile } from '../helpers/hf-config.ts';

/**
 * One letter per layer: m mamba1, 2 mamba2, c shortconv, a attention, p parallel, - no mixer; + where there
 * is an FFN.
 */
function layout(m: ModelIR): string {
  // Kinds without a letter (the linear-attention family) show as '?'.
  const letter: Readonly<Record<string, string>> = {
    mamba1: 'm',
    mamba2: '2',
    shortconv: 'c',
    attention: 'a',
    parallel: 'p',
    mla: 'l',
    gated_deltanet: 'd',
  };
  return m.layers
    .map((l) => (l.mixer ? (letter[l.mixer.kind] ?? '?') : '-') + (l.ffn ? '+' : ''))
    .join(' ');
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
    const hf = importConfigFile(file, 'x');
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
    const hf = importConfigFile(file, 'x');
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
    const hf = importConfigFile(file, 'jamba-v0.1');
    // The whole ModelIR, not only the blocks: the spec is the import's printSpec output.
    expect(m).toEqual(hf.model);
    const c = countParams(m);
    expect(c.total).toBe(51_570_323_328);
    expect(c.active).toBe(12_110_311_296);
  });
});

describe('specs/zamba2-2.7b.strata', () => {
  it('runs two alternating shared blocks at the 9 hybrid layers, 2.66B parameters, as imported', () => {
    const m = loadSpec('specs/zamba2-2.7b.strata');
    expect(layout(m)).toBe(Array(54).fill('2').join(' '));
    const hybrid = [6, 12, 18, 24, 30, 36, 42, 47, 51];
    expect(m.layers.flatMap((l) => (l.shared ? [l.index] : []))).toEqual(hybrid);
    expect(hybrid.map((i) => m.layers[i].shared)).toEqual(hybrid.map((_, j) => `shared${j % 2}`));
    const block = m.sharedBlocks![0];
    expect(block.attention).toMatchObject({ heads: 32, kvHeads: 32, headDim: 160, rope: null });
    expect(block.attention.scale).toBe(80 ** -0.5);
    expect(block.ffn).toEqual({
      kind: 'mlp',
      hidden: 10240,
      act: 'gelu',
      gated: true,
      bias: false,
    });
    expect(block).toMatchObject({ adapterRank: 128, attentionAdapters: false, ffnAdapters: true });
    const file = 'test/fixtures/configs/zamba2-2.7b.json';
    const hf = importConfigFile(file, 'zamba2-2.7b');
    // The whole ModelIR: the spec is the import's printSpec output.
    expect(m).toEqual(hf.model);
    expect(countParams(m).total).toBe(2_662_214_560);
  });

  it('counts each shared block once however many layers use it', () => {
    const c = countParams(loadSpec('specs/zamba2-2.7b.strata'));
    const D = 2560;
    // Input norm over 2D, q/k/v from 2D to 2D, o to D, ffn norm, gate_up [2 × 10240, D], down.
    const block = 2 * D + 3 * (2 * D) ** 2 + D * 2 * D + D + 2 * 10240 * D + D * 10240;
    const layers = c.perLayer.reduce((a, b) => a + b, 0);
    expect(c.total - c.embedding - layers - D).toBe(2 * block);
  });
});

describe('specs/falcon-h1-7b.strata', () => {
  it('is 44 parallel attention + Mamba-2 layers, 7.59B parameters, as the release imports', () => {
    const m = loadSpec('specs/falcon-h1-7b.strata');
    expect(layout(m)).toBe(Array(44).fill('p+').join(' '));
    expect(m.layers[43].mixer).toMatchObject({
      kind: 'parallel',
      attn: { heads: 12, kvHeads: 2, headDim: 128 },
      ssm: { heads: 24, headDim: 128, dState: 256, groups: 1, gateNorm: false },
      attnInScale: 1,
      ssmOutScale: 1,
    });
    const file = 'test/fixtures/configs/falcon-h1-7b.json';
    const hf = importConfigFile(file, 'falcon-h1-7b');
    expect(m).toEqual(hf.model);
    expect(countParams(m).total).toBe(7_585_513_568);
  });

  it('reads every muP multiplier of the tiny fixture into the kind it scales', () => {
    const file = 'test/fixtures/hf/falcon_h1/config.json';
    const hf = importConfigFile(file, 'x');
    const { model } = hf;
    expect(model.embeddingScale).toBe(2);
    expect(model.logitScale).toBe(0.5);
    expect(model.layers[0].mixer).toMatchObject({
      kind: 'parallel',
      // key_multiplier 0.8 folds into the softmax scale: q·(0.8 k) = 0.8 (q·k).
      attn: { headDim: 16, scale: 16 ** -0.5 * 0.8 },
      ssm: { projScales: [0.9, 1.1, 0.8, 1.2, 1.3], normGroup: 128 },
      attnInScale: 1.2,
      attnOutScale: 0.7,
      ssmInScale: 1.1,
      ssmOutScale: 0.6,
    });
    expect(model.layers[0].ffn).toMatchObject({ gateScale: 1.5, downScale: 0.5 });
    expect(hf.weightMap['model.layers.1.mixer.in_proj.weight']).toBe(
      'model.layers.1.mamba.in_proj.weight',
    );
    expect(hf.weightMap['model.layers.1.mixer.norm.weight']).toBe(
      'model.layers.1.mamba.norm.weight',
    );
    expect(hf.weightMap['model.norm.weight']).toBe('model.final_layernorm.weight');
  });

  it('orders the norm by mamba_norm_before_gate only when mamba_rms_norm is on', () => {
    const file = 'test/fixtures/hf/falcon_h1/config.json';
    const config = parsePythonJson(readFileSync(file, 'utf8'), file) as Record<string, unknown>;
    const ssm = (over: Record<string, unknown>) => {
      const mixer = importHfConfig({ ...config, ...over }, 'x').model.layers[0].mixer;
      return mixer?.kind === 'parallel' ? mixer.ssm : null;
    };
    expect(ssm({ mamba_norm_before_gate: true })).toMatchObject({ normBeforeGate: true });
    expect(ssm({ mamba_norm_before_gate: false })).not.toHaveProperty('normBeforeGate');
    const plain = ssm({ mamba_rms_norm: false, mamba_norm_before_gate: true });
    expect(plain).toMatchObject({ gateNorm: false });
    expect(plain).not.toHaveProperty('normBeforeGate');
    expect(() => importHfConfig({ ...config, projectors_bias: true }, 'x')).toThrow(
      /projectors_bias' must equal mamba_proj_bias/,
    );
  });
});
