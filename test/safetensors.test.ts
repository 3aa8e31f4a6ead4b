import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DTYPE_BYTES,
  bf16BitsToF32,
  f16BitsToF32,
  f16BitsToNumber,
  f32ToBf16Bits,
  f32ToF16Bits,
  parseSafetensors,
  serializeSafetensors,
  type TensorToWrite,
} from '../formats/safetensors.ts';
import { openSafetensors } from '../formats/node/safetensors-file.ts';

/** A file with a hand-written header, for the malformed cases the writer never produces. */
function rawFile(header: object, dataBytes: number, headerLenOverride?: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLenOverride ?? json.byteLength), true);
  out.set(json, 8);
  return out;
}

const sample: Record<string, TensorToWrite> = {
  'w.f32': { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, 1e-3, -7]) },
  'w.f16': { dtype: 'F16', shape: [3], data: new Float32Array([1, -0.5, 65504]) },
  'w.bf16': { dtype: 'BF16', shape: [1, 3], data: new Float32Array([1, -3.140625, 2 ** -20]) },
  ids32: { dtype: 'I32', shape: [4], data: new Int32Array([0, -1, 7, 2147483647]) },
  ids64: { dtype: 'I64', shape: [2], data: new BigInt64Array([5n, -9n]) },
  u32: { dtype: 'U32', shape: [2], data: new Uint32Array([3, 4]) },
  odd: { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
};

describe('safetensors buffer round trip', () => {
  const buf = serializeSafetensors(sample, { format: 'pt', note: 'strata test' });
  const st = parseSafetensors(buf, 'sample');

  it('keeps names, dtypes, shapes and metadata', () => {
    expect(st.names().sort()).toEqual(Object.keys(sample).sort());
    for (const [name, t] of Object.entries(sample)) {
      expect(st.info(name).dtype).toBe(t.dtype);
      expect(st.info(name).shape).toEqual(t.shape);
    }
    expect(st.header.metadata).toEqual({ format: 'pt', note: 'strata test' });
  });

  it('starts the data section 8-aligned and each tensor aligned to its element size', () => {
    expect(st.header.dataStart % 8).toBe(0);
    for (const t of st.header.tensors) expect(t.begin % DTYPE_BYTES[t.dtype]).toBe(0);
  });

  it('reads values back', () => {
    expect(Array.from(st.f32('w.f32'))).toEqual(Array.from(sample['w.f32'].data as Float32Array));
    expect(Array.from(st.f32('w.f16'))).toEqual([1, -0.5, 65504]);
    expect(Array.from(st.f32('w.bf16'))).toEqual([1, -3.140625, 2 ** -20]);
    expect(Array.from(st.i32('ids32'))).toEqual([0, -1, 7, 2147483647]);
    expect(Array.from(st.i32('ids64'))).toEqual([5, -9]);
    expect(Array.from(st.i32('u32'))).toEqual([3, 4]);
    expect(Array.from(st.f32('ids64'))).toEqual([5, -9]);
    expect(Array.from(st.f32('odd'))).toEqual([1]);
  });

  it('copies, so changing a result does not change the file', () => {
    st.f32('w.f32')[0] = 42;
    expect(st.f32('w.f32')[0]).toBe(1);
  });

  it('range-checks integer conversion and names the tensor', () => {
    const big = serializeSafetensors({
      huge: { dtype: 'I64', shape: [1], data: new BigInt64Array([2n ** 40n]) },
      high: { dtype: 'U32', shape: [1], data: new Uint32Array([2 ** 31]) },
    });
    const p = parseSafetensors(big);
    expect(() => p.i32('huge')).toThrow(/tensor 'huge'.*does not fit in int32/);
    expect(() => p.i32('high')).toThrow(/tensor 'high'.*does not fit in int32/);
  });

  it('widens Int32Array data for I64 and rejects mismatched arrays', () => {
    const p = parseSafetensors(
      serializeSafetensors({ a: { dtype: 'I64', shape: [2], data: new Int32Array([-3, 4]) } }),
    );
    expect(Array.from(p.i32('a'))).toEqual([-3, 4]);
    expect(() =>
      serializeSafetensors({ a: { dtype: 'I32', shape: [2], data: new Float32Array(2) } }),
    ).toThrow(/tensor 'a': Float32Array is not accepted for dtype I32/);
    expect(() =>
      serializeSafetensors({ a: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }),
    ).toThrow(/tensor 'a': 3 elements but shape \[2,2\] has 4/);
  });
});

