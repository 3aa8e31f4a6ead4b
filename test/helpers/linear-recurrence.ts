/**
 * Shared by the linear recurrence kernel tests (test/kernels/linear-recurrence*.test.ts): the
 * attrs they start from, their random inputs, the f64 reference on a copy of the state, and
 * the run of a generated op's launches on the test device.
 */
import { expect } from 'vitest';
import type { GeneratedOp } from '../../codegen/kernels/types.ts';
import type {
  LinearRecurrenceAttrs,
  PointwiseExpr,
  PointwiseInput,
  StepShape,
} from '../../src/graph/ops.ts';
import { linearRecurrence, stateColumns } from '../../src/ops/linear-recurrence.ts';
import { runLaunches } from './gpu.ts';
import { rng } from './numeric.ts';

export type Inputs = Record<string, Float32Array>;

export function attrs(over: Partial<LinearRecurrenceAttrs>): LinearRecurrenceAttrs {
  const a: LinearRecurrenceAttrs = {
    op: 'linear_recurrence',
    heads: 2,
    qHeads: 2,
    kHeads: 2,
    vHeads: 2,
    gateHeads: 2,
    keyDim: 5,
    valueDim: 7,
    scale: 0.5,
    decay: 'head',
    update: 'delta',
    normalize: false,
    normEps: 1e-6,
    ...over,
  };
  linearRecurrence.check(a);
  return a;
}

/** Uniform in [lo, hi). */
export function uniform(n: number, r: () => number, lo: number, hi: number): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Rows of `dim` scaled to unit length (delta and dplr keys: what keeps those updates contractive). */
export function unitRows(x: Float32Array, dim: number): Float32Array {
  for (let o = 0; o < x.length; o += dim) {
    let n = 0;
    for (let i = 0; i < dim; i++) n += x[o + i] ** 2;
    for (let i = 0; i < dim; i++) x[o + i] /= Math.sqrt(n) || 1;
  }
  return x;
}

export interface DataOptions {
  /** The range log decays are drawn from; [−1, 0] unless given. */
  g?: readonly [number, number];
}

/**
 * Inputs for `rows` tokens. Keys are unit rows for delta and dplr (β ∈ (0, 1) then makes the
 * update a contraction, as in the models); q and k are positive with normalize (feature maps
 * make them so), which keeps the denominators away from 0. dplr takes RWKV-7's a = kk·α,
 * b = −kk with kk a unit row and α ∈ (0, 1).
 */
export function data(
  a: LinearRecurrenceAttrs,
  rows: number,
  seed: number,
  o: DataOptions = {},
): Inputs {
  const r = rng(seed);
  const DK = a.keyDim;
  const lo = a.normalize ? 0 : -1;
  const k = uniform(rows * a.kHeads * DK, r, lo, 1);
  const inp: Inputs = {
    q: uniform(rows * a.qHeads * DK, r, lo, 1),
    k: a.update === 'add' ? k : unitRows(k, DK),
    v: uniform(rows * a.vHeads * a.valueDim, r, -1, 1),
    state: uniform(a.heads * DK * stateColumns(a), r, a.normalize ? 0 : -0.5, 0.5),
  };
  const [gLo, gHi] = o.g ?? [-1, 0];
  if (a.decay === 'fixed') inp.g = uniform(a.gateHeads, r, gLo, gHi);
  if (a.decay === 'head') inp.g = uniform(rows * a.gateHeads, r, gLo, gHi);
  if (a.decay === 'key') inp.g = uniform(rows * a.gateHeads * DK, r, gLo, gHi);
  if (a.update === 'delta') inp.beta = uniform(rows * a.gateHeads, r, 0, 1);
  if (a.update === 'dplr') {
    const kk = unitRows(uniform(rows * a.gateHeads * DK, r, -1, 1), DK);
    const alpha = uniform(rows * a.gateHeads * DK, r, 0, 1);
    inp.a = kk.map((x, i) => x * alpha[i]);
    inp.b = kk.map((x) => -x);
  }
  return inp;
}

export function reference(a: LinearRecurrenceAttrs, inp: Inputs, step: StepShape) {
  const r = linearRecurrence.reference(a, { ...inp, state: inp.state.slice() }, step);
  return { out: r.out as Float32Array, state: r.state as Float32Array };
}

