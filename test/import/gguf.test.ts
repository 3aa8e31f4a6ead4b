/**
 * A tiny Llama written both as an HF folder (config.json + safetensors) and as the GGUF file
 * llama.cpp's converter would make of it (its metadata keys and tensor names, q/k rows in GGML's
 * RoPE order) must import to the same ModelIR, the same weights and the same logits.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serializeSafetensors, type TensorToWrite } from '../../formats/safetensors.ts';
import { importHfFolder, type HfFolder } from '../../src/import/hf-folder.ts';
import { importGgufFile } from '../../src/import/gguf-file.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { llama3FromDivisors } from '../../src/import/gguf-rope.ts';
import { loadModelInput } from '../../src/cli/model-input.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { lower } from '../../src/graph/lower.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randn } from '../helpers/numeric.ts';
import { encodeWeight, roundWeight } from '../../src/ops/weight-storage.ts';
import { quantScaleOffset } from '../../src/graph/dtype.ts';
import {
  GGML,
  encodeF32,
  encodeQ4_0,
  encodeQ8_0,
  f32,
  str,
  u32,
  writeGguf,
  type GgufKv,
  type GgufTensorToWrite,
} from '../helpers/gguf-writer.ts';

const HEADS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 8;

const CONFIG = {
  model_type: 'llama',
  vocab_size: 40,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: HEADS,
  num_key_value_heads: KV_HEADS,
  rms_norm_eps: 1e-5,
  rope_theta: 50000,
  max_position_embeddings: 128,
  tie_word_embeddings: false,
};

const META: Record<string, GgufKv> = {
  'general.architecture': str('llama'),
  'general.name': str('tiny'),
  'general.file_type': u32(0),
  'llama.context_length': u32(128),
  'llama.embedding_length': u32(32),
  'llama.block_count': u32(2),
  'llama.feed_forward_length': u32(48),
  'llama.attention.head_count': u32(HEADS),
  'llama.attention.head_count_kv': u32(KV_HEADS),
  'llama.rope.freq_base': f32(50000),
  'llama.attention.layer_norm_rms_epsilon': f32(1e-5),
  'llama.rope.dimension_count': u32(HEAD_DIM),
  'llama.vocab_size': u32(40),
  'tokenizer.ggml.model': str('llama'),
};

/** HF → GGUF tensor names, as the converter renames them. */
function ggufName(hf: string): string {
  return hf
    .replace('model.embed_tokens.weight', 'token_embd.weight')
    .replace('model.norm.weight', 'output_norm.weight')
    .replace('lm_head.weight', 'output.weight')
    .replace(/^model\.layers\.(\d+)\./, 'blk.$1.')
    .replace('input_layernorm', 'attn_norm')
    .replace('post_attention_layernorm', 'ffn_norm')
    .replace('self_attn.o_proj', 'attn_output')
    .replace(/self_attn\.([qkv])_proj/, 'attn_$1')
    .replace(/self_attn\.([qk])_norm/, 'attn_$1_norm')
    .replace(/mlp\.(gate|up|down)_proj/, 'ffn_$1');
}

/**
 * The converter's reordering, written independently of the reader's inverse: within each head
 * of d rows, row a·d/2 + i moves to row 2i + a.
 */
function toGgmlRope(w: Float32Array, heads: number, cols: number): Float32Array {
  const d = w.length / cols / heads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let r = 0; r < d; r++) {
      const a = Math.floor(r / (d / 2));
      const i = r % (d / 2);
      out.set(w.subarray((h * d + r) * cols, (h * d + r + 1) * cols), (h * d + 2 * i + a) * cols);
    }
  return out;
}

/**
 * Values already on the q8/q4 grid as GGUF Q8_0/Q4_0 blocks: strata's encoder finds the codes and
 * scales (the same numbers, see weight-storage.ts), which are then laid out GGUF's way.
 */
function quantised(
  t: 'q8' | 'q4',
  x: Float32Array,
  cols: number,
): { type: number; data: Uint8Array } {
  const enc = encodeWeight(t, x, cols);
  const blocks = x.length / 32;
  const scales = Array.from(new Uint16Array(enc.buffer, quantScaleOffset(t, x.length), blocks));
  if (t === 'q8')
    return {
      type: GGML.Q8_0,
      data: encodeQ8_0(scales, Array.from(new Int8Array(enc.buffer, 0, x.length))),
    };
  const codes = Array.from({ length: x.length }, (_, i) => (enc[i >> 1] >> (4 * (i & 1))) & 15);
  return { type: GGML.Q4_0, data: encodeQ4_0(scales, codes) };
}

