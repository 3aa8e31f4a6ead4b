/**
 * entropy_rows kernel (codegen/kernels/entropy-rows.ts) against its reference (src/ops/
 * entropy-rows.ts, the sampler's own row statistics) on SwiftShader: vocabs below, at and past
 * the workgroup (1, 7, 256, 300, 1000: not multiples of it), one row and several, ties at the top
 * (the lowest id wins), a non-finite row, and temperatures 0 and above.
 *
 * Exact: the argmax at every t, and at t = 0 the token and the entropy (0). At t > 0 the token
 * is the reference's unless the reference's two best noisy scores lie within 1e-4 of each other
 * (f32 logs and division against f64; the draws here have none), with its logit's bits; and
 * the bounds the host's exactness rests on hold: the entropy lies within the kernel's own error
 * word of the f64 entropy (also on a peaked row, S − 1 ~ e^-30), the runner-up score within
 * scoreError of the f64 one; the error word and the largest |l| / t within 1e-3 and 1e-6
 * relative of the reference's.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { GREEDY, STEP_BINDING, STEP_WGSL } from '../../codegen/kernel-ir.ts';
import { entropyRowsKernel } from '../../codegen/kernels/entropy-rows.ts';
import {
  ENTROPY_ROW_WORDS,
  entropyRows,
  NONFINITE_ROW,
  entropyRowWords,
  RowWord,
  scoreError,
} from '../../src/ops/entropy-rows.ts';
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

/** The largest |entropy error| / its bound seen (how much slack the bound has here). */
let worstRatio = 0;
afterAll(() => console.log(`entropy_rows: worst |H − H64| / bound ${worstRatio.toExponential(2)}`));

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
        // A peaked row: one logit far above the rest (a tiny entropy, S − 1 ~ e^-30).
        if (c.T > 1 && c.vocab > 1) logits[c.vocab + (c.vocab >> 1)] = 40;
        const sampling = { ...GREEDY, temperature: t, seed: 9, draw: 5 };
        const step = { T: c.T, pos: 2, L: 1, sampling };
        const want = entropyRows.reference(attrs, { logits }, step).stats as Uint32Array;
        const f64 = Array.from({ length: c.T }, (_, r) =>
          entropyRowWords(logits, r, c.vocab, t, { seed: 9, draw: 5 }, 2 + r),
        );
        const launches = entropyRowsKernel(attrs, { caps, maxT: c.T }).launches;
        const out = { stats: c.T * ENTROPY_ROW_WORDS };
        const got = u32(
          await runLaunches(launches, { inputs: { logits }, outputs: out, step, sampling }),
        );
        expect(got.length).toBe(c.T * ENTROPY_ROW_WORDS);
        const gh = asF32(got);
        for (let r = 0; r < c.T; r++) {
          const o = r * ENTROPY_ROW_WORDS;
          const W = RowWord;
          const x = f64[r];
          expect(got[o + W.argmax], `row ${r} argmax`).toBe(want[o + W.argmax]);
          if (t === 0 || gumbelGap(logits, r, c.vocab, t, 2) > 1e-4) {
            expect(got[o + W.token], `row ${r} token`).toBe(want[o + W.token]);
            expect(got[o + W.tokenLogit]).toBe(want[o + W.tokenLogit]);
          }
          if (t === 0) {
            for (const k of [W.entropy, W.entropyError, W.runnerUp, W.maxScaled])
              expect(got[o + k]).toBe(0);
            continue;
          }
          const err = gh[o + W.entropyError];
          worstRatio = Math.max(worstRatio, Math.abs(gh[o + W.entropy] - x.entropy) / err);
          expect(Math.abs(gh[o + W.entropy] - x.entropy), `row ${r} entropy`).toBeLessThanOrEqual(
            err,
          );
          expect(Math.abs(err - x.entropyError)).toBeLessThanOrEqual(1e-3 * x.entropyError);
          expect(Math.abs(gh[o + W.maxScaled] - x.maxScaled)).toBeLessThanOrEqual(
            1e-6 * x.maxScaled,
          );
          if (c.vocab > 1)
            expect(Math.abs(gh[o + W.runnerUp] - x.runnerUp)).toBeLessThanOrEqual(
              scoreError(x.maxScaled),
            );
        }
        if (c.vocab > 4) expect(got[0]).toBe(3);
        if (c.T > 2 && t > 0)
          expect(gh[(c.T - 1) * ENTROPY_ROW_WORDS + RowWord.entropy]).toBeCloseTo(
            Math.log(c.vocab),
            4,
          );
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
      const n = ENTROPY_ROW_WORDS;
      for (const r of [1, 2]) {
        expect(want[r * n]).toBe(NONFINITE_ROW);
        expect(Array.from(got.subarray(r * n, (r + 1) * n))).toEqual(
          Array.from(want.subarray(r * n, (r + 1) * n)),
        );
      }
      expect(got[0]).toBe(want[0]);
    }
  });

  it('takes −log u and log1p accurately at their edges (u → 1 never gives an infinite score)', async () => {
    const { caps } = await testGpu();
    const code = entropyRowsKernel({ op: 'entropy_rows', vocab: 8 }, { caps, maxT: 1 }).launches[0]
      .kernel.code;
    // The kernel's own functions, called on chosen inputs.
    const fn = (name: string) => {
      const at = code.indexOf(`fn ${name}(`);
      const line = code.slice(at, code.indexOf('\n', at));
      // A one-line function, or up to the closing brace on its own line.
      return line.trimEnd().endsWith('}') ? line : code.slice(at, code.indexOf('\n}\n', at) + 3);
    };
    const ks = [
      0, 1, 0x7fffff, 0x800000, 0x800001, 0xbfffff, 0xc00000, 0xc00001, 0xfffffe, 0xffffff,
    ];
    const xs = [0, 1e-30, 1e-7, 0.001, 0.1, 0.2499, 0.25, 0.3, 1, 1000];
    const kernel = {
      name: 'entropy_rows_functions',
      code: `${STEP_WGSL}
@group(0) @binding(1) var<storage, read> bits: array<u32>;
@group(0) @binding(2) var<storage, read> xs: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${fn('pcg')}
${fn('neg_log_unit')}
${fn('log1p_small')}
@compute @workgroup_size(1)
fn main() {
  // Uses the Step uniform so that the layout keeps binding 0.
  if (step.T == 0u) { return; }
  for (var i = 0u; i < ${ks.length}u; i++) {
    out[i] = neg_log_unit(bits[i]);
    let x = xs[i];
    out[${ks.length}u + i] = select(log(1.0 + x), log1p_small(x), x < 0.25);
  }
}`,
      bindings: [
        STEP_BINDING,
        { name: 'bits', access: 'read' as const },
        { name: 'xs', access: 'read' as const },
        { name: 'out', access: 'read_write' as const },
      ],
      workgroupSize: [1, 1, 1] as [number, number, number],
    };
    const out = (
      await runLaunches([{ kernel, grid: [1, 1, 1] }], {
        inputs: { bits: Uint32Array.from(ks.map((k) => k << 8)), xs: Float32Array.from(xs) },
        outputs: { out: 2 * ks.length },
        step: { T: 1, pos: 0, L: 1 },
      })
    ).out;
    ks.forEach((k, i) => {
      const want = -Math.log((k + 0.5) / 16777216);
      expect(Number.isFinite(out[i]) && out[i] > 0, `k ${k}`).toBe(true);
      expect(Math.abs(out[i] - want) / want, `k ${k}`).toBeLessThan(2e-6);
    });
    xs.forEach((x, i) => {
      const want = Math.log1p(Math.fround(x));
      const got = out[ks.length + i];
      if (x === 0) expect(got).toBe(0);
      else expect(Math.abs(got - want) / want, `x ${x}`).toBeLessThan(x < 0.25 ? 1e-6 : 2e-6);
    });
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
