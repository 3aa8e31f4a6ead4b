/**
 * The norm with RWKV's token shift fused in (NormAttrs.shift, the rwkv7-norm-shift fusion): the
 * decode kernel against the reference (itself norm then token_shift's reference), at position 0
 * (the state buffer ignored, prev zeros) and later, on widths of no tile (45, and 4100 which takes
 * the re-read path); the reference against the separate ops over several rows.
 * Tolerance 1e-5: one f32 row norm against the f64-accumulating reference.
 */
import { describe, expect, it } from 'vitest';
import { normKernel } from '../../codegen/kernels/norm.ts';
import type { NormAttrs } from '../../src/graph/ops.ts';
import { norm } from '../../src/ops/norm.ts';
import { tokenShift } from '../../src/ops/token-shift.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

const layer = { kind: 'layer', eps: 1e-5, unitOffset: false, bias: true } as const;
const rms = { kind: 'rms', eps: 1e-6, unitOffset: false, bias: false } as const;

function attrs(width: number, spec: NormAttrs['norm']): NormAttrs {
  return { op: 'norm', norm: spec, width, group: width, residual: false, shift: true };
}

describe('norm + token shift', () => {
  const cases: Array<[string, number, NormAttrs['norm'], number]> = [
    ['layer norm, width 45, pos 3', 45, layer, 3],
    ['layer norm, width 45, pos 0 (state ignored)', 45, layer, 0],
    ['rms norm, width 4100 (re-read), pos 7', 4100, rms, 7],
  ];
  for (const [ci, [label, W, spec, pos]] of cases.entries()) {
    it(label, async () => {
      const { caps } = await testGpu();
      const a = attrs(W, spec);
      const inputs = {
        x: randn(W, 10 + ci, 2),
        w: randn(W, 20 + ci, 0.3).map((v) => v + 1),
        ...(spec.kind === 'layer' ? { b: randn(W, 30 + ci, 0.2) } : {}),
        state: randn(W, 40 + ci),
      };
      const step = { T: 1, pos, L: 1 };
      const want = norm.reference(a, { ...inputs, state: inputs.state.slice() }, step);
      const launches = normKernel(a, { caps, maxT: 1 }).launches;
      expect(launches[0].kernel.name).toContain('_shift');
      const got = await runLaunches(launches, {
        inputs: {
          ...inputs,
          state: inputs.state.slice(),
          out: new Float32Array(W),
          prev: new Float32Array(W),
        },
        step,
      });
      for (const n of ['out', 'prev', 'state'])
        expect(maxRelError(got[n], want[n] as Float32Array), n).toBeLessThan(1e-5);
      if (pos === 0) expect(got.prev.every((v) => v === 0)).toBe(true);
      else expect(Array.from(got.prev)).toEqual(Array.from(inputs.state));
    });
  }

  it('the reference is norm then token_shift over several rows', () => {
    const W = 6;
    const a = attrs(W, layer);
    const x = randn(3 * W, 1);
    const w = randn(W, 2);
    const b = randn(W, 3);
    const state = randn(W, 4);
    const step = { T: 3, pos: 2, L: 1 };
    const got = norm.reference(a, { x, w, b, state: state.slice() }, step);
    const plain = norm.reference({ ...a, shift: false }, { x, w, b }, step);
    const ts = tokenShift.reference(
      { op: 'token_shift', width: W },
      { x: plain.out, state: state.slice() },
      step,
    );
    expect(got.out).toEqual(plain.out);
    expect(got.prev).toEqual(ts.out);
    expect(got.state).toEqual(ts.state);
  });

  it('refuses what it does not define', () => {
    expect(() => norm.check({ ...attrs(8, layer), group: 4 })).toThrow(/group = width/);
    expect(() => norm.check({ ...attrs(8, layer), residual: true })).toThrow(/no residual/);
    expect(() => normKernel(attrs(8, layer), { caps: BASELINE_CAPS, maxT: 4 })).toThrow(/maxT 1/);
  });
});
