/**
 * safetensors reading and writing, browser-safe (no Node imports).
 *
 * Layout: an unsigned 64-bit little-endian header length N, N bytes of UTF-8 JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { key: string } }`,
 * then the data section; offsets are relative to the start of the data section.
 * Parsing validates every entry so that a corrupt or truncated file fails with a
 * message naming the tensor instead of yielding garbage weights.
 */

import { jsonSyntaxError } from './json-error.ts';

/**
 * U8 holds strata's own q8/q4 weights in a bundle (whose manifest says how to read them), and a
 * checkpoint's MXFP4 blocks and scales; F8_E4M3 holds block-scaled FP8 checkpoint weights, which
 * are only values together with their scales (src/import/quantized.ts reads the pairs).
 */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U32' | 'U8' | 'F8_E4M3';

export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I32: 4,
  I64: 8,
  U32: 4,
  U8: 1,
  F8_E4M3: 1,
};

/** One tensor's header entry. `begin`/`end` are byte offsets into the data section. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Entries in data-offset order. */
  tensors: TensorInfo[];
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

/** The reference implementation refuses headers over 100 MB; a larger one is a corrupt file. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

export function isSafetensorsDtype(s: string): s is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Reads the header length from the first 8 bytes of a file. */
export function readHeaderLength(first8: Uint8Array, source: string): number {
  if (first8.byteLength < 8) {
    throw new Error(
      `${source}: file is ${first8.byteLength} bytes, too short for a safetensors header`,
    );
  }
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(
      `${source}: header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit (corrupt file?)`,
    );
  }
  return Number(n);
}

/**
 * Parses and validates the JSON header. `dataLength` is the size of the data section when
 * known (it is for whole buffers and files), so that offsets past the end are caught here.
 */
export function parseHeaderJson(
  jsonBytes: Uint8Array,
  dataStart: number,
  dataLength: number | null,
  source: string,
): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(jsonBytes);
  } catch {
    throw new Error(`${source}: header is not valid UTF-8 (not a safetensors file?)`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: header is ${jsonSyntaxError(e)} (not a safetensors file?)`);
  }
  if (!isPlainObject(parsed)) throw new Error(`${source}: header is not a JSON object`);

  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(entry)) throw new Error(`${source}: __metadata__ is not an object`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string')
          throw new Error(`${source}: __metadata__ '${k}' is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    tensors.push(parseEntry(name, entry, dataLength, source));
  }

  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < tensors.length; i++) {
    const prev = tensors[i - 1];
    const cur = tensors[i];
    if (cur.begin < prev.end) {
      throw new Error(
        `${source}: tensor '${cur.name}' bytes [${cur.begin}, ${cur.end}) overlap tensor '${prev.name}' [${prev.begin}, ${prev.end})`,
      );
    }
  }
  return { tensors, metadata, dataStart };
}

