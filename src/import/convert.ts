/**
 * Canonical tensors read out of a checkpoint tensor that fuses several of them: every such
 * tensor is a box of the stored tensor (formats/tensor-slice.ts: Granite's gate rows of
 * input_linear, gpt_oss's expert e of gate_up_proj), optionally followed by a post-step that
 * keeps every stride-th column of the box's last axis (gpt_oss interleaves gate and up) and
 * transposes the checkpoint's [in, out] to strata's [out, in]. Importers declare one per
 * canonical name (HfImport.storedSlices); checkTensors validates them against the checkpoint and
 * the folder reader applies them when the tensor is read, so compilation only ever sees
 * canonical tensors.
 */
import { sliceHolds, type TensorSlice } from '../../formats/tensor-slice.ts';

export interface StoredSlice extends TensorSlice {
  /** Keep the box's last-axis entries offset, offset + stride, ... (absent: keep all). */
  columns?: { offset: number; stride: number };
  /** Transpose the (2-D, leading size-1 dimensions aside) box after selecting columns. */
  transpose?: boolean;
  /**
   * Instead of the box, its row `row` of cumsum(softmax(box over its rows)) minus the softmax's
   * first row: HGRN2's forget-gate lower bound of layer `row`, which fla derives at run time from
   * the model-level lower_bounds [layers, hidden] (HGRN2Model.forward) and strata stores per
   * layer. The box is [rows, cols] and yields [cols]; not combined with columns or transpose.
   */
  cumulativeSoftmax?: { row: number };
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * The shape the slice yields: the box's size after the post-step (leading size-1 dimensions of a
 * transposed box dropped). Throws, naming the stored tensor, where the post-step does not fit.
 */
export function slicedShape(name: string, s: StoredSlice): number[] {
  const where = `tensor '${name}': slice size ${fmt(s.size)}`;
  if (s.cumulativeSoftmax) {
    const { row } = s.cumulativeSoftmax;
    if (s.columns || s.transpose)
      throw new Error(`${where}: a cumulative softmax takes no other post-step`);
    if (s.size.length !== 2) throw new Error(`${where}: only a 2-D box has a cumulative softmax`);
    if (!Number.isInteger(row) || row < 0 || row >= s.size[0])
      throw new Error(`${where}: cumulative softmax row ${row} is not one of its rows`);
    return [s.size[1]];
  }
  let shape = [...s.size];
  if (s.columns) {
    const { offset, stride } = s.columns;
    const last = shape[shape.length - 1];
    if (!(Number.isInteger(stride) && stride >= 1 && Number.isInteger(offset)))
      throw new Error(`${where}: column offset ${offset} / stride ${stride} is not valid`);
    if (offset < 0 || offset >= stride)
      throw new Error(`${where}: column offset ${offset} / stride ${stride} is not valid`);
    if (last % stride !== 0)
      throw new Error(`${where}: ${last} columns do not split into stride ${stride}`);
    shape[shape.length - 1] = last / stride;
  }
  if (s.transpose) {
    const lead = shape.findIndex((d) => d !== 1);
    shape = shape.slice(lead < 0 ? shape.length - 2 : Math.min(lead, shape.length - 2));
    if (shape.length !== 2) throw new Error(`${where}: only a 2-D box transposes`);
    shape = [shape[1], shape[0]];
  }
  return shape;
}

/**
 * Whether the slice yields a tensor of `shape`: its trailing sizes are `shape` and any extra
 * leading ones are 1 (expert e of [experts, rows, cols] is [1, rows, cols] → [rows, cols]).
 */
export function sliceYields(name: string, s: StoredSlice, shape: readonly number[]): boolean {
  return sliceHolds({ start: s.start, size: slicedShape(name, s) }, shape);
}

/**
 * Applies the slice's post-step to the box's values (row-major, as readTensorSliceF32 gives
 * them); a slice without one returns them as they are.
 */
export function finishSlice(name: string, box: Float32Array, s: StoredSlice): Float32Array {
  if (!s.columns && !s.transpose && !s.cumulativeSoftmax) return box;
  slicedShape(name, s);
  const count = s.size.reduce((a, b) => a * b, 1);
  if (box.length !== count) {
    throw new Error(
      `tensor '${name}': ${box.length} values read for a slice of size ${fmt(s.size)}`,
    );
  }
  if (s.cumulativeSoftmax)
    return cumulativeSoftmaxRow(box, s.size[0], s.size[1], s.cumulativeSoftmax.row);
  const cols = s.size[s.size.length - 1];
  const rows = count / cols;
  const { offset, stride } = s.columns ?? { offset: 0, stride: 1 };
  const kept = cols / stride;
  const out = new Float32Array(rows * kept);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < kept; j++) {
      const v = box[r * cols + offset + j * stride];
      if (s.transpose) out[j * rows + r] = v;
      else out[r * kept + j] = v;
    }
  }
  return out;
}

/**
 * Row `row` of cumsum(p) − p[0] for p = softmax over the rows of x [rows, cols], per column: the
 * softmax weights of rows 1..row summed (0 for row 0), in f64 with the column's max subtracted.
 */
function cumulativeSoftmaxRow(
  x: Float32Array,
  rows: number,
  cols: number,
  row: number,
): Float32Array {
  const out = new Float32Array(cols);
  for (let c = 0; c < cols; c++) {
    let max = -Infinity;
    for (let r = 0; r < rows; r++) max = Math.max(max, x[r * cols + c]);
    let total = 0;
    let kept = 0;
    for (let r = 0; r < rows; r++) {
      const e = Math.exp(x[r * cols + c] - max);
      total += e;
      if (r >= 1 && r <= row) kept += e;
    }
    out[c] = kept / total;
  }
  return out;
}
