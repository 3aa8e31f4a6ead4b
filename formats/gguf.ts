/**
 * GGUF tensors (browser-safe): the tensor index built from what @huggingface/gguf parses out of
 * the header (it reads the header, metadata and tensor infos; nothing else), checked against the
 * file's length, and the dequantisation of the element types strata reads into f32. The block
 * layouts are written from the GGUF format description (all little-endian):
 * - F32, F16, BF16: one element after another.
 * - Q8_0, blocks of 32 elements in 34 bytes: f16 scale d, then 32 int8 codes q; x = d·q.
 * - Q4_0, blocks of 32 in 18 bytes: f16 scale d, then 16 bytes whose low nibbles are elements
 *   0…15 and high nibbles elements 16…31; x = d·(q − 8).
 * - Q4_K, super-blocks of 256 in 144 bytes: f16 d, f16 dmin, 12 bytes packing a 6-bit scale and
 *   a 6-bit min for each of 8 sub-blocks of 32, then 128 bytes of 4-bit codes; x = d·sc·q − dmin·m.
 *   The 12 bytes: for sub-block j < 4, sc is the low 6 bits of byte j and m the low 6 bits of
 *   byte j + 4; for j ≥ 4 the low 4 bits of sc and of m are the low and high nibble of byte j + 4
 *   and their top 2 bits are the top 2 bits of byte j − 4 (sc) and byte j (m). The codes come in
 *   four runs of 32 bytes; run r holds sub-block 2r in its low nibbles and 2r + 1 in its high.
 * Every other GGML type is refused by name rather than guessed at.
 */
import { GGMLQuantizationType, type GGUFParseOutput } from '@huggingface/gguf';
import { bf16BitsToF32, f16BitsToF32, f16BitsToNumber } from './safetensors.ts';

/** A tensor of a GGUF file, in strata's terms. */
export interface GgufTensor {
  name: string;
  /** The GGML type number and its name (F16, Q4_K, …; `type 99` for a number GGML lacks). */
  type: number;
  typeName: string;
  /** Row-major (outermost first) — GGUF lists dimensions innermost first, this reverses them. */
  shape: number[];
  elements: number;
  /** Absolute byte offset in the file and byte length; null where strata cannot read the type. */
  offset: number;
  byteLength: number | null;
}

interface BlockType {
  /** Elements per block and bytes per block. */
  elements: number;
  bytes: number;
  /**
   * Decodes src (whole blocks, at byte offset 0 of its own buffer, so typed-array views of it are
   * aligned; GGUF is little-endian, as every platform strata runs on) into out.
   */
  decode(src: Uint8Array, out: Float32Array): void;
}

const T = GGMLQuantizationType;

const f16 = (b: Uint8Array, at: number): number => f16BitsToNumber(b[at] | (b[at + 1] << 8));
const u16 = (b: Uint8Array): Uint16Array => new Uint16Array(b.buffer, 0, b.byteLength / 2);

const READABLE: ReadonlyMap<number, BlockType> = new Map<number, BlockType>([
  [
    T.F32,
    {
      elements: 1,
      bytes: 4,
      decode: (b, out) => out.set(new Float32Array(b.buffer, 0, out.length)),
    },
  ],
  [
    T.F16,
    {
      elements: 1,
      bytes: 2,
      decode: (b, out) => out.set(f16BitsToF32(u16(b))),
    },
  ],
  [
    T.BF16,
    {
      elements: 1,
      bytes: 2,
      decode: (b, out) => out.set(bf16BitsToF32(u16(b))),
    },
  ],
  [
    T.Q8_0,
    {
      elements: 32,
      bytes: 34,
      decode: (src, out) => {
        const codes = new Int8Array(src.buffer, 0, src.byteLength);
        for (let b = 0; b * 32 < out.length; b++) {
          const at = 34 * b;
          const d = f16(src, at);
          for (let j = 0; j < 32; j++) out[32 * b + j] = d * codes[at + 2 + j];
        }
      },
    },
  ],
  [
    T.Q4_0,
    {
      elements: 32,
      bytes: 18,
      decode: (src, out) => {
        for (let b = 0; b * 32 < out.length; b++) {
          const at = 18 * b;
          const d = f16(src, at);
          for (let j = 0; j < 16; j++) {
            const byte = src[at + 2 + j];
            out[32 * b + j] = d * ((byte & 15) - 8);
            out[32 * b + j + 16] = d * ((byte >> 4) - 8);
          }
        }
      },
    },
  ],
  [T.Q4_K, { elements: 256, bytes: 144, decode: decodeQ4K }],
]);

/** Sub-block j's 6-bit scale (packed 12 bytes at `at`): see the module comment. */
function q4kScale(s: Uint8Array, at: number, j: number): number {
  return j < 4 ? s[at + j] & 63 : (s[at + j + 4] & 15) | ((s[at + j - 4] >> 6) << 4);
}

/** Sub-block j's 6-bit min. */
function q4kMin(s: Uint8Array, at: number, j: number): number {
  return j < 4 ? s[at + j + 4] & 63 : (s[at + j + 4] >> 4) | ((s[at + j] >> 6) << 4);
}

