import { describe, expect, it } from 'vitest';
import {
  actKernel,
  addKernel,
  flatGrid,
  gluKernel,
  softcapKernel,
  stateRowsKernel,
} from '../../codegen/kernels/elementwise.ts';
import { resolveGridDim, type KernelLaunch } from '../../codegen/kernel-ir.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import type { Activation } from '../../src/spec/model.ts';
import type { StepShape } from '../../src/graph/ops.ts';
import { act, add, glu, softcap, stateRows } from '../../src/ops/elementwise.ts';
import type { Arrays } from '../../src/ops/types.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

/** Widths: scalar (odd, 1) and vec4 paths; T: decode, short, long. */
const shapes: { width: number; T: number; maxT: number }[] = [
  { width: 1, T: 1, maxT: 1 },
  { width: 7, T: 3, maxT: 5 },
  { width: 64, T: 40, maxT: 64 },
  { width: 1000, T: 1, maxT: 1 },
  { width: 4099, T: 6, maxT: 8 },
  { width: 12, T: 300, maxT: 333 },
];

const SENTINEL = 777;

/**
 * Runs the launches with every input (sized for maxRows) and a sentinel-filled `out`,
 * checks rows < rows against the reference and that later rows are untouched.
 */
async function check(
  launches: KernelLaunch[],
  inputs: Record<string, Float32Array>,
  want: Float32Array,
  total: number,
  step: StepShape,
): Promise<void> {
  const out = new Float32Array(total).fill(SENTINEL);
  const got = await runLaunches(launches, { inputs: { ...inputs, out }, step });
  expect(maxRelError(got.out.subarray(0, want.length), want)).toBeLessThanOrEqual(1e-4);
  expect(got.out.subarray(want.length).every((v) => v === SENTINEL)).toBe(true);
}

describe('add kernel', () => {
  // A phased add (DiffusionGemma's self-conditioning residual): a + b when denoising (keys > 0),
  // a when encoding, where b holds NaN here, as a slot nothing wrote this step may.
  for (const [si, s] of shapes.slice(1, 5).entries()) {
    for (const keys of [0, 9]) {
      it(`phased, width ${s.width}, T = ${s.T}, keys ${keys}`, async () => {
        const { caps } = await testGpu();
        const attrs = { op: 'add' as const, width: s.width, scale: 0.5, phased: true };
        const n = s.maxT * s.width;
        const b = keys > 0 ? randn(n, 40 + si) : new Float32Array(n).fill(NaN);
        const inputs = { a: randn(n, 30 + si), b };
        const step = { T: s.T, pos: 0, L: 1, keys };
        const want = add.reference(attrs, inputs as Arrays, step).out as Float32Array;
        if (keys === 0) expect(want).toEqual(inputs.a.subarray(0, s.T * s.width));
        await check(addKernel(attrs, { caps, maxT: s.maxT }).launches, inputs, want, n, step);
      });
    }
  }
  for (const [si, s] of shapes.entries()) {
    // Every other shape with a residual multiplier (Granite's residual_multiplier).
    const scale = si % 2 === 1 ? 0.22 : 1;
    it(`width ${s.width}, T = ${s.T}${scale !== 1 ? `, scale ${scale}` : ''}`, async () => {
      const { caps } = await testGpu();
      const attrs = { op: 'add' as const, width: s.width, scale };
      const n = s.maxT * s.width;
      const inputs = { a: randn(n, 10 + si), b: randn(n, 20 + si, 3) };
      const step = { T: s.T, pos: 0, L: 1 };
      const want = add.reference(attrs, inputs as Arrays, step).out as Float32Array;
      await check(addKernel(attrs, { caps, maxT: s.maxT }).launches, inputs, want, n, step);
    });
  }
});

const acts: Activation[] = ['silu', 'gelu', 'gelu_tanh', 'relu', 'relu2', 'sigmoid'];

describe('act kernel', () => {
  for (const [ai, fn] of acts.entries()) {
    for (const [si, s] of shapes.entries()) {
      if ((si + ai) % 2 === 1) continue; // every activation on three shapes, every shape on several activations
      it(`${fn}, width ${s.width}, T = ${s.T}`, async () => {
        const { caps } = await testGpu();
        const attrs = { op: 'act' as const, act: fn, width: s.width };
        const n = s.maxT * s.width;
        const inputs = { x: randn(n, 30 + si + 7 * ai, 6) };
        const step = { T: s.T, pos: 0, L: 1 };
        const want = act.reference(attrs, inputs as Arrays, step).out as Float32Array;
        await check(actKernel(attrs, { caps, maxT: s.maxT }).launches, inputs, want, n, step);
      });
    }
  }
});

describe('glu kernel', () => {
  for (const [ai, fn] of acts.entries()) {
    for (const [si, s] of shapes.entries()) {
      if ((si + ai) % 2 === 0) continue;
      it(`${fn}, width ${s.width}, T = ${s.T}`, async () => {
        const { caps } = await testGpu();
        const attrs = { op: 'glu' as const, act: fn, width: s.width };
        const n = s.maxT * s.width;
        const inputs = { gate: randn(n, 40 + si + 7 * ai, 5), up: randn(n, 50 + si + 7 * ai, 2) };
        const step = { T: s.T, pos: 0, L: 1 };
        const want = glu.reference(attrs, inputs as Arrays, step).out as Float32Array;
        await check(gluKernel(attrs, { caps, maxT: s.maxT }).launches, inputs, want, n, step);
      });
    }
  }
});

