/**
 * Quantised HF checkpoints (src/import/quantized.ts): the e2m1 / e8m0 / e4m3 decoders on every
 * code against values built here another way; tiny gpt-oss (MXFP4 experts) and DeepSeek-V3
 * (128×128 block FP8, partial blocks included) checkpoints that import to exactly the weights of
 * the same model stored dense, and give the same CPU-interpreter logits bit for bit; the MXFP4
 * blocks' exact place in strata's q8 layout; and the refusals, each naming what is wrong.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeF32,
  f32ToF16Bits,
  f8e4m3BitsToNumber,
  serializeSafetensors,
  type TensorToWrite,
} from '../../formats/safetensors.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { importHfFolder, type HfFolder } from '../../src/import/hf-folder.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { decodeWeight } from '../../src/ops/weight-storage.ts';
import { quantScaleOffset, dtypeBytes } from '../../src/graph/dtype.ts';
import {
  dequantMxfp4,
  dequantizingSource,
  e2m1ToNumber,
  e8m0ToNumber,
} from '../../src/import/quantized.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { fixtureConfig, tinyConfig } from '../helpers/hf-config.ts';
import { runGoldenCpu, type Golden } from '../helpers/golden.ts';

/** The e2m1 values as the OCP MX spec (and the gpt-oss model card) lists them, codes 0..15. */
const FP4_TABLE = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/** An f32 from its bits: the e4m3 reference below is built by moving bit fields, not by formula. */
function f32FromBits(bits: number): number {
  const v = new DataView(new ArrayBuffer(4));
  v.setUint32(0, bits >>> 0);
  return v.getFloat32(0);
}

/** e4m3fn by re-biasing its fields into an f32 (exponent 7 → 127); subnormals m·2^-9. */
function e4m3Reference(b: number): number {
  const sign = b >> 7;
  const exp = (b >> 3) & 15;
  const mant = b & 7;
  if (exp === 15 && mant === 7) return NaN;
  if (exp === 0) return (sign ? -1 : 1) * f32FromBits(((127 - 9) << 23) >>> 0) * mant;
  return f32FromBits(((sign << 31) | ((exp - 7 + 127) << 23) | (mant << 20)) >>> 0);
}

/** A deterministic generator (LCG) so the checkpoints are the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('decoders', () => {
  it('e2m1: all 16 codes', () => {
    for (let c = 0; c < 16; c++) expect(Object.is(e2m1ToNumber(c), FP4_TABLE[c])).toBe(true);
  });

  it('e8m0: powers of two around bias 127, 0xFF is NaN', () => {
    expect(e8m0ToNumber(127)).toBe(1);
    expect(e8m0ToNumber(0)).toBe(2 ** -127);
    expect(e8m0ToNumber(254)).toBe(2 ** 127);
    expect(e8m0ToNumber(120)).toBe(1 / 128);
    expect(e8m0ToNumber(255)).toBeNaN();
  });

  it('e4m3fn: all 256 bit patterns (bias 7, subnormals, no infinities, S.1111.111 NaN)', () => {
    for (let b = 0; b < 256; b++) {
      const want = e4m3Reference(b);
      if (Number.isNaN(want)) expect(f8e4m3BitsToNumber(b)).toBeNaN();
      else expect(Object.is(f8e4m3BitsToNumber(b), want)).toBe(true);
    }
    expect([0x7f, 0xff].every((b) => Number.isNaN(f8e4m3BitsToNumber(b)))).toBe(true);
    expect(f8e4m3BitsToNumber(0x7e)).toBe(448);
    expect(f8e4m3BitsToNumber(0x01)).toBe(2 ** -9);
    expect(f8e4m3BitsToNumber(0x08)).toBe(2 ** -6);
    expect(Object.is(f8e4m3BitsToNumber(0x80), -0)).toBe(true);
  });

  it('an F8_E4M3 tensor alone does not decode: it needs its scale', () => {
    const info = { name: 'w', dtype: 'F8_E4M3' as const, shape: [2], begin: 0, end: 2 };
    expect(() => decodeF32(info, new Uint8Array([0x38, 0x40]))).toThrow(
      /tensor 'w' is F8_E4M3, which is a weight only with its block scales \(a 'w_scale_inv'/,
    );
  });
});

/** MXFP4 blocks [E, R, K/32, 16] and scales for random codes, and the dense [E, K, R] they mean. */
function mxfp4Tensor(E: number, R: number, K: number, rand: () => number) {
  const G = K / 32;
  const blocks = new Uint8Array(E * R * G * 16);
  const scales = new Uint8Array(E * R * G);
  const dense = new Float32Array(E * K * R);
  for (let e = 0; e < E; e++) {
    for (let r = 0; r < R; r++) {
      for (let g = 0; g < G; g++) {
        const s = 120 + Math.floor(rand() * 4); // 2^-7 .. 2^-4: small weights, a stable model
        scales[(e * R + r) * G + g] = s;
        for (let i = 0; i < 32; i++) {
          const code = Math.floor(rand() * 16);
          const k = 32 * g + i;
          // Element k of the row is nibble k % 2 (low first) of byte k / 2 of the block.
          blocks[((e * R + r) * G + g) * 16 + (i >> 1)] |= code << (4 * (i & 1));
          dense[(e * K + k) * R + r] = FP4_TABLE[code] * 2 ** (s - 127);
        }
      }
    }
  }
  return { blocks, scales, dense };
}

