/**
 * softmax_rows kernel (codegen/kernels/softmax-rows.ts) against its reference (src/ops/
 * softmax-rows.ts) on SwiftShader: vocabs below, at and past the workgroup (1, 7, 256, 300, 1000:
 * not multiples of it), one row and several, temperatures 0 (one-hot, ties to the lowest id),
 * 0.4, 1 and 1.7, and a state of more rows than the step (the rows past T keep their values).
 * Tolerance 2e-6 absolute on probabilities ≤ 1: f32 exp and an f32 sum of up to 1000 terms,
 * against the reference's f64 (t = 0 is exact).
 */
import { describe, expect, it } from 'vitest';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import { softmaxRowsKernel } from '../../codegen/kernels/softmax-rows.ts';
import { softmaxRows } from '../../src/ops/softmax-rows.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { randn } from '../helpers/numeric.ts';

const CASES = [
  { vocab: 1, T: 1, rows: 1 },
  { vocab: 7, T: 1, rows: 3 },
  { vocab: 256, T: 2, rows: 2 },
  { vocab: 300, T: 3, rows: 5 },
  { vocab: 1000, T: 4, rows: 4 },
];

describe('softmax_rows kernel', () => {
  for (const [ci, c] of CASES.entries()) {
    for (const t of [0, 0.4, 1, 1.7]) {
      it(`vocab ${c.vocab}, T = ${c.T} of ${c.rows} rows, t = ${t}`, async () => {
        const { caps } = await testGpu();
        const attrs = { op: 'softmax_rows' as const, rows: c.rows, vocab: c.vocab };
        const logits = randn(c.T * c.vocab, 300 + ci, 3);
        // Ties at the top of row 0: the one-hot must take the lowest id.
        if (c.vocab > 4) logits[3] = logits[c.vocab - 1] = 50;
        const before = new Float32Array(c.rows * c.vocab).fill(7);
        const sampling = { ...GREEDY, temperature: t };
        const step = { T: c.T, pos: 0, L: 1, sampling };
        const want = softmaxRows.reference(attrs, { logits, probs: before.slice() }, step).probs;
        const launches = softmaxRowsKernel(attrs, { caps, maxT: c.rows }).launches;
        const got = (
          await runLaunches(launches, { inputs: { logits, probs: before }, step, sampling })
        ).probs;
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
        expect(worst).toBeLessThanOrEqual(t === 0 ? 0 : 2e-6);
        expect(Array.from(got.subarray(c.T * c.vocab))).toEqual(
          new Array<number>((c.rows - c.T) * c.vocab).fill(7),
        );
        if (t === 0 && c.vocab > 4) expect(got[3]).toBe(1);
      });
    }
  }

  it('refuses a step or a phase longer than the state, and a negative temperature', async () => {
    const attrs = { op: 'softmax_rows' as const, rows: 2, vocab: 4 };
    const logits = new Float32Array(12);
    const probs = new Float32Array(8);
    expect(() => softmaxRows.reference(attrs, { logits, probs }, { T: 3, pos: 0, L: 1 })).toThrow(
      /a step of 3 rows writes a state of 2/,
    );
    const sampling = { ...GREEDY, temperature: -1 };
    expect(() =>
      softmaxRows.reference(attrs, { logits, probs }, { T: 1, pos: 0, L: 1, sampling }),
    ).toThrow(/temperature must be a finite number ≥ 0, got -1/);
    const { caps } = await testGpu();
    expect(() => softmaxRowsKernel(attrs, { caps, maxT: 3 })).toThrow(/up to 3 rows/);
  });
});
