/**
 * How weights are stored (src/graph/dtype.ts describes the layouts): encoding f32 weights into
 * the bytes a kernel binds and the bundle holds, decoding them back, and the values a kernel
 * reading each type sees, which every reference that reads a weight applies. The quantisers are
 * GGUF's Q8_0 and Q4_0 rules, so a Q8_0 or Q4_0 checkpoint decoded to f32 and encoded again gets
 * back its own codes and scales:
 * - q8: d = amax / 127, code = round(x / d) in [-127, 127];
 * - q4: d = m / −8, where m is the element of largest magnitude with its sign; code =
 *   clamp(floor(x / d + 8.5), 0, 15). The extreme element becomes code 0 exactly, so the
 *   positive side has one level fewer (codes −8…7 after the offset), as in Q4_0.
 * Both divide by d rounded to f16 (the scale the kernel multiplies by), where GGUF divides by the
 * unrounded d; for a tensor that is already Q8_0 or Q4_0 the two agree. A q8 block the absmax
 * rule would round but a power-of-two scale holds exactly (MXFP4's e2m1 × 2^e) takes that scale.
 */
import {
  QUANT_BLOCK,
  dtypeBytes,
  isQuantized,
  quantScaleOffset,
  type WeightType,
} from '../graph/dtype.ts';
import { f16BitsToNumber, f32ToF16Bits } from '../../formats/safetensors.ts';

/** Thrown for a weight a type cannot hold (f16 overflow; a non-finite value in a quantised block). */
export class WeightEncodeError extends Error {}

function checkCols(t: WeightType, n: number, cols: number): void {
  if (!Number.isInteger(cols) || cols < 1 || n % cols !== 0)
    throw new Error(`${t} weight: ${n} elements are not whole rows of ${cols}`);
  if (isQuantized(t) && cols % QUANT_BLOCK !== 0)
    throw new Error(`${t} weight: rows of ${cols} are not whole blocks of ${QUANT_BLOCK}`);
}

function f16Bits(x: number, i: number, t: WeightType): number {
  const h = f32ToF16Bits(x);
  if ((h & 0x7c00) === 0x7c00 && Number.isFinite(x))
    throw new WeightEncodeError(
      `element ${i} = ${x} is beyond the f16 range (±65504), so it cannot be stored as ${t}`,
    );
  return h;
}

/** Codes of one block for scale d (f16 value), by type t's rounding rule. */
function blockCodes(t: 'q8' | 'q4', x: Float32Array, base: number, d: number, codes: Uint8Array) {
  const inv = d === 0 ? 0 : 1 / d;
  for (let j = 0; j < QUANT_BLOCK; j++) {
    const v = x[base + j] * inv;
    codes[j] =
      t === 'q8'
        ? Math.max(-127, Math.min(127, Math.round(v))) & 0xff
        : Math.max(0, Math.min(15, Math.floor(v + 8.5)));
  }
}

/** Whether codes with scale d give back the block exactly. */
function exact(t: 'q8' | 'q4', x: Float32Array, base: number, d: number, codes: Uint8Array) {
  for (let j = 0; j < QUANT_BLOCK; j++) {
    const code = t === 'q8' ? (codes[j] << 24) >> 24 : codes[j] - 8;
    if (Math.fround(d * code) !== x[base + j]) return false;
  }
  return true;
}

/**
 * For q8: the largest power-of-two scale at which every element of the block is an integer
 * within ±127, or null. MXFP4 blocks (e2m1 values × 2^e) have one, so gpt-oss experts stored q8
 * keep their exact values where the absmax rule would round them.
 */
function powerOfTwoScale(x: Float32Array, base: number): number | null {
  const bits = new Uint32Array(x.buffer, x.byteOffset + 4 * base, QUANT_BLOCK);
  let low = Infinity;
  let high = -Infinity;
  for (let j = 0; j < QUANT_BLOCK; j++) {
    const b = bits[j];
    const exp = (b >>> 23) & 0xff;
    const frac = b & 0x7fffff;
    if (exp === 0 && frac === 0) continue; // ±0
    // v = m · 2^(e − 23) with m the 24-bit significand: its lowest set bit is 2^(e − 23 + ctz m).
    const m = exp === 0 ? frac : frac | 0x800000;
    const e = (exp === 0 ? -126 : exp - 127) - 23;
    low = Math.min(low, e + 31 - Math.clz32(m & -m));
    high = Math.max(high, e + 32 - Math.clz32(m));
  }
  if (low === Infinity) return null;
  // Every |v| / 2^low is an integer below 2^(high − low); it must be at most 127.
  if (high - low > 7 || low < -24 || low > 15) return null;
  return 2 ** low;
}