describe('half-precision conversion', () => {
  it('converts known f16 bit patterns', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // halfway to the next binade rounds up to Inf
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // exact tie rounds to even (0)
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 subnormal units → 2
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even mantissa
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    const nan = f32ToF16Bits(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
  });

  it('round-trips every finite f16 value through f32', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const f = f16BitsToF32(all);
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(f[h])) {
        expect((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0).toBe(true);
        continue;
      }
      expect(f[h]).toBe(f16BitsToNumber(h));
      expect(f32ToF16Bits(f[h])).toBe(h);
    }
  });

  it('converts known bf16 bit patterns and round-trips every finite value', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(-2)).toBe(0xc000);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(Number.isNaN(bf16BitsToF32(new Uint16Array([f32ToBf16Bits(NaN)]))[0])).toBe(true);
    const all = new Uint16Array(65536).map((_, i) => i);
    const f = bf16BitsToF32(all);
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(f[h])) continue;
      expect(f32ToBf16Bits(f[h])).toBe(h);
    }
  });
});

describe('safetensors parse errors', () => {
  it('names the tensor with an unknown dtype', () => {
    // F8_E5M2 (unlike F8_E4M3, DeepSeek-V3's block FP8) is not read.
    const f = rawFile({ w: { dtype: 'F8_E5M2', shape: [2], data_offsets: [0, 2] } }, 2);
    expect(() => parseSafetensors(f, 'x.safetensors')).toThrow(
      /x\.safetensors: tensor 'w': unknown dtype 'F8_E5M2'/,
    );
  });

  it('names the tensor whose offsets do not match its size', () => {
    const f = rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 12);
    expect(() => parseSafetensors(f)).toThrow(
      /tensor 'w': data_offsets \[0, 8\] hold 8 bytes but F32 \[3\] needs 12/,
    );
  });

  it('names the tensor that runs past the end of the data', () => {
    const f = rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 12);
    expect(() => parseSafetensors(f)).toThrow(
      /tensor 'w': data_offsets \[0, 16\] run past the end of the data section \(12 bytes/,
    );
  });

  it('names overlapping tensors', () => {
    const f = rawFile(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      },
      12,
    );
    expect(() => parseSafetensors(f)).toThrow(/tensor 'b' bytes \[4, 12\) overlap tensor 'a'/);
  });

  it('rejects malformed shapes and offsets', () => {
    const shape = rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, 0);
    expect(() => parseSafetensors(shape)).toThrow(/tensor 'w': shape \[-1\] is not a list/);
    const offs = rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [4] } }, 4);
    expect(() => parseSafetensors(offs)).toThrow(
      /tensor 'w': data_offsets \[4\] is not \[begin, end\]/,
    );
  });

  it('rejects a header length past the end of the file or over the limit', () => {
    expect(() => parseSafetensors(rawFile({}, 0, 1000), 'short')).toThrow(
      /short: header length 1000 runs past the end/,
    );
    expect(() => parseSafetensors(rawFile({}, 0, 200_000_000))).toThrow(
      /over the 100000000-byte limit/,
    );
    expect(() => parseSafetensors(new Uint8Array(5), 'tiny')).toThrow(/tiny: file is 5 bytes/);
  });

  it('rejects a header that is not a JSON object', () => {
    const bytes = new TextEncoder().encode('[1,2]');
    const f = new Uint8Array(8 + bytes.byteLength);
    new DataView(f.buffer).setBigUint64(0, BigInt(bytes.byteLength), true);
    f.set(bytes, 8);
    expect(() => parseSafetensors(f)).toThrow(/header is not a JSON object/);
  });

  it('asks for a tensor that is not there by name', () => {
    const p = parseSafetensors(serializeSafetensors(sample), 'file');
    expect(() => p.f32('nope')).toThrow(/file: no tensor named 'nope'/);
  });
});