/**
 * rope_freqs.weight as llama.cpp's converter computes it from HF's llama3 settings: f32 inverse
 * frequencies, then per pair 1 (short wavelengths), factor (long) or the blend, stored as f32.
 */
function converterDivisors(
  theta: number,
  dim: number,
  factor: number,
  low: number,
  high: number,
  orig: number,
): Float32Array {
  const fr = Math.fround;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = fr(1 / fr(theta ** fr((2 * i) / dim)));
    const wavelen = fr((2 * Math.PI) / freq);
    if (wavelen < orig / high) out[i] = 1;
    else if (wavelen > orig / low) out[i] = factor;
    else {
      const smooth = fr((fr(orig / wavelen) - low) / (high - low));
      out[i] = 1 / fr(fr((1 - smooth) / factor) + smooth);
    }
  }
  return out;
}

let root: string;
let count = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-gguf-import-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Pair {
  hf: HfFolder;
  gguf: HfFolder;
}

/** The same random weights as an HF folder 'tiny' and a GGUF file 'tiny.gguf'. */
async function writePair(
  config: Record<string, unknown> = CONFIG,
  meta: Record<string, GgufKv> = META,
  edit: (t: GgufTensorToWrite[]) => GgufTensorToWrite[] = (t) => t,
  /** How the matrices are stored in the GGUF file (the HF copy holds the values they mean). */
  matrices: 'f32' | 'q8' | 'q4' = 'f32',
): Promise<{ hfDir: string; ggufPath: string }> {
  const permute = config.model_type === 'llama';
  const base = join(root, `p${count++}`);
  const hfDir = join(base, 'tiny');
  await mkdir(hfDir, { recursive: true });
  const specs = expectedTensors(importHfConfig(config, 'tiny').model);
  const st: Record<string, TensorToWrite> = {};
  const gg: GgufTensorToWrite[] = [];
  specs.forEach((t, k) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const matrix = t.shape.length === 2 && matrices !== 'f32';
    const drawn =
      t.shape.length === 1 ? randn(n, 100 + k, 0.5).map((x) => 1 + x) : randn(n, 100 + k, 0.3);
    const data = matrix ? roundWeight(matrices, drawn, t.shape[1]) : drawn;
    st[t.name] = { dtype: 'F32', shape: t.shape, data };
    const heads = !permute
      ? 0
      : /q_proj/.test(t.name)
        ? Number(config.num_attention_heads)
        : /k_proj/.test(t.name)
          ? Number(config.num_key_value_heads)
          : 0;
    const stored = heads ? toGgmlRope(data, heads, t.shape[1]) : data;
    gg.push({
      name: ggufName(t.name),
      ...(matrix
        ? quantised(matrices, stored, t.shape[1])
        : { type: GGML.F32, data: encodeF32(stored) }),
      shape: t.shape,
    });
  });
  await writeFile(join(hfDir, 'config.json'), JSON.stringify(config));
  await writeFile(join(hfDir, 'model.safetensors'), new Uint8Array(serializeSafetensors(st)));
  const ggufPath = join(base, 'tiny.gguf');
  await writeFile(ggufPath, writeGguf(meta, edit(gg)));
  return { hfDir, ggufPath };
}

async function importPair(...args: Parameters<typeof writePair>): Promise<Pair> {
  const { hfDir, ggufPath } = await writePair(...args);
  const hf = await importHfFolder(hfDir);
  try {
    return { hf, gguf: await importGgufFile(ggufPath) };
  } catch (e) {
    await hf.close();
    throw e;
  }
}

async function logits(m: HfFolder, tokens: number[]): Promise<Float32Array> {
  const T = tokens.length;
  const graph = lower(m.model, { phase: 'prefill', maxT: T, capacity: 16 });
  const run = await Interpreter.create(graph, (n) => m.readTensorF32(n));
  return run.step(Uint32Array.from(tokens), 0, T, run.newState()).logits;
}

