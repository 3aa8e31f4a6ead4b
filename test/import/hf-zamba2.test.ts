/** HF import of Zamba2: the layout, the shared blocks and where transformers saves their tensors. */
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { validateModel } from '../../src/spec/validate.ts';
import { tinyConfig } from '../helpers/hf-config.ts';

const tiny = (): Record<string, unknown> => tinyConfig('zamba2');

describe('zamba2 import', () => {
  it('reads the fixture: mamba2 layers, two shared blocks cycling over the hybrid layers', () => {
    const { model } = importHfConfig(tiny(), 'zamba2');
    expect(validateModel(model)).toEqual([]);
    expect(model.layers.map((l) => l.shared ?? '-')).toEqual([
      '-',
      'shared0',
      '-',
      'shared1',
      '-',
      'shared0',
    ]);
    expect(model.layers[0].mixer).toMatchObject({
      kind: 'mamba2',
      heads: 8,
      headDim: 16,
      dState: 16,
      groups: 1,
      chunk: 16,
      normGroup: 128,
      normEps: 1e-5,
      dtMin: 1e-12,
      dtMax: null,
    });
    const [a] = model.sharedBlocks!;
    expect(a.attention).toMatchObject({ heads: 4, kvHeads: 4, headDim: 32, scale: 0.25 });
    expect(a.attention.rope).toEqual({ theta: 10000, rotaryDim: 32, scaling: { kind: 'none' } });
    expect(a).toMatchObject({ adapterRank: 8, attentionAdapters: true, ffnAdapters: true });
    expect(a.ffn).toEqual({ kind: 'mlp', hidden: 128, act: 'gelu', gated: true, bias: false });
  });

  it("maps shared tensors to their first use's layer and adapters to the use's index", () => {
    const { weightMap, storedShapes } = importHfConfig(tiny(), 'zamba2');
    expect(weightMap['model.shared.shared0.self_attn.q_proj.weight']).toBe(
      'model.layers.1.shared_transformer.self_attn.q_proj.weight',
    );
    expect(weightMap['model.shared.shared1.feed_forward.gate_up_proj.weight']).toBe(
      'model.layers.3.shared_transformer.feed_forward.gate_up_proj.weight',
    );
    // Layer 5 is the third hybrid layer and uses block 0, saved under layer 1.
    expect(weightMap['model.layers.5.shared.q_adapter.down.weight']).toBe(
      'model.layers.1.shared_transformer.self_attn.linear_q_adapter_list.2.0.weight',
    );
    expect(weightMap['model.layers.3.shared.gate_up_adapter.up.weight']).toBe(
      'model.layers.3.shared_transformer.feed_forward.gate_up_proj_adapter_list.1.1.weight',
    );
    expect(weightMap['model.layers.5.shared.linear.weight']).toBe('model.layers.5.linear.weight');
    expect(weightMap['model.layers.5.mixer.in_proj.weight']).toBe(
      'model.layers.5.mamba_decoder.mamba.in_proj.weight',
    );
    expect(weightMap['model.layers.5.input_layernorm.weight']).toBe(
      'model.layers.5.mamba_decoder.input_layernorm.weight',
    );
    expect(weightMap['model.layers.4.mixer.A_log']).toBe('model.layers.4.mamba.A_log');
    expect(weightMap['model.norm.weight']).toBe('model.final_layernorm.weight');
    expect(storedShapes['model.layers.0.mixer.conv1d.weight']).toEqual([160, 1, 4]);
  });

  it('takes the transformers 4 spelling of the layout and leaves RoPE out without use_mem_rope', () => {
    const cfg = tiny();
    cfg.layers_block_type = (cfg.layers_block_type as string[]).map((t) =>
      t === 'linear_attention' ? 'mamba' : t,
    );
    cfg.use_mem_rope = false;
    const { model } = importHfConfig(cfg, 'zamba2');
    expect(model.sharedBlocks![0].attention.rope).toBeNull();
  });

  it('leaves out shared blocks no hybrid layer uses', () => {
    const { model } = importHfConfig({ ...tiny(), num_mem_blocks: 5 }, 'zamba2');
    expect(model.sharedBlocks!.map((b) => b.name)).toEqual(['shared0', 'shared1', 'shared2']);
    expect(model.layers.map((l) => l.shared ?? '-')).toEqual([
      '-',
      'shared0',
      '-',
      'shared1',
      '-',
      'shared2',
    ]);
  });

  it('maps an untied lm_head (found by the fuzzer: it threw an internal error)', () => {
    const { model, weightMap } = importHfConfig(
      { ...tiny(), tie_word_embeddings: false },
      'zamba2',
    );
    expect(model.tieEmbeddings).toBe(false);
    expect(weightMap['lm_head.weight']).toBe('lm_head.weight');
  });

  it('names what it cannot import', () => {
    const fails = (patch: Record<string, unknown>) => () =>
      importHfConfig({ ...tiny(), ...patch }, 'z');
    expect(fails({ num_hidden_layers: 5 })).toThrow(
      "z config: error: config key 'num_hidden_layers' is 5 but layers_block_type lists 6 layers",
    );
    expect(fails({ hybrid_layer_ids: [1, 3] })).toThrow(/hybrid_layer_ids.*disagrees/);
    expect(fails({ layers_block_type: ['mamba', 'attention'] })).toThrow(
      /unknown layer type "attention"/,
    );
    expect(fails({ time_step_limit: [0, 1] })).toThrow(/time_step_limit.*CUDA-kernel path/);
    expect(fails({ use_long_context: true })).toThrow(/use_long_context.*not supported yet/);
    expect(fails({ attention_head_dim: 16 })).toThrow(/attention_head_dim.*derives 32/);
    expect(fails({ use_shared_mlp_adapter: false })).toThrow(/always has adapters/);
    expect(fails({ mamba_headdim: 8 })).toThrow(/mamba_headdim/);
  });
});
