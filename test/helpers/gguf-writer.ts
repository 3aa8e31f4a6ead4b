/**
 * A test-only GGUF v3 writer: header, typed key-value metadata, tensor infos and 32-byte-aligned
 * tensor data, plus encoders that build tensor bytes from chosen codes and scales (so a test
 * knows exactly which values a reader must recover). Layouts as formats/gguf.ts describes them.
 */
import { f32ToF16Bits } from '../../formats/safetensors.ts';

/** GGUF metadata value types. */
export const GGUF_VALUE = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

export type GgufKv =
  | { type: 'u32' | 'i32' | 'f32' | 'f64'; value: number }
  | { type: 'u64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: string[] }
  | { type: 'f32[]'; value: number[] };

export const u32 = (value: number): GgufKv => ({ type: 'u32', value });
export const f32 = (value: number): GgufKv => ({ type: 'f32', value });
export const str = (value: string): GgufKv => ({ type: 'string', value });

export interface GgufTensorToWrite {
  name: string;
  /** GGML type number. */
  type: number;
  /** Row-major shape (outermost first); written innermost first as GGUF lists it. */
  shape: number[];
  data: Uint8Array;
}

class Bytes {
  private parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
  num(kind: 'u32' | 'i32' | 'f32' | 'f64' | 'u64' | 'u8', v: number | bigint): void {
    const size = kind === 'u8' ? 1 : kind === 'u64' || kind === 'f64' ? 8 : 4;
    const b = new Uint8Array(size);
    const dv = new DataView(b.buffer);
    if (kind === 'u8') dv.setUint8(0, Number(v));
    else if (kind === 'u32') dv.setUint32(0, Number(v), true);
    else if (kind === 'i32') dv.setInt32(0, Number(v), true);
    else if (kind === 'f32') dv.setFloat32(0, Number(v), true);
    else if (kind === 'f64') dv.setFloat64(0, Number(v), true);
    else dv.setBigUint64(0, BigInt(v), true);
    this.push(b);
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.num('u64', b.length);
    this.push(b);
  }
  pad(align: number): void {
    const rem = this.length % align;
    if (rem) this.push(new Uint8Array(align - rem));
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

function writeKv(out: Bytes, kv: GgufKv): void {
  switch (kv.type) {
    case 'u32':
    case 'i32':
    case 'f32':
    case 'f64':
    case 'u64':
      out.num('u32', GGUF_VALUE[kv.type]);
      out.num(kv.type, kv.value);
      return;
    case 'bool':
      out.num('u32', GGUF_VALUE.bool);
      out.num('u8', kv.value ? 1 : 0);
      return;
    case 'string':
      out.num('u32', GGUF_VALUE.string);
      out.str(kv.value);
      return;
    case 'string[]':
      out.num('u32', GGUF_VALUE.array);
      out.num('u32', GGUF_VALUE.string);
      out.num('u64', kv.value.length);
      for (const s of kv.value) out.str(s);
      return;
    case 'f32[]':
      out.num('u32', GGUF_VALUE.array);
      out.num('u32', GGUF_VALUE.f32);
      out.num('u64', kv.value.length);
      for (const v of kv.value) out.num('f32', v);
      return;
  }
}

const ALIGN = 32;

export function writeGguf(
  metadata: Record<string, GgufKv>,
  tensors: GgufTensorToWrite[],
): Uint8Array {
  const out = new Bytes();
  out.push(new TextEncoder().encode('GGUF'));
  out.num('u32', 3);
  out.num('u64', tensors.length);
  out.num('u64', Object.keys(metadata).length);
  for (const [k, v] of Object.entries(metadata)) {
    out.str(k);
    writeKv(out, v);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    out.str(t.name);
    out.num('u32', t.shape.length);
    for (const d of [...t.shape].reverse()) out.num('u64', d);
    out.num('u32', t.type);
    offsets.push(offset);
    out.num('u64', offset);
    offset += Math.ceil(t.data.length / ALIGN) * ALIGN;
  }
  out.pad(ALIGN);
  for (const t of tensors) {
    out.push(t.data);
    out.pad(ALIGN);
  }
  return out.concat();
}

// ------------------------------------------------------------------ tensor encoders

export const GGML = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 } as const;

export function encodeF32(x: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(x).buffer);
}

export function encodeF16(x: ArrayLike<number>): Uint8Array {
  const h = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) h[i] = f32ToF16Bits(x[i]);
  return new Uint8Array(h.buffer);
}

/** Q8_0 blocks: block b's f16 scale bits and its 32 codes in [-128, 127]. */
export function encodeQ8_0(scaleBits: number[], codes: number[]): Uint8Array {
  const out = new Uint8Array(34 * scaleBits.length);
  const dv = new DataView(out.buffer);
  scaleBits.forEach((s, b) => {
    dv.setUint16(34 * b, s, true);
    for (let j = 0; j < 32; j++) dv.setInt8(34 * b + 2 + j, codes[32 * b + j]);
  });
  return out;
}

/** Q4_0 blocks: block b's f16 scale bits and its 32 codes in [0, 15]. */
export function encodeQ4_0(scaleBits: number[], codes: number[]): Uint8Array {
  const out = new Uint8Array(18 * scaleBits.length);
  const dv = new DataView(out.buffer);
  scaleBits.forEach((s, b) => {
    dv.setUint16(18 * b, s, true);
    for (let j = 0; j < 16; j++) {
      out[18 * b + 2 + j] = codes[32 * b + j] | (codes[32 * b + j + 16] << 4);
    }
  });
  return out;
}

export interface Q4KBlock {
  /** f16 bits of d and dmin. */
  d: number;
  dmin: number;
  /** 6-bit scale and min of each of the 8 sub-blocks. */
  sc: number[];
  m: number[];
  /** 256 codes in [0, 15]. */
  codes: number[];
}

/** Q4_K super-blocks, packing scales/mins and codes as the format describes. */
export function encodeQ4K(blocks: Q4KBlock[]): Uint8Array {
  const out = new Uint8Array(144 * blocks.length);
  const dv = new DataView(out.buffer);
  blocks.forEach((blk, b) => {
    const at = 144 * b;
    dv.setUint16(at, blk.d, true);
    dv.setUint16(at + 2, blk.dmin, true);
    const s = out.subarray(at + 4, at + 16);
    for (let j = 0; j < 4; j++) {
      s[j] = (blk.sc[j] & 63) | ((blk.sc[j + 4] >> 4) << 6);
      s[j + 4] = (blk.m[j] & 63) | ((blk.m[j + 4] >> 4) << 6);
      s[j + 8] = (blk.sc[j + 4] & 15) | ((blk.m[j + 4] & 15) << 4);
    }
    for (let j = 0; j < 8; j++) {
      const run = at + 16 + 32 * (j >> 1);
      for (let l = 0; l < 32; l++) out[run + l] |= blk.codes[32 * j + l] << (4 * (j & 1));
    }
  });
  return out;
}
