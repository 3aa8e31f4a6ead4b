/**
 * Token shift: the reference against a hand-written predecessor rule (state reset at pos 0,
 * carried row at pos > 0, prefill(T) then decode = prefill(T + 1)), and the kernel against the
 * reference on widths that are no multiple of the workgroup.
 */
import { describe, expect, it } from 'vitest';
import { tokenShiftKernel } from '../../codegen/kernels/token-shift.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import type { StepShape, TokenShiftAttrs } from '../../src/graph/ops.ts';
import { tokenShift } from '../../src/ops/token-shift.ts';
import { batchedDefinition } from '../../src/ops/batch.ts';
import { runLaunches } from '../helpers/gpu.ts';
import { randn } from '../helpers/numeric.ts';

const SENTINEL = 31337;

function reference(a: TokenShiftAttrs, x: Float32Array, state: Float32Array, step: StepShape) {
  const r = tokenShift.reference(a, { x, state: state.slice() }, step);
  return { out: r.out as Float32Array, state: r.state as Float32Array };
}

describe('token_shift reference', () => {
  it('gives each row its predecessor and carries the last row', () => {
    const a: TokenShiftAttrs = { op: 'token_shift', width: 3 };
    const x = Float32Array.of(1, 2, 3, 4, 5, 6);
    const state = Float32Array.of(7, 8, 9);
    const fresh = reference(a, x, state, { T: 2, pos: 0, L: 1 });
    expect(Array.from(fresh.out)).toEqual([0, 0, 0, 1, 2, 3]);
    expect(Array.from(fresh.state)).toEqual([4, 5, 6]);
    const carried = reference(a, x, state, { T: 2, pos: 5, L: 1 });
    expect(Array.from(carried.out)).toEqual([7, 8, 9, 1, 2, 3]);
  });

  it('prefill of T then one decode step equals prefill of T + 1', () => {
    const a: TokenShiftAttrs = { op: 'token_shift', width: 5 };
    const x = randn(6 * 5, 3);
    const whole = reference(a, x, new Float32Array(5), { T: 6, pos: 0, L: 1 });
    const pre = reference(a, x.slice(0, 25), new Float32Array(5), { T: 5, pos: 0, L: 1 });
    const dec = reference(a, x.slice(25), pre.state, { T: 1, pos: 5, L: 1 });
    expect(Array.from(dec.out)).toEqual(Array.from(whole.out.subarray(25)));
    expect(Array.from(dec.state)).toEqual(Array.from(whole.state));
  });
});

describe('token_shift kernel', () => {
  const cases: { width: number; T: number; maxT: number; pos: number }[] = [
    { width: 64, T: 1, maxT: 1, pos: 0 },
    { width: 77, T: 1, maxT: 1, pos: 9 },
    { width: 300, T: 13, maxT: 16, pos: 0 },
    { width: 257, T: 40, maxT: 40, pos: 3 },
    { width: 1, T: 7, maxT: 9, pos: 2 },
  ];
  for (const c of cases) {
    it(`width ${c.width}, T ${c.T} of ${c.maxT}, pos ${c.pos}`, async () => {
      const a: TokenShiftAttrs = { op: 'token_shift', width: c.width };
      const x = randn(c.T * c.width, 11 + c.T, 2);
      const state = randn(c.width, 12, 2);
      const step = { T: c.T, pos: c.pos, L: 1 };
      const want = reference(a, x, state, step);
      const { launches } = tokenShiftKernel(a, { caps: BASELINE_CAPS, maxT: c.maxT });
      const out = new Float32Array(c.maxT * c.width).fill(SENTINEL);
      const got = await runLaunches(launches, { inputs: { x, state: state.slice(), out }, step });
      const n = c.T * c.width;
      expect(Array.from(got.out.subarray(0, n))).toEqual(Array.from(want.out));
      expect(got.out.subarray(n).every((v) => v === SENTINEL)).toBe(true);
      expect(Array.from(got.state)).toEqual(Array.from(want.state));
    });
  }

  // Batched decode (src/ops/batch.ts): row s is sequence s, its predecessor its own state row.
  for (const pos of [0, 4]) {
    it(`batched: 3 sequences of width 77, pos ${pos}`, async () => {
      const a: TokenShiftAttrs = { op: 'token_shift', width: 77, batch: 3 };
      const x = randn(3 * 77, 21 + pos, 2);
      const state = randn(3 * 77, 22, 2);
      const step = { T: 3, pos, L: 1 };
      const want = batchedDefinition(tokenShift).reference(a, { x, state: state.slice() }, step);
      const { launches } = tokenShiftKernel(a, { caps: BASELINE_CAPS, maxT: 3 });
      const out = new Float32Array(3 * 77).fill(SENTINEL);
      const got = await runLaunches(launches, { inputs: { x, state: state.slice(), out }, step });
      expect(Array.from(got.out)).toEqual(Array.from(want.out));
      expect(Array.from(got.state)).toEqual(Array.from(want.state));
      expect(Array.from(got.state)).toEqual(Array.from(x));
      if (pos > 0) expect(Array.from(got.out)).toEqual(Array.from(state));
    });
  }
});
