/**
 * The pointwise op: one elementwise expression over named inputs with per-input column maps
 * (semantics in src/graph/ops.ts, PointwiseAttrs). The evaluator here is the ground truth for the
 * WGSL emitter, which renders the same tree with the helpers of the same names.
 */
import type {
  FusedPointwise,
  PointwiseAttrs,
  PointwiseExpr,
  PointwiseInput,
} from '../graph/ops.ts';
import { elu1, log1p, logaddexp, logsigmoid, sigmoid, silu, softplus } from './math.ts';
import { f32, rule, type OpDefinition, type TensorRule } from './types.ts';

const UNARY: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  log1p,
  sqrt: Math.sqrt,
  tanh: Math.tanh,
  sigmoid,
  logsigmoid,
  softplus,
  silu,
  relu: (x) => Math.max(x, 0),
  elu1,
};

const BINARY: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: Math.max,
  min: Math.min,
  logaddexp,
};

/** The column of input `i` that output column c reads. */
export function pointwiseColumn(i: PointwiseInput, c: number): number {
  return (i.offset ?? 0) + Math.floor(c / (i.inner * i.repeat)) * i.inner + (c % i.inner);
}

/**
 * The largest column of input `i` that a width-`width` output reads: in the last block of
 * inner·repeat output columns, whose offsets c mod inner reach inner − 1 unless the block is short.
 */
function lastColumn(i: PointwiseInput, width: number): number {
  const block = i.inner * i.repeat;
  const c = width - 1;
  const within = c % block;
  return pointwiseColumn(i, c - within) + Math.min(within, i.inner - 1);
}

/** Input names an expression reads, in first-use order. */
export function exprInputs(e: PointwiseExpr, out: string[] = []): string[] {
  if ('in' in e) {
    if (!out.includes(e.in)) out.push(e.in);
  } else if ('fn' in e) exprInputs(e.x, out);
  else if ('bin' in e) {
    exprInputs(e.a, out);
    exprInputs(e.b, out);
  }
  return out;
}

/** Operations per element, for the cost model (transcendentals count 4, like activations). */
export function exprFlops(e: PointwiseExpr): number {
  if ('fn' in e) return (e.fn === 'neg' || e.fn === 'relu' ? 1 : 4) + exprFlops(e.x);
  if ('bin' in e) return (e.bin === 'logaddexp' ? 6 : 1) + exprFlops(e.a) + exprFlops(e.b);
  return 0;
}

function evaluate(e: PointwiseExpr, read: (name: string) => number): number {
  if ('in' in e) return read(e.in);
  if ('const' in e) return e.const;
  if ('fn' in e) return UNARY[e.fn](evaluate(e.x, read));
  return BINARY[e.bin](evaluate(e.a, read), evaluate(e.b, read));
}

/** The expression with each input `n` read as `rename(n)` instead. */
export function renameInputs(e: PointwiseExpr, rename: (n: string) => string): PointwiseExpr {
  if ('in' in e) return { in: rename(e.in) };
  if ('fn' in e) return { ...e, x: renameInputs(e.x, rename) };
  if ('bin' in e) return { ...e, a: renameInputs(e.a, rename), b: renameInputs(e.b, rename) };
  return e;
}

/**
 * A fused expression at token t, column c, reading its inputs from `arrays` through their column
 * maps; `given` supplies inputs that are values, not tensors (a matmul epilogue's y).
 */
export function evalFused(
  f: FusedPointwise,
  arrays: Record<string, Float32Array>,
  t: number,
  c: number,
  given: Record<string, number> = {},
): number {
  return evaluate(f.expr, (name) => {
    if (Object.hasOwn(given, name)) return given[name];
    const i = f.inputs[name];
    return arrays[name][(i.perToken ? t * i.cols : 0) + pointwiseColumn(i, c)];
  });
}

/** Tensor rules of a fused expression's inputs: [T, cols] activations, [cols] parameters. */
export function fusedInputRules(f: FusedPointwise): Record<string, TensorRule> {
  return Object.fromEntries(
    Object.entries(f.inputs).map(([n, i]) => [n, rule(i.perToken ? ['T', i.cols] : [i.cols])]),
  );
}

export const pointwise: OpDefinition<PointwiseAttrs> = {
  check(a) {
    if (!Number.isInteger(a.width) || a.width < 1) {
      throw new Error(`pointwise: width must be a positive integer, got ${a.width}`);
    }
    const used = exprInputs(a.expr);
    for (const name of used) {
      if (!Object.hasOwn(a.inputs, name)) {
        throw new Error(`pointwise: the expression reads '${name}', which is not an input`);
      }
    }
    for (const [name, i] of Object.entries(a.inputs)) {
      if (!used.includes(name)) throw new Error(`pointwise: input '${name}' is never read`);
      const offset = i.offset ?? 0;
      const ok = [i.cols, i.inner, i.repeat].every((n) => Number.isInteger(n) && n >= 1);
      if (!ok || !Number.isInteger(offset) || offset < 0 || lastColumn(i, a.width) >= i.cols) {
        throw new Error(
          `pointwise: input '${name}' (cols ${i.cols}, inner ${i.inner}, repeat ${i.repeat}, offset ${offset}) does not cover width ${a.width}`,
        );
      }
    }
  },
  inputs(a) {
    const r: Record<string, TensorRule> = {};
    for (const [name, i] of Object.entries(a.inputs)) {
      r[name] = rule(i.perToken ? ['T', i.cols] : [i.cols]);
    }
    return r;
  },
  outputs: (a) => ({ out: rule(['T', a.width]) }),
  reference(a, inputs, step) {
    pointwise.check(a);
    const arrays = Object.fromEntries(Object.keys(a.inputs).map((n) => [n, f32(inputs, n)]));
    const out = new Float32Array(step.T * a.width);
    for (let t = 0; t < step.T; t++) {
      for (let c = 0; c < a.width; c++) out[t * a.width + c] = evalFused(a, arrays, t, c);
    }
    return { out };
  },
  cost(a, step) {
    const n = step.T * a.width;
    const perToken = Object.values(a.inputs).filter((i) => i.perToken).length;
    const params = Object.values(a.inputs)
      .filter((i) => !i.perToken)
      .reduce((s, i) => s + i.cols, 0);
    return {
      flops: n * Math.max(1, exprFlops(a.expr)),
      bytesRead: 4 * (n * perToken + params),
      bytesWritten: 4 * n,
    };
  },
};
