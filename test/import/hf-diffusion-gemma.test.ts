/**
 * The DiffusionGemma config and checkpoint reader (src/import/hf-diffusion-gemma.ts): what it
 * reads from transformers 5.18's config (the fixture's, and HF's defaults where keys are absent)
 * and each refusal, which must name the key or tensor.
 */
import { describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { serializeSafetensors } from '../../formats/safetensors.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { parseWeightMap, weightMapJson } from '../../src/import/weight-map.ts';
import {
  checkLayerScalars,
  diffusionGemmaTensors,
  readDiffusionGemmaConfig,
  resolveDiffusionGemmaWeights,
} from '../../src/import/hf-diffusion-gemma.ts';

type Json = Record<string, unknown>;

const FIXTURE = JSON.parse(
  readFileSync(join('test', 'fixtures', 'hf', 'diffusion_gemma', 'config.json'), 'utf8'),
) as Json;

/** The fixture's config with `text` merged into text_config and `top` into the whole. */
function config(text: Json = {}, top: Json = {}): Json {
  const c = structuredClone(FIXTURE);
  Object.assign(c.text_config as Json, text);
  return Object.assign(c, top);
}

const read = (c: Json) => readDiffusionGemmaConfig(c, 'tiny');

describe('diffusion_gemma config reader', () => {
  it('reads the fixture', () => {
    const t = read(config());
    expect(t).toMatchObject({
      vocab: 64,
      dim: 32,
      hidden: 16,
      act: 'gelu_tanh',
      experts: 4,
      topK: 2,
      expertHidden: 8,
      logitSoftcap: 30,
      canvasLength: 8,
      tie: true,
      eos: [],
      pad: 0,
    });
    expect(t.embeddingScale).toBe(Math.fround(Math.sqrt(32)));
    expect(t.layers[0]).toEqual({
      index: 0,
      type: 'sliding_attention',
      heads: 2,
      kvHeads: 1,
      headDim: 16,
      valueFromKey: false,
      window: 8,
      rope: { theta: 10_000, rotaryDim: 16, scaling: { kind: 'none' } },
    });
  });

  it("takes HF's defaults for absent keys: global head dim 512, proportional RoPE, every 6th layer full", () => {
    const c = config();
    const text = c.text_config as Json;
    for (const k of ['per_layer_config', 'rope_parameters', 'layer_types']) delete text[k];
    text.num_hidden_layers = 6;
    const t = read(c);
    expect(t.layers.map((l) => l.type)).toEqual([
      ...new Array<string>(5).fill('sliding_attention'),
      'full_attention',
    ]);
    expect(t.layers[5]).toMatchObject({ headDim: 512, kvHeads: 1, valueFromKey: true });
    expect(t.layers[5].rope).toEqual({
      theta: 1e6,
      rotaryDim: 512,
      scaling: { kind: 'proportional', pairs: 64, factor: 1 },
    });
    // global_head_dim and num_global_key_value_heads, as an original config.json gives them.
    Object.assign(text, {
      global_head_dim: 64,
      num_global_key_value_heads: 2,
      num_attention_heads: 4,
    });
    expect(read(c).layers[5]).toMatchObject({ headDim: 64, kvHeads: 2 });
  });

  it('reads a bare diffusion_gemma_text config (canvas 256)', () => {
    const text = { ...(FIXTURE.text_config as Json) };
    const t = read(text);
    expect(t.canvasLength).toBe(256);
    expect(t.layers).toHaveLength(2);
  });

  const refusals: [string, Json, Json, RegExp][] = [
    [
      'a vision tower',
      {},
      { vision_config: { model_type: 'gemma4_vision', hidden_size: 8 } },
      /config key 'vision_config' is set \("gemma4_vision"\): strata imports DiffusionGemma's text model only/,
    ],
    [
      'a bidirectional encoder',
      { use_bidirectional_attention: 'all' },
      {},
      /config key 'text_config.use_bidirectional_attention' is "all"/,
    ],
    [
      'untied encoder and denoiser',
      {},
      { tie_word_embeddings: false },
      /config key 'tie_word_embeddings' is false/,
    ],
    [
      'an unknown RoPE type',
      {
        rope_parameters: {
          sliding_attention: { rope_type: 'yarn', rope_theta: 1e4 },
          full_attention: { rope_type: 'default', rope_theta: 1e6 },
        },
      },
      {},
      /config key 'text_config.rope_parameters.sliding_attention.rope_type' is "yarn"/,
    ],
    [
      'a last layer that slides',
      { layer_types: ['full_attention', 'sliding_attention'] },
      {},
      /config key 'text_config.layer_types' must end with full_attention/,
    ],
    [
      'a null softcap',
      { final_logit_softcapping: null },
      {},
      /config key 'text_config.final_logit_softcapping' is null/,
    ],
    ['no MoE', { num_experts: null }, {}, /config key 'text_config.num_experts' is required/],
    [
      'an unknown key',
      { altup_num_inputs: 4 },
      {},
      /'altup_num_inputs' is not understood by strata's diffusion_gemma_text importer/,
    ],
  ];
  for (const [what, text, top, message] of refusals) {
    it(`refuses ${what}, naming the key`, () => {
      expect(() => read(config(text, top))).toThrow(message);
    });
  }
});

describe('diffusion_gemma checkpoint names', () => {
  const t = read(config());
  const stored = () =>
    new Map(diffusionGemmaTensors(t).map((w) => [w.stored[0], w.shape] as [string, number[]]));

  it('maps every text tensor; full layers have no v_proj; the encoder copies are accepted', () => {
    const shapes = stored();
    const map = resolveDiffusionGemmaWeights(t, shapes);
    expect(map['layers.0.self_attn.v.weight']).toBe(
      'model.decoder.layers.0.self_attn.v_proj.weight',
    );
    expect(map['layers.1.self_attn.v.weight']).toBeUndefined();
    expect(map['layers.1.experts.gate_up']).toBe('model.decoder.layers.1.experts.gate_up_proj');
    // A checkpoint that kept the encoder's copy of a tied tensor instead.
    const enc = new Map(shapes);
    enc.delete('model.decoder.norm.weight');
    enc.set('model.encoder.language_model.norm.weight', [32]);
    expect(resolveDiffusionGemmaWeights(t, enc)['norm.weight']).toBe(
      'model.encoder.language_model.norm.weight',
    );
  });

  it('refuses vision tensors, missing tensors, wrong shapes and leftovers, naming them', () => {
    const v = stored();
    v.set('model.encoder.vision_tower.patch_embedder.input_proj.weight', [8, 12]);
    expect(() => resolveDiffusionGemmaWeights(t, v)).toThrow(
      /1 vision tensors \(model\.encoder\.vision_tower\.patch_embedder\.input_proj\.weight\)/,
    );
    const m = stored();
    m.delete('model.decoder.layers.1.router.per_expert_scale');
    expect(() => resolveDiffusionGemmaWeights(t, m)).toThrow(
      /model\.decoder\.layers\.1\.router\.per_expert_scale \(strata layers\.1\.router\.expert_scale\) is missing/,
    );
    const s = stored();
    s.set('model.decoder.layers.0.experts.down_proj', [4, 8, 32]);
    expect(() => resolveDiffusionGemmaWeights(t, s)).toThrow(
      /model\.decoder\.layers\.0\.experts\.down_proj has shape \[4, 8, 32\], expected \[4, 32, 8\]/,
    );
    const x = stored();
    x.set('model.decoder.layers.0.per_layer_projection.weight', [32, 32]);
    expect(() => resolveDiffusionGemmaWeights(t, x)).toThrow(
      /checkpoint tensors strata does not read: model\.decoder\.layers\.0\.per_layer_projection\.weight/,
    );
  });

  it("refuses an encoder layer_scalar that differs from the denoiser's", async () => {
    const values: Record<string, number> = {
      'model.decoder.layers.0.layer_scalar': 0.9,
      'model.encoder.language_model.layers.0.layer_scalar': 0.9,
      'model.decoder.layers.1.layer_scalar': 1.1,
      'model.encoder.language_model.layers.1.layer_scalar': 1.2,
    };
    await expect(checkLayerScalars(t, async (n) => values[n] ?? null)).rejects.toThrow(
      /model\.encoder\.language_model\.layers\.1\.layer_scalar \(1\.2\) differs from model\.decoder\.layers\.1\.layer_scalar \(1\.1\)/,
    );
  });
});

describe('diffusion_gemma import: the encoder copies of layer_scalar', () => {
  const DIR = join('test', 'fixtures', 'hf', 'diffusion_gemma');

  it('travel through the weight map JSON (import -o) as duplicates', () => {
    const imported = importHfConfig(FIXTURE, 'tiny');
    const back = parseWeightMap(weightMapJson(imported), 'tiny.weights.json');
    expect(back.duplicates).toEqual(imported.duplicates);
    expect(back.duplicates?.['model.encoder.language_model.layers.1.layer_scalar']).toBe(
      'model.decoder.layers.1.layer_scalar',
    );
  });

  it("are refused when they differ from the denoiser's, naming both", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-dgemma-'));
    try {
      copyFileSync(join(DIR, 'config.json'), join(dir, 'config.json'));
      const src = await openSafetensors(join(DIR, 'model.safetensors'));
      const tensors: Parameters<typeof serializeSafetensors>[0] = {};
      for (const t of src.listTensors()) {
        const data = await src.readTensorF32(t.name);
        if (t.name === 'model.encoder.language_model.layers.1.layer_scalar') data[0] += 0.5;
        tensors[t.name] = { dtype: 'F32', shape: t.shape, data };
      }
      await src.close();
      writeFileSync(join(dir, 'model.safetensors'), new Uint8Array(serializeSafetensors(tensors)));
      await expect(importHfFolder(dir)).rejects.toThrow(
        /'model\.encoder\.language_model\.layers\.1\.layer_scalar' differs from 'model\.decoder\.layers\.1\.layer_scalar' \(element 0/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
