/** HF import of granitemoehybrid: layer types, MoE + shared MLP, multipliers, fused expert slices. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import type { AttentionSpec, Mamba2Spec, MoeSpec } from '../../src/spec/model.ts';
import { printSpec } from '../../src/spec/print.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { tinyConfig } from '../helpers/hf-config.ts';
import { mlp } from '../helpers/models.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'hf', 'granitemoehybrid');
const GRANITE = tinyConfig('granitemoehybrid');

describe('granitemoehybrid', () => {
  it('imports the golden fixture: mamba2 then attention, each with an MoE + shared SwiGLU', () => {
    const { model } = importHfConfig(GRANITE, 'g');
    expect(model.layers.map((l) => `${l.mixerName}:${l.mixer?.kind}/${l.ffn?.kind}`)).toEqual([
      'mamba:mamba2/moe',
      'attention:attention/moe',
    ]);
    expect(model).toMatchObject({
      vocab: 256,
      dim: 64,
      tieEmbeddings: true,
      embeddingScale: 2,
      residualScale: 0.5,
      logitScale: 0.5,
      norm: { kind: 'rms', eps: 1e-6 },
    });
    const mamba = model.layers[0].mixer as Mamba2Spec;
    expect(mamba).toMatchObject({
      heads: 8,
      headDim: 16,
      dState: 16,
      groups: 1,
      chunk: 16,
      normGroup: 128,
      normEps: 1e-6,
      dtMin: 0,
      dtMax: null,
    });
    const attn = model.layers[1].mixer as AttentionSpec;
    // position_embedding_type "nope": no RoPE; attention_multiplier is the softmax scale.
    expect(attn).toMatchObject({ heads: 4, kvHeads: 2, headDim: 16, rope: null, scale: 0.125 });
    const moe = model.layers[0].ffn as MoeSpec;
    expect(moe).toMatchObject({
      experts: 4,
      topK: 2,
      expert: { hidden: 32, act: 'silu', gated: true },
      shared: { hidden: 64, act: 'silu', gated: true },
      sharedGate: false,
      router: { scoring: 'softmax', normalize: true },
    });
    // The printed spec says the multipliers and resolves to the same model.
    const text = printSpec(model);
    expect(text).toContain('residual_scale 0.5');
    expect(text).toContain('logit_scale 0.5');
    expect(parseSpec(text, 'g.strata')).toEqual(model);
  });

  it('maps canonical experts to slices of the fused tensors: gate rows, then up rows', () => {
    const { weightMap, storedShapes, storedSlices } = importHfConfig(GRANITE, 'g');
    const p = 'model.layers.1.mlp';
    const input = 'model.layers.1.block_sparse_moe.input_linear.weight';
    expect(weightMap[`${p}.experts.3.gate_proj.weight`]).toBe(input);
    expect(storedShapes[`${p}.experts.3.gate_proj.weight`]).toEqual([4, 64, 64]);
    expect(storedSlices[`${p}.experts.3.gate_proj.weight`]).toEqual({
      start: [3, 0, 0],
      size: [1, 32, 64],
    });
    expect(storedSlices[`${p}.experts.3.up_proj.weight`]).toEqual({
      start: [3, 32, 0],
      size: [1, 32, 64],
    });
    expect(weightMap[`${p}.experts.2.down_proj.weight`]).toBe(
      'model.layers.1.block_sparse_moe.output_linear.weight',
    );
    expect(storedSlices[`${p}.experts.2.down_proj.weight`]).toEqual({
      start: [2, 0, 0],
      size: [1, 64, 32],
    });
    expect(storedSlices[`${p}.shared_expert.up_proj.weight`]).toEqual({
      start: [64, 0],
      size: [64, 64],
    });
    expect(weightMap).toMatchObject({
      [`${p}.gate.weight`]: 'model.layers.1.block_sparse_moe.router.layer.weight',
      [`${p}.shared_expert.down_proj.weight`]: 'model.layers.1.shared_mlp.output_linear.weight',
      'model.layers.0.mixer.in_proj.weight': 'model.layers.0.mamba.in_proj.weight',
      'model.layers.1.self_attn.q_proj.weight': 'model.layers.1.self_attn.q_proj.weight',
    });
    expect(storedShapes['model.layers.0.mixer.conv1d.weight']).toEqual([160, 1, 4]);
  });

  it('reads each expert slice from the checkpoint', async () => {
    const hf = await importHfFolder(DIR);
    const st = await openSafetensors(join(DIR, 'model.safetensors'));
    const fused = await st.readTensorF32('model.layers.0.block_sparse_moe.input_linear.weight');
    const down = await st.readTensorF32('model.layers.0.block_sparse_moe.output_linear.weight');
    await st.close();
    const H = 32;
    const D = 64;
    const e = 2;
    const gate = await hf.readTensorF32('model.layers.0.mlp.experts.2.gate_proj.weight');
    const up = await hf.readTensorF32('model.layers.0.mlp.experts.2.up_proj.weight');
    const dn = await hf.readTensorF32('model.layers.0.mlp.experts.2.down_proj.weight');
    await hf.close();
    expect(Array.from(gate)).toEqual(
      Array.from(fused.subarray(e * 2 * H * D, (e * 2 + 1) * H * D)),
    );
    expect(Array.from(up)).toEqual(
      Array.from(fused.subarray((e * 2 + 1) * H * D, (e + 1) * 2 * H * D)),
    );
    expect(Array.from(dn)).toEqual(Array.from(down.subarray(e * D * H, (e + 1) * D * H)));
  });

  it('reads the defaults, both layer-type spellings, RoPE and dense-only layers', () => {
    const base = { model_type: 'granitemoehybrid', hidden_size: 64, num_attention_heads: 4 };
    const plain = importHfConfig({ ...base, num_hidden_layers: 2, mamba_n_heads: 8 }, 'd').model;
    // GraniteMoeHybridConfig: every layer mamba without layer types; multipliers 1.
    expect(plain.layers.map((l) => l.mixer?.kind)).toEqual(['mamba2', 'mamba2']);
    expect(plain).toMatchObject({ embeddingScale: 1, residualScale: 1, logitScale: 1 });
    expect(plain.layers[0].ffn).toMatchObject({ experts: 8, topK: 2, shared: { hidden: 1024 } });
    const legacy = importHfConfig(
      {
        ...base,
        num_hidden_layers: 2,
        mamba_n_heads: 8,
        layers_block_type: ['attention', 'mamba'],
        position_embedding_type: 'rope',
        rope_theta: 5000,
        num_local_experts: 0,
        shared_intermediate_size: 24,
      },
      'l',
    );
    expect(legacy.model.layers.map((l) => l.mixer?.kind)).toEqual(['attention', 'mamba2']);
    const a = legacy.model.layers[0].mixer as AttentionSpec;
    expect(a.rope).toMatchObject({ theta: 5000, rotaryDim: 16 });
    // No experts: the FFN is the shared MLP alone, still read from shared_mlp.input_linear.
    expect(legacy.model.layers[0].ffn).toEqual(mlp({ hidden: 24 }));
    expect(legacy.weightMap['model.layers.0.mlp.up_proj.weight']).toBe(
      'model.layers.0.shared_mlp.input_linear.weight',
    );
    expect(legacy.storedSlices['model.layers.0.mlp.up_proj.weight']).toEqual({
      start: [24, 0],
      size: [24, 64],
    });
  });

  it('names what it cannot honour', () => {
    const cases: [object, RegExp][] = [
      [{ ...GRANITE, layer_types: ['mamba', 'ssm'] }, /entry "ssm" is not mamba, attention/],
      [{ ...GRANITE, layer_types: ['mamba'] }, /'layer_types' has 1 entries for 2 layers/],
      [
        { ...GRANITE, layers_block_type: ['mamba', 'mamba'] },
        /'layers_block_type' is given beside layer_types/,
      ],
      [
        { ...GRANITE, position_embedding_type: 'alibi' },
        /'position_embedding_type' must be "rope"/,
      ],
      [{ ...GRANITE, logits_scaling: 0 }, /'logits_scaling' must be a positive number/],
      [{ ...GRANITE, hidden_act: 'gelu' }, /'hidden_act' must be silu/],
      [
        { ...GRANITE, num_experts_per_tok: 5 },
        /'num_experts_per_tok' 5 exceeds num_local_experts 4/,
      ],
      [{ ...GRANITE, some_new_key: 1 }, /some_new_key/],
    ];
    for (const [cfg, error] of cases) expect(() => importHfConfig(cfg, 'x')).toThrow(error);
  });
});
