/**
 * Element types of tensors, and how many bytes a tensor of each takes. Activations and states
 * are f32 (or u32 for ids and counts); parameters read by matmuls and embedding gathers may be
 * stored narrower:
 * - f16: IEEE half, two per u32 word (the bytes of an f16 array);
 * - q8: int8 codes with one f16 scale per block of QUANT_BLOCK consecutive elements of a row
 *   (value = scale · code; the numbers of GGUF's Q8_0);
 * - q4: 4-bit codes, eight per u32 word, low nibble first, with one f16 scale per block
 *   (value = scale · (code − 8); the numbers of GGUF's Q4_0).
 * Quantised tensors are laid out as all codes (row-major), then all scales, each region padded
 * to a whole u32 word, so one storage binding holds both and a block never straddles a row.
 */
import type { Dim } from './ir.ts';

export type DType = 'f32' | 'u32' | WeightType;

/** What a weight may be stored as. */
export type WeightType = 'f32' | 'f16' | 'q8' | 'q4';

export const WEIGHT_TYPES: readonly WeightType[] = ['f32', 'f16', 'q8', 'q4'];

/** Elements per quantisation block (along a row). */
export const QUANT_BLOCK = 32;

export function isQuantized(t: DType): t is 'q8' | 'q4' {
  return t === 'q8' || t === 'q4';
}

/** Bits of one element's code (scales aside). */
export function dtypeBits(t: DType): number {
  return t === 'f16' ? 16 : t === 'q8' ? 8 : t === 'q4' ? 4 : 32;
}

/**
 * Why a weight of `cols` columns cannot be stored as `t`, or null when it can: quantised rows
 * are whole blocks.
 */
export function weightTypeUnsupported(t: DType, cols: number): string | null {
  if (isQuantized(t) && cols % QUANT_BLOCK !== 0)
    return `${t} needs rows of whole blocks of ${QUANT_BLOCK}, and a row has ${cols} elements`;
  return null;
}

const words = (bytes: number) => 4 * Math.ceil(bytes / 4);

/** Byte offset of the scales region of a quantised tensor of `elements` elements. */
export function quantScaleOffset(t: 'q8' | 'q4', elements: number): number {
  return words((elements * dtypeBits(t)) / 8);
}

/** Bytes a tensor of `elements` elements of type t takes in its buffer and in the bundle. */
export function dtypeBytes(t: DType, elements: number): number {
  if (t === 'f32' || t === 'u32') return 4 * elements;
  if (t === 'f16') return words(2 * elements);
  return quantScaleOffset(t, elements) + words((2 * elements) / QUANT_BLOCK);
}

/** Bytes of a tensor of this shape and type, with T and L at maxT. */
export function shapeBytes(t: DType, shape: readonly Dim[], maxT: number): number {
  return dtypeBytes(
    t,
    shape.reduce<number>((n, d) => n * (typeof d === 'number' ? d : maxT), 1),
  );
}
