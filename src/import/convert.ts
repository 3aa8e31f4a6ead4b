/**
 * Canonical tensors read out of a checkpoint tensor stored in another layout: one expert's slab
 * of a fused [experts, ...] tensor, some of its columns (de-interleaving gate and up), transposed
 * from the checkpoint's [in, out] to strata's [out, in]. Importers declare a conversion per
 * canonical name (HfImport.conversions); the folder reader applies it when the tensor is read,
 * before compilation, so the compiled model only ever sees canonical tensors.
 */

export interface TensorConversion {
  /** Index along the stored tensor's first axis (the expert). */
  index: number;
  /** Keep the slab's last-axis entries offset, offset + stride, ... (stride 1 keeps all). */
  columns: { offset: number; stride: number };
  /** Transpose the (2-D) slab after selecting columns: stored [in, out] → canonical [out, in]. */
  transpose: boolean;
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** The canonical shape a conversion gives from a stored shape; throws where it does not fit. */
export function convertedShape(stored: readonly number[], c: TensorConversion): number[] {
  const where = `conversion of a ${fmt(stored)} tensor`;
  if (stored.length < 2 || stored.length > 3) {
    throw new Error(`${where}: expected a 2-D or 3-D stored tensor`);
  }
  if (!Number.isInteger(c.index) || c.index < 0 || c.index >= stored[0]) {
    throw new Error(`${where}: index ${c.index} is outside [0, ${stored[0]})`);
  }
  const { offset, stride } = c.columns;
  const last = stored[stored.length - 1];
  if (!(Number.isInteger(stride) && stride >= 1 && offset >= 0 && offset < stride)) {
    throw new Error(`${where}: column offset ${offset} / stride ${stride} is not valid`);
  }
  if (last % stride !== 0) {
    throw new Error(`${where}: ${last} columns do not split into stride ${stride}`);
  }
  const slab = [...stored.slice(1, -1), last / stride];
  if (c.transpose && slab.length !== 2) throw new Error(`${where}: only a 2-D slab transposes`);
  return c.transpose ? [slab[1], slab[0]] : slab;
}

/**
 * Applies a conversion to one slab (the stored tensor at `c.index`, shape stored[1:]), row-major
 * in and out.
 */
export function convertSlab(
  slab: Float32Array,
  stored: readonly number[],
  c: TensorConversion,
): Float32Array {
  const shape = convertedShape(stored, c);
  const cols = stored[stored.length - 1];
  const rows = slab.length / cols;
  if (rows * cols !== slab.length || rows !== (stored.length === 3 ? stored[1] : 1)) {
    throw new Error(`conversion: slab of ${slab.length} values is not one ${fmt(stored)} expert`);
  }
  const { offset, stride } = c.columns;
  const kept = cols / stride;
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < kept; j++) {
      const v = slab[r * cols + offset + j * stride];
      if (c.transpose) out[j * rows + r] = v;
      else out[r * kept + j] = v;
    }
  }
  return out;
}
