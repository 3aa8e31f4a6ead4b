/**
 * RMSNorm and LayerNorm over rows of width `width`, in groups of `group`
 * elements: a plain norm has group = width; qk-norm normalises each head
 * separately (group = headDim) with one [headDim] weight shared by all heads.
 */
import type { Cost, NormAttrs, StepShape } from '../graph/ops.ts';
import { normalizeRow } from './math.ts';
import { f32, type OpReference } from './types.ts';

/** Throws unless width is a whole number of groups. */
export function checkNormAttrs(a: NormAttrs): void {
  if (!Number.isInteger(a.group) || a.group < 1)
    throw new Error(`norm: group must be a positive integer, got ${a.group}`);
  if (!Number.isInteger(a.width) || a.width % a.group !== 0) {
    throw new Error(`norm: width ${a.width} is not a multiple of group ${a.group}`);
  }
}

/** LayerNorm with bias is the only variant that reads `b`. */
export function normHasBias(a: NormAttrs): boolean {
  return a.norm.kind === 'layer' && a.norm.bias;
}

export const norm: OpReference<NormAttrs> = {
  reference(a, inputs, step) {
    checkNormAttrs(a);
    const n = step.T * a.width;
    const x = f32(inputs, 'x');
    const w = f32(inputs, 'w');
    const b = normHasBias(a) ? f32(inputs, 'b') : undefined;
    if (x.length < n) throw new Error(`norm: x has ${x.length} elements, the step needs ${n}`);
    if (w.length < a.group || (b && b.length < a.group))
      throw new Error(`norm: w/b need ${a.group} elements`);
    const out = new Float32Array(n);
    for (let t = 0; t < step.T; t++)
      normalizeRow(a.norm, x, t * a.width, a.width, a.group, w, b, out, t * a.width);
    return { out };
  },
  cost(a: NormAttrs, step: StepShape): Cost {
    const n = step.T * a.width;
    // rms: square-accumulate + scale-multiply per element; layer adds the mean and the centring.
    const perElem = a.norm.kind === 'layer' ? (a.norm.bias ? 7 : 6) : 4;
    const params = a.group * 4 * (normHasBias(a) ? 2 : 1);
    return { flops: n * perElem, bytesRead: n * 4 + params, bytesWritten: n * 4 };
  },
};
