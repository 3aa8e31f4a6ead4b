/**
 * The BD3-LM importer (src/import/hf-bd3lm.ts): what it reads from the fixture config (block-causal
 * attention over block_size, LayerNorm, GELU-tanh MLP with bias, a head with bias, the mask id),
 * the adaLN folds, the settings it refuses by key, and that the weights.json `import -o` writes
 * reads the same folded tensors as the folder import.
 */
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { mappedTensorReader, parseWeightMap, weightMapJson } from '../../src/import/weight-map.ts';
import { checkTensors } from '../../src/import/check.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { fixtureConfig, importRefusal } from '../helpers/hf-config.ts';
import { printSpec } from '../../src/spec/print.ts';
import { parseSpec } from '../../src/spec/load.ts';

const DIR = 'test/fixtures/diffusion/bd3lm';
const config = () => fixtureConfig('diffusion/bd3lm/config.json');

describe('bd3lm import', () => {
  it('is a block-causal transformer with LayerNorms, a biased head and the last id as mask', () => {
    const { model, weightMap, folds } = importHfConfig(config(), 'bd3lm');
    expect(model.diffusion).toMatchObject({ kind: 'bd3lm', maskId: 63, blockLength: 4, steps: 4 });
    expect(model.norm).toEqual({ kind: 'layer', eps: 1e-5, unitOffset: false, bias: true });
    expect(model.headBias).toBe(true);
    expect(model.tieEmbeddings).toBe(false);
    expect(model.layers[1]!.mixer).toMatchObject({
      kind: 'attention',
      causal: false,
      blockCausal: 4,
      heads: 4,
      kvHeads: 4,
      headDim: 16,
      rope: { theta: 10000, rotaryDim: 16 },
      scale: 0.25,
    });
    expect(model.layers[0]!.ffn).toEqual({
      kind: 'mlp',
      hidden: 256,
      act: 'gelu_tanh',
      gated: false,
      bias: true,
    });
    expect(weightMap['lm_head.bias']).toBe('backbone.output_layer.linear.bias');
    expect(weightMap['model.layers.1.mlp.up_proj.bias']).toBe('backbone.blocks.1.mlp.0.bias');
    // The chunks of (shift, scale, gate) × (attention, MLP), and the final layer's (shift, scale).
    expect(folds?.['model.layers.1.input_layernorm.bias']).toMatchObject({
      form: 'shift',
      chunk: 0,
    });
    expect(folds?.['model.layers.1.input_layernorm.weight']).toMatchObject({
      form: 'scale',
      chunk: 1,
    });
    expect(folds?.['model.layers.1.self_attn.o_proj.weight']).toMatchObject({
      form: 'rows',
      chunk: 2,
    });
    expect(folds?.['model.layers.1.post_attention_layernorm.bias']).toMatchObject({ chunk: 3 });
    expect(folds?.['model.layers.1.post_attention_layernorm.weight']).toMatchObject({ chunk: 4 });
    expect(folds?.['model.layers.1.mlp.down_proj.bias']).toMatchObject({ form: 'rows', chunk: 5 });
    expect(folds?.['model.norm.weight']).toMatchObject({
      modulation: 'backbone.output_layer.adaLN_modulation',
      chunks: 2,
      chunk: 1,
    });
    expect(folds?.['model.layers.1.mlp.up_proj.weight']).toBeUndefined();
  });

  it('prints as a .strata spec (head_bias true) that reads back to the same model', () => {
    const { model } = importHfConfig(config(), 'bd3lm');
    const text = printSpec(model);
    expect(text).toContain('head_bias true');
    expect(parseSpec(text, 'bd3lm.strata')).toEqual(model);
  });

  it('without adaln: LayerNorms without bias, nothing folded', () => {
    const { model, folds } = importHfConfig({ ...config(), adaln: false }, 'bd3lm');
    expect(model.norm.bias).toBe(false);
    expect(folds).toBeUndefined();
  });

  it('refuses what strata cannot run, naming the key', () => {
    expect(importRefusal({ ...config(), time_conditioning: true })).toMatch(
      /time_conditioning.*noise level σ/,
    );
    expect(importRefusal({ ...config(), cross_attn: false })).toMatch(/cross_attn.*no mask at all/);
    expect(importRefusal({ ...config(), causal: true })).toMatch(/'causal'.*is_causal/);
    expect(importRefusal({ ...config(), hidden_dim: 62 })).toMatch(/hidden_dim.*n_heads 4/);
    expect(importRefusal({ ...config(), hidden_dim: 60 })).toMatch(/odd head size 15/);
    expect(importRefusal({ ...config(), frobnicate: 1 })).toMatch(/frobnicate/);
  });

  it('reads the same folded tensors through the weights.json `import -o` writes', async () => {
    const hf = await importHfFolder(DIR);
    const imported = importHfConfig(config(), 'bd3lm');
    const map = parseWeightMap(
      JSON.parse(JSON.stringify(weightMapJson(imported))) as Record<string, unknown>,
      'weights.json',
    );
    expect(map.folds).toEqual(imported.folds);
    const src = await openSafetensors(`${DIR}/model.safetensors`);
    try {
      const tensors = expectedTensors(imported.model);
      const read = mappedTensorReader(src, map, new Set(tensors.map((t) => t.name)), 'test');
      for (const name of [
        'model.layers.0.input_layernorm.weight',
        'model.layers.0.input_layernorm.bias',
        'model.layers.1.self_attn.o_proj.weight',
        'model.layers.1.mlp.down_proj.bias',
        'model.norm.bias',
        'model.layers.0.self_attn.k_proj.weight',
      ])
        expect(await read(name), name).toEqual(await hf.readTensorF32(name));
    } finally {
      await src.close();
      await hf.close();
    }
  });

  /** The import's checkpoint check against a listing of the fixture's tensors. */
  const checkImported = (
    imported: ReturnType<typeof importHfConfig>,
    listed: ReturnType<Awaited<ReturnType<typeof openSafetensors>>['listTensors']>,
  ) =>
    checkTensors(
      expectedTensors(imported.model),
      imported.weightMap,
      listed,
      'ckpt',
      undefined,
      imported.storedShapes,
      imported.storedSlices,
      imported.folds,
    );

  it("holds the checkpoint to the config's cond_dim", async () => {
    const imported = importHfConfig({ ...config(), cond_dim: 16 }, 'bd3lm');
    const src = await openSafetensors(`${DIR}/model.safetensors`);
    const listed = src.listTensors();
    await src.close();
    expect(() => checkImported(imported, listed)).toThrow(
      /tensor 'backbone\.sigma_map\.mlp\.0\.weight' has shape \[32, 256\], expected \[16, 256\]/,
    );
  });

  it('names a missing modulation tensor in the checkpoint check', async () => {
    const imported = importHfConfig(config(), 'bd3lm');
    const src = await openSafetensors(`${DIR}/model.safetensors`);
    const listed = src
      .listTensors()
      .filter((t) => t.name !== 'backbone.blocks.1.adaLN_modulation.weight');
    await src.close();
    expect(() => checkImported(imported, listed)).toThrow(
      /missing tensor 'backbone\.blocks\.1\.adaLN_modulation\.weight' \(the adaLN fold of strata 'model\.layers\.1\./,
    );
  });
});
