import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importHfConfig, SUPPORTED_MODEL_TYPES } from '../../src/import/hf.ts';
import { parsePythonJson } from '../../src/import/json.ts';
import { IMPORTERS } from '../../src/import/registry.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { countParams } from '../../src/spec/params.ts';
import type { AttentionSpec, MlpSpec, ModelIR } from '../../src/spec/model.ts';
import { fixtureConfig } from '../helpers/hf-config.ts';

const fixture = (file: string): object => fixtureConfig(join('configs', file));

/** What a config must import to: a short, comparable summary of the ModelIR. */
interface Layout {
  vocab: number;
  dim: number;
  layers: number;
  /** Each layer's mixerName (+ its shared block, if any), run-length encoded as "name*count". */
  mixers: string[];
  params: number;
}

function layoutOf(model: ModelIR): Layout {
  const runs: string[] = [];
  let prev = '';
  let count = 0;
  for (const l of model.layers) {
    const name = l.shared ? `${l.mixerName}+${l.shared}` : l.mixerName;
    if (name === prev) count++;
    else {
      if (count) runs.push(`${prev}*${count}`);
      prev = name;
      count = 1;
    }
  }
  if (count) runs.push(`${prev}*${count}`);
  return {
    vocab: model.vocab,
    dim: model.dim,
    layers: model.layers.length,
    mixers: runs,
    params: countParams(model).total,
  };
}

/**
 * One row per published config: the layout its import gives, and the parameter count the model's
 * publisher states (the comment names the source), which the import must match within 0.5%. A
 * row with `without: ['quantization_config']` describes a release whose weights are quantized
 * (strata refuses its config as published, which the row also checks): its layout is that of
 * the same config without quantization_config, i.e. of the checkpoint upcast to f32/f16/bf16.
 */
