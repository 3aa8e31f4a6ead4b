/**
 * The pointwise kernel against its reference: every unary function and binary operator, the
 * column maps (identity, a per-head value broadcast over its columns, heads repeated, a column
 * offset into a wider tensor), parameter inputs, widths that fit no vector or workgroup (1, 7,
 * 33), and T = 1 and 37 (rows past T stay untouched). Tolerance per element:
 * |gpu − ref| ≤ 1e-6 + 1e-5·|ref| (WGSL's exp and log are a few ULP off; the reference is f64).
 */
import { describe, expect, it } from 'vitest';
import { pointwiseKernel } from '../../codegen/kernels/pointwise.ts';
import type {
  PointwiseAttrs,
  PointwiseBin,
  PointwiseExpr,
  PointwiseFn,
  PointwiseInput,
} from '../../src/graph/ops.ts';
import { pointwise } from '../../src/ops/pointwise.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { rng } from '../helpers/numeric.ts';

const SENTINEL = 31337;
const ATOL = 1e-6;
const RTOL = 1e-5;

/** Uniform in [lo, hi). */
function uniform(n: number, seed: number, lo: number, hi: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

const same = (cols: number): PointwiseInput => ({ perToken: true, cols, inner: cols, repeat: 1 });

/** Runs the kernel over T rows (of a buffer sized for T + 2) and compares with the reference. */
async function check(
  a: PointwiseAttrs,
  T: number,
  data: (name: string, n: number) => Float32Array,
): Promise<number> {
  const { caps } = await testGpu();
  const maxT = T + 2;
  const inputs: Record<string, Float32Array> = {};
  for (const [name, i] of Object.entries(a.inputs)) {
    inputs[name] = data(name, (i.perToken ? maxT : 1) * i.cols);
  }
  const step = { T, pos: 0, L: 1 };
  const want = pointwise.reference(a, inputs, step).out as Float32Array;
  const { launches } = pointwiseKernel(a, { caps, maxT });
  const out = new Float32Array(maxT * a.width).fill(SENTINEL);
  const got = (await runLaunches(launches, { inputs: { ...inputs, out }, step })).out;
  expect(got.subarray(T * a.width).every((v) => v === SENTINEL)).toBe(true);
  let worst = 0;
  const bad: string[] = [];
  for (let e = 0; e < T * a.width; e++) {
    const err = Math.abs(got[e] - want[e]);
    worst = Math.max(worst, err / (ATOL + RTOL * Math.abs(want[e])));
    if (!(err <= ATOL + RTOL * Math.abs(want[e]))) bad.push(`[${e}] ${got[e]} vs ${want[e]}`);
  }
  expect(bad.slice(0, 5)).toEqual([]);
  return worst;
}

/** Where each function's argument is drawn from: its domain, and wide enough to reach tails. */
const DOMAIN: Record<PointwiseFn, [number, number]> = {
  neg: [-5, 5],
  exp: [-20, 8],
  log: [0.01, 50],
  log1p: [-0.9, 5],
  sqrt: [0, 50],
  tanh: [-12, 12],
  sigmoid: [-30, 30],
  logsigmoid: [-30, 30],
  softplus: [-30, 30],
  silu: [-12, 12],
  relu: [-3, 3],
  elu1: [-12, 5],
};

const BINS: PointwiseBin[] = ['add', 'sub', 'mul', 'div', 'max', 'min', 'logaddexp'];

describe('pointwise kernel', () => {
  for (const fn of Object.keys(DOMAIN) as PointwiseFn[]) {
    it(`${fn}`, async () => {
      const a: PointwiseAttrs = {
        op: 'pointwise',
        width: 33,
        inputs: { x: same(33) },
        expr: { fn, x: { in: 'x' } },
      };
      const [lo, hi] = DOMAIN[fn];
      await check(a, 37, (_, n) => uniform(n, 7, lo, hi));
    });
  }

  for (const bin of BINS) {
    it(`${bin}`, async () => {
      const a: PointwiseAttrs = {
        op: 'pointwise',
        width: 7,
        inputs: { x: same(7), y: same(7) },
        expr: { bin, a: { in: 'x' }, b: { in: 'y' } },
      };
      // div: a divisor away from 0, of either sign.
      await check(a, 37, (name, n) =>
        name === 'y' && bin === 'div'
          ? uniform(n, 3, 0.5, 2).map((v, i) => (i % 2 ? -v : v))
          : uniform(n, name === 'x' ? 1 : 2, -8, 8),
      );
    });
  }

  for (const width of [1, 7, 33]) {
    for (const T of [1, 37]) {
      it(`column maps, parameters and constants at width ${width}, T = ${T}`, async () => {
        // x: identity; head: one value per head of `d` columns; kv: heads of d columns repeated
        // r times; p: a [cols] parameter per column; ab: the second half of a wider tensor.
        const d = width === 33 ? 11 : width;
        const r = width === 33 ? 3 : 1;
        const a: PointwiseAttrs = {
          op: 'pointwise',
          width,
          inputs: {
            x: same(width),
            head: { perToken: true, cols: width / d, inner: 1, repeat: d },
            kv: { perToken: true, cols: width / r, inner: d, repeat: r },
            p: { perToken: false, cols: width, inner: width, repeat: 1 },
            ab: { perToken: true, cols: 2 * width, inner: width, repeat: 1, offset: width },
          },
          expr: {
            bin: 'add',
            a: {
              bin: 'mul',
              a: { fn: 'sigmoid', x: { in: 'head' } },
              b: { bin: 'sub', a: { in: 'x' }, b: { const: -1.5 } },
            },
            b: {
              bin: 'add',
              a: { bin: 'mul', a: { in: 'kv' }, b: { in: 'p' } },
              b: { bin: 'div', a: { in: 'ab' }, b: { const: 4 } },
            },
          },
        };
        await check(a, T, (name, n) => uniform(n, name.length * 17 + width, -3, 3));
      });
    }
  }

  it("gated DeltaNet's decay and GLA's gate, as the lowering writes them", async () => {
    // g = −exp(A_log)·softplus(a + dt_bias): a is the second half of b|a, A_log and dt_bias per head.
    const H = 6;
    const gdn: PointwiseExpr = {
      fn: 'neg',
      x: {
        bin: 'mul',
        a: { fn: 'exp', x: { in: 'aLog' } },
        b: { fn: 'softplus', x: { bin: 'add', a: { in: 'ba' }, b: { in: 'dtBias' } } },
      },
    };
    const param: PointwiseInput = { perToken: false, cols: H, inner: H, repeat: 1 };
    await check(
      {
        op: 'pointwise',
        width: H,
        inputs: {
          ba: { perToken: true, cols: 2 * H, inner: H, repeat: 1, offset: H },
          aLog: param,
          dtBias: param,
        },
        expr: gdn,
      },
      37,
      (name, n) => uniform(n, name.length, -4, 4),
    );
    const gla: PointwiseExpr = {
      bin: 'div',
      a: { fn: 'logsigmoid', x: { in: 'x' } },
      b: { const: 16 },
    };
    await check({ op: 'pointwise', width: 33, inputs: { x: same(33) }, expr: gla }, 37, (_, n) =>
      uniform(n, 5, -40, 40),
    );
  });

  it('refuses an input named like an identifier of the generated function', () => {
    const a: PointwiseAttrs = {
      op: 'pointwise',
      width: 1,
      inputs: { c: same(1) },
      expr: { fn: 'exp', x: { in: 'c' } },
    };
    expect(() => pointwiseKernel(a, { caps: BASELINE_CAPS, maxT: 1 })).toThrow(/'c' cannot be/);
  });
});
