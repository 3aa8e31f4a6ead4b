import { describe, expect, it } from 'vitest';
import { mulKernel } from '../../codegen/kernels/elementwise.ts';
import type { MulAttrs } from '../../src/graph/ops.ts';
import { mul } from '../../src/ops/elementwise.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

/** Scalar (odd widths) and vec4 paths; decode, short and long T. */
const shapes = [
  { width: 1, T: 1, maxT: 1 },
  { width: 37, T: 7, maxT: 9 },
  { width: 64, T: 40, maxT: 64 },
  { width: 4099, T: 3, maxT: 4 },
  { width: 1536, T: 1, maxT: 1 },
];

describe('mul kernel', () => {
  for (const [si, s] of shapes.entries()) {
    it(`width ${s.width}, T = ${s.T}`, async () => {
      const { caps } = await testGpu();
      const attrs: MulAttrs = { op: 'mul', width: s.width };
      const n = s.maxT * s.width;
      const inputs = { a: randn(n, 10 + si, 3), b: randn(n, 20 + si, 2) };
      const step = { T: s.T, pos: 0, L: 1 };
      const want = mul.reference(attrs, inputs, step).out;
      const out = new Float32Array(n).fill(-55);
      const { launches } = mulKernel(attrs, { caps, maxT: s.maxT });
      const got = await runLaunches(launches, { inputs: { ...inputs, out }, step });
      expect(maxRelError(got.out.subarray(0, want.length), want)).toBeLessThanOrEqual(1e-6);
      expect(got.out.subarray(want.length).every((v) => v === -55)).toBe(true);
    });
  }

  it('reference multiplies elementwise', () => {
    const out = mul.reference(
      { op: 'mul', width: 3 },
      { a: Float32Array.of(1, -2, 3), b: Float32Array.of(4, 5, -0.5) },
      { T: 1, pos: 0, L: 1 },
    ).out;
    expect([...out]).toEqual([4, -10, -1.5]);
  });
});