const PUBLISHED: {
  file: string;
  published: number;
  /** Config keys to drop first: a quantized release read as its unquantized upcast. */
  without?: string[];
  expect: { layout: Layout };
}[] = [
  {
    // meta-llama/Llama-3.2-1B: published 1.24B (the model card), tied embeddings.
    file: 'llama-3.2-1b.json',
    published: 1.24e9,
    expect: {
      layout: {
        vocab: 128256,
        dim: 2048,
        layers: 16,
        mixers: ['full_attention*16'],
        params: 1_235_814_400,
      },
    },
  },
  {
    // ai21labs/Jamba-v0.1: attention at 4, 12, 20, 28; 51.57B parameters (published: 51.6B, the
    // Hugging Face Hub's safetensors count; AI21's announcement rounds it to 52B).
    file: 'jamba-v0.1.json',
    published: 51.6e9,
    expect: {
      layout: {
        vocab: 65536,
        dim: 4096,
        layers: 32,
        mixers: [
          'mamba*4',
          ...Array.from({ length: 3 }, () => ['attention*1', 'mamba*7']).flat(),
          'attention*1',
          'mamba*3',
        ],
        params: 51_570_323_328,
      },
    },
  },
  {
    // Qwen/Qwen3-Next-80B-A3B: gated attention every 4th layer; 79.67B parameters (the model
    // card's "80B in total and 3B activated": 0.41% below 80B).
    file: 'qwen3-next-80b-a3b.json',
    published: 80e9,
    expect: {
      layout: {
        vocab: 151936,
        dim: 2048,
        layers: 48,
        mixers: Array.from({ length: 12 }, () => ['deltanet*3', 'attn*1']).flat(),
        params: 79_674_391_296,
      },
    },
  },
  {
    file: 'nemotron-h-8b.json',
    published: 8.1e9,
    // "M-M-M-M*-...": Mamba-2, attention and MLP-only (no mixer) layers; 8.10B parameters
    // (published: 8.1B, the Hugging Face Hub's safetensors count for nvidia/Nemotron-H-8B-Base-8K).
    expect: {
      layout: {
        vocab: 131072,
        dim: 4096,
        layers: 52,
        mixers: '2-2-2-2a-2-2-2-2-2a-2-2-2-2-2a-2-2-2-2-2a-2-2-2-2-2-'
          .split('')
          .map((c) => `${{ '2': 'mamba', a: 'attention', '-': 'no_mixer' }[c]}*1`),
        params: 8_100_852_736,
      },
    },
  },
  {
    // tiiuae/Falcon-H1-7B: attention and Mamba-2 in parallel in all 44 layers; 7.586B
    // parameters (published: 7.59B, the Hugging Face Hub's safetensors count).
    file: 'falcon-h1-7b.json',
    published: 7.59e9,
    expect: {
      layout: {
        vocab: 130048,
        dim: 3072,
        layers: 44,
        mixers: ['hybrid*44'],
        params: 7_585_513_568,
      },
    },
  },
  {
    // google/gemma-3-1b-pt: five sliding-window (512) layers per global one, 26 layers; 999.9M
    // parameters. Published: 302M embedding + 698M non-embedding = 1.0B (Gemma 3 Technical
    // Report, arXiv:2503.19786, Table 1); here 301,989,888 + 697,896,064.
    file: 'gemma-3-1b.json',
    published: 1.0e9,
    expect: {
      layout: {
        vocab: 262144,
        dim: 1152,
        layers: 26,
        mixers: [
          ...Array.from({ length: 4 }, () => ['sliding_attention*5', 'full_attention*1']).flat(),
          'sliding_attention*2',
        ],
        params: 999_885_952,
      },
    },
  },
  {
    // openai/gpt-oss-20b (MXFP4 experts): 20.91B parameters, 3.61B active without the
    // embedding table (OpenAI's gpt-oss model card: 20.91B total, 3.61B active; "21B / 3.6B").
    file: 'gpt-oss-20b.json',
    published: 20.91e9,
    without: ['quantization_config'],
    expect: {
      layout: {
        vocab: 201088,
        dim: 2880,
        layers: 24,
        mixers: Array.from({ length: 12 }, () => [
          'sliding_attention*1',
          'full_attention*1',
        ]).flat(),
        params: 20_914_757_184,
      },
    },
  },
  {
    // deepseek-ai/DeepSeek-V3: 671B total, 37B activated (the model card and the technical
    // report, arXiv 2412.19437), not counting the 14B multi-token-prediction module that the HF
    // checkpoint also holds (685B) and transformers skips. strata: 671.03B total; 37.55B active.
    // The release is FP8; its bf16 upcast (DeepSeek's fp8_cast_bf16.py) has this config without
    // quantization_config.
    file: 'deepseek-v3.json',
    published: 671e9,
    without: ['quantization_config'],
    expect: {
      layout: {
        vocab: 129280,
        dim: 7168,
        layers: 61,
        mixers: ['mla*61'],
        params: 671_026_419_200,
      },
    },
  },
  {
    // LiquidAI/LFM2-1.2B as first published (block_ff_dim, full_attn_idxs): 1.17B parameters
    // (published: 1.17B, the Hugging Face Hub's safetensors count).
    file: 'lfm2-1.2b.json',
    published: 1.17e9,
    expect: {
      layout: {
        vocab: 65536,
        dim: 2048,
        layers: 16,
        mixers: [
          'conv*2',
          'attention*1',
          'conv*2',
          'attention*1',
          'conv*2',
          'attention*1',
          'conv*1',
          'attention*1',
          'conv*1',
          'attention*1',
          'conv*1',
          'attention*1',
          'conv*1',
        ],
        params: 1_170_340_608,
      },
    },
  },
  {
    // Zyphra/Zamba2-2.7B: 54 Mamba-2 layers, the two shared blocks alternating at the 9 hybrid
    // layers; 2,662,214,560 parameters with each shared block counted once (published: 2.66B
    // params, the Hugging Face model page's safetensors count; the name rounds to 2.7B).
    file: 'zamba2-2.7b.json',
    published: 2.66e9,
    expect: {
      layout: {
        vocab: 32000,
        dim: 2560,
        layers: 54,
        mixers: [
          'mamba*6',
          'mamba+shared0*1',
          ...Array.from({ length: 6 }, (_, j) => [
            'mamba*5',
            `mamba+shared${(j + 1) % 2}*1`,
          ]).flat(),
          'mamba*4',
          'mamba+shared1*1',
          'mamba*3',
          'mamba+shared0*1',
          'mamba*2',
        ],
        params: 2_662_214_560,
      },
    },
  },
];