/** e4m3 codes (finite) and block scales [⌈rows/128⌉, ⌈cols/128⌉] for a [rows, cols] weight. */
function fp8Tensor(rows: number, cols: number, rand: () => number) {
  const [sr, sc] = [Math.ceil(rows / 128), Math.ceil(cols / 128)];
  // Four significant bits times e4m3's four: every product is exact in f32.
  const scales = Float32Array.from({ length: sr * sc }, () => {
    return (1 + Math.floor(rand() * 8) / 8) * 2 ** -(6 + Math.floor(rand() * 3));
  });
  const codes = new Uint8Array(rows * cols);
  const dense = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      // Exponent fields 0..8 (|value| < 4), either sign; never the NaN pattern.
      const code = (rand() < 0.5 ? 0x80 : 0) | Math.floor(rand() * 72);
      codes[r * cols + c] = code;
      const scale = scales[Math.floor(r / 128) * sc + Math.floor(c / 128)];
      dense[r * cols + c] = e4m3Reference(code) * scale;
      expect(Math.fround(dense[r * cols + c])).toBe(dense[r * cols + c]);
    }
  }
  return { codes, scales, dense };
}

/** Small values for the tensors that stay dense (norm weights near 1). */
function denseValues(name: string, n: number, rand: () => number): Float32Array {
  const norm = /norm/.test(name);
  return Float32Array.from({ length: n }, () =>
    norm ? 0.75 + rand() / 2 : Math.fround((rand() - 0.5) / 8),
  );
}

/** The stored names and shapes a config's dense checkpoint has. */
function storedTensors(config: Record<string, unknown>): Map<string, number[]> {
  const { weightMap, storedShapes, model } = importHfConfig(config, 'x');
  const shapes = new Map<string, number[]>();
  for (const t of expectedTensors(model))
    shapes.set(weightMap[t.name], storedShapes[t.name] ?? t.shape);
  return shapes;
}

async function writeFolder(
  root: string,
  name: string,
  config: Record<string, unknown>,
  tensors: Record<string, TensorToWrite>,
): Promise<string> {
  const dir = join(root, name);
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dir);
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeFile(join(dir, 'model.safetensors'), new Uint8Array(serializeSafetensors(tensors)));
  return dir;
}

/** Every canonical tensor of `a` equals `b`'s, bit for bit. */
async function expectSameWeights(a: HfFolder, b: HfFolder): Promise<number> {
  expect(b.tensors).toEqual(a.tensors);
  for (const t of a.tensors) {
    const [x, y] = [await a.readTensorF32(t.name), await b.readTensorF32(t.name)];
    expect(y.length, t.name).toBe(x.length);
    for (let i = 0; i < x.length; i++)
      if (!Object.is(x[i], y[i])) expect([t.name, i, y[i]]).toEqual([t.name, i, x[i]]);
  }
  return a.tensors.length;
}