/** One block's scale (as f16 bits) and code of each element. */
function quantBlock(t: 'q8' | 'q4', x: Float32Array, base: number, codes: Uint8Array): number {
  let m = 0;
  for (let j = 0; j < QUANT_BLOCK; j++) {
    const v = x[base + j];
    if (!Number.isFinite(v)) throw new WeightEncodeError(`element ${base + j} is ${v}`);
    if (Math.abs(v) > Math.abs(m)) m = v;
  }
  // A zero block gets scale +0 (m / −8 would be −0, decoding to −0s).
  const scaleBits = m === 0 ? 0 : f16Bits(t === 'q8' ? Math.abs(m) / 127 : m / -8, base, t);
  const d = f16BitsToNumber(scaleBits);
  blockCodes(t, x, base, d, codes);
  if (t === 'q4' || exact(t, x, base, d, codes)) return scaleBits;
  const p = powerOfTwoScale(x, base);
  if (p === null) return scaleBits;
  const alt = new Uint8Array(QUANT_BLOCK);
  blockCodes(t, x, base, p, alt);
  if (!exact(t, x, base, p, alt)) return scaleBits;
  codes.set(alt);
  return f32ToF16Bits(p);
}

/** f32 weights (rows of `cols`) → the bytes of type t. */
export function encodeWeight(t: WeightType, x: Float32Array, cols: number): Uint8Array {
  checkCols(t, x.length, cols);
  const out = new Uint8Array(dtypeBytes(t, x.length));
  if (t === 'f32') {
    // Stored as given: a non-finite weight is the runtime's to catch (its non-finite scan names
    // the dispatch), as in f16, where only a finite value beyond the range is refused.
    out.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    return out;
  }
  if (t === 'f16') {
    const h = new Uint16Array(out.buffer);
    for (let i = 0; i < x.length; i++) h[i] = f16Bits(x[i], i, t);
    return out;
  }
  const scales = new Uint16Array(out.buffer, quantScaleOffset(t, x.length));
  const codes = new Uint8Array(QUANT_BLOCK);
  for (let b = 0; b * QUANT_BLOCK < x.length; b++) {
    scales[b] = quantBlock(t, x, b * QUANT_BLOCK, codes);
    const at = b * QUANT_BLOCK;
    if (t === 'q8') out.set(codes, at);
    else
      for (let j = 0; j < QUANT_BLOCK; j += 2) out[(at + j) >> 1] = codes[j] | (codes[j + 1] << 4);
  }
  return out;
}

/** The bytes of a type-t tensor of `n` elements → its values. */
export function decodeWeight(t: WeightType, bytes: Uint8Array, n: number): Float32Array {
  if (bytes.byteLength !== dtypeBytes(t, n))
    throw new Error(
      `${t} weight of ${n} elements: ${bytes.byteLength} bytes, expected ${dtypeBytes(t, n)}`,
    );
  const copy = bytes.slice();
  if (t === 'f32') return new Float32Array(copy.buffer, 0, n);
  const out = new Float32Array(n);
  if (t === 'f16') {
    const h = new Uint16Array(copy.buffer);
    for (let i = 0; i < n; i++) out[i] = f16BitsToNumber(h[i]);
    return out;
  }
  const scales = new Uint16Array(copy.buffer, quantScaleOffset(t, n));
  for (let i = 0; i < n; i++) {
    const d = f16BitsToNumber(scales[Math.floor(i / QUANT_BLOCK)]);
    const code = t === 'q8' ? (copy[i] << 24) >> 24 : ((copy[i >> 1] >> (4 * (i & 1))) & 15) - 8;
    out[i] = d * code;
  }
  return out;
}

interface Rounded {
  source: Float32Array; // a copy of the values rounded, to notice a weight changed in place
  rounded: Float32Array;
}

/** Rounded weights by the memory they were read from: a key per (type, cols, offset, length). */
const roundedByBuffer = new WeakMap<ArrayBufferLike, Map<string, Rounded>>();

/** Bit for bit, so NaNs and signed zeros compare as stored. */
function sameValues(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * The values a kernel reading x stored as type t computes with. The CPU interpreter's
 * references call this for every weight at every step, and encoding is far slower than a
 * comparison, so the result is kept per source memory and reused while the values there are
 * unchanged (compared in full, so a weight edited in place is rounded again).
 */
export function roundWeight(t: WeightType, x: Float32Array, cols: number): Float32Array {
  if (t === 'f32') return x;
  let byKey = roundedByBuffer.get(x.buffer);
  if (!byKey) roundedByBuffer.set(x.buffer, (byKey = new Map()));
  const key = `${t}:${cols}:${x.byteOffset}:${x.length}`;
  const hit = byKey.get(key);
  if (hit && sameValues(hit.source, x)) return hit.rounded;
  const rounded = decodeWeight(t, encodeWeight(t, x, cols), x.length);
  byKey.set(key, { source: x.slice(), rounded });
  return rounded;
}