describe('published configs', () => {
  for (const row of PUBLISHED) {
    it(`${row.file}`, () => {
      const published = fixture(row.file);
      const config = Object.fromEntries(
        Object.entries(published).filter(([k]) => !row.without?.includes(k)),
      );
      const layout = layoutOf(importHfConfig(config, row.file).model);
      // A quantized release strata dequantises (gpt-oss MXFP4, DeepSeek-V3 FP8) is the same
      // model as its unquantized upcast.
      if (row.without?.includes('quantization_config'))
        expect(layoutOf(importHfConfig(published, row.file).model)).toEqual(layout);
      expect(layout).toEqual(row.expect.layout);
      expect(Math.abs(layout.params - row.published) / row.published).toBeLessThan(0.005);
    });
  }

  it('imports Llama-3.2-1B to the known layout', () => {
    const { model, weightMap } = importHfConfig(fixture('llama-3.2-1b.json'), 'Llama-3.2-1B');
    expect(model.name).toBe('Llama-3.2-1B');
    expect(model.norm).toEqual({ kind: 'rms', eps: 1e-5, unitOffset: false, bias: false });
    expect(model.tieEmbeddings).toBe(true);
    expect(model.maxContext).toBe(131072);
    for (const layer of model.layers) {
      expect(layer.mixer).toEqual({
        kind: 'attention',
        heads: 32,
        kvHeads: 8,
        headDim: 64,
        rope: {
          theta: 500000,
          rotaryDim: 64,
          scaling: {
            kind: 'llama3',
            factor: 32,
            lowFreqFactor: 1,
            highFreqFactor: 4,
            originalMaxPositions: 8192,
          },
        },
        qkNorm: false,
        qkvBias: false,
        outBias: false,
        causal: true,
        window: null,
        scale: 0.125,
        softcap: null,
        sinkTokens: null,
        evict: null,
        sinks: false,
        outputGate: false,
      });
      expect(layer.ffn).toEqual({
        kind: 'mlp',
        hidden: 8192,
        act: 'silu',
        gated: true,
        bias: false,
      });
    }
    expect(weightMap['model.layers.15.mlp.down_proj.weight']).toBe(
      'model.layers.15.mlp.down_proj.weight',
    );
    expect(weightMap['lm_head.weight']).toBeUndefined();
    expect(Object.keys(weightMap)).toHaveLength(2 + 16 * 9);
  });

  it('counts Llama-3.2-1B parameters within 0.5% of the published 1.24B', () => {
    const { model } = importHfConfig(fixture('llama-3.2-1b.json'), 'Llama-3.2-1B');
    const c = countParams(model);
    expect(Math.abs(c.total - 1_235_814_400) / 1_235_814_400).toBeLessThan(0.005);
    expect(Math.abs(c.total - 1.24e9) / 1.24e9).toBeLessThan(0.005);
    expect(c.embedding).toBe(128256 * 2048);
    expect(c.lmHead).toBe(0);
    expect(c.perLayer).toEqual(Array(16).fill(60_821_504));
    expect(c.total).toBe(c.embedding + c.perLayer.reduce((a, b) => a + b) + 2048);
  });
});

describe('model types', () => {
  it('imports every type of the HF import issue', () => {
    // The issue's list, hard-coded: dropping an importer fails here.
    const ISSUE_TYPES = [
      'llama',
      'mistral',
      'qwen3',
      'mixtral',
      'qwen3_moe',
      'gemma3_text',
      'gpt_oss',
      'deepseek_v3',
      // Issue 17 (sparse attention): DeepSeek-V3.2's indexer.
      'deepseek_v32',
      'mamba',
      'mamba2',
      'jamba',
      'bamba',
      'falcon_h1',
      'nemotron_h',
      'granitemoehybrid',
      'zamba2',
      'lfm2',
      'qwen3_next',
    ];
    // Plus fla's linear-attention types and the remote-code diffusion types (issue 16), from the
    // registry (which lists the issue's types too).
    const registered = IMPORTERS.filter((i) => i.origin !== 'transformers').map((i) => i.modelType);
    expect([...SUPPORTED_MODEL_TYPES].sort()).toEqual([...ISSUE_TYPES, ...registered].sort());
  });
});