/** Prompt and two greedy steps on the CPU interpreter of both imports: identical logits. */
async function expectSameLogits(a: HfFolder, b: HfFolder): Promise<void> {
  const golden: Golden = {
    prompt: [3, 17, 42, 5, 99],
    prefill: new Float32Array(0),
    tokens: [0, 0],
    decode: new Float32Array(0),
  };
  const [ra, rb] = [await runGoldenCpu(a, golden), await runGoldenCpu(b, golden)];
  expect(ra.prefill.every(Number.isFinite)).toBe(true);
  expect(Math.max(...ra.prefill) - Math.min(...ra.prefill)).toBeGreaterThan(0);
  expect(Array.from(rb.prefill)).toEqual(Array.from(ra.prefill));
  expect(rb.tokens).toEqual(ra.tokens);
  expect(Array.from(rb.decode)).toEqual(Array.from(ra.decode));
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-quantized-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const MXFP4_CONFIG = {
  quant_method: 'mxfp4',
  modules_to_not_convert: [
    'model.layers.*.self_attn',
    'model.layers.*.mlp.router',
    'model.embed_tokens',
    'lm_head',
  ],
};

describe('gpt-oss MXFP4 experts', () => {
  // The tiny fixture: dim 64 (two 32-blocks along gate_up's K), hidden 32 (one along down's).
  const config = tinyConfig('gpt_oss');
  const quantized = { ...config, quantization_config: MXFP4_CONFIG };
  const [E, D, H] = [4, 64, 32];
  let dense: HfFolder;
  let mxfp4: HfFolder;
  let gateUp: ReturnType<typeof mxfp4Tensor>;

  beforeAll(async () => {
    const rand = rng(7);
    const denseTensors: Record<string, TensorToWrite> = {};
    const quantTensors: Record<string, TensorToWrite> = {};
    for (const [name, shape] of storedTensors(config)) {
      const fused = /experts\.(gate_up_proj|down_proj)$/.test(name);
      if (!fused) {
        const t = {
          dtype: 'F32' as const,
          shape,
          data: denseValues(
            name,
            shape.reduce((a, b) => a * b, 1),
            rand,
          ),
        };
        denseTensors[name] = t;
        quantTensors[name] = t;
        continue;
      }
      // Dense [E, K, R] (input-major); MXFP4 rows are the R outputs, blocks along K.
      const [, K, R] = shape;
      const q = mxfp4Tensor(E, R, K, rand);
      if (name.endsWith('gate_up_proj')) gateUp ??= q;
      denseTensors[name] = { dtype: 'F32', shape, data: q.dense };
      quantTensors[`${name}_blocks`] = { dtype: 'U8', shape: [E, R, K / 32, 16], data: q.blocks };
      quantTensors[`${name}_scales`] = { dtype: 'U8', shape: [E, R, K / 32], data: q.scales };
    }
    dense = await importHfFolder(await writeFolder(root, 'gpt-oss-dense', config, denseTensors));
    mxfp4 = await importHfFolder(await writeFolder(root, 'gpt-oss-mxfp4', quantized, quantTensors));
  });
  afterAll(async () => {
    await dense?.close();
    await mxfp4?.close();
  });

  it('imports to exactly the weights of the dense checkpoint', async () => {
    expect({ ...mxfp4.model, name: '' }).toEqual({ ...dense.model, name: '' });
    expect(await expectSameWeights(dense, mxfp4)).toBeGreaterThan(50);
    // Spot-check the de-interleave through the quantised path: expert 2's up row n is
    // gate_up's output row 2n + 1, its K inputs the block values.
    const up = await mxfp4.readTensorF32('model.layers.0.mlp.experts.2.up_proj.weight');
    for (const n of [0, 5, H - 1])
      for (const k of [0, 31, 32, D - 1])
        expect(up[n * D + k]).toBe(gateUp.dense[(2 * D + k) * 2 * H + 2 * n + 1]);
  });

  it('gives the same CPU-interpreter logits, bit for bit', async () => {
    await expectSameLogits(dense, mxfp4);
  });

  it('every MXFP4 block is exactly a q8 block (codes 2·e2m1, f16 scale 2^(s−128))', () => {
    // Along K, MXFP4's 32-blocks and q8's coincide: expert e's canonical [out, in] row is one
    // output's K values, which are whole MXFP4 blocks. Build q8 bytes by hand and decode them.
    const [R, K] = [2 * H, D];
    const values = dequantMxfp4(gateUp.blocks, gateUp.scales, E, R, K / 32); // [E, K, R]
    const rows = new Float32Array(E * R * K); // canonical [E·R, K]
    for (let e = 0; e < E; e++)
      for (let k = 0; k < K; k++)
        for (let r = 0; r < R; r++) rows[(e * R + r) * K + k] = values[(e * K + k) * R + r];
    const n = rows.length;
    const bytes = new Uint8Array(dtypeBytes('q8', n));
    const scales = new Uint16Array(bytes.buffer, quantScaleOffset('q8', n));
    for (let b = 0; b < n / 32; b++) {
      const s = gateUp.scales[b]; // block b of row (e, r) is scale index ((e·R + r)·G + g)
      const d = 2 ** (s - 128);
      scales[b] = f32ToF16Bits(d);
      for (let j = 0; j < 32; j++) {
        const code = rows[b * 32 + j] / d;
        expect(Number.isInteger(code) && Math.abs(code) <= 12).toBe(true);
        bytes[b * 32 + j] = code & 0xff;
      }
    }
    // Equal as numbers: MXFP4's −0 (code 8) is q8's code 0, +0.
    const plusZero = (a: ArrayLike<number>) => Array.from(a, (v) => v + 0);
    expect(plusZero(decodeWeight('q8', bytes, n))).toEqual(plusZero(rows));
  });

  it('the dequantising view reads whole tensors and any box of them', async () => {
    const name = 'model.layers.1.mlp.experts.gate_up_proj';
    const file = await openSafetensors(join(root, 'gpt-oss-mxfp4'));
    try {
      const view = dequantizingSource(file, { method: 'mxfp4' }, 'here');
      const listed = view.listTensors().find((t) => t.name === name);
      expect(listed).toEqual({ name, dtype: 'MXFP4', shape: [E, D, 2 * H] });
      expect(view.listTensors().some((t) => /_blocks$|_scales$/.test(t.name))).toBe(false);
      const whole = await view.readTensorF32(name);
      const want = await dense.readTensorF32('model.layers.1.mlp.experts.1.up_proj.weight');
      // Expert 1's up rows are the odd columns of its [D, 2H] slab, transposed.
      for (let n = 0; n < H; n++)
        for (let k = 0; k < D; k++)
          expect(whole[(D + k) * 2 * H + 2 * n + 1]).toBe(want[n * D + k]);
      const box = { start: [1, 3, 5], size: [2, 10, 7] };
      const got = await view.readTensorSliceF32(name, box);
      const expected: number[] = [];
      for (let e = 1; e < 3; e++)
        for (let k = 3; k < 13; k++)
          for (let r = 5; r < 12; r++) expected.push(whole[(e * D + k) * 2 * H + r]);
      expect(Array.from(got)).toEqual(expected);
      await expect(
        view.readTensorSliceF32(name, { start: [3, 0, 0], size: [2, D, 2 * H] }),
      ).rejects.toThrow(/'model\.layers\.1\.mlp\.experts\.gate_up_proj'.*runs past dimension 0/);
    } finally {
      await file.close();
    }
  });

  it('MXFP4 blocks without their scales are refused, naming them', async () => {
    const bad = {
      'model.layers.0.mlp.experts.down_proj_blocks': {
        dtype: 'U8' as const,
        shape: [E, D, 1, 16],
        data: new Uint8Array(E * D * 16),
      },
    };
    const file = await openSafetensors(await writeFolder(root, 'mxfp4-noscale', quantized, bad));
    try {
      expect(() => dequantizingSource(file, { method: 'mxfp4' }, 'here')).toThrow(
        "here: MXFP4 tensor 'model.layers.0.mlp.experts.down_proj_blocks' has no 'model.layers.0.mlp.experts.down_proj_scales' beside it",
      );
    } finally {
      await file.close();
    }
  });

  it('the released gpt-oss-20b config imports as it is (MXFP4)', () => {
    const released = fixtureConfig('configs/gpt-oss-20b.json');
    const { quantization_config: _, ...upcast } = released;
    const q = importHfConfig(released, 'gpt-oss-20b');
    expect(q.quantization).toEqual({ method: 'mxfp4' });
    expect(q.model).toEqual(importHfConfig(upcast, 'gpt-oss-20b').model);
  });
});

const FP8_CONFIG = {
  activation_scheme: 'dynamic',
  fmt: 'e4m3',
  quant_method: 'fp8',
  weight_block_size: [128, 128],
};

describe('DeepSeek-V3 block FP8', () => {
  // The tiny fixture with a 200-wide dense MLP: gate/up [200, 64] and down [64, 200] have a full
  // and a partial block along their long axis (every other weight is one partial block).
  const config = { ...tinyConfig('deepseek_v3'), intermediate_size: 200 };
  const quantized = { ...config, quantization_config: FP8_CONFIG };
  let dense: HfFolder;
  let fp8: HfFolder;
  let dir: string;
  const quantizedNames: string[] = [];
  const tensors: Record<string, TensorToWrite> = {};

  beforeAll(async () => {
    const rand = rng(11);
    const denseTensors: Record<string, TensorToWrite> = {};
    for (const [name, shape] of storedTensors(config)) {
      const n = shape.reduce((a, b) => a * b, 1);
      // As in the release: every projection weight is FP8; embeddings, norms, the router and
      // the head stay dense.
      if (!/_proj(_with_mqa)?\.weight$/.test(name)) {
        const t = { dtype: 'F32' as const, shape, data: denseValues(name, n, rand) };
        denseTensors[name] = t;
        tensors[name] = t;
        continue;
      }
      const q = fp8Tensor(shape[0], shape[1], rand);
      quantizedNames.push(name);
      denseTensors[name] = { dtype: 'F32', shape, data: q.dense };
      tensors[name] = { dtype: 'F8_E4M3', shape, data: q.codes };
      tensors[`${name}_scale_inv`] = {
        dtype: 'F32',
        shape: [Math.ceil(shape[0] / 128), Math.ceil(shape[1] / 128)],
        data: q.scales,
      };
    }
    dense = await importHfFolder(await writeFolder(root, 'ds-dense', config, denseTensors));
    dir = await writeFolder(root, 'ds-fp8', quantized, tensors);
    fp8 = await importHfFolder(dir);
  });
  afterAll(async () => {
    await dense?.close();
    await fp8?.close();
  });

  it('imports to exactly the weights of the dense checkpoint, partial blocks included', async () => {
    expect(quantizedNames).toContain('model.layers.0.mlp.down_proj.weight');
    expect(tensors['model.layers.0.mlp.down_proj.weight_scale_inv'].shape).toEqual([1, 2]);
    expect(tensors['model.layers.0.mlp.gate_proj.weight_scale_inv'].shape).toEqual([2, 1]);
    expect(quantizedNames.length).toBeGreaterThan(20);
    expect({ ...fp8.model, name: '' }).toEqual({ ...dense.model, name: '' });
    expect(await expectSameWeights(dense, fp8)).toBeGreaterThan(40);
  });

  it('gives the same CPU-interpreter logits, bit for bit', async () => {
    await expectSameLogits(dense, fp8);
  });

  it('the released DeepSeek-V3 config imports as it is (block FP8)', () => {
    const released = fixtureConfig('configs/deepseek-v3.json');
    const { quantization_config: _, ...upcast } = released;
    const q = importHfConfig(released, 'DeepSeek-V3');
    expect(q.quantization).toEqual({ method: 'fp8', block: [128, 128] });
    expect(q.model).toEqual(importHfConfig(upcast, 'DeepSeek-V3').model);
  });

  it('an F8 weight without its scale_inv is refused, naming it', async () => {
    const w = 'model.layers.1.self_attn.o_proj.weight';
    const { [`${w}_scale_inv`]: _, ...rest } = tensors;
    await expect(
      importHfFolder(await writeFolder(root, 'ds-noscale', quantized, rest)),
    ).rejects.toThrow(`F8_E4M3 tensor '${w}' has no '${w}_scale_inv' (its block scales) beside it`);
  });

  it('a scale_inv of the wrong shape is refused, naming both tensors', async () => {
    const w = 'model.layers.0.mlp.up_proj.weight';
    const bad = {
      ...tensors,
      [`${w}_scale_inv`]: { dtype: 'F32' as const, shape: [1, 1], data: new Float32Array(1) },
    };
    await expect(
      importHfFolder(await writeFolder(root, 'ds-badscale', quantized, bad)),
    ).rejects.toThrow(
      `block scales '${w}_scale_inv' are F32 [1, 1], expected F32 [2, 1] for '${w}' [200, 64]`,
    );
  });

  it('FP8 weights in a checkpoint whose config does not say so are refused, naming the dtype', async () => {
    await expect(
      importHfFolder(await writeFolder(root, 'ds-noconfig', config, tensors)),
    ).rejects.toThrow(
      /tensor 'model\.layers\.0\.mlp\.down_proj\.weight' has dtype F8_E4M3, expected F32, F16 or BF16/,
    );
  });

  it('a scale_inv whose weight is dense is left over, by name', async () => {
    const denseOne = 'model.embed_tokens.weight';
    const extra = {
      ...tensors,
      [`${denseOne}_scale_inv`]: {
        dtype: 'F32' as const,
        shape: [2, 1],
        data: new Float32Array(2),
      },
    };
    await expect(
      importHfFolder(await writeFolder(root, 'ds-extra', quantized, extra)),
    ).rejects.toThrow(/not used by the model.*'model\.embed_tokens\.weight_scale_inv'/);
  });
});

describe('refused quantisations', () => {
  const llama = tinyConfig('llama');
  const deepseek = tinyConfig('deepseek_v3');
  const supported =
    'strata reads unquantised f32/f16/bf16 checkpoints, gpt-oss MXFP4 and DeepSeek-V3 block FP8';
  const refusal = (config: Record<string, unknown>, quant: Record<string, unknown>) => () =>
    importHfConfig({ ...config, quantization_config: quant }, 'x');

  it('names the method and what strata reads', () => {
    for (const method of ['gptq', 'awq', 'bitsandbytes', 'compressed-tensors']) {
      expect(refusal(llama, { quant_method: method, bits: 4 })).toThrow(
        `config key 'quantization_config' (quant_method '${method}'): ${supported}`,
      );
    }
    expect(refusal(llama, { bits: 4 })).toThrow(`(quant_method undefined): ${supported}`);
  });

  it('fp8 with other blocks, formats or model types', () => {
    expect(refusal(deepseek, { ...FP8_CONFIG, weight_block_size: [64, 64] })).toThrow(
      `(quant_method 'fp8' weight_block_size [64,64]): only DeepSeek-V3's [128, 128] blocks are read (${supported})`,
    );
    expect(refusal(deepseek, { ...FP8_CONFIG, weight_block_size: undefined })).toThrow(
      /weight_block_size undefined\): only DeepSeek-V3's \[128, 128\]/,
    );
    expect(refusal(deepseek, { ...FP8_CONFIG, fmt: 'e5m2' })).toThrow(/fmt "e5m2"\): only e4m3/);
    expect(refusal(llama, FP8_CONFIG)).toThrow(
      /block FP8 only as DeepSeek-V3's weights, not on model_type 'llama'/,
    );
    expect(refusal(deepseek, { ...FP8_CONFIG, ignored_layers: [] })).toThrow(
      /quant_method 'fp8' key 'ignored_layers'\): is not understood/,
    );
  });

  it('mxfp4 on a model that is not gpt-oss', () => {
    expect(refusal(llama, MXFP4_CONFIG)).toThrow(
      `(quant_method 'mxfp4'): strata reads MXFP4 only as gpt-oss's experts, not on model_type 'llama'`,
    );
  });

  it('U8 blocks read as floats are refused, naming the tensor and dtype', () => {
    const shape = [4, 8];
    const info = {
      name: 'model.layers.0.mlp.experts.down_proj_blocks',
      dtype: 'U8' as const,
      shape,
      begin: 0,
      end: 32,
    };
    expect(() => decodeF32(info, new Uint8Array(32))).toThrow(
      /tensor 'model\.layers\.0\.mlp\.experts\.down_proj_blocks' is U8 \(quantised blocks\?\)/,
    );
  });
});
