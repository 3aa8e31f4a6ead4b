/**
 * Causal depthwise conv1d with carried state: the kernel against the reference, and the
 * reference against a token-by-token shift register written here. Covers T shorter than
 * the state (kernel−1), the state reset at pos 0, carried state at pos > 0, and
 * prefill(T) + one decode step = prefill(T + 1).
 */
import { describe, expect, it } from 'vitest';
import { conv1dKernel } from '../../codegen/kernels/conv1d.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import type { Conv1dAttrs, StepShape } from '../../src/graph/ops.ts';
import { conv1d } from '../../src/ops/conv1d.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

const TOL = 1e-4;
const SENTINEL = 31337;

type Inputs = Record<string, Float32Array>;

function data(a: Conv1dAttrs, rows: number, seed: number): Inputs {
  const C = a.channels;
  const inputs: Inputs = {
    x: randn(rows * C, seed, 3),
    w: randn(C * a.kernel, seed + 1, 1),
    state: randn((a.kernel - 1) * C, seed + 2, 3),
  };
  if (a.bias) inputs.bias = randn(C, seed + 3, 1);
  return inputs;
}

/** One token at a time through a shift register holding the last kernel−1 inputs. */
function sequential(a: Conv1dAttrs, inp: Inputs, T: number, pos: number) {
  const { channels: C, kernel: K } = a;
  const S = K - 1;
  const reg = pos === 0 ? new Float64Array(S * C) : Float64Array.from(inp.state);
  const out = new Float32Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) {
      let s = a.bias ? inp.bias[c] : 0;
      for (let j = 0; j < S; j++) s += inp.w[c * K + j] * reg[j * C + c];
      s += inp.w[c * K + S] * inp.x[t * C + c];
      out[t * C + c] = a.silu ? s / (1 + Math.exp(-s)) : s;
    }
    reg.copyWithin(0, C);
    reg.set(inp.x.subarray(t * C, (t + 1) * C), (S - 1) * C);
  }
  return { out, state: Float32Array.from(reg) };
}

async function runGpu(
  a: Conv1dAttrs,
  inp: Inputs,
  maxT: number,
  step: StepShape,
  caps = BASELINE_CAPS,
) {
  const { launches } = conv1dKernel(a, { caps, maxT });
  expect(launches).toHaveLength(1);
  const out = new Float32Array(maxT * a.channels).fill(SENTINEL);
  const got = await runLaunches(launches, {
    inputs: { ...inp, state: inp.state.slice(), out },
    step,
  });
  const n = step.T * a.channels;
  expect(got.out.subarray(n).every((v) => v === SENTINEL)).toBe(true);
  return { out: got.out.subarray(0, n), state: got.state };
}

function reference(a: Conv1dAttrs, inp: Inputs, step: StepShape) {
  const r = conv1d.reference(a, { ...inp, state: inp.state.slice() }, step);
  return { out: r.out as Float32Array, state: r.state as Float32Array };
}

const variants: Conv1dAttrs[] = [
  { op: 'conv1d', channels: 37, kernel: 4, bias: true, silu: true }, // Mamba
  { op: 'conv1d', channels: 37, kernel: 3, bias: false, silu: false }, // LFM2 short conv
  { op: 'conv1d', channels: 300, kernel: 2, bias: true, silu: false },
  { op: 'conv1d', channels: 5, kernel: 6, bias: false, silu: true },
];

describe('conv1d reference', () => {
  it('matches a token-by-token shift register, with the state reset at pos 0', () => {
    for (const a of variants) {
      for (const T of [1, 2, 9]) {
        for (const pos of [0, 4]) {
          const inp = data(a, T, 5 + T);
          const step = { T, pos, L: 1 };
          const want = sequential(a, inp, T, pos);
          const got = reference(a, inp, step);
          expect(maxRelError(got.out, want.out)).toBeLessThan(1e-6);
          expect(maxRelError(got.state, want.state)).toBeLessThan(1e-6);
        }
      }
    }
  });
});

describe('conv1d kernel', () => {
  for (const [vi, a] of variants.entries()) {
    for (const T of [1, 2, 7, 40]) {
      for (const pos of [0, 3]) {
        it(`channels ${a.channels}, kernel ${a.kernel}${a.bias ? ', bias' : ''}${a.silu ? ', silu' : ''}, T = ${T}, pos = ${pos}`, async () => {
          const { caps } = await testGpu();
          const maxT = T === 1 ? 1 : T + 3;
          const inp = data(a, maxT, 100 + 10 * vi + T + pos);
          if (pos === 0) inp.state.fill(-1e4); // must be ignored
          const step = { T, pos, L: 1 };
          const got = await runGpu(a, inp, maxT, step, caps);
          const want = reference(a, inp, step);
          const seq = sequential(a, inp, T, pos);
          expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
          expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
          expect(maxRelError(got.state, seq.state)).toBeLessThanOrEqual(TOL);
        });
      }
    }
  }

  it('prefill(T) then a decode step equals prefill(T + 1), T around kernel−1', async () => {
    const { caps } = await testGpu();
    const a = variants[0];
    const C = a.channels;
    for (const T of [1, 2, 3, 4, 17]) {
      const inp = data(a, T + 1, 400 + T);
      const full = await runGpu(a, inp, T + 1, { T: T + 1, pos: 0, L: 1 }, caps);
      const pre = await runGpu(a, inp, T + 1, { T, pos: 0, L: 1 }, caps);
      const one = { ...inp, x: inp.x.slice(T * C, (T + 1) * C), state: pre.state };
      const dec = await runGpu(a, one, 1, { T: 1, pos: T, L: 1 }, caps);
      expect(maxRelError(dec.out, full.out.subarray(T * C))).toBeLessThanOrEqual(TOL);
      expect(maxRelError(dec.state, full.state)).toBeLessThanOrEqual(TOL);
    }
  });

  it('folds the grid into y when one dimension would pass the limit (run on the device)', async () => {
    const { caps } = await testGpu();
    const small = { ...caps, maxWorkgroupsPerDimension: 4 };
    const a = variants[2];
    const { launches } = conv1dKernel(a, { caps: small, maxT: 64 });
    expect(launches[0].grid[1]).toBeGreaterThan(1);
    const inp = data(a, 64, 900);
    const step = { T: 61, pos: 2, L: 1 };
    const out = new Float32Array(64 * a.channels);
    const got = await runLaunches(launches, {
      inputs: { ...inp, state: inp.state.slice(), out },
      step,
    });
    const want = reference(a, inp, step);
    expect(maxRelError(got.out.subarray(0, 61 * a.channels), want.out)).toBeLessThanOrEqual(TOL);
    expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
  });

  it('rejects a kernel of 1 (no state)', () => {
    expect(() =>
      conv1dKernel(
        { op: 'conv1d', channels: 4, kernel: 1, bias: false, silu: false },
        { caps: BASELINE_CAPS, maxT: 4 },
      ),
    ).toThrow(/kernel/);
  });
});