/** A small valid Llama config; tests override keys. */
const LLAMA = {
  model_type: 'llama',
  vocab_size: 256,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 4096,
  rope_theta: 10000,
};

const attn = (config: object): AttentionSpec =>
  importHfConfig(config, 't').model.layers[0].mixer as AttentionSpec;

describe('config errors', () => {
  it('names an unknown key', () => {
    expect(() => importHfConfig({ ...LLAMA, use_fancy_mixer: true }, 'x')).toThrow(
      /x config: error: config key 'use_fancy_mixer' is not understood by strata's llama importer/,
    );
  });

  it('names every unknown key', () => {
    expect(() => importHfConfig({ ...LLAMA, alpha: 1, beta: 2 }, 'x')).toThrow(
      /config keys 'alpha', 'beta' are not understood/,
    );
  });

  it('names a key another family has but this one lacks', () => {
    expect(() => importHfConfig({ ...LLAMA, sliding_window: 512 }, 'x')).toThrow(
      /config key 'sliding_window' is not understood by strata's llama importer/,
    );
  });

  it('accepts the harmless keys', () => {
    const cfg = {
      ...LLAMA,
      torch_dtype: 'bfloat16',
      dtype: 'bfloat16',
      architectures: ['LlamaForCausalLM'],
      bos_token_id: 1,
      eos_token_id: [2, 3],
      pad_token_id: null,
      transformers_version: '5.0.0',
      use_cache: true,
      initializer_range: 0.02,
      attention_dropout: 0,
      pretraining_tp: 1,
    };
    expect(importHfConfig(cfg, 'x').model.layers).toHaveLength(2);
  });

  it('names an unknown model_type and a missing one', () => {
    // The registered importers' types follow qwen3_next.
    expect(() => importHfConfig({ ...LLAMA, model_type: 'gpt2' }, 'x')).toThrow(
      /^x config: error: model_type 'gpt2' is not known to strata \(supported: llama, mistral, qwen3, mixtral, qwen3_moe, mamba, mamba2, bamba, jamba, lfm2, nemotron_h, zamba2, granitemoehybrid, deepseek_v3, gemma3_text, gpt_oss, falcon_h1, qwen3_next(, \w+)*\)$/,
    );
    // DiffusionGemma has its own reader, outside the registry, and is listed too.
    expect(() => importHfConfig({ ...LLAMA, model_type: 'gpt2' }, 'x')).toThrow(
      /, diffusion_gemma, diffusion_gemma_text\)$/,
    );
    expect(() => importHfConfig({ hidden_size: 4 }, 'x')).toThrow(/x config: error: no model_type/);
    expect(() => importHfConfig({ model_type: 'toString' }, 'x')).toThrow(
      /model_type 'toString' is not known/,
    );
  });

  it('refuses quantized checkpoints other than gpt-oss MXFP4 and DeepSeek-V3 block FP8', () => {
    expect(() =>
      importHfConfig({ ...LLAMA, quantization_config: { quant_method: 'gptq' } }, 'x'),
    ).toThrow(
      /config key 'quantization_config' \(quant_method 'gptq'\): strata reads unquantised f32\/f16\/bf16 checkpoints, gpt-oss MXFP4 and DeepSeek-V3 block FP8/,
    );
    expect(() =>
      importHfConfig({ ...LLAMA, quantization_config: { quant_method: 'fp8' } }, 'x'),
    ).toThrow(/block FP8 only as DeepSeek-V3's weights, not on model_type 'llama'/);
  });

  it('names missing and ill-typed keys', () => {
    const { hidden_size: _, ...noHidden } = LLAMA;
    expect(() => importHfConfig(noHidden, 'x')).toThrow(/config key 'hidden_size' is required/);
    expect(() => importHfConfig({ ...LLAMA, num_hidden_layers: 'two' }, 'x')).toThrow(
      /config key 'num_hidden_layers' must be an integer, got "two"/,
    );
    expect(() => importHfConfig({ ...LLAMA, num_key_value_heads: 3 }, 'x')).toThrow(
      /config key 'num_key_value_heads' 3 does not divide num_attention_heads 4/,
    );
  });

  it('maps hidden_act and names an unsupported one', () => {
    expect(
      (
        importHfConfig({ ...LLAMA, hidden_act: 'gelu_pytorch_tanh' }, 'x').model.layers[0]
          .ffn as MlpSpec
      ).act,
    ).toBe('gelu_tanh');
    expect(
      (importHfConfig({ ...LLAMA, hidden_act: 'swish' }, 'x').model.layers[0].ffn as MlpSpec).act,
    ).toBe('silu');
    expect(() => importHfConfig({ ...LLAMA, hidden_act: 'quick_gelu' }, 'x')).toThrow(
      /config key 'hidden_act' 'quick_gelu' is not supported/,
    );
  });
});

