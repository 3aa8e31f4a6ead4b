import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gguf } from '@huggingface/gguf';
import { openGguf } from '../../formats/node/gguf-file.ts';
import { f16BitsToNumber, f32ToBf16Bits, f32ToF16Bits } from '../../formats/safetensors.ts';
import { encodeWeight } from '../../src/ops/weight-storage.ts';
import { quantScaleOffset } from '../../src/graph/dtype.ts';
import { rng } from '../helpers/numeric.ts';
import {
  GGML,
  encodeF16,
  encodeF32,
  encodeQ4K,
  encodeQ4_0,
  encodeQ8_0,
  str,
  u32,
  writeGguf,
  type GgufTensorToWrite,
  type Q4KBlock,
} from '../helpers/gguf-writer.ts';

let root: string;
let count = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-gguf-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function file(bytes: Uint8Array): Promise<string> {
  const path = join(root, `f${count++}.gguf`);
  await writeFile(path, bytes);
  return path;
}

const ints = (n: number, lo: number, hi: number, seed: number): number[] => {
  const r = rng(seed);
  return Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo + 1)));
};

// Scales chosen as f16 values; the expected values are computed from codes and scales here,
// in f64, and every one is exact in f32 (small dyadic scales times small integers).
const Q8_SCALES = [0.0078125, 0.01171875, 0.5, 3.5].map(f32ToF16Bits);
const Q8_CODES = ints(32 * 4, -128, 127, 1);
const Q4_SCALES = [0.25, -0.0625, 1.5].map(f32ToF16Bits);
const Q4_CODES = ints(32 * 3, 0, 15, 2);
const Q4K_BLOCKS: Q4KBlock[] = [0, 1].map((b) => ({
  d: f32ToF16Bits(b ? 0.046875 : 0.001953125),
  dmin: f32ToF16Bits(b ? 0.015625 : 0.375),
  sc: ints(8, 0, 63, 10 + b),
  m: ints(8, 0, 63, 20 + b),
  codes: ints(256, 0, 15, 30 + b),
}));
// The 6-bit fields' top bits live in other bytes: make sure every sub-block has some set.
Q4K_BLOCKS[0].sc[5] = 63;
Q4K_BLOCKS[0].m[6] = 48;
const F_VALUES = [1, -2.5, 0.1, 3e-5, 65504, -0.333];

const expectQ8 = Q8_CODES.map((q, i) => f16BitsToNumber(Q8_SCALES[i >> 5]) * q);
const expectQ4 = Q4_CODES.map((q, i) => f16BitsToNumber(Q4_SCALES[i >> 5]) * (q - 8));
const expectQ4K = Q4K_BLOCKS.flatMap((b) =>
  b.codes.map((q, i) => {
    const j = i >> 5;
    return f16BitsToNumber(b.d) * b.sc[j] * q - f16BitsToNumber(b.dmin) * b.m[j];
  }),
);

function tensors(): GgufTensorToWrite[] {
  const bf16 = new Uint16Array(F_VALUES.map(f32ToBf16Bits));
  return [
    { name: 'f32', type: GGML.F32, shape: [2, 3], data: encodeF32(F_VALUES) },
    { name: 'f16', type: GGML.F16, shape: [3, 2], data: encodeF16(F_VALUES) },
    { name: 'bf16', type: GGML.BF16, shape: [6], data: new Uint8Array(bf16.buffer) },
    { name: 'q8', type: GGML.Q8_0, shape: [2, 64], data: encodeQ8_0(Q8_SCALES, Q8_CODES) },
    { name: 'q4', type: GGML.Q4_0, shape: [3, 32], data: encodeQ4_0(Q4_SCALES, Q4_CODES) },
    { name: 'q4k', type: GGML.Q4_K, shape: [2, 256], data: encodeQ4K(Q4K_BLOCKS) },
    { name: 'blk.0.ffn_down.weight', type: GGML.Q6_K, shape: [256], data: new Uint8Array(210) },
  ];
}

const META = { 'general.architecture': str('llama'), 'llama.block_count': u32(1) };

