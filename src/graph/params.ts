/**
 * Materialise parameter tensors from their ParamSource: the model's canonical
 * weights plus the derivations passes introduce (concatenation for fused
 * projections, the RoPE row interleave, RoPE tables, row splits, constant multipliers) and the
 * constants a lowering computes from the spec.
 */
import type { ParamSource } from './ir.ts';
import { interleavePermutation, ropeTables } from '../ops/rope.ts';

/** Canonical weight by name (f32, row-major); file-backed providers are async. */
export type WeightProvider = (name: string) => Float32Array | Promise<Float32Array>;

export async function materialize(
  src: ParamSource,
  weights: WeightProvider,
): Promise<Float32Array> {
  switch (src.kind) {
    case 'weight':
      return weights(src.name);
    case 'concat': {
      const parts = await Promise.all(src.parts.map((p) => materialize(p, weights)));
      const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      let off = 0;
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      return out;
    }
    case 'rope_interleave':
      return interleaveRows(
        await materialize(src.of, weights),
        src.headDim,
        src.rotaryDim,
        src.cols,
      );
    case 'rope_table':
      return ropeTables(src.rope, src.capacity)[src.which];
    case 'constant':
      return Float32Array.from(src.values);
    case 'scaled': {
      const out = Float32Array.from(await materialize(src.of, weights));
      for (let i = 0; i < out.length; i++) out[i] *= src.factor;
      return out;
    }
    case 'head_rows':
      return headRows(await materialize(src.of, weights), src);
    case 'transposed': {
      const w = await materialize(src.of, weights);
      if (w.length !== src.rows * src.cols)
        throw new Error(`transpose: ${w.length} elements are not ${src.rows} × ${src.cols}`);
      const out = new Float32Array(w.length);
      for (let r = 0; r < src.rows; r++)
        for (let c = 0; c < src.cols; c++) out[c * src.rows + r] = w[r * src.cols + c];
      return out;
    }
    case 'rows': {
      const all = await materialize(src.of, weights);
      return all.slice(src.start * src.cols, (src.start + src.count) * src.cols);
    }
  }
}

/** The rows of a 'head_rows' source, head by head. */
export function headRows(
  w: Float32Array,
  src: {
    heads: number;
    headRows: number;
    ranges: { start: number; count: number }[];
    cols: number;
  },
): Float32Array {
  const { heads, headRows: per, ranges, cols } = src;
  if (w.length !== heads * per * cols) {
    throw new Error(`head rows: ${w.length} elements are not ${heads} heads of ${per} × ${cols}`);
  }
  for (const r of ranges) {
    if (r.start < 0 || r.count < 1 || r.start + r.count > per) {
      throw new Error(`head rows: range [${r.start}, ${r.start + r.count}) is outside ${per} rows`);
    }
  }
  const taken = ranges.reduce((n, r) => n + r.count, 0);
  const out = new Float32Array(heads * taken * cols);
  let o = 0;
  for (let h = 0; h < heads; h++) {
    for (const r of ranges) {
      const from = (h * per + r.start) * cols;
      out.set(w.subarray(from, from + r.count * cols), o);
      o += r.count * cols;
    }
  }
  return out;
}

/**
 * Reorder rows within each head so that HF's rotate_half pairs (i, i + rd/2)
 * become adjacent (2i, 2i+1). Works on weights [heads*headDim, cols], biases and
 * per-head norm weights (cols = 1) alike.
 */
export function interleaveRows(
  w: Float32Array,
  headDim: number,
  rotaryDim: number,
  cols: number,
): Float32Array {
  const rows = w.length / cols;
  if (!Number.isInteger(rows) || rows % headDim !== 0) {
    throw new Error(
      `rope interleave: ${w.length} elements are not whole heads of ${headDim} rows × ${cols}`,
    );
  }
  const perm = interleavePermutation(headDim, rotaryDim);
  const out = new Float32Array(w.length);
  for (let h = 0; h < rows; h += headDim) {
    for (let r = 0; r < headDim; r++) {
      const from = (h + perm[r]) * cols;
      out.set(w.subarray(from, from + cols), (h + r) * cols);
    }
  }
  return out;
}