describe('llama options', () => {
  it('derives head_dim and kv heads like LlamaConfig', () => {
    const { num_key_value_heads: _, ...noKv } = LLAMA;
    const a = attn(noKv);
    expect([a.heads, a.kvHeads, a.headDim, a.scale]).toEqual([4, 4, 16, 0.25]);
    expect(attn({ ...LLAMA, num_key_value_heads: null }).kvHeads).toBe(4);
    expect(attn({ ...LLAMA, head_dim: 32 }).headDim).toBe(32);
  });

  it('reads attention_bias, mlp_bias and tie_word_embeddings', () => {
    const { model, weightMap } = importHfConfig(
      { ...LLAMA, attention_bias: true, mlp_bias: true, tie_word_embeddings: false },
      'x',
    );
    const a = model.layers[0].mixer as AttentionSpec;
    expect(a.qkvBias && a.outBias).toBe(true);
    expect((model.layers[0].ffn as MlpSpec).bias).toBe(true);
    expect(weightMap['model.layers.1.self_attn.o_proj.bias']).toBe(
      'model.layers.1.self_attn.o_proj.bias',
    );
    expect(weightMap['model.layers.0.mlp.gate_proj.bias']).toBe(
      'model.layers.0.mlp.gate_proj.bias',
    );
    expect(weightMap['lm_head.weight']).toBe('lm_head.weight');
  });
});