describe('softcap kernel', () => {
  const cases = [
    { cap: 30, rows: 'T' as const, width: 1000, T: 5, L: 1, maxT: 8 },
    { cap: 50, rows: 'T' as const, width: 33, T: 200, L: 1, maxT: 256 },
    { cap: 30, rows: 'L' as const, width: 257, T: 9, L: 1, maxT: 16 },
    { cap: 15.5, rows: 'L' as const, width: 1024, T: 12, L: 7, maxT: 12 },
    { cap: 1000, rows: 'L' as const, width: 3, T: 1, L: 1, maxT: 1 },
    { cap: 2, rows: 'T' as const, width: 8, T: 1, L: 1, maxT: 1 },
  ];
  for (const [ci, c] of cases.entries()) {
    it(`cap ${c.cap}, rows ${c.rows}, width ${c.width}, T = ${c.T}, L = ${c.L}`, async () => {
      const { caps } = await testGpu();
      const attrs = { op: 'softcap' as const, cap: c.cap, width: c.width, rows: c.rows };
      const n = c.maxT * c.width;
      // Spread over the linear, bending and saturated parts of tanh.
      const inputs = { x: randn(n, 60 + ci, c.cap * 3) };
      const step = { T: c.T, pos: 0, L: c.L };
      const want = softcap.reference(attrs, inputs as Arrays, step).out as Float32Array;
      await check(softcapKernel(attrs, { caps, maxT: c.maxT }).launches, inputs, want, n, step);
    });
  }

  it('is accurate for inputs much smaller than the cap', async () => {
    const { caps } = await testGpu();
    const attrs = { op: 'softcap' as const, cap: 1000, width: 256, rows: 'T' as const };
    const inputs = { x: randn(256, 70, 1) };
    const step = { T: 1, pos: 0, L: 1 };
    const want = softcap.reference(attrs, inputs as Arrays, step).out as Float32Array;
    await check(softcapKernel(attrs, { caps, maxT: 1 }).launches, inputs, want, 256, step);
  });
});

describe('state_rows kernel', () => {
  // A state of more rows than the phase's steps; the rows past T must not be copied.
  for (const [si, s] of shapes.entries()) {
    const rows = s.maxT + (si % 3);
    it(`width ${s.width}, T = ${s.T} of a ${rows}-row state`, async () => {
      const { caps } = await testGpu();
      const attrs = { op: 'state_rows' as const, rows, width: s.width };
      const inputs = { state: randn(rows * s.width, 80 + si) };
      const step = { T: s.T, pos: 0, L: 1 };
      const want = stateRows.reference(attrs, inputs as Arrays, step).out as Float32Array;
      expect(want).toEqual(inputs.state.subarray(0, s.T * s.width));
      const n = s.maxT * s.width;
      await check(stateRowsKernel(attrs, { caps, maxT: s.maxT }).launches, inputs, want, n, step);
    });
  }

  it('refuses a step or a phase longer than the state', async () => {
    const attrs = { op: 'state_rows' as const, rows: 4, width: 8 };
    const state = new Float32Array(32);
    expect(() => stateRows.reference(attrs, { state }, { T: 5, pos: 0, L: 1 })).toThrow(
      /a step of 5 rows reads a state of 4/,
    );
    const { caps } = await testGpu();
    expect(() => stateRowsKernel(attrs, { caps, maxT: 6 })).toThrow(/up to 6 rows/);
  });
});

describe('flat grid', () => {
  it('folds into y when one dimension would exceed the workgroup limit', () => {
    const caps = { ...BASELINE_CAPS, maxWorkgroupsPerDimension: 100 };
    const grid = flatGrid('T', 1000, 64, 256, caps);
    for (const T of [1, 17, 64]) {
      const x = resolveGridDim(grid[0], { T, pos: 0, L: 1 });
      const y = resolveGridDim(grid[1], { T, pos: 0, L: 1 });
      expect(x).toBeLessThanOrEqual(100);
      expect(x * y * 256).toBeGreaterThanOrEqual(T * 1000);
    }
  });

  it('computes the right elements when folded into y (run on the device)', async () => {
    const { caps } = await testGpu();
    const small = { ...caps, maxWorkgroupsPerDimension: 3 };
    const attrs = { op: 'add' as const, width: 68, scale: 1 };
    const { launches } = addKernel(attrs, { caps: small, maxT: 100 });
    expect(launches[0].grid[1]).toBeGreaterThan(1);
    const n = 100 * 68;
    const inputs = { a: randn(n, 80), b: randn(n, 81) };
    const step = { T: 97, pos: 0, L: 1 };
    const want = add.reference(attrs, inputs as Arrays, step).out as Float32Array;
    await check(launches, inputs, want, n, step);
  });

  it('vectorises rows whose width is a multiple of 4', async () => {
    const { caps } = await testGpu();
    const k = addKernel({ op: 'add', width: 64, scale: 1 }, { caps, maxT: 4 }).launches[0].kernel;
    expect(k.code).toContain('array<vec4<f32>>');
    const s = addKernel({ op: 'add', width: 63, scale: 1 }, { caps, maxT: 4 }).launches[0].kernel;
    expect(s.code).not.toContain('vec4');
  });

  it('scales b, not a, and names scaled variants apart', () => {
    const step = { T: 1, pos: 0, L: 1 };
    const out = add.reference(
      { op: 'add', width: 2, scale: 0.5 },
      { a: Float32Array.of(1, 2), b: Float32Array.of(4, 8) },
      step,
    ).out;
    expect(Array.from(out as Float32Array)).toEqual([3, 6]);
    const names = [1, 0.5, 0.25].map(
      (scale) =>
        addKernel({ op: 'add', width: 8, scale }, { caps: BASELINE_CAPS, maxT: 4 }).launches[0]
          .kernel.name,
    );
    expect(new Set(names).size).toBe(3);
  });
});
