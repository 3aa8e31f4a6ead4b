/**
 * Writing GGUF v3 (browser-safe): the header (magic, version, counts, typed key-value metadata,
 * tensor infos) padded to the data alignment, and the byte layouts of the element types strata
 * writes, as formats/gguf.ts describes them for reading. Tensor data follows the header, each
 * tensor starting at a multiple of the alignment; offsets in the infos count from the data start.
 * The header is built from tensor sizes alone, so a writer can stream the data after it
 * (formats/node/gguf-file-writer.ts) without holding a model in memory.
 */
import { f32ToF16Bits } from './safetensors.ts';

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
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'i32[]' | 'f32[]'; value: readonly number[] };

export const u32 = (value: number): GgufKv => ({ type: 'u32', value });
export const f32 = (value: number): GgufKv => ({ type: 'f32', value });
export const str = (value: string): GgufKv => ({ type: 'string', value });
export const bool = (value: boolean): GgufKv => ({ type: 'bool', value });

/** GGML type numbers of the types strata writes (and a few tests encode by hand). */
export const GGML = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 } as const;

/** Elements and bytes per block of the types ggmlBytes can size. */
const BLOCKS: ReadonlyMap<number, [number, number]> = new Map([
  [GGML.F32, [1, 4]],
  [GGML.F16, [1, 2]],
  [GGML.BF16, [1, 2]],
  [GGML.Q8_0, [32, 34]],
  [GGML.Q4_0, [32, 18]],
  [GGML.Q4_K, [256, 144]],
]);

/** Bytes of `elements` elements of GGML type `type` (whole blocks). */
export function ggmlBytes(type: number, elements: number): number {
  const b = BLOCKS.get(type);
  if (!b) throw new Error(`GGML type ${type}: the writer does not know its block size`);
  if (elements % b[0] !== 0)
    throw new Error(`GGML type ${type}: ${elements} elements are not whole blocks of ${b[0]}`);
  return (elements / b[0]) * b[1];
}

/** The data alignment (general.alignment's default, which llama.cpp's converter keeps). */
export const GGUF_ALIGN = 32;

export const alignUp = (n: number): number => Math.ceil(n / GGUF_ALIGN) * GGUF_ALIGN;

/** A tensor's entry in the header: its data is `byteLength` bytes. */
export interface GgufTensorInfo {
  name: string;
  /** GGML type number. */
  type: number;
  /** Row-major shape (outermost first); written innermost first as GGUF lists it. */
  shape: readonly number[];
  byteLength: number;
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
  pad(): void {
    const rem = this.length % GGUF_ALIGN;
    if (rem) this.push(new Uint8Array(GGUF_ALIGN - rem));
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
    case 'i32[]':
    case 'f32[]': {
      const el = kv.type === 'i32[]' ? 'i32' : 'f32';
      out.num('u32', GGUF_VALUE.array);
      out.num('u32', GGUF_VALUE[el]);
      out.num('u64', kv.value.length);
      for (const v of kv.value) out.num(el, v);
      return;
    }
  }
}

/** The header, padded so that the data starts aligned; tensors follow in `tensors` order. */
export function ggufHeader(
  metadata: Readonly<Record<string, GgufKv>>,
  tensors: readonly GgufTensorInfo[],
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
  for (const t of tensors) {
    out.str(t.name);
    out.num('u32', t.shape.length);
    for (const d of [...t.shape].reverse()) out.num('u64', d);
    out.num('u32', t.type);
    out.num('u64', offset);
    offset += alignUp(t.byteLength);
  }
  out.pad();
  return out.concat();
}

export interface GgufTensorToWrite {
  name: string;
  type: number;
  shape: number[];
  data: Uint8Array;
}

/** A whole GGUF file in memory (small files: tests); large ones stream through GgufFileWriter. */
export function writeGguf(
  metadata: Readonly<Record<string, GgufKv>>,
  tensors: readonly GgufTensorToWrite[],
): Uint8Array {
  const header = ggufHeader(
    metadata,
    tensors.map((t) => ({ ...t, byteLength: t.data.length })),
  );
  const total = tensors.reduce((n, t) => n + alignUp(t.data.length), header.length);
  const out = new Uint8Array(total);
  out.set(header);
  let at = header.length;
  for (const t of tensors) {
    out.set(t.data, at);
    at += alignUp(t.data.length);
  }
  return out;
}

// ------------------------------------------------------------------ tensor encoders

export function encodeF32(x: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(x).buffer);
}

export function encodeF16(x: ArrayLike<number>): Uint8Array {
  const h = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) h[i] = f32ToF16Bits(x[i]);
  return new Uint8Array(h.buffer);
}

/** Q8_0 blocks: block b's f16 scale bits and its 32 codes in [-128, 127]. */
export function encodeQ8_0(scaleBits: ArrayLike<number>, codes: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(34 * scaleBits.length);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < scaleBits.length; b++) {
    dv.setUint16(34 * b, scaleBits[b], true);
    for (let j = 0; j < 32; j++) dv.setInt8(34 * b + 2 + j, codes[32 * b + j]);
  }
  return out;
}

/** Q4_0 blocks: block b's f16 scale bits and its 32 codes in [0, 15]. */
export function encodeQ4_0(scaleBits: ArrayLike<number>, codes: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(18 * scaleBits.length);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < scaleBits.length; b++) {
    dv.setUint16(18 * b, scaleBits[b], true);
    for (let j = 0; j < 16; j++) {
      out[18 * b + 2 + j] = codes[32 * b + j] | (codes[32 * b + j + 16] << 4);
    }
  }
  return out;
}
