/**
 * Streaming a safetensors file into per-tensor pieces (runtime/weights-stream.ts): whatever the
 * chunking of the stream, every tensor arrives whole, in word-aligned pieces at word-aligned
 * offsets (GPUQueue.writeBuffer's rule), an odd-length f16 tensor zero-padded; a stream cut short
 * names the tensor it cuts; a tensor the manifest needs but the file lacks is named.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { serializeSafetensors } from '../../formats/safetensors.ts';
import { streamSafetensors } from '../../runtime/weights-stream.ts';
import type { BundleManifest } from '../../codegen/manifest.ts';

const a = Float32Array.from({ length: 10 }, (_, i) => i + 0.5);
const h = Uint16Array.of(0x3c00, 0x4000, 0x4200); // f16 [3]: 6 bytes, not a whole word
const FILE = new Uint8Array(
  serializeSafetensors({
    a: { dtype: 'F32', shape: [10], data: a },
    h: { dtype: 'F16', shape: [3], data: h },
    skipped: { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) },
  }),
);
const TENSORS: BundleManifest['tensors'] = [
  { name: 'a', shape: [10], dtype: 'f32' },
  { name: 'h', shape: [3], dtype: 'f16' },
];

/** The file as a stream of chunks of the given sizes (cycled). */
function chunked(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let at = 0;
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.byteLength) return c.close();
      const n = sizes[i++ % sizes.length];
      c.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

async function collect(
  stream: ReadableStream<Uint8Array>,
  tensors = TENSORS,
): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  await streamSafetensors(stream, 'w.safetensors', tensors, (name, offset, bytes) => {
    expect(offset % 4).toBe(0);
    expect(bytes.byteLength % 4).toBe(0);
    const prev = out.get(name) ?? new Uint8Array(0);
    expect(offset).toBe(prev.byteLength);
    const next = new Uint8Array(offset + bytes.byteLength);
    next.set(prev);
    next.set(bytes, offset);
    out.set(name, next);
  });
  return out;
}

const padded = (b: Uint8Array) => {
  const out = new Uint8Array(Math.ceil(b.byteLength / 4) * 4);
  out.set(b);
  return out;
};

describe('streamSafetensors', () => {
  it('delivers every tensor whole and word-aligned however the stream is chunked', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 23 }), { minLength: 1, maxLength: 6 }),
        async (sizes) => {
          const got = await collect(chunked(FILE, sizes));
          expect(got.get('a')).toEqual(new Uint8Array(a.buffer));
          expect(got.get('h')).toEqual(padded(new Uint8Array(h.buffer)));
          expect(got.has('skipped')).toBe(false);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('names the tensor a short stream cuts', async () => {
    const cutA = FILE.slice(0, FILE.byteLength - 3);
    await expect(collect(chunked(cutA, [64]), TENSORS)).rejects.toThrow(
      /w\.safetensors: ends after \d+ bytes, inside tensor 'h'.*truncated or corrupted/,
    );
  });

  it('names a manifest tensor the file lacks, and a wrong stored shape', async () => {
    await expect(
      collect(chunked(FILE, [100]), [{ name: 'missing', shape: [1], dtype: 'f32' }]),
    ).rejects.toThrow("w.safetensors: tensor 'missing' (manifest tensors[0]) is missing");
    await expect(
      collect(chunked(FILE, [100]), [{ name: 'a', shape: [5, 2], dtype: 'f32' }]),
    ).rejects.toThrow(/tensor 'a' is stored as F32 \[10\].*needs F32 \[5,2\]/);
  });

  it('refuses a garbled header with the file name', async () => {
    const bad = FILE.slice();
    bad.fill(0x7b, 8, 20);
    await expect(collect(chunked(bad, [50]), TENSORS)).rejects.toThrow(
      /^w\.safetensors: header is/,
    );
  });
});