async function expectSame({ hf, gguf }: Pair): Promise<void> {
  try {
    expect(gguf.model).toEqual(hf.model);
    expect(gguf.tensors).toEqual(hf.tensors);
    for (const t of hf.tensors) {
      expect(await gguf.readTensorF32(t.name), t.name).toEqual(await hf.readTensorF32(t.name));
    }
    const tokens = [3, 17, 0, 39, 8, 8, 21];
    const want = await logits(hf, tokens);
    const got = await logits(gguf, tokens);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    expect(worst).toBeLessThanOrEqual(1e-5);
  } finally {
    await hf.close();
    await gguf.close();
  }
}

describe('GGUF llama import', () => {
  it('gives the HF import’s ModelIR, weights (q/k rows restored) and logits', async () => {
    await expectSame(await importPair());
  });

  it('reads Q8_0 and Q4_0 matrices as the values their codes mean', async () => {
    const config = { ...CONFIG, intermediate_size: 64 };
    const meta = { ...META, 'llama.feed_forward_length': u32(64) };
    await expectSame(await importPair(config, meta, (t) => t, 'q8'));
    await expectSame(await importPair(config, meta, (t) => t, 'q4'));
  });

  it('imports qwen3 (q/k norms, explicit head size) with q/k rows as they are', async () => {
    const config = { ...CONFIG, model_type: 'qwen3', head_dim: 16 };
    const meta: Record<string, GgufKv> = {
      ...Object.fromEntries(
        Object.entries(META).map(([k, v]) => [k.replace(/^llama\./, 'qwen3.'), v]),
      ),
      'general.architecture': str('qwen3'),
      'qwen3.attention.key_length': u32(16),
      'qwen3.attention.value_length': u32(16),
      'qwen3.rope.dimension_count': u32(16),
    };
    await expectSame(await importPair(config, meta));
  });

  it('reads Llama 3 RoPE scaling back from rope_freqs.weight', async () => {
    const scaling = {
      rope_type: 'llama3',
      factor: 4,
      low_freq_factor: 1,
      high_freq_factor: 8,
      original_max_position_embeddings: 1024,
    };
    const config = {
      ...CONFIG,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      max_position_embeddings: 4096,
      rope_theta: 10000,
      rope_scaling: scaling,
    };
    const meta = {
      ...META,
      'llama.attention.head_count': u32(2),
      'llama.attention.head_count_kv': u32(1),
      'llama.rope.dimension_count': u32(16),
      'llama.rope.freq_base': f32(10000),
      'llama.context_length': u32(4096),
    };
    const divisors = converterDivisors(10000, 16, 4, 1, 8, 1024);
    await expectSame(
      await importPair(config, meta, (t) => [
        { name: 'rope_freqs.weight', type: GGML.F32, shape: [8], data: encodeF32(divisors) },
        ...t,
      ]),
    );
  });

  it('recovers the Llama 3.1 and 3.2 RoPE parameters from their divisors', () => {
    for (const [theta, headDim, factor] of [
      [500000, 128, 8],
      [500000, 64, 32],
    ]) {
      expect(
        llama3FromDivisors(converterDivisors(theta, headDim, factor, 1, 4, 8192), theta, headDim),
      ).toEqual({
        rope_type: 'llama3',
        factor,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
      });
    }
  });

  it('reads a missing output.weight as tied embeddings', async () => {
    await expectSame(
      await importPair({ ...CONFIG, tie_word_embeddings: true }, META, (t) =>
        t.filter((x) => x.name !== 'output.weight'),
      ),
    );
  });

  it('reads linear RoPE scaling and takes the vocabulary from the token list', async () => {
    const meta: Record<string, GgufKv> = {
      ...META,
      'llama.rope.scaling.type': str('linear'),
      'llama.rope.scaling.factor': f32(2),
      'tokenizer.ggml.tokens': {
        type: 'string[]',
        value: Array.from({ length: 40 }, (_, i) => `t${i}`),
      },
    };
    delete meta['llama.vocab_size'];
    await expectSame(
      await importPair({ ...CONFIG, rope_scaling: { rope_type: 'linear', factor: 2 } }, meta),
    );
  });

  it('refuses metadata keys it does not handle, naming them', async () => {
    const { ggufPath } = await writePair(CONFIG, {
      ...META,
      'llama.attention.sliding_window': u32(64),
    });
    await expect(importGgufFile(ggufPath)).rejects.toThrow(
      "GGUF key 'llama.attention.sliding_window' (64) is not one strata's GGUF llama reader knows",
    );
    const yarn = await writePair(CONFIG, { ...META, 'llama.rope.scaling.type': str('yarn') });
    await expect(importGgufFile(yarn.ggufPath)).rejects.toThrow(
      "GGUF key 'llama.rope.scaling.type' is 'yarn'; strata reads none and linear from GGUF",
    );
    const arch = await writePair(CONFIG, { ...META, 'general.architecture': str('gpt2') });
    await expect(importGgufFile(arch.ggufPath)).rejects.toThrow(
      "general.architecture 'gpt2' is not supported",
    );
  });

  it('names the GGUF key when the HF importer rejects a translated value', async () => {
    const { ggufPath } = await writePair(CONFIG, {
      ...META,
      'llama.attention.head_count_kv': u32(3),
    });
    await expect(importGgufFile(ggufPath)).rejects.toThrow(
      "config key 'llama.attention.head_count_kv' 3 does not divide",
    );
  });

  it('refuses a tensor of a type it cannot read, naming the tensor and its type', async () => {
    const { ggufPath } = await writePair(CONFIG, META, (t) =>
      t.map((x) =>
        x.name === 'blk.1.ffn_down.weight'
          ? { ...x, shape: [32, 256], type: GGML.Q6_K, data: new Uint8Array(32 * 210) }
          : x,
      ),
    );
    // The shape is wrong too; each problem is listed.
    await expect(importGgufFile(ggufPath)).rejects.toThrow(
      "tensor 'blk.1.ffn_down.weight' (strata 'model.layers.1.mlp.down_proj.weight') has shape [32, 256], expected [32, 48]",
    );
    const q6 = await writePair(
      { ...CONFIG, intermediate_size: 256 },
      {
        ...META,
        'llama.feed_forward_length': u32(256),
      },
      (t) =>
        t.map((x) =>
          x.name === 'blk.1.ffn_down.weight'
            ? { ...x, type: GGML.Q6_K, data: new Uint8Array(32 * 210) }
            : x,
        ),
    );
    await expect(importGgufFile(q6.ggufPath)).rejects.toThrow(
      "tensor 'blk.1.ffn_down.weight' is Q6_K; strata reads F32, F16, BF16, Q8_0, Q4_0, Q4_K",
    );
  });

  it('refuses tensors it would not use, and missing ones', async () => {
    const extra = await writePair(CONFIG, META, (t) => [
      ...t,
      { name: 'blk.0.attn_rot_embd', type: GGML.F32, shape: [4], data: encodeF32([1, 1, 2, 4]) },
    ]);
    await expect(importGgufFile(extra.ggufPath)).rejects.toThrow(
      "tensors strata would not use: 'blk.0.attn_rot_embd'",
    );
    const freqs = await writePair(CONFIG, META, (t) => [
      ...t,
      { name: 'rope_freqs.weight', type: GGML.F32, shape: [4], data: encodeF32([1, 1, 2, 4]) },
    ]);
    await expect(importGgufFile(freqs.ggufPath)).rejects.toThrow(
      "tensor 'rope_freqs.weight' (per-frequency RoPE divisors, llama3 scaling): only 1 frequencies fall between the unscaled and the scaled ones",
    );
    const missing = await writePair(CONFIG, META, (t) =>
      t.filter((x) => x.name !== 'blk.0.attn_k.weight'),
    );
    await expect(importGgufFile(missing.ggufPath)).rejects.toThrow(
      "missing tensor 'blk.0.attn_k.weight' (strata 'model.layers.0.self_attn.k_proj.weight'), expected shape [16, 32]",
    );
  });
});

describe('CLI model input', () => {
  it('reads a path ending in .gguf as a GGUF model', async () => {
    const { ggufPath } = await writePair();
    const input = await loadModelInput(ggufPath, { seed: 0 });
    try {
      expect(input.describe).toBe(`GGUF model ${ggufPath}`);
      expect(input.model.name).toBe('tiny');
      expect((await input.weights('model.norm.weight')).length).toBe(32);
    } finally {
      await input.close();
    }
  });
});