describe('RoPE spellings', () => {
  const rope = (extra: object) => {
    const r = attn({ ...LLAMA, ...extra }).rope;
    if (!r) throw new Error('imported attention has no RoPE');
    return r;
  };

  it('reads plain theta and a null rope_scaling', () => {
    expect(rope({ rope_theta: 5e5, rope_scaling: null })).toEqual({
      theta: 5e5,
      rotaryDim: 16,
      scaling: { kind: 'none' },
    });
  });

  it('reads linear scaling spelled type or rope_type', () => {
    expect(rope({ rope_scaling: { type: 'linear', factor: 2 } }).scaling).toEqual({
      kind: 'linear',
      factor: 2,
    });
    expect(rope({ rope_scaling: { rope_type: 'linear', factor: 4 } }).scaling).toEqual({
      kind: 'linear',
      factor: 4,
    });
  });

  it("reads transformers 5's rope_parameters dict", () => {
    const { rope_theta: _, ...noTheta } = LLAMA;
    const r = attn({
      ...noTheta,
      rope_parameters: {
        rope_type: 'llama3',
        rope_theta: 5e5,
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
      },
    }).rope;
    expect(r).toEqual({
      theta: 5e5,
      rotaryDim: 16,
      scaling: {
        kind: 'llama3',
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositions: 8192,
      },
    });
    expect(attn({ ...noTheta, rope_parameters: { rope_type: 'default' } }).rope?.theta).toBe(10000);
  });

  it('reads yarn with HF defaults', () => {
    const s = rope({
      rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 1024 },
    }).scaling;
    expect(s).toEqual({
      kind: 'yarn',
      factor: 4,
      originalMaxPositions: 1024,
      betaFast: 32,
      betaSlow: 1,
      attentionFactor: 0.1 * Math.log(4) + 1,
      truncate: true,
    });
    // gpt-oss: rope_parameters.truncate false keeps the fractional correction range.
    expect(
      rope({ rope_scaling: { rope_type: 'yarn', factor: 32, truncate: false } }).scaling,
    ).toMatchObject({ kind: 'yarn', factor: 32, truncate: false });
  });

  it('reads yarn with mscale (DeepSeek style), explicit attention_factor, and factor from context lengths', () => {
    const ds = rope({
      rope_scaling: {
        type: 'yarn',
        factor: 40,
        mscale: 1,
        mscale_all_dim: 0.5,
        beta_fast: 16,
        original_max_position_embeddings: 4096,
      },
    }).scaling;
    expect(ds).toMatchObject({ betaFast: 16, betaSlow: 1 });
    expect(ds.kind === 'yarn' && ds.attentionFactor).toBeCloseTo(
      (0.1 * Math.log(40) + 1) / (0.05 * Math.log(40) + 1),
      12,
    );
    const af = rope({
      rope_parameters: { rope_type: 'yarn', factor: 2, attention_factor: 1.5 },
    }).scaling;
    expect(af).toMatchObject({ attentionFactor: 1.5, originalMaxPositions: 4096 });
    const implied = rope({
      rope_scaling: { rope_type: 'yarn', original_max_position_embeddings: 1024 },
    }).scaling;
    expect(implied).toMatchObject({ factor: 4 });
  });

  it('reads partial rotary factor from either place', () => {
    expect(rope({ partial_rotary_factor: 0.5 }).rotaryDim).toBe(8);
    const { rope_theta: _, ...noTheta } = LLAMA;
    expect(
      attn({
        ...noTheta,
        rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 0.25 },
      }).rope?.rotaryDim,
    ).toBe(4);
    // int(16 * 0.3) = 4, as HF truncates.
    expect(rope({ partial_rotary_factor: 0.3 }).rotaryDim).toBe(4);
    expect(() => rope({ partial_rotary_factor: 0.1 })).toThrow(
      /config key 'partial_rotary_factor' 0.1 gives 1 rotary dims of head_dim 16/,
    );
  });

  it('names what it cannot honour', () => {
    expect(() => rope({ rope_scaling: { type: 'dynamic', factor: 2 } })).toThrow(
      /config key 'rope_scaling.rope_type' 'dynamic' is not supported/,
    );
    expect(() => rope({ rope_scaling: { rope_type: 'yarn', factor: 32, truncate: 'no' } })).toThrow(
      /config key 'rope_scaling.truncate' must be true or false/,
    );
    expect(() =>
      rope({ rope_parameters: { rope_type: 'default', mrope_section: [1, 2] } }),
    ).toThrow(/config key 'rope_parameters.mrope_section' is not a RoPE setting/);
    expect(() => rope({ rope_scaling: { rope_type: 'llama3', factor: 8 } })).toThrow(
      /config key 'rope_scaling.low_freq_factor' is required for rope type 'llama3'/,
    );
    expect(() =>
      rope({
        rope_scaling: { type: 'linear', factor: 2 },
        rope_parameters: { rope_type: 'linear', factor: 3 },
      }),
    ).toThrow(/config key 'rope_scaling' disagrees with rope_parameters/);
    expect(() => rope({ rope_scaling: { type: 'linear', rope_type: 'yarn', factor: 2 } })).toThrow(
      /'rope_scaling.rope_type' is 'yarn' but rope_scaling.type is 'linear'/,
    );
    expect(() =>
      rope({ rope_theta: 1e4, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }),
    ).toThrow(/config key 'rope_theta' is 10000 but rope_parameters.rope_theta is 1000000/);
    expect(() =>
      rope({
        rope_parameters: {
          full_attention: { rope_type: 'default' },
          sliding_attention: { rope_type: 'default' },
        },
      }),
    ).toThrow(/config key 'rope_parameters' holds one RoPE per layer type/);
  });
});