// Fused-prologue cases both kernel tests run (the single kernel and the multi-pass form).
const SENTINEL = 31337;

/**
 * Run a generated op's launches (their scratch buffers as extra outputs) on `inp` and a copy of
 * its state; checks that out's rows at and beyond T are never written, and returns out's first T
 * rows and the state.
 */
export async function runRecurrence(
  gen: GeneratedOp,
  a: LinearRecurrenceAttrs,
  inp: Inputs,
  maxT: number,
  step: StepShape,
): Promise<{ out: Float32Array; state: Float32Array }> {
  const width = a.heads * a.valueDim;
  const out = new Float32Array(maxT * width).fill(SENTINEL);
  const got = await runLaunches(gen.launches, {
    inputs: { ...inp, state: inp.state.slice(), out },
    outputs: Object.fromEntries(Object.entries(gen.scratch).map(([n, b]) => [n, b / 4])),
    step,
  });
  expect(got.out.subarray(step.T * width).every((v) => v === SENTINEL)).toBe(true);
  return { out: got.out.subarray(0, step.T * width), state: got.state };
}

export const same = (cols: number): PointwiseInput => ({
  perToken: true,
  cols,
  inner: cols,
  repeat: 1,
});
export const x = (name: string): PointwiseExpr => ({ in: name });
/** Gated DeltaNet's value heads. */
export const VH = 6;
export const half = (offset: number): PointwiseInput => ({ ...same(2 * VH), inner: VH, offset });
export const perHead: PointwiseInput = { ...same(VH), perToken: false };
/** Gated DeltaNet: l2 norms of q and k, β and g from one b|a tensor and two parameters. */
export const gdnAttrs = (): LinearRecurrenceAttrs =>
  attrs({
    heads: VH,
    qHeads: 2,
    kHeads: 2,
    vHeads: VH,
    gateHeads: VH,
    keyDim: 16,
    valueDim: 9,
    decay: 'head',
    update: 'delta',
    prologue: {
      exprs: {
        beta: { inputs: { in_ba: half(0) }, expr: { fn: 'sigmoid', x: x('in_ba') } },
        g: {
          inputs: { in_ba: half(VH), in_aLog: perHead, in_dtBias: perHead },
          expr: {
            fn: 'neg',
            x: {
              bin: 'mul',
              a: { fn: 'exp', x: x('in_aLog') },
              b: { fn: 'softplus', x: { bin: 'add', a: x('in_ba'), b: x('in_dtBias') } },
            },
          },
        },
      },
      l2: { q: 1e-6, k: 1e-6 },
    },
  });
/** GLA-like: elu+1 feature maps, g = logsigmoid(x)/16 per key dim, normalised. */
export const glaAttrs = (): LinearRecurrenceAttrs =>
  attrs({
    heads: 4,
    qHeads: 2,
    kHeads: 2,
    vHeads: 4,
    gateHeads: 4,
    keyDim: 8,
    valueDim: 6,
    decay: 'key',
    update: 'add',
    normalize: true,
    prologue: {
      exprs: {
        q: { inputs: { in_xq: same(16) }, expr: { fn: 'elu1', x: x('in_xq') } },
        k: { inputs: { in_xk: same(16) }, expr: { fn: 'elu1', x: x('in_xk') } },
        g: {
          inputs: { in_xg: same(32) },
          expr: { bin: 'div', a: { fn: 'logsigmoid', x: x('in_xg') }, b: { const: 16 } },
        },
      },
      l2: {},
    },
  });
/** RetNet-like: RoPE on q and k (6 of 8 columns), fixed decay, k l2-normed after rotation. */
export const retAttrs = (capacity: number): LinearRecurrenceAttrs =>
  attrs({
    heads: 4,
    qHeads: 4,
    kHeads: 2,
    vHeads: 2,
    gateHeads: 4,
    keyDim: 8,
    valueDim: 6,
    decay: 'fixed',
    update: 'add',
    prologue: {
      exprs: { q: { inputs: { in_xq: same(32) }, expr: { fn: 'elu1', x: x('in_xq') } } },
      rope: { of: ['q', 'k'], rotaryDim: 6, capacity },
      l2: { k: 1e-6 },
    },
  });
