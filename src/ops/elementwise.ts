/**
 * Elementwise ops: residual add, product, row concatenation, activation, gated linear unit,
 * softcap, and the copy of a state's first rows (state_rows).
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
  StateRowsAttrs,
  StepShape,
} from '../graph/ops.ts';
import { activate } from './math.ts';
import { f32, rule, type Arrays, type OpDefinition } from './types.ts';

/** FLOPs we charge per activation; exact counts depend on the hardware's exp/erf. */
const ACT_FLOPS = 4;

/** The first n elements of `name`, checking the caller supplied at least that many. */
function rowsOf(inputs: Arrays, name: string, n: number): Float32Array {
  const x = f32(inputs, name);
  if (x.length < n)
    throw new Error(`op input '${name}' has ${x.length} elements, the step needs ${n}`);
  return x;
}

/** Throws unless each named attribute is a positive integer (a row width). */
function widths(op: string, a: Record<string, number>): void {
  for (const [k, v] of Object.entries(a)) {
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`${op}: ${k} must be a positive integer, got ${v}`);
    }
  }
}

function streamCost(n: number, flopsPerElem: number, inputs: number): Cost {
  return { flops: n * flopsPerElem, bytesRead: n * 4 * inputs, bytesWritten: n * 4 };
}

export const stateRows: OpDefinition<StateRowsAttrs> = {
  check(a) {
    widths('state_rows', { rows: a.rows, width: a.width });
  },
  inputs: (a) => ({ state: rule([a.rows, a.width]) }),
  outputs: (a) => ({ out: rule(['T', a.width]) }),
  reference(a, inputs, step) {
    stateRows.check(a);
    if (step.T > a.rows)
      throw new Error(`state_rows: a step of ${step.T} rows reads a state of ${a.rows}`);
    return { out: rowsOf(inputs, 'state', step.T * a.width).slice(0, step.T * a.width) };
  },
  cost: (a, step) => streamCost(step.T * a.width, 0, 1),
};

export const add: OpDefinition<AddAttrs> = {
  check(a) {
    widths('add', { width: a.width });
    if (!Number.isFinite(a.scale)) throw new Error(`add: scale must be finite, got ${a.scale}`);
  },
  inputs: (a) => ({ a: rule(['T', a.width]), b: rule(['T', a.width]) }),
  outputs: (a) => ({ out: rule(['T', a.width]) }),
  reference(a, inputs, step) {
    const n = step.T * a.width;
    const x = rowsOf(inputs, 'a', n);
    if (a.phased && !((step.keys ?? 0) > 0)) return { out: x.slice(0, n) };
    const y = rowsOf(inputs, 'b', n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = x[i] + a.scale * y[i];
    return { out };
  },
  cost: (a, step) => streamCost(step.T * a.width, a.scale !== 1 ? 2 : 1, 2),
};

export const mul: OpDefinition<MulAttrs> = {
  check: (a) => widths('mul', { width: a.width }),
  inputs: (a) => ({ a: rule(['T', a.width]), b: rule(['T', a.width]) }),
  outputs: (a) => ({ out: rule(['T', a.width]) }),
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

export const concat: OpDefinition<ConcatAttrs> = {
  check(a) {
    const g = a.groups ?? 1;
    widths('concat', { widthA: a.widthA, widthB: a.widthB, groups: g });
    if (a.widthA % g !== 0 || a.widthB % g !== 0) {
      throw new Error(
        `concat: widthA ${a.widthA} and widthB ${a.widthB} must both be multiples of groups ${g}`,
      );
    }
  },
  inputs: (a) => ({ a: rule(['T', a.widthA]), b: rule(['T', a.widthB]) }),
  outputs: (a) => ({ out: rule(['T', a.widthA + a.widthB]) }),
  reference(a, inputs, step) {
    concat.check(a);
    const g = a.groups ?? 1;
    const ga = a.widthA / g;
    const gb = a.widthB / g;
    const x = rowsOf(inputs, 'a', step.T * a.widthA);
    const y = rowsOf(inputs, 'b', step.T * a.widthB);
    const out = new Float32Array(step.T * (a.widthA + a.widthB));
    // Group r (of all T·g groups) of a, then of b.
    for (let r = 0; r < step.T * g; r++) {
      out.set(x.subarray(r * ga, (r + 1) * ga), r * (ga + gb));
      out.set(y.subarray(r * gb, (r + 1) * gb), r * (ga + gb) + ga);
    }
    return { out };
  },
  cost: (a, step) => {
    const n = step.T * (a.widthA + a.widthB);
    return { flops: 0, bytesRead: n * 4, bytesWritten: n * 4 };
  },
};

export const act: OpDefinition<ActAttrs> = {
  check: (a) => widths('act', { width: a.width }),
  inputs: (a) => ({ x: rule(['T', a.width]) }),
  outputs: (a) => ({ out: rule(['T', a.width]) }),
  reference(a, inputs, step) {
    const n = step.T * a.width;
    const x = rowsOf(inputs, 'x', n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = activate(a.act, x[i]);
    return { out };
  },
  cost: (a, step) => streamCost(step.T * a.width, ACT_FLOPS, 1),
};

export const glu: OpDefinition<GluAttrs> = {
  check: (a) => widths('glu', { width: a.width }),
  inputs: (a) => ({ gate: rule(['T', a.width]), up: rule(['T', a.width]) }),
  outputs: (a) => ({ out: rule(['T', a.width]) }),
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

export const softcap: OpDefinition<SoftcapAttrs> = {
  check(a) {
    widths('softcap', { width: a.width });
    if (!(a.cap > 0)) throw new Error(`softcap: cap must be positive, got ${a.cap}`);
  },
  inputs: (a) => ({ x: rule([a.rows, a.width]) }),
  outputs: (a) => ({ out: rule([a.rows, a.width]) }),
  reference(a, inputs, step) {
    softcap.check(a);
    const n = stepRows(a.rows, step) * a.width;
    const x = rowsOf(inputs, 'x', n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = a.cap * Math.tanh(x[i] / a.cap);
    return { out };
  },
  cost: (a, step) => streamCost(stepRows(a.rows, step) * a.width, 3, 1),
};