function decodeQ4K(src: Uint8Array, out: Float32Array): void {
  for (let b = 0; b * 256 < out.length; b++) {
    const at = 144 * b;
    const d = f16(src, at);
    const dmin = f16(src, at + 2);
    for (let j = 0; j < 8; j++) {
      const sc = q4kScale(src, at + 4, j);
      const m = q4kMin(src, at + 4, j);
      // f32 steps as a GGML reader computes them: d·sc and dmin·m are exact in f32 (11-bit
      // mantissas times 6-bit integers), so only the final subtraction rounds.
      const scale = Math.fround(d * sc);
      const min = Math.fround(dmin * m);
      const run = at + 16 + 32 * (j >> 1);
      const shift = 4 * (j & 1);
      for (let l = 0; l < 32; l++) {
        const q = (src[run + l] >> shift) & 15;
        out[256 * b + 32 * j + l] = scale * q - min;
      }
    }
  }
}

/** The GGML name of type number `t`. */
export function ggmlTypeName(t: number): string {
  const name: unknown = (T as unknown as Record<number, unknown>)[t];
  return typeof name === 'string' ? name : `type ${t}`;
}

/** The names of the types strata reads, for messages. */
export const READABLE_TYPE_NAMES: readonly string[] = [...READABLE.keys()].map(ggmlTypeName);

/** Why strata cannot read tensor t, or null when it can. */
export function unreadableReason(t: GgufTensor): string | null {
  if (READABLE.has(t.type)) return null;
  return `tensor '${t.name}' is ${t.typeName}; strata reads ${READABLE_TYPE_NAMES.join(', ')}`;
}

/**
 * The tensor index of a parsed GGUF header in a file of `fileSize` bytes: shapes reversed to
 * row-major, absolute offsets, and for readable types the byte length, each checked to lie
 * inside the file. `source` names the file in errors.
 */
export function ggufTensorIndex(
  parsed: Pick<GGUFParseOutput, 'tensorInfos' | 'tensorDataOffset' | 'tensorInfoByteRange'> & {
    littleEndian: boolean;
  },
  fileSize: number,
  source: string,
): GgufTensor[] {
  if (!parsed.littleEndian) throw new Error(`${source}: big-endian GGUF files are not supported`);
  // The parser reads the header in zero-padded chunks, so a file cut inside its header parses
  // as zeros; the header's end is what tells.
  const headerEnd = parsed.tensorInfoByteRange[1];
  if (headerEnd > fileSize) {
    throw new Error(
      `${source}: the header runs to byte ${headerEnd} but the file has ${fileSize} bytes (truncated?)`,
    );
  }
  const dataStart = Number(parsed.tensorDataOffset);
  const seen = new Set<string>();
  return parsed.tensorInfos.map((info) => {
    const name = info.name;
    if (seen.has(name)) throw new Error(`${source}: tensor '${name}' is listed twice`);
    seen.add(name);
    const dims = info.shape.map(Number);
    if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new Error(`${source}: tensor '${name}' has dimensions [${info.shape.join(', ')}]`);
    }
    const elements = dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(elements)) {
      throw new Error(`${source}: tensor '${name}' has too many elements (${dims.join(' × ')})`);
    }
    const type = Number(info.dtype);
    const offset = dataStart + Number(info.offset);
    if (!Number.isSafeInteger(offset) || offset > fileSize) {
      throw new Error(
        `${source}: tensor '${name}' starts at byte ${offset}, past the end of the ${fileSize}-byte file (truncated?)`,
      );
    }
    const block = READABLE.get(type);
    let byteLength: number | null = null;
    if (block) {
      // GGML quantises along the innermost dimension, so each row is whole blocks.
      const inner = dims[0] ?? 1;
      if (inner % block.elements !== 0) {
        throw new Error(
          `${source}: tensor '${name}' is ${ggmlTypeName(type)} with rows of ${inner} elements, not whole blocks of ${block.elements}`,
        );
      }
      byteLength = (elements / block.elements) * block.bytes;
      if (offset + byteLength > fileSize) {
        throw new Error(
          `${source}: tensor '${name}' (${ggmlTypeName(type)}, ${byteLength} bytes at byte ${offset}) runs past the end of the ${fileSize}-byte file (truncated?)`,
        );
      }
    }
    return {
      name,
      type,
      typeName: ggmlTypeName(type),
      shape: dims.slice().reverse(),
      elements,
      offset,
      byteLength,
    };
  });
}

/** Tensor t's bytes (exactly its byteLength) → its values as f32. */
export function dequantize(t: GgufTensor, bytes: Uint8Array): Float32Array {
  const block = READABLE.get(t.type);
  if (!block) throw new Error(unreadableReason(t) ?? `tensor '${t.name}' is unreadable`);
  if (bytes.byteLength !== t.byteLength) {
    throw new Error(
      `tensor '${t.name}' (${t.typeName}): got ${bytes.byteLength} bytes, expected ${t.byteLength}`,
    );
  }
  const out = new Float32Array(t.elements);
  block.decode(bytes.byteOffset === 0 ? bytes : bytes.slice(), out);
  return out;
}
