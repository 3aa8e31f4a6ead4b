/**
 * entropy_rows kernel (codegen/kernels/entropy-rows.ts) against its reference (src/ops/
 * entropy-rows.ts, the sampler's own row statistics) on SwiftShader: vocabs below, at and past
 * the workgroup (1, 7, 256, 300, 1000: not multiples of it), one row and several, ties at the top
 * (the lowest id wins), a non-finite row, and temperatures 0 and above.
 *
 * Exact: the argmax at every t, and at t = 0 the token and the entropy (0). At t > 0 the token
 * is the reference's unless the reference's two best noisy scores lie within 1e-4 of each other
 * (f32 logs and division against f64; the draws here have none), and the entropy within 2e-5
 * absolute (f32 exp and sums of up to 1000 terms, against f64).
 */
import { describe, expect, it } from 'vitest';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import { entropyRowsKernel } from '../../codegen/kernels/entropy-rows.ts';
import { ENTROPY_ROW_WORDS, entropyRows, NONFINITE_ROW } from '../../src/ops/entropy-rows.ts';
import { gumbel } from '../../src/ops/diffusion.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { randn } from '../helpers/numeric.ts';

const CASES = [
  { vocab: 1, T: 1 },
  { vocab: 7, T: 3 },
  { vocab: 256, T: 2 },
  { vocab: 300, T: 3 },
  { vocab: 1000, T: 4 },
];

/** Gap between the two best noisy scores of row r (the reference's f64 scores). */
function gumbelGap(logits: Float32Array, r: number, vocab: number, t: number, pos: number) {
  let a = -Infinity;
  let b = -Infinity;
  for (let v = 0; v < vocab; v++) {
    const s = logits[r * vocab + v] / t + gumbel(9, 5, pos + r, v);
    if (s > a) [a, b] = [s, a];
    else if (s > b) b = s;
  }
  return a - b;
}

/** The stats buffer runLaunches returns (as f32) read as its u32 words. */
const u32 = (out: Record<string, Float32Array>) => new Uint32Array(out.stats.buffer);

const asF32 = (w: Uint32Array) => new Float32Array(w.buffer, w.byteOffset, w.length);

describe('entropy_rows kernel', () => {
  for (const [ci, c] of CASES.entries()) {
    for (const t of [0, 0.4, 1, 1.7]) {
      it(`vocab ${c.vocab}, T = ${c.T}, t = ${t}`, async () => {
        const { caps } = await testGpu();
        const attrs = { op: 'entropy_rows' as const, vocab: c.vocab };
        const logits = randn(c.T * c.vocab, 500 + ci, 3);
        // Ties at the top of row 0: the argmax must take the lowest id.
        if (c.vocab > 4) logits[3] = logits[c.vocab - 1] = 20;
        // A flat last row (every logit equal): argmax 0, entropy log(vocab).
        if (c.T > 2) logits.fill(0.5, (c.T - 1) * c.vocab, c.T * c.vocab);
        const sampling = { ...GREEDY, temperature: t, seed: 9, draw: 5 };
        const step = { T: c.T, pos: 2, L: 1, sampling };
        const want = entropyRows.reference(attrs, { logits }, step).stats as Uint32Array;
        const launches = entropyRowsKernel(attrs, { caps, maxT: c.T }).launches;
        const out = { stats: c.T * ENTROPY_ROW_WORDS };
        const got = u32(
          await runLaunches(launches, { inputs: { logits }, outputs: out, step, sampling }),
        );
        expect(got.length).toBe(c.T * ENTROPY_ROW_WORDS);
        const gh = asF32(got);
        const wh = asF32(want);
        for (let r = 0; r < c.T; r++) {
          const o = r * ENTROPY_ROW_WORDS;
          expect(got[o], `row ${r} argmax`).toBe(want[o]);
          if (t === 0 || gumbelGap(logits, r, c.vocab, t, 2) > 1e-4)
            expect(got[o + 1], `row ${r} token`).toBe(want[o + 1]);
          if (t === 0) expect(got[o + 2]).toBe(0);
          else expect(Math.abs(gh[o + 2] - wh[o + 2]), `row ${r} entropy`).toBeLessThan(2e-5);
        }
        if (c.vocab > 4) expect(got[0]).toBe(3);
        if (c.T > 2 && t > 0)
          expect(gh[(c.T - 1) * ENTROPY_ROW_WORDS + 2]).toBeCloseTo(Math.log(c.vocab), 4);
      });
    }
  }

  it('flags a row holding a NaN or an Inf, as the reference does', async () => {
    const { caps } = await testGpu();
    const attrs = { op: 'entropy_rows' as const, vocab: 300 };
    const logits = randn(3 * 300, 77, 2);
    logits[300 + 17] = NaN;
    logits[600 + 299] = Infinity;
    for (const t of [0, 0.7]) {
      const sampling = { ...GREEDY, temperature: t };
      const step = { T: 3, pos: 0, L: 1, sampling };
      const want = entropyRows.reference(attrs, { logits }, step).stats as Uint32Array;
      const got = u32(
        await runLaunches(entropyRowsKernel(attrs, { caps, maxT: 3 }).launches, {
          inputs: { logits },
          outputs: { stats: 3 * ENTROPY_ROW_WORDS },
          step,
          sampling,
        }),
      );
      for (const r of [1, 2]) {
        expect(want[r * 3]).toBe(NONFINITE_ROW);
        expect(Array.from(got.subarray(r * 3, r * 3 + 3))).toEqual(
          Array.from(want.subarray(r * 3, r * 3 + 3)),
        );
      }
      expect(got[0]).toBe(want[0]);
    }
  });

  it('refuses a bad vocab and a bad temperature', () => {
    expect(() => entropyRows.check({ op: 'entropy_rows', vocab: 0 })).toThrow(/vocab/);
    const logits = new Float32Array(4);
    const sampling = { ...GREEDY, temperature: -1 };
    expect(() =>
      entropyRows.reference(
        { op: 'entropy_rows', vocab: 4 },
        { logits },
        {
          T: 1,
          pos: 0,
          L: 1,
          sampling,
        },
      ),
    ).toThrow(/temperature/);
  });
});
