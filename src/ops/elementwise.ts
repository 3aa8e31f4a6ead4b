/**
 * Elementwise ops: residual add, product, row concatenation, activation, gated linear unit and
 * softcap.
 * Each works on `rows × width` contiguous f32 values, rows being T (or L for
 * softcap on logits), so the references only need the element count.
 */
import type {
  ActAttrs,
  AddAttrs,
  ConcatAttrs,
  Cost,
  GluAttrs,
  MulAttrs,
  SoftcapAttrs,
  StepShape,
} from '../graph/ops.ts';
import { activate } from './math.ts';
import { f32, type Arrays, type OpReference } from './types.ts';

/** FLOPs we charge per activation; exact counts depend on the hardware's exp/erf. */
const ACT_FLOPS = 4;

/** The first n elements of `name`, checking the caller supplied at least that many. */
function rowsOf(inputs: Arrays, name: string, n: number): Float32Array {
  const x = f32(inputs, name);
  if (x.length < n)
    throw new Error(`op input '${name}' has ${x.length} elements, the step needs ${n}`);
  return x;
}

function streamCost(n: number, flopsPerElem: number, inputs: number): Cost {
  return { flops: n * flopsPerElem, bytesRead: n * 4 * inputs, bytesWritten: n * 4 };
}

export const add: OpReference<AddAttrs> = {
  reference(a, inputs, step) {
    const n = step.T * a.width;
    const x = rowsOf(inputs, 'a', n);
    const y = rowsOf(inputs, 'b', n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = x[i] + a.scale * y[i];
    return { out };
  },
  cost: (a, step) => streamCost(step.T * a.width, a.scale !== 1 ? 2 : 1, 2),
};

export const mul: OpReference<MulAttrs> = {
  reference(a, inputs, step) {
    const n = step.T * a.width;
    const x = rowsOf(inputs, 'a', n);
    const y = rowsOf(inputs, 'b', n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = x[i] * y[i];
    return { out };
  },
  cost: (a, step) => streamCost(step.T * a.width, 1, 2),
};

export const concat: OpReference<ConcatAttrs> = {
  reference(a, inputs, step) {
    const W = a.widthA + a.widthB;
    const x = rowsOf(inputs, 'a', step.T * a.widthA);
    const y = rowsOf(inputs, 'b', step.T * a.widthB);
    const out = new Float32Array(step.T * W);
    for (let t = 0; t < step.T; t++) {
      out.set(x.subarray(t * a.widthA, (t + 1) * a.widthA), t * W);
      out.set(y.subarray(t * a.widthB, (t + 1) * a.widthB), t * W + a.widthA);
    }
    return { out };
  },
  cost: (a, step) => {
    const n = step.T * (a.widthA + a.widthB);
    return { flops: 0, bytesRead: n * 4, bytesWritten: n * 4 };
  },
};

export const act: OpReference<ActAttrs> = {
  reference(a, inputs, step) {
    const n = step.T * a.width;
    const x = rowsOf(inputs, 'x', n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = activate(a.act, x[i]);
    return { out };
  },
  cost: (a, step) => streamCost(step.T * a.width, ACT_FLOPS, 1),
};

export const glu: OpReference<GluAttrs> = {
  reference(a, inputs, step) {
    const n = step.T * a.width;
    const gate = rowsOf(inputs, 'gate', n);
    const up = rowsOf(inputs, 'up', n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = activate(a.act, gate[i]) * up[i];
    return { out };
  },
  cost: (a, step) => streamCost(step.T * a.width, ACT_FLOPS + 1, 2),
};

/** Rows an op with `rows: 'T' | 'L'` covers in this step. */
export function stepRows(rows: 'T' | 'L', step: StepShape): number {
  return rows === 'T' ? step.T : step.L;
}

export const softcap: OpReference<SoftcapAttrs> = {
  reference(a, inputs, step) {
    if (!(a.cap > 0)) throw new Error(`softcap: cap must be positive, got ${a.cap}`);
    const n = stepRows(a.rows, step) * a.width;
    const x = rowsOf(inputs, 'x', n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = a.cap * Math.tanh(x[i] / a.cap);
    return { out };
  },
  cost: (a, step) => streamCost(stepRows(a.rows, step) * a.width, 3, 1),
};
