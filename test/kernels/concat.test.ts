import { describe, expect, it } from 'vitest';
import { concatKernel } from '../../codegen/kernels/elementwise.ts';
import type { ConcatAttrs } from '../../src/graph/ops.ts';
import { concat } from '../../src/ops/elementwise.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

/** Odd and equal widths; decode, short and longer T (fewer rows than the buffers hold). */
const shapes = [
  { widthA: 1, widthB: 1, T: 1, maxT: 1 },
  { widthA: 37, widthB: 5, T: 7, maxT: 9 },
  { widthA: 64, widthB: 64, T: 40, maxT: 64 },
  { widthA: 3, widthB: 130, T: 1, maxT: 1 },
  { widthA: 2560, widthB: 2560, T: 3, maxT: 4 },
  // Per group (MLA's absorbed query: each head's latent part, then its rope part).
  { widthA: 3 * 12, widthB: 3 * 4, T: 1, maxT: 1, groups: 3 },
  { widthA: 5 * 7, widthB: 5 * 3, T: 11, maxT: 13, groups: 5 },
];

describe('concat kernel', () => {
  for (const [si, s] of shapes.entries()) {
    it(`widths ${s.widthA} + ${s.widthB}, T = ${s.T}`, async () => {
      const { caps } = await testGpu();
      const attrs: ConcatAttrs = {
        op: 'concat',
        widthA: s.widthA,
        widthB: s.widthB,
        ...('groups' in s ? { groups: s.groups } : {}),
      };
      const inputs = {
        a: randn(s.maxT * s.widthA, 10 + si, 3),
        b: randn(s.maxT * s.widthB, 20 + si, 2),
      };
      const step = { T: s.T, pos: 0, L: 1 };
      const want = concat.reference(attrs, inputs, step).out;
      const out = new Float32Array(s.maxT * (s.widthA + s.widthB)).fill(-55);
      const { launches } = concatKernel(attrs, { caps, maxT: s.maxT });
      const got = await runLaunches(launches, { inputs: { ...inputs, out }, step });
      expect(maxRelError(got.out.subarray(0, want.length), want)).toBeLessThanOrEqual(1e-4);
      expect(got.out.subarray(want.length).every((v) => v === -55)).toBe(true);
    });
  }

  it('reference with groups places each group of b after the same group of a', () => {
    const out = concat.reference(
      { op: 'concat', widthA: 4, widthB: 2, groups: 2 },
      { a: Float32Array.of(1, 2, 3, 4), b: Float32Array.of(-1, -2) },
      { T: 1, pos: 0, L: 1 },
    ).out;
    expect(Array.from(out)).toEqual([1, 2, -1, 3, 4, -2]);
    expect(() => concat.check({ op: 'concat', widthA: 4, widthB: 3, groups: 2 })).toThrow(
      /multiples of groups 2/,
    );
  });

  it('reference places b after a in each row', () => {
    const out = concat.reference(
      { op: 'concat', widthA: 2, widthB: 1 },
      { a: Float32Array.of(1, 2, 3, 4), b: Float32Array.of(-1, -2) },
      { T: 2, pos: 0, L: 1 },
    ).out;
    expect([...out]).toEqual([1, 2, -1, 3, 4, -2]);
  });
});
