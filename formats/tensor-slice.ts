/**
 * A box-shaped part of a stored tensor: what a canonical tensor is when the checkpoint fuses
 * several of them into one (Granite's experts: input_linear [experts, 2·hidden, dim] holds each
 * expert's gate and up projections). Browser-safe; safetensors-file.ts reads slices from disk
 * and importers describe them (src/import).
 */

/** The elements [start[d], start[d] + size[d]) along every dimension d, in row-major order. */
export interface TensorSlice {
  start: number[];
  size: number[];
}

/** Where the box lies in the tensor's row-major elements. */
export interface SliceSpan {
  /** The first and one past the last element the box touches. */
  first: number;
  end: number;
  /** The box is exactly elements [first, end): no gather needed. */
  contiguous: boolean;
}

const fmt = (v: readonly number[]) => `[${v.join(', ')}]`;

/** Checks that `slice` lies inside `shape`; errors name the tensor. */
export function sliceSpan(name: string, shape: readonly number[], slice: TensorSlice): SliceSpan {
  const { start, size } = slice;
  const bad = (why: string) =>
    new Error(
      `tensor '${name}' of shape ${fmt(shape)}: slice start ${fmt(start)} size ${fmt(size)} ${why}`,
    );
  if (start.length !== shape.length || size.length !== shape.length)
    throw bad(`has ${start.length}/${size.length} dimensions, the tensor ${shape.length}`);
  for (let d = 0; d < shape.length; d++) {
    if (!Number.isInteger(start[d]) || !Number.isInteger(size[d]) || start[d] < 0 || size[d] < 1)
      throw bad(`is not a non-empty box of integers (dimension ${d})`);
    if (start[d] + size[d] > shape[d]) throw bad(`runs past dimension ${d} (${shape[d]})`);
  }
  // Row-major strides; the box is contiguous when every dimension after the first one it cuts
  // (size < extent) is taken whole, and the ones before it have size 1.
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  let first = 0;
  let last = 0;
  for (let d = 0; d < shape.length; d++) {
    first += start[d] * strides[d];
    last += (start[d] + size[d] - 1) * strides[d];
  }
  const count = size.reduce((a, b) => a * b, 1);
  return { first, end: last + 1, contiguous: last + 1 - first === count };
}

/**
 * The box's elements from `span`, the tensor's elements [first, end) (as sliceSpan gives them).
 * A contiguous box is returned as it is.
 */
export function gatherSlice(
  span: Float32Array,
  first: number,
  shape: readonly number[],
  slice: TensorSlice,
): Float32Array {
  const { start, size } = slice;
  const count = size.reduce((a, b) => a * b, 1);
  if (span.length === count) return span;
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const out = new Float32Array(count);
  const rank = shape.length;
  const last = size[rank - 1];
  // Walk the box row by row (its last dimension is contiguous in the tensor).
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < count; o += last) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += (start[d] + idx[d]) * strides[d];
    out.set(span.subarray(src - first, src - first + last), o);
    for (let d = rank - 2; d >= 0; d--) {
      if (++idx[d] < size[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * Whether the box holds a tensor of `shape`: its trailing sizes are `shape` and any extra
 * leading ones are 1 (expert e of [experts, rows, cols] is [1, rows, cols] → [rows, cols]).
 */
export function sliceHolds(slice: TensorSlice, shape: readonly number[]): boolean {
  const extra = slice.size.length - shape.length;
  return (
    extra >= 0 &&
    slice.size.slice(0, extra).every((s) => s === 1) &&
    slice.size.slice(extra).every((s, i) => s === shape[i])
  );
}

/** Rows [rowStart, rowStart + rows) of expert e in a stored [experts, rowsTotal, cols] tensor. */
export function expertRows(e: number, rowStart: number, rows: number, cols: number): TensorSlice {
  return { start: [e, rowStart, 0], size: [1, rows, cols] };
}