function parseEntry(
  name: string,
  entry: unknown,
  dataLength: number | null,
  source: string,
): TensorInfo {
  const where = `${source}: tensor '${name}'`;
  if (!isPlainObject(entry)) throw new Error(`${where}: header entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string') throw new Error(`${where}: missing dtype`);
  if (!isSafetensorsDtype(dtype)) {
    throw new Error(
      `${where}: unknown dtype '${dtype}' (strata reads ${Object.keys(DTYPE_BYTES).join(', ')})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    throw new Error(
      `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`,
    );
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
    throw new Error(`${where}: data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new Error(`${where}: data_offsets [${begin}, ${end}] end before begin`);
  const need = numel(shape as number[]) * DTYPE_BYTES[dtype];
  if (end - begin !== need) {
    throw new Error(
      `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${need}`,
    );
  }
  if (dataLength !== null && end > dataLength) {
    throw new Error(
      `${where}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataLength} bytes; truncated file?)`,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/** A whole safetensors file held in memory. */
export interface SafetensorsBuffer {
  header: SafetensorsHeader;
  names(): string[];
  info(name: string): TensorInfo;
  /** The tensor's raw little-endian bytes (a view into the input, not a copy). */
  bytes(name: string): Uint8Array;
  /** Float tensors (and integer ones, exactly where representable) as a new Float32Array. */
  f32(name: string): Float32Array;
  /** Integer tensors (I32, U32, I64 within int32 range) as a new Int32Array. */
  i32(name: string): Int32Array;
}

export function parseSafetensors(
  input: ArrayBuffer | Uint8Array,
  source = 'safetensors',
): SafetensorsBuffer {
  const all = input instanceof Uint8Array ? input : new Uint8Array(input);
  const headerLen = readHeaderLength(all.subarray(0, 8), source);
  if (8 + headerLen > all.byteLength) {
    throw new Error(
      `${source}: header length ${headerLen} runs past the end of the ${all.byteLength}-byte file`,
    );
  }
  const dataStart = 8 + headerLen;
  const header = parseHeaderJson(
    all.subarray(8, dataStart),
    dataStart,
    all.byteLength - dataStart,
    source,
  );
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const info = (name: string): TensorInfo => {
    const t = byName.get(name);
    if (!t) throw new Error(`${source}: no tensor named '${name}'`);
    return t;
  };
  const bytes = (name: string): Uint8Array => {
    const t = info(name);
    return all.subarray(dataStart + t.begin, dataStart + t.end);
  };
  return {
    header,
    names: () => header.tensors.map((t) => t.name),
    info,
    bytes,
    // slice() first: the decoders may return views, and callers must not alias the file buffer.
    f32: (name) => decodeF32(info(name), bytes(name).slice()),
    i32: (name) => decodeI32(info(name), bytes(name).slice()),
  };
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Typed view of `bytes` when aligned on a little-endian host; otherwise a copy that is. */
function aligned(bytes: Uint8Array, elemBytes: number): Uint8Array {
  if (!LITTLE_ENDIAN_HOST) {
    throw new Error('safetensors: big-endian hosts are not supported');
  }
  return bytes.byteOffset % elemBytes === 0 ? bytes : bytes.slice();
}

/**
 * Converts a tensor's raw bytes to f32. May return a view of `bytes` (aligned F32), so
 * pass bytes the caller owns.
 */
export function decodeF32(info: TensorInfo, bytes: Uint8Array): Float32Array {
  checkByteLength(info, bytes);
  const n = numel(info.shape);
  switch (info.dtype) {
    case 'F32': {
      const b = aligned(bytes, 4);
      return new Float32Array(b.buffer, b.byteOffset, n);
    }
    case 'F16': {
      const b = aligned(bytes, 2);
      return f16BitsToF32(new Uint16Array(b.buffer, b.byteOffset, n));
    }
    case 'BF16': {
      const b = aligned(bytes, 2);
      return bf16BitsToF32(new Uint16Array(b.buffer, b.byteOffset, n));
    }
    case 'U8':
      // A checkpoint's U8 tensors are quantised blocks (MXFP4, bitsandbytes) or masks, never
      // floats; a bundle's are read through the manifest's dtype, not here.
      throw new Error(
        `tensor '${info.name}' is U8 (quantised blocks?); strata reads weights stored as F32, F16 or BF16`,
      );
    case 'F8_E4M3':
      // An FP8 value is a weight only once multiplied by its block's scale, which is another
      // tensor: decoding one alone would silently give weights off by that scale.
      throw new Error(
        `tensor '${info.name}' is F8_E4M3, which is a weight only with its block scales (a '${info.name}_scale_inv' tensor and a quantization_config saying how they pair)`,
      );
    case 'I32':
    case 'U32':
    case 'I64': {
      const ints = decodeInts(info, bytes);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const v = Number(ints[i]);
        if (Math.abs(v) > 2 ** 24) {
          throw new Error(`tensor '${info.name}': ${info.dtype} value ${v} is not exact in f32`);
        }
        out[i] = v;
      }
      return out;
    }
  }
}

/** Converts an integer tensor (token ids and the like) to Int32Array, range-checked. */
export function decodeI32(info: TensorInfo, bytes: Uint8Array): Int32Array {
  checkByteLength(info, bytes);
  const ints = decodeInts(info, bytes);
  if (ints instanceof Int32Array) return ints;
  const out = new Int32Array(ints.length);
  for (let i = 0; i < ints.length; i++) {
    const v = ints[i];
    if (v < -2147483648 || v > 2147483647) {
      throw new Error(
        `tensor '${info.name}': ${info.dtype} value ${v} at index ${i} does not fit in int32`,
      );
    }
    out[i] = Number(v);
  }
  return out;
}

function decodeInts(info: TensorInfo, bytes: Uint8Array): Int32Array | Uint32Array | BigInt64Array {
  const n = numel(info.shape);
  switch (info.dtype) {
    case 'I32': {
      const b = aligned(bytes, 4);
      return new Int32Array(b.buffer, b.byteOffset, n);
    }
    case 'U32': {
      const b = aligned(bytes, 4);
      return new Uint32Array(b.buffer, b.byteOffset, n);
    }
    case 'I64': {
      const b = aligned(bytes, 8);
      return new BigInt64Array(b.buffer, b.byteOffset, n);
    }
    default:
      throw new Error(`tensor '${info.name}': dtype ${info.dtype} is not an integer type`);
  }
}

function checkByteLength(info: TensorInfo, bytes: Uint8Array): void {
  const need = numel(info.shape) * DTYPE_BYTES[info.dtype];
  if (bytes.byteLength !== need) {
    throw new Error(
      `tensor '${info.name}': got ${bytes.byteLength} bytes, ${info.dtype} ${JSON.stringify(info.shape)} needs ${need}`,
    );
  }
}

// ---------------------------------------------------------------- FP8 (e4m3fn)

/**
 * One float8 e4m3fn value (the OCP FP8 "E4M3" that safetensors calls F8_E4M3): sign, 4 exponent
 * bits with bias 7, 3 mantissa bits; exponent 0 is subnormal (m·2^-9); there are no infinities,
 * and only S.1111.111 is NaN, so the largest finite value is 1.75·2^8 = 448.
 */
export function f8e4m3BitsToNumber(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const mant = b & 0x7;
  if (exp === 0xf && mant === 0x7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (1 + mant / 8) * 2 ** (exp - 7);
}

// ---------------------------------------------------------------- half-precision conversion

let f16Table: Float32Array | null = null;

/** All 65536 f16 values: a table lookup is several times faster than bit twiddling per element. */
function f16Lut(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16BitsToNumber(h);
  f16Table = t;
  return t;
}

export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function f16BitsToF32(bits: Uint16Array): Float32Array {
  const lut = f16Lut();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = lut[bits[i]];
  return out;
}

export function bf16BitsToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** f32 → bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0];
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x007fffff) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f32 → f16 bits, round to nearest even, overflow to ±Inf, subnormals kept. */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal (or zero): shift the implicit-1 mantissa into place, rounding to nearest even.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let out = m >>> shift;
    if (rest > half || (rest === half && out & 1)) out++;
    return sign | out;
  }
  let out = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and can reach Inf).
  if (rest > 0x1000 || (rest === 0x1000 && out & 1)) out++;
  return sign | out;
}

/**
 * f32 values as f16 (round to nearest even), packed two to a u32 word little-endian: the bytes of
 * an f16 array, in the form kernels read as `array<u32>`. An odd count leaves the last high half 0.
 */
export function packF16(data: ArrayLike<number>): Uint32Array {
  const out = new Uint32Array(Math.ceil(data.length / 2));
  const halves = new Uint16Array(out.buffer);
  for (let i = 0; i < data.length; i++) halves[i] = f32ToF16Bits(data[i]);
  return out;
}

// ---------------------------------------------------------------- serialization

export type TensorData =
  Float32Array | Int32Array | Uint32Array | Uint16Array | BigInt64Array | Uint8Array;

/**
 * A tensor to write. `data` is: Float32Array for F32/F16/BF16 (converted, round to nearest
 * even); Uint16Array of raw bits for F16/BF16; Int32Array for I32 or I64 (widened);
 * Uint32Array for U32; BigInt64Array for I64; Uint8Array of raw little-endian bytes for any dtype.
 */
export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

export function serializeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): ArrayBuffer {
  if (!LITTLE_ENDIAN_HOST) throw new Error('safetensors: big-endian hosts are not supported');
  // Larger elements first, then by name: every tensor then starts at a multiple of its element
  // size, so readers can view it in place (the data section itself starts 8-aligned).
  const names = Object.keys(tensors).sort((a, b) => {
    const d = DTYPE_BYTES[tensors[b].dtype] - DTYPE_BYTES[tensors[a].dtype];
    return d !== 0 ? d : a < b ? -1 : a > b ? 1 : 0;
  });
  const encoded: Uint8Array[] = [];
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header[METADATA_KEY] = { ...metadata };
  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY)
      throw new Error(`safetensors: '${METADATA_KEY}' is not a tensor name`);
    const t = tensors[name];
    if (!isSafetensorsDtype(t.dtype))
      throw new Error(`tensor '${name}': unknown dtype '${t.dtype}'`);
    if (!t.shape.every(isNonNegativeInt)) {
      throw new Error(
        `tensor '${name}': shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`,
      );
    }
    const bytes = encodeTensor(name, t);
    header[name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + bytes.byteLength],
    };
    encoded.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned.
  let jsonBytes = new TextEncoder().encode(json);
  const pad = (8 - ((8 + jsonBytes.byteLength) % 8)) % 8;
  if (pad > 0) {
    json += ' '.repeat(pad);
    jsonBytes = new TextEncoder().encode(json);
  }
  const out = new Uint8Array(8 + jsonBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  out.set(jsonBytes, 8);
  let pos = 8 + jsonBytes.byteLength;
  for (const bytes of encoded) {
    out.set(bytes, pos);
    pos += bytes.byteLength;
  }
  return out.buffer;
}

function encodeTensor(name: string, t: TensorToWrite): Uint8Array {
  const n = numel(t.shape);
  const size = DTYPE_BYTES[t.dtype];
  const { data } = t;
  const wrong = () =>
    new Error(`tensor '${name}': ${data.constructor.name} is not accepted for dtype ${t.dtype}`);
  if (data instanceof Uint8Array) {
    if (data.byteLength !== n * size) {
      throw new Error(
        `tensor '${name}': ${data.byteLength} raw bytes but ${t.dtype} ${JSON.stringify(t.shape)} needs ${n * size}`,
      );
    }
    return data;
  }
  if (data.length !== n) {
    throw new Error(
      `tensor '${name}': ${data.length} elements but shape ${JSON.stringify(t.shape)} has ${n}`,
    );
  }
  const asBytes = (a: TensorData) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (t.dtype) {
    case 'F32':
      if (!(data instanceof Float32Array)) throw wrong();
      return asBytes(data);
    case 'F16':
    case 'BF16': {
      if (data instanceof Uint16Array) return asBytes(data);
      if (!(data instanceof Float32Array)) throw wrong();
      const conv = t.dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
      const bits = new Uint16Array(n);
      for (let i = 0; i < n; i++) bits[i] = conv(data[i]);
      return asBytes(bits);
    }
    case 'I32':
      if (!(data instanceof Int32Array)) throw wrong();
      return asBytes(data);
    case 'U32':
      if (!(data instanceof Uint32Array)) throw wrong();
      return asBytes(data);
    case 'U8':
      if (!(data instanceof Uint8Array)) throw wrong();
      return asBytes(data);
    case 'F8_E4M3':
      // Only raw bytes (returned above): strata never rounds weights to FP8 itself.
      throw wrong();
    case 'I64': {
      if (data instanceof BigInt64Array) return asBytes(data);
      if (!(data instanceof Int32Array)) throw wrong();
      const wide = new BigInt64Array(n);
      for (let i = 0; i < n; i++) wide[i] = BigInt(data[i]);
      return asBytes(wide);
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