describe('safetensors files on disk', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-st-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const write = (path: string, tensors: Record<string, TensorToWrite>) =>
    writeFile(path, new Uint8Array(serializeSafetensors(tensors)));

  it('reads one file tensor by tensor at the right offsets', async () => {
    const tensors: Record<string, TensorToWrite> = {};
    for (let i = 0; i < 20; i++) {
      const data = new Float32Array(17 + i).map((_, j) => i * 1000 + j);
      tensors[`t${i}`] = { dtype: i % 3 === 0 ? 'BF16' : 'F32', shape: [17 + i], data };
    }
    const path = join(dir, 'one.safetensors');
    await write(path, tensors);
    const src = await openSafetensors(path);
    try {
      expect(src.listTensors().map((t) => t.name)).toEqual(Object.keys(tensors).sort());
      for (let i = 0; i < 20; i++) {
        const got = await src.readTensorF32(`t${i}`);
        const want = tensors[`t${i}`].data as Float32Array;
        // BF16 keeps 8 significant bits; the values here are at most 19_036.
        const tol = i % 3 === 0 ? 64 : 0;
        expect(got.length).toBe(want.length);
        for (let j = 0; j < want.length; j++)
          expect(Math.abs(got[j] - want[j])).toBeLessThanOrEqual(tol);
      }
      expect(src.info('t3').dtype).toBe('BF16');
      await expect(src.readTensorF32('missing')).rejects.toThrow(/no tensor named 'missing'/);
    } finally {
      await src.close();
    }
  });

  it('reads a sharded folder through its index', async () => {
    const shardDir = join(dir, 'sharded');
    await mkdir(shardDir);
    await write(join(shardDir, 'model-00001-of-00002.safetensors'), {
      a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
      b: { dtype: 'F16', shape: [1], data: new Float32Array([0.5]) },
    });
    await write(join(shardDir, 'model-00002-of-00002.safetensors'), {
      ids: { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, 2n, 3n]) },
    });
    await writeFile(
      join(shardDir, 'model.safetensors.index.json'),
      JSON.stringify({
        metadata: { total_size: 14 },
        weight_map: {
          a: 'model-00001-of-00002.safetensors',
          b: 'model-00001-of-00002.safetensors',
          ids: 'model-00002-of-00002.safetensors',
        },
      }),
    );
    const src = await openSafetensors(shardDir);
    try {
      expect(src.listTensors().map((t) => t.name)).toEqual(['a', 'b', 'ids']);
      expect(src.info('ids').file).toMatch(/model-00002-of-00002\.safetensors$/);
      expect(Array.from(await src.readTensorF32('a'))).toEqual([1, 2]);
      expect(Array.from(await src.readTensorF32('b'))).toEqual([0.5]);
      expect(Array.from(await src.readTensorI32('ids'))).toEqual([1, 2, 3]);
      expect(src.metadata).toEqual({ total_size: 14 });
    } finally {
      await src.close();
    }
  });

  it('names a tensor the index puts in a shard that lacks it', async () => {
    const bad = join(dir, 'bad-index');
    await mkdir(bad);
    await write(join(bad, 's1.safetensors'), {
      a: { dtype: 'F32', shape: [1], data: new Float32Array([1]) },
    });
    await writeFile(
      join(bad, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { a: 's1.safetensors', ghost: 's1.safetensors' } }),
    );
    await expect(openSafetensors(bad)).rejects.toThrow(
      /puts 'ghost' in s1\.safetensors, which has no such tensor/,
    );
  });

  it('rejects a tensor stored in two shards', async () => {
    const dup = join(dir, 'dup');
    await mkdir(dup);
    const t = { a: { dtype: 'F32' as const, shape: [1], data: new Float32Array([1]) } };
    await write(join(dup, 's1.safetensors'), t);
    await write(join(dup, 's2.safetensors'), {
      ...t,
      b: { dtype: 'F32', shape: [1], data: new Float32Array([2]) },
    });
    await writeFile(
      join(dup, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's2.safetensors' } }),
    );
    await expect(openSafetensors(dup)).rejects.toThrow(
      /tensor 'a' is in both s1\.safetensors and s2\.safetensors/,
    );
  });

  it('rejects an index that points outside the folder', async () => {
    const esc = join(dir, 'escape');
    await mkdir(esc);
    await writeFile(
      join(esc, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { a: '../one.safetensors' } }),
    );
    await expect(openSafetensors(esc)).rejects.toThrow(
      /weight_map\['a'\] names '\.\.\/one\.safetensors', outside the folder/,
    );
  });

  it('finds model.safetensors in a folder and explains an empty one', async () => {
    const single = join(dir, 'single');
    await mkdir(single);
    await write(join(single, 'model.safetensors'), {
      x: { dtype: 'F32', shape: [1], data: new Float32Array([3]) },
    });
    const src = await openSafetensors(single);
    expect(Array.from(await src.readTensorF32('x'))).toEqual([3]);
    await src.close();
    const empty = join(dir, 'empty');
    await mkdir(empty);
    await expect(openSafetensors(empty)).rejects.toThrow(
      /no model\.safetensors, model\.safetensors\.index\.json/,
    );
  });

  it('reports a truncated file by name', async () => {
    const full = new Uint8Array(
      serializeSafetensors({ w: { dtype: 'F32', shape: [8], data: new Float32Array(8) } }),
    );
    const path = join(dir, 'cut.safetensors');
    await writeFile(path, full.subarray(0, full.byteLength - 4));
    await expect(openSafetensors(path)).rejects.toThrow(
      /cut\.safetensors: tensor 'w'.*run past the end/,
    );
  });
});
