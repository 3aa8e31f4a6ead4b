/**
 * fla's nsa model type (src/import/fla-nsa.ts), from a config written as NSAConfig.to_dict()
 * would write the tiny golden's (tools/golden/make_fla_golden.py, "nsa"; the golden itself is
 * not generated yet: fla's NSA runs only through Triton on a GPU): the spec, fla's tensor names,
 * and the settings strata refuses.
 */
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { expectedTensors } from '../../src/import/names.ts';
import type { NsaSpec } from '../../src/mixers/nsa.ts';
import { mlp } from '../helpers/models.ts';

const tiny = (): Record<string, unknown> => ({
  model_type: 'nsa',
  architectures: ['NSAForCausalLM'],
  vocab_size: 256,
  hidden_size: 64,
  num_hidden_layers: 2,
  num_heads: 16,
  num_kv_heads: 1,
  head_dim: 16,
  qkv_bias: false,
  block_size: 16,
  block_counts: 2,
  window_size: 6,
  rope_theta: 10000.0,
  max_position_embeddings: 2048,
  hidden_ratio: 4,
  intermediate_size: 16,
  hidden_act: 'swish',
  initializer_range: 0.02,
  elementwise_affine: true,
  norm_eps: 1e-6,
  use_cache: true,
  pad_token_id: 0,
  bos_token_id: null,
  eos_token_id: null,
  tie_word_embeddings: false,
  fuse_norm: true,
  fuse_swiglu: true,
  fuse_cross_entropy: true,
  fuse_linear_cross_entropy: false,
  use_l2warp: false,
  attnres_block_size: null,
  attn_mode: 'fused_recurrent',
});
const load = (over: Record<string, unknown> = {}) => importHfConfig({ ...tiny(), ...over }, 'tiny');

describe('nsa import', () => {
  it('reads the config: 16 heads over 1 kv head of 16, blocks of 16, 2 selected, window 6', () => {
    const { model } = load();
    const spec: NsaSpec = {
      kind: 'nsa',
      heads: 16,
      kvHeads: 1,
      headDim: 16,
      block: 16,
      stride: 16,
      select: 2,
      selectBlock: 16,
      window: 6,
      ropeTheta: 10000,
      qkvBias: false,
      scale: 0.25,
    };
    expect(model.layers.map((l) => l.mixer)).toEqual([spec, spec]);
    expect(model.layers[0].ffn).toEqual(mlp({ hidden: 16 }));
  });

  it("maps the canonical tensors onto fla's names", () => {
    const imp = load();
    const stored = expectedTensors(imp.model).map((t) => [imp.weightMap[t.name], t.shape]);
    const layer0 = stored.filter(([n]) => (n as string).startsWith('model.layers.0.'));
    expect(Object.fromEntries(layer0)).toEqual({
      'model.layers.0.attn_norm.weight': [64],
      'model.layers.0.attn.q_proj.weight': [256, 64],
      'model.layers.0.attn.k_proj.weight': [16, 64],
      'model.layers.0.attn.v_proj.weight': [16, 64],
      'model.layers.0.attn.g_proj.weight': [48, 64],
      'model.layers.0.attn.o_proj.weight': [64, 256],
      'model.layers.0.mlp_norm.weight': [64],
      'model.layers.0.mlp.gate_proj.weight': [16, 64],
      'model.layers.0.mlp.up_proj.weight': [16, 64],
      'model.layers.0.mlp.down_proj.weight': [64, 16],
    });
    expect(load({ qkv_bias: true }).weightMap['model.layers.1.attn.q_proj.bias']).toBe(
      'model.layers.1.attn.q_proj.bias',
    );
  });

  it('takes the defaults of NSAConfig', () => {
    const cfg = tiny();
    for (const k of [
      'num_heads',
      'num_kv_heads',
      'head_dim',
      'block_size',
      'block_counts',
      'window_size',
    ]) {
      delete cfg[k];
    }
    const m = importHfConfig(cfg, 'defaults').model.layers[0].mixer as NsaSpec;
    expect([m.heads, m.kvHeads, m.headDim, m.block, m.select, m.window]).toEqual([
      64, 4, 32, 64, 16, 512,
    ]);
  });

  it('refuses what strata cannot compute, naming the key', () => {
    expect(() => load({ window_size: 0 })).toThrow(/'window_size'.*sliding-window branch/);
    expect(() => load({ window_size: null })).toThrow(/'window_size'/);
    expect(() => load({ block_counts: [1, 2] })).toThrow(/'block_counts'/);
    expect(() => load({ num_kv_heads: 3 })).toThrow(/'num_kv_heads'/);
    expect(() => load({ attnres_block_size: 4 })).toThrow(/'attnres_block_size'/);
  });
});