describe('GGUF reading', () => {
  it('@huggingface/gguf parses the test writer’s files', async () => {
    const path = await file(writeGguf(META, tensors()));
    const parsed = await gguf(path, { allowLocalFile: true });
    const metadata = parsed.metadata as unknown as Record<string, unknown>;
    expect(metadata['general.architecture']).toBe('llama');
    expect(metadata['llama.block_count']).toBe(1);
    expect(parsed.tensorInfos.map((t) => [t.name, t.dtype, t.shape.map(Number)])).toEqual(
      tensors().map((t) => [t.name, t.type, [...t.shape].reverse()]),
    );
  });

  it('lists tensors row-major and dequantises each readable type exactly', async () => {
    const src = await openGguf(await file(writeGguf(META, tensors())));
    try {
      expect(src.listTensors().map((t) => [t.name, t.typeName, t.shape])).toEqual([
        ['f32', 'F32', [2, 3]],
        ['f16', 'F16', [3, 2]],
        ['bf16', 'BF16', [6]],
        ['q8', 'Q8_0', [2, 64]],
        ['q4', 'Q4_0', [3, 32]],
        ['q4k', 'Q4_K', [2, 256]],
        ['blk.0.ffn_down.weight', 'Q6_K', [256]],
      ]);
      expect(await src.readTensorF32('f32')).toEqual(Float32Array.from(F_VALUES));
      expect(await src.readTensorF32('f16')).toEqual(
        Float32Array.from(F_VALUES.map((x) => f16BitsToNumber(f32ToF16Bits(x)))),
      );
      const bf16Bits = Uint32Array.from(F_VALUES, (x) => f32ToBf16Bits(x) << 16);
      expect(await src.readTensorF32('bf16')).toEqual(new Float32Array(bf16Bits.buffer));
      expect(Array.from(await src.readTensorF32('q8'))).toEqual(expectQ8);
      expect(Array.from(await src.readTensorF32('q4'))).toEqual(expectQ4);
      expect(Array.from(await src.readTensorF32('q4k'))).toEqual(expectQ4K);
    } finally {
      await src.close();
    }
  });

  it('refuses a type it cannot read, naming the tensor and the type', async () => {
    const src = await openGguf(await file(writeGguf(META, tensors())));
    try {
      await expect(src.readTensorF32('blk.0.ffn_down.weight')).rejects.toThrow(
        "tensor 'blk.0.ffn_down.weight' is Q6_K; strata reads F32, F16, BF16, Q8_0, Q4_0, Q4_K",
      );
    } finally {
      await src.close();
    }
  });

  it('refuses a file cut short, in the data or in the header', async () => {
    const whole = writeGguf(META, tensors());
    await expect(openGguf(await file(whole.subarray(0, whole.length - 260)))).rejects.toThrow(
      /tensor 'q4k' \(Q4_K, 288 bytes at byte \d+\) runs past the end of the \d+-byte file \(truncated\?\)/,
    );
    await expect(openGguf(await file(whole.subarray(0, 100)))).rejects.toThrow(
      /header runs to byte \d+ but the file has 100 bytes \(truncated\?\)/,
    );
    await expect(openGguf(await file(new TextEncoder().encode('GGML....')))).rejects.toThrow(
      /cannot read the GGUF header/,
    );
  });

  it('refuses rows that are not whole blocks', async () => {
    const bad = { name: 'odd', type: GGML.Q8_0, shape: [32, 2], data: new Uint8Array(68) };
    await expect(openGguf(await file(writeGguf(META, [bad])))).rejects.toThrow(
      "tensor 'odd' is Q8_0 with rows of 2 elements, not whole blocks of 32",
    );
  });

  // strata's q8/q4 storage uses GGUF's Q8_0/Q4_0 numbers: a Q8_0 or Q4_0 tensor dequantised
  // and encoded again gets back its own codes and scales, so it compiles to q8/q4 losslessly.
  it('re-encodes Q8_0 and Q4_0 tensors to their own codes and scales', async () => {
    // Quantiser-made blocks: Q8_0's scale is amax/127 (some code is ±127, none is -128); Q4_0's
    // extreme element has code 0.
    const q8Codes = ints(32 * 4, -127, 127, 5);
    const q4Codes = ints(32 * 3, 1, 15, 6);
    for (let b = 0; b < 4; b++) q8Codes[32 * b + ((7 * b) % 32)] = b % 2 ? -127 : 127;
    for (let b = 0; b < 3; b++) q4Codes[32 * b + ((5 * b + 3) % 32)] = 0;
    const q8Scales = [0.0078125, 0.01171875, 0.5, 3.5].map(f32ToF16Bits);
    const q4Scales = [0.25, -0.0625, 1.5].map(f32ToF16Bits);
    const src = await openGguf(
      await file(
        writeGguf(META, [
          { name: 'q8', type: GGML.Q8_0, shape: [2, 64], data: encodeQ8_0(q8Scales, q8Codes) },
          { name: 'q4', type: GGML.Q4_0, shape: [3, 32], data: encodeQ4_0(q4Scales, q4Codes) },
        ]),
      ),
    );
    try {
      const q8 = encodeWeight('q8', await src.readTensorF32('q8'), 64);
      expect(Array.from(new Int8Array(q8.buffer, 0, 128))).toEqual(q8Codes);
      expect(Array.from(new Uint16Array(q8.buffer, quantScaleOffset('q8', 128), 4))).toEqual(
        q8Scales,
      );
      const q4 = encodeWeight('q4', await src.readTensorF32('q4'), 32);
      const codes = Array.from({ length: 96 }, (_, i) => (q4[i >> 1] >> (4 * (i & 1))) & 15);
      expect(codes).toEqual(q4Codes);
      expect(Array.from(new Uint16Array(q4.buffer, quantScaleOffset('q4', 96), 3))).toEqual(
        q4Scales,
      );
    } finally {
      await src.close();
    }
  });
});
