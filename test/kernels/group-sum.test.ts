/** group_sum: the reference against plain sums, and the kernel against the reference. */
import { describe, expect, it } from 'vitest';
import { groupSumKernel } from '../../codegen/kernels/group-sum.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import type { GroupSumAttrs } from '../../src/graph/ops.ts';
import { groupSum } from '../../src/ops/group-sum.ts';
import { runLaunches } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

const SENTINEL = 31337;

describe('group_sum', () => {
  it('sums each group of a row', () => {
    const a: GroupSumAttrs = { op: 'group_sum', width: 6, group: 3 };
    const r = groupSum.reference(
      a,
      { x: Float32Array.of(1, 2, 3, 4, 5, 6, -1, 0, 1, 2, 2, 2) },
      {
        T: 2,
        pos: 0,
        L: 1,
      },
    );
    expect(Array.from(r.out)).toEqual([6, 15, 0, 6]);
  });

  it('rejects a width that is no multiple of the group', () => {
    expect(() => groupSum.check({ op: 'group_sum', width: 10, group: 4 })).toThrow(/multiple/);
  });

  const cases = [
    { width: 64, group: 16, T: 1, maxT: 1 },
    { width: 4096, group: 64, T: 1, maxT: 1 },
    { width: 165, group: 33, T: 37, maxT: 40 },
    { width: 7, group: 1, T: 300, maxT: 300 },
    { width: 300, group: 300, T: 5, maxT: 8 },
  ];
  for (const c of cases) {
    it(`kernel: ${c.width / c.group} groups of ${c.group}, T ${c.T} of ${c.maxT}`, async () => {
      const a: GroupSumAttrs = { op: 'group_sum', width: c.width, group: c.group };
      const x = randn(c.T * c.width, c.width + c.T, 3);
      const step = { T: c.T, pos: 0, L: 1 };
      const want = groupSum.reference(a, { x }, step).out as Float32Array;
      const { launches } = groupSumKernel(a, { caps: BASELINE_CAPS, maxT: c.maxT });
      const n = c.T * (c.width / c.group);
      const out = new Float32Array((c.maxT * c.width) / c.group).fill(SENTINEL);
      const got = await runLaunches(launches, { inputs: { x, out }, step });
      expect(maxRelError(got.out.subarray(0, n), want)).toBeLessThan(1e-5);
      expect(got.out.subarray(n).every((v) => v === SENTINEL)).toBe(true);
    });
  }
});
