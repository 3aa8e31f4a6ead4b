/**
 * HF import of the MoE decoder families: which layers are sparse, their router, experts and
 * defaults (MixtralConfig, Qwen3MoeConfig), and the checkpoint names of routers and experts.
 */
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import type { AttentionSpec, MlpSpec, MoeSpec } from '../../src/spec/model.ts';

const COMMON = {
  vocab_size: 256,
  hidden_size: 64,
  intermediate_size: 32,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};

const MIXTRAL = { model_type: 'mixtral', ...COMMON, num_local_experts: 8, num_experts_per_tok: 2 };
const QWEN3_MOE = {
  model_type: 'qwen3_moe',
  ...COMMON,
  head_dim: 16,
  num_experts: 8,
  num_experts_per_tok: 2,
  moe_intermediate_size: 24,
};

const moeOf = (m: { layers: { ffn: unknown }[] }, i: number) => m.layers[i]!.ffn as MoeSpec;

describe('mixtral', () => {
  it('makes every layer sparse with a renormalising softmax router', () => {
    const { model, weightMap } = importHfConfig(
      { ...MIXTRAL, router_jitter_noise: 0.1, output_router_logits: false },
      'mix',
    );
    for (const l of model.layers) {
      expect(l.ffnName).toBe('moe');
      const f = l.ffn as MoeSpec;
      expect([f.experts, f.topK, f.expert.hidden, f.expert.act, f.expert.gated]).toEqual([
        8,
        2,
        32,
        'silu',
        true,
      ]);
      expect(f.router.scoring === 'softmax' && f.router.normalize).toBe(true);
    }
    // MixtralConfig defaults: rms eps 1e-5, theta 1e6, no sliding window when absent.
    const a = model.layers[0]!.mixer as AttentionSpec;
    expect(model.norm.eps).toBe(1e-5);
    expect(a.rope?.theta).toBe(1e6);
    expect(a.window).toBeNull();
    expect(weightMap['model.layers.3.mlp.gate.weight']).toBe(
      'model.layers.3.block_sparse_moe.gate.weight',
    );
    expect(weightMap['model.layers.0.mlp.experts.7.gate_proj.weight']).toBe(
      'model.layers.0.block_sparse_moe.experts.7.w1.weight',
    );
    expect(weightMap['model.layers.0.mlp.experts.7.up_proj.weight']).toBe(
      'model.layers.0.block_sparse_moe.experts.7.w3.weight',
    );
    expect(weightMap['model.layers.0.mlp.experts.7.down_proj.weight']).toBe(
      'model.layers.0.block_sparse_moe.experts.7.w2.weight',
    );
    expect(weightMap['model.layers.0.self_attn.q_proj.weight']).toBe(
      'model.layers.0.self_attn.q_proj.weight',
    );
  });

  it('reads a sliding window when given and rejects top-k over the experts', () => {
    const a = importHfConfig({ ...MIXTRAL, sliding_window: 64 }, 'mix').model.layers[2]!
      .mixer as AttentionSpec;
    expect(a.window).toBe(64);
    expect(() => importHfConfig({ ...MIXTRAL, num_experts_per_tok: 9 }, 'mix')).toThrow(
      /config key 'num_experts_per_tok' \(9\) exceeds the number of experts \(8\)/,
    );
  });
});

describe('qwen3_moe', () => {
  it('places dense layers by mlp_only_layers and decoder_sparse_step', () => {
    const m = importHfConfig(
      { ...QWEN3_MOE, decoder_sparse_step: 2, mlp_only_layers: [3] },
      'q',
    ).model;
    expect(m.layers.map((l) => l.ffnName)).toEqual(['mlp', 'moe', 'mlp', 'mlp']);
    expect((m.layers[0]!.ffn as MlpSpec).hidden).toBe(32);
    const f = moeOf(m, 1);
    expect([f.experts, f.topK, f.expert.hidden]).toEqual([8, 2, 24]);
    // Qwen3MoeConfig: norm_topk_prob defaults to false.
    expect(f.router.normalize).toBe(false);
    expect(
      moeOf(importHfConfig({ ...QWEN3_MOE, norm_topk_prob: true }, 'q').model, 0).router,
    ).toMatchObject({ scoring: 'softmax', normalize: true });
  });

  it('accepts num_local_experts (how transformers 5 writes num_experts)', () => {
    const { num_experts: _, ...rest } = QWEN3_MOE;
    const m = importHfConfig({ ...rest, num_local_experts: 6 }, 'q').model;
    expect(moeOf(m, 0).experts).toBe(6);
  });

  it('uses the checkpoint names as they are, with qk-norm attention', () => {
    const { model, weightMap } = importHfConfig(QWEN3_MOE, 'q');
    expect(weightMap['model.layers.1.mlp.experts.3.up_proj.weight']).toBe(
      'model.layers.1.mlp.experts.3.up_proj.weight',
    );
    expect((model.layers[0]!.mixer as AttentionSpec).qkNorm).toBe(true);
  });

  it('windows every layer only with use_sliding_window, ignoring max_window_layers', () => {
    const off = importHfConfig(
      { ...QWEN3_MOE, sliding_window: 16, max_window_layers: 2 },
      'q',
    ).model;
    expect(off.layers.every((l) => (l.mixer as AttentionSpec).window === null)).toBe(true);
    const on = importHfConfig(
      { ...QWEN3_MOE, use_sliding_window: true, sliding_window: 16 },
      'q',
    ).model;
    expect(on.layers.every((l) => (l.mixer as AttentionSpec).window === 16)).toBe(true);
  });

  it('names bad layer lists', () => {
    expect(() => importHfConfig({ ...QWEN3_MOE, mlp_only_layers: [4] }, 'q')).toThrow(
      /config key 'mlp_only_layers' must be a list of layer indices in \[0, 4\), got \[4\]/,
    );
  });
});

describe('the transformers 5.17 fixtures', () => {
  it('import with every tensor accounted for', async () => {
    const mix = await importHfFolder('test/fixtures/hf/mixtral');
    await mix.close();
    expect(mix.model.layers.every((l) => l.ffn?.kind === 'moe')).toBe(true);
    const q = await importHfFolder('test/fixtures/hf/qwen3_moe');
    await q.close();
    expect(q.model.layers.map((l) => l.ffn?.kind)).toEqual(['moe', 'mlp']);
    expect(moeOf(q.model, 0).router.normalize).toBe(true);
  });
});
