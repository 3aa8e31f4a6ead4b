import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serializeSafetensors, type TensorToWrite } from '../../formats/safetensors.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { expectedTensors, type TensorSpec } from '../../src/import/names.ts';

const CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 16,
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  torch_dtype: 'float32',
};

/** Distinct values per tensor so a mix-up shows; k < 32 with 3 fraction bits is exact in BF16. */
function values(t: TensorSpec, k: number): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  return new Float32Array(n).map((_, i) => (k + (i % 8) / 8) * (i % 2 ? -1 : 1));
}

const SPECS = expectedTensors(importHfConfig(CONFIG, 'tiny').model);

/** The checkpoint's tensors: every third one in BF16 (its values are exact in BF16). */
function checkpoint(): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  SPECS.forEach((t, k) => {
    out[t.name] = { dtype: k % 3 === 0 ? 'BF16' : 'F32', shape: t.shape, data: values(t, k) };
  });
  return out;
}

let root: string;
let count = 0;

async function folder(
  tensors: Record<string, TensorToWrite>,
  config: object = CONFIG,
  configText?: string,
): Promise<string> {
  const dir = join(root, `m${count++}`);
  await mkdir(dir);
  await writeFile(join(dir, 'config.json'), configText ?? JSON.stringify(config));
  await writeFile(join(dir, 'model.safetensors'), new Uint8Array(serializeSafetensors(tensors)));
  return dir;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-hf-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('importHfFolder', () => {
  it('imports a folder and reads every tensor under its canonical name as f32', async () => {
    const dir = await folder(checkpoint());
    const hf = await importHfFolder(dir);
    try {
      expect(hf.model.layers).toHaveLength(2);
      expect(hf.model.name).toBe(dir.split('/').pop());
      expect(hf.tensors).toEqual(SPECS);
      for (const [k, t] of SPECS.entries()) {
        const got = await hf.readTensorF32(t.name);
        expect(Array.from(got)).toEqual(Array.from(values(t, k)));
      }
      await expect(hf.readTensorF32('model.layers.9.mlp.up_proj.weight')).rejects.toThrow(
        /has no tensor 'model\.layers\.9\.mlp\.up_proj\.weight'/,
      );
    } finally {
      await hf.close();
    }
  });

  it('imports a sharded folder', async () => {
    const dir = join(root, 'sharded');
    await mkdir(dir);
    await writeFile(join(dir, 'config.json'), JSON.stringify(CONFIG));
    const all = checkpoint();
    const names = Object.keys(all);
    const half = Math.ceil(names.length / 2);
    const weightMap: Record<string, string> = {};
    for (const [i, part] of [names.slice(0, half), names.slice(half)].entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      const tensors = Object.fromEntries(part.map((n) => [n, all[n]]));
      await writeFile(join(dir, file), new Uint8Array(serializeSafetensors(tensors)));
      for (const n of part) weightMap[n] = file;
    }
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const hf = await importHfFolder(dir);
    try {
      const last = SPECS[SPECS.length - 1];
      expect(Array.from(await hf.readTensorF32(last.name))).toEqual(
        Array.from(values(last, SPECS.length - 1)),
      );
    } finally {
      await hf.close();
    }
  });

  it('names a missing tensor and its expected shape', async () => {
    const t = checkpoint();
    delete t['model.layers.1.self_attn.k_proj.weight'];
    await expect(importHfFolder(await folder(t))).rejects.toThrow(
      /missing tensor 'model\.layers\.1\.self_attn\.k_proj\.weight', expected shape \[4, 8\]/,
    );
  });

  it('names a tensor of the wrong shape with both shapes', async () => {
    const t = checkpoint();
    t['model.layers.0.mlp.up_proj.weight'] = {
      dtype: 'F32',
      shape: [8, 12],
      data: new Float32Array(96),
    };
    await expect(importHfFolder(await folder(t))).rejects.toThrow(
      /tensor 'model\.layers\.0\.mlp\.up_proj\.weight' has shape \[8, 12\], expected \[12, 8\]/,
    );
  });

  it('names a tensor of a non-float dtype', async () => {
    const t = checkpoint();
    t['model.norm.weight'] = { dtype: 'I32', shape: [8], data: new Int32Array(8) };
    await expect(importHfFolder(await folder(t))).rejects.toThrow(
      /tensor 'model\.norm\.weight' has dtype I32, expected F32, F16 or BF16/,
    );
  });

  it('lists tensors the model does not use', async () => {
    const t = checkpoint();
    t['model.layers.2.self_attn.q_proj.weight'] = {
      dtype: 'F32',
      shape: [8, 8],
      data: new Float32Array(64),
    };
    t['model.vision_tower.patch.weight'] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
    await expect(importHfFolder(await folder(t))).rejects.toThrow(
      /2 checkpoint tensors are not used by the model: 'model\.layers\.2\.self_attn\.q_proj\.weight', 'model\.vision_tower\.patch\.weight'/,
    );
  });

  it('points at tie_word_embeddings when a tied model ships lm_head.weight', async () => {
    const t = checkpoint();
    await expect(
      importHfFolder(await folder(t, { ...CONFIG, tie_word_embeddings: true })),
    ).rejects.toThrow(
      /1 checkpoint tensor is not used by the model \(config\.json has tie_word_embeddings, so 'lm_head\.weight' would be ignored\): 'lm_head\.weight'/,
    );
  });

  it('ignores the rotary inv_freq buffers old checkpoints carry', async () => {
    const t = checkpoint();
    t['model.layers.0.self_attn.rotary_emb.inv_freq'] = {
      dtype: 'F32',
      shape: [2],
      data: new Float32Array(2),
    };
    const hf = await importHfFolder(await folder(t));
    await hf.close();
    expect(hf.model.layers).toHaveLength(2);
  });

  it('reports config errors before touching the weights', async () => {
    await expect(
      importHfFolder(await folder({}, { ...CONFIG, model_type: 'gpt2' })),
    ).rejects.toThrow(/config\.json:\d+:\d+: error: model_type 'gpt2' is not known to strata/);
    await expect(
      importHfFolder(await folder({}, CONFIG, '{"model_type": "llama", "x": Infinity')),
    ).rejects.toThrow(/config\.json:1:\d+: error: not valid JSON/);
    await expect(importHfFolder(join(root, 'does-not-exist'))).rejects.toThrow(
      /cannot read config\.json/,
    );
  });
});
