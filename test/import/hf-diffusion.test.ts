/**
 * The masked-diffusion importers (llada, Dream): what they read from the fixture configs (the
 * diffusion section, bidirectional attention, the checkpoint names), and that every config value
 * the reference would compute differently with is refused naming the key and the value.
 */
import { describe, expect, it } from 'vitest';
import type { DiffusionSpec } from '../../src/spec/model.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { fixtureConfig, importRefusal } from '../helpers/hf-config.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { readFileSync } from 'node:fs';

const llada = () => fixtureConfig('hf/llada/config.json');
const dream = () => fixtureConfig('hf/Dream/config.json');

describe('llada import', () => {
  it('is a bidirectional Llama-shaped diffusion model under LLaDA names', () => {
    const { model, weightMap } = importHfConfig(llada(), 'llada');
    expect(model.diffusion).toMatchObject({ kind: 'llada', maskId: 63, genLength: 128 });
    expect((model.diffusion as DiffusionSpec).shiftLogits).toBeUndefined();
    expect(model.layers[0]!.mixer).toMatchObject({
      kind: 'attention',
      causal: false,
      heads: 4,
      kvHeads: 2,
      headDim: 8,
      qkvBias: false,
      outBias: false,
      rope: { theta: 500000 },
    });
    expect(model.layers[0]!.ffn).toMatchObject({ kind: 'mlp', gated: true, act: 'silu' });
    expect(weightMap['model.embed_tokens.weight']).toBe('model.transformer.wte.weight');
    expect(weightMap['lm_head.weight']).toBe('model.transformer.ff_out.weight');
    expect(weightMap['model.layers.1.self_attn.o_proj.weight']).toBe(
      'model.transformer.blocks.1.attn_out.weight',
    );
    expect(weightMap['model.layers.1.mlp.gate_proj.weight']).toBe(
      'model.transformer.blocks.1.ff_proj.weight',
    );
    expect(weightMap['model.layers.0.mlp.down_proj.weight']).toBe(
      'model.transformer.blocks.0.ff_out.weight',
    );
    expect(weightMap['model.layers.0.post_attention_layernorm.weight']).toBe(
      'model.transformer.blocks.0.ff_norm.weight',
    );
  });

  it('imports the released LLaDA-8B-Instruct config (GSAI-ML, transformers 4.46)', () => {
    const { model, weightMap } = importHfConfig(
      fixtureConfig('configs/llada-8b-instruct.json'),
      'llada-8b',
    );
    expect(model).toMatchObject({ vocab: 126464, dim: 4096, maxContext: 4096 });
    expect(model.layers).toHaveLength(32);
    expect(model.layers[0]!.mixer).toMatchObject({ heads: 32, kvHeads: 32, headDim: 128 });
    expect(model.layers[0]!.ffn).toMatchObject({ hidden: 12288, act: 'silu', gated: true });
    expect(model.diffusion).toMatchObject({ kind: 'llada', maskId: 126336 });
    // The same network as the hand-written spec the bench runs.
    const spec = parseSpec(readFileSync('specs/llada-8b.strata', 'utf8'), 'llada-8b.strata');
    expect(model.layers[5]!.mixer).toEqual(spec.layers[5]!.mixer);
    expect(model.layers[5]!.ffn).toEqual(spec.layers[5]!.ffn);
    expect(model.norm).toEqual(spec.norm);
    // The names of the released index (model.safetensors.index.json).
    expect(weightMap['model.layers.31.mlp.up_proj.weight']).toBe(
      'model.transformer.blocks.31.up_proj.weight',
    );
  });

  it("takes generate()'s mask id when the config names none, and the padded embedding size", () => {
    const c = llada();
    delete c.mask_token_id;
    c.embedding_size = 126464;
    c.vocab_size = 126464;
    const d = importHfConfig(c, 'llada').model.diffusion;
    expect(d && 'maskId' in d ? d.maskId : null).toBe(126336);
  });

  const refused: [string, unknown, RegExp][] = [
    ['block_type', 'sequential', /config key 'block_type' is "sequential"; .*only "llama"/],
    ['rope', false, /config key 'rope' is false; .*LLaDAModel asserts rope/],
    ['alibi', true, /config key 'alibi' is true; .*only false/],
    ['attention_layer_norm', true, /config key 'attention_layer_norm' is true/],
    ['block_group_size', 2, /config key 'block_group_size' is 2/],
    ['activation_type', 'swiglu', /config key 'activation_type' is "swiglu"; .*act\(ff_proj/],
    [
      'layer_norm_type',
      'default',
      /config key 'layer_norm_type' is "default"; .*rms and gemma_rms/,
    ],
    ['include_bias', true, /config key 'include_bias' is true .*include_qkv_bias only/],
    ['bias_for_layer_norm', true, /config key 'bias_for_layer_norm' gives the RMS norms a bias/],
    ['embedding_size', 32, /config key 'embedding_size' 32 is below vocab_size 64/],
    [
      'mask_token_id',
      64,
      /config key 'mask_token_id' 64 is not a token id below embedding_size 64/,
    ],
    ['n_kv_heads', 3, /config key 'n_kv_heads' 3 does not divide n_heads 4/],
  ];
  for (const [key, value, message] of refused) {
    it(`refuses ${key}: ${JSON.stringify(value)}`, () => {
      expect(importRefusal({ ...llada(), [key]: value })).toMatch(message);
    });
  }

  it('refuses include_bias where it also gives the norms a bias (bias_for_layer_norm null)', () => {
    expect(importRefusal({ ...llada(), include_bias: true, bias_for_layer_norm: null })).toMatch(
      /config key 'include_bias' gives the RMS norms a bias \(true\)/,
    );
  });

  it('refuses a key it does not know', () => {
    expect(importRefusal({ ...llada(), clip_qkv: 8 })).toMatch(/'clip_qkv' is not understood/);
  });
});

describe('Dream import', () => {
  it('is a bidirectional Qwen2-shaped diffusion model with logits shifted right by one', () => {
    const { model, weightMap } = importHfConfig(dream(), 'Dream');
    expect(model.diffusion).toMatchObject({
      kind: 'dream',
      maskId: 63,
      shiftLogits: true,
      eps: 1e-3,
    });
    expect(model.layers[1]!.mixer).toMatchObject({
      causal: false,
      qkvBias: true,
      outBias: false,
      headDim: 8,
    });
    expect(weightMap['model.layers.0.self_attn.q_proj.bias']).toBe(
      'model.layers.0.self_attn.q_proj.bias',
    );
  });

  it("imports a released checkpoint's bookkeeping (auto_map, rope_scaling null, window keys)", () => {
    const c = {
      ...dream(),
      architectures: ['DreamModel'],
      auto_map: {
        AutoConfig: 'configuration_dream.DreamConfig',
        AutoModel: 'modeling_dream.DreamModel',
      },
      rope_scaling: null,
      torch_dtype: 'bfloat16',
      use_sliding_window: false,
      sliding_window: null,
    };
    delete (c as Record<string, unknown>).rope_parameters;
    const { model } = importHfConfig(c, 'Dream');
    expect(model.layers[0]!.mixer).toMatchObject({ window: null, rope: { theta: 10000 } });
  });

  it('refuses a mask id outside the vocab and a head count that does not divide', () => {
    expect(importRefusal({ ...dream(), mask_token_id: 64 })).toMatch(
      /config key 'mask_token_id' 64 is not a token id below vocab_size 64/,
    );
    expect(importRefusal({ ...dream(), num_attention_heads: 5, num_key_value_heads: 5 })).toMatch(
      /config key 'hidden_size' 32 is not a multiple of num_attention_heads 5/,
    );
    expect(importRefusal({ ...dream(), hidden_act: 'tanh' })).toMatch(
      /config key 'hidden_act' 'tanh' is not supported/,
    );
  });
});
