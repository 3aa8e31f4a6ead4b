/**
 * mamba1_step (x_proj + dt/B/C norms + dt_proj + selective scan + gate in one launch) against
 * its CPU reference, and the reference against the unfused ops it replaces. Shapes are awkward
 * on purpose: dInner not a multiple of the channels a pass covers, odd dState and dtRank, more
 * x_proj rows than one pass takes, several workgroups each walking several passes, the state
 * reset at pos 0 (the state buffer then holds garbage) and carried state at pos > 0.
 */
import { describe, expect, it } from 'vitest';
import { mamba1StepOp } from '../../codegen/kernels/ssm-step.ts';
import type { Mamba1StepAttrs, StepShape } from '../../src/graph/ops.ts';
import { matmul } from '../../src/ops/matmul.ts';
import { norm } from '../../src/ops/norm.ts';
import { mamba1Step, mamba1StepPack, selectiveScan } from '../../src/ops/ssm.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

// f32 sums over dInner (x_proj) and dtRank (dt_proj) against f64 ones.
const TOL = 2e-4;
const SENTINEL = -4242.5;

function attrs(
  D: number,
  N: number,
  dtRank: number,
  norms: boolean,
  xProj = true,
): Mamba1StepAttrs {
  return { op: 'mamba1_step', dInner: D, dState: N, dtRank, normEps: norms ? 1e-6 : null, xProj };
}

/** Inputs with weights scaled so dt stays in softplus's interesting range. */
function data(a: Mamba1StepAttrs, seed: number, T = 1) {
  const { dInner: D, dState: N, dtRank } = a;
  const k = mamba1StepPack(a);
  const w = new Float32Array(k.total);
  if (a.xProj) w.set(randn(k.R * D, seed, 1 / Math.sqrt(D)), k.wx);
  w.set(randn(D * dtRank, seed + 1, 1 / Math.sqrt(dtRank)), k.wdt);
  w.set(
    Float32Array.from(randn(D, seed + 2, 0.5), (v) => v - 1),
    k.dtBias,
  );
  w.set(
    Float32Array.from(randn(D * N, seed + 3, 0.2), (j, i) => Math.log(1 + (i % N)) + j),
    k.aLog,
  );
  w.set(randn(D, seed + 4, 1), k.d);
  if (a.normEps !== null)
    w.set(
      Float32Array.from(randn(k.R, seed + 5, 0.3), (v) => 1 + v),
      k.norms,
    );
  return {
    x: randn(T * D, seed + 6, 1.5),
    z: randn(T * D, seed + 7, 2),
    w,
    state: randn(D * N, seed + 8, 2),
    // x_proj's outputs when a matmul before computes them (xProj false).
    ...(a.xProj ? {} : { dbc: randn(T * k.R, seed + 9, 1) }),
  };
}

async function check(a: Mamba1StepAttrs, pos: number, channelsPerGroup?: number, T = 1) {
  const { caps } = await testGpu();
  const inputs = data(a, a.dInner + 7 * a.dState + pos, T);
  const step: StepShape = { T, pos, L: 1 };
  const want = mamba1Step.reference(a, { ...inputs, state: inputs.state.slice() }, step);
  const gen = mamba1StepOp(a, caps, T, channelsPerGroup);
  const got = await runLaunches(gen.launches, {
    inputs: {
      ...inputs,
      state: inputs.state.slice(),
      out: new Float32Array(T * a.dInner).fill(SENTINEL),
    },
    step,
  });
  expect(maxRelError(got.out, want.out)).toBeLessThan(TOL);
  expect(maxRelError(got.state, want.state)).toBeLessThan(TOL);
  return gen.launches[0].grid[0];
}

describe('mamba1_step kernel', () => {
  it('matches the reference with norms, dInner off the pass width, odd dtRank, pos 0 and > 0', async () => {
    const a = attrs(37, 16, 5, true);
    await check(a, 0);
    await check(a, 9);
  });

  it('matches with odd dState, no norms, several workgroups and several passes each', async () => {
    const a = attrs(100, 7, 3, false);
    // dState 7 → 8 lanes per channel, 32 channels a pass.
    expect(await check(a, 3, 32)).toBe(4);
    expect(await check(a, 3, 64)).toBe(2);
  });

  it('matches with more x_proj rows than one pass and dState 1', async () => {
    await check(attrs(300, 16, 19, true), 5);
    await check(attrs(45, 1, 2, true), 1);
  });

  it('reads x_proj from a matmul before it (xProj false), one workgroup per pass', async () => {
    expect(await check(attrs(37, 16, 5, true, false), 4)).toBe(3);
    await check(attrs(100, 7, 3, false, false), 0, 64);
    await check(attrs(29, 5, 3, true, false), 2, undefined, 3);
  });

  it('runs a step of several tokens one after another, carrying the state', async () => {
    await check(attrs(29, 5, 3, true), 0, undefined, 3);
    await check(attrs(29, 5, 3, false), 6, 32, 2);
  });
});

describe('mamba1_step reference', () => {
  it('is x_proj, the norms, dt_proj and the selective scan run one after another', () => {
    const a = attrs(23, 5, 3, true);
    const { dInner: D, dState: N, dtRank } = a;
    const k = mamba1StepPack(a);
    const inp = data(a, 11);
    const step: StepShape = { T: 1, pos: 4, L: 1 };
    const mm = (w: Float32Array, x: Float32Array, rows: number, K: number, bias?: Float32Array) =>
      matmul.reference(
        {
          op: 'matmul',
          N: rows,
          K,
          bias: bias !== undefined,
          gated: false,
          act: null,
          residual: false,
          scale: 1,
          prologue: null,
          ropeKv: null,
          rows: 'T',
          outOffset: 0,
          outStride: rows,
          splits: null,
          xMap: null,
          epilogue: null,
          wType: 'f32',
          xType: 'f32',
        },
        bias ? { x, w, bias } : { x, w },
        step,
      ).out as Float32Array;
    const rms = (v: Float32Array, w: Float32Array) =>
      norm.reference(
        {
          op: 'norm',
          norm: { kind: 'rms', eps: 1e-6, unitOffset: false, bias: false },
          width: v.length,
          group: v.length,
          residual: false,
        },
        { x: v, w },
        step,
      ).out as Float32Array;
    const dbc = mm(inp.w.subarray(0, k.R * D), inp.x, k.R, D);
    const nw = inp.w.subarray(k.norms);
    const dtLow = rms(dbc.slice(0, dtRank), nw.slice(0, dtRank));
    const b = rms(dbc.slice(dtRank, dtRank + N), nw.slice(dtRank, dtRank + N));
    const c = rms(dbc.slice(dtRank + N), nw.slice(dtRank + N));
    const dt = mm(inp.w.slice(k.wdt, k.dtBias), dtLow, D, dtRank, inp.w.slice(k.dtBias, k.aLog));
    const want = selectiveScan.reference(
      { op: 'selective_scan', dInner: D, dState: N },
      {
        x: inp.x,
        dt,
        b,
        c,
        z: inp.z,
        state: inp.state.slice(),
        aLog: inp.w.slice(k.aLog, k.d),
        d: inp.w.slice(k.d, k.norms),
      },
      step,
    );
    const got = mamba1Step.reference(a, { ...inp, state: inp.state.slice() }, step);
    expect(maxRelError(got.out, want.out)).toBeLessThan(1e-5);
    expect(maxRelError(got.state, want.state)).toBeLessThan(1e-5);
  });
});