describe('mistral and qwen3', () => {
  const MISTRAL = { ...LLAMA, model_type: 'mistral' };
  const QWEN3 = { ...LLAMA, model_type: 'qwen3', head_dim: 16, num_hidden_layers: 4 };
  const windows = (config: object) =>
    importHfConfig(config, 'x').model.layers.map((l) => (l.mixer as AttentionSpec).window);

  it('mistral: sliding_window defaults to 4096, null turns it off', () => {
    expect(windows(MISTRAL)).toEqual([4096, 4096]);
    expect(windows({ ...MISTRAL, sliding_window: null })).toEqual([null, null]);
    expect(windows({ ...MISTRAL, sliding_window: 8 })).toEqual([8, 8]);
    expect(importHfConfig({ ...MISTRAL, sliding_window: 8 }, 'x').model.layers[0].mixerName).toBe(
      'sliding_attention',
    );
    const { num_key_value_heads: _, ...noKv } = MISTRAL;
    expect(attn({ ...noKv, num_attention_heads: 16 }).kvHeads).toBe(8);
  });

  it('mistral: names attention_bias, which MistralConfig does not have', () => {
    expect(() => importHfConfig({ ...MISTRAL, attention_bias: true }, 'x')).toThrow(
      /config key 'attention_bias' is not understood by strata's mistral importer/,
    );
  });

  it('qwen3: qk norm and biases in the weight map', () => {
    const { model, weightMap } = importHfConfig({ ...QWEN3, attention_bias: true }, 'x');
    expect((model.layers[0].mixer as AttentionSpec).qkNorm).toBe(true);
    expect(weightMap['model.layers.3.self_attn.q_norm.weight']).toBe(
      'model.layers.3.self_attn.q_norm.weight',
    );
    expect(weightMap['model.layers.3.self_attn.k_proj.bias']).toBe(
      'model.layers.3.self_attn.k_proj.bias',
    );
    expect(
      expectedTensors(model).find((t) => t.name === 'model.layers.0.self_attn.k_norm.weight')
        ?.shape,
    ).toEqual([16]);
  });

  it('qwen3: head_dim defaults to 128 as in Qwen3Config', () => {
    const { head_dim: _, ...noHeadDim } = QWEN3;
    expect(attn(noHeadDim).headDim).toBe(128);
  });

  it('qwen3: use_sliding_window, sliding_window and max_window_layers', () => {
    expect(windows(QWEN3)).toEqual([null, null, null, null]);
    expect(windows({ ...QWEN3, sliding_window: 64 })).toEqual([null, null, null, null]);
    expect(
      windows({ ...QWEN3, use_sliding_window: true, sliding_window: 64, max_window_layers: 2 }),
    ).toEqual([null, null, 64, 64]);
    expect(windows({ ...QWEN3, use_sliding_window: true, max_window_layers: 3 })).toEqual([
      null,
      null,
      null,
      4096,
    ]);
  });

  it('qwen3: layer_types decides where the window applies', () => {
    const types = ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'];
    expect(
      windows({ ...QWEN3, use_sliding_window: true, sliding_window: 32, layer_types: types }),
    ).toEqual([32, null, 32, null]);
    expect(
      windows({ ...QWEN3, use_sliding_window: false, sliding_window: null, layer_types: types }),
    ).toEqual([null, null, null, null]);
    expect(() => importHfConfig({ ...QWEN3, layer_types: ['full_attention'] }, 'x')).toThrow(
      /config key 'layer_types' has 1 entries for 4 layers/,
    );
    expect(() =>
      importHfConfig({ ...QWEN3, layer_types: Array(4).fill('linear_attention') }, 'x'),
    ).toThrow(
      /config key 'layer_types' entry "linear_attention" is not full_attention or sliding_attention/,
    );
  });
});

describe('python-style JSON', () => {
  it('reads bare Infinity, -Infinity and NaN but leaves strings alone', () => {
    const v = parsePythonJson(
      '{"a": [0.0, Infinity, -Infinity, NaN], "s": "NaN \\" Infinity"}',
      'j',
    ) as {
      a: number[];
      s: string;
    };
    expect(v.a[0]).toBe(0);
    expect(v.a[1]).toBe(Infinity);
    expect(v.a[2]).toBe(-Infinity);
    expect(Number.isNaN(v.a[3])).toBe(true);
    expect(v.s).toBe('NaN " Infinity');
    expect(() => parsePythonJson('{"a": 1,}', 'bad.json')).toThrow(
      /^bad\.json:1:9: error: not valid JSON/,
    );
  });

  it('reads the published Nemotron-H config, which holds a bare Infinity', () => {
    const config = fixture('nemotron-h-8b.json') as { time_step_limit: number[] };
    expect(config.time_step_limit).toEqual([0, Infinity]);
  });
});
