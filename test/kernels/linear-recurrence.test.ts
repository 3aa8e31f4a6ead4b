/**
 * The gated delta rule: the reference against the unified recurrence written out as matrices
 * (S ← (I − βkkᵀ)·e^g·S + βkvᵀ), and the WGSL kernel against the reference on awkward shapes
 * (T = 1, odd T, several chunks with a partial last one, several head counts and head sizes),
 * for the recurrent (decode) and chunked (prefill) forms, with the state reset at pos 0, carried
 * state at pos > 0, and prefill(T) then decode = prefill(T + 1).
 */
import { describe, expect, it } from 'vitest';
import { gatedDeltaRuleKernel } from '../../codegen/kernels/linear-recurrence.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import type { GatedDeltaRuleAttrs, StepShape } from '../../src/graph/ops.ts';
import { gatedDeltaRule } from '../../src/ops/linear-recurrence.ts';
import { softplus } from '../../src/ops/math.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

const TOL = 1e-4;
const SENTINEL = 31337;

type Inputs = Record<string, Float32Array>;

const attrs = (
  keyHeads: number,
  valueHeads: number,
  keyDim: number,
  valueDim: number,
): GatedDeltaRuleAttrs => ({
  op: 'gated_delta_rule',
  keyHeads,
  valueHeads,
  keyDim,
  valueDim,
  scale: keyDim ** -0.5,
});

function data(a: GatedDeltaRuleAttrs, rows: number, seed: number): Inputs {
  const key = a.keyHeads * a.keyDim;
  return {
    q: randn(rows * key, seed, 1),
    k: randn(rows * key, seed + 1, 1),
    v: randn(rows * a.valueHeads * a.valueDim, seed + 2, 1),
    ba: randn(rows * 2 * a.valueHeads, seed + 3, 2),
    aLog: randn(a.valueHeads, seed + 5, 1),
    dtBias: randn(a.valueHeads, seed + 6, 1),
    state: randn(a.valueHeads * a.keyDim * a.valueDim, seed + 7, 0.5),
  };
}

/** The recurrence as explicit matrix products, one token and one head at a time. */
function matrixForm(a: GatedDeltaRuleAttrs, inp: Inputs, T: number, pos: number) {
  const { keyHeads: KH, valueHeads: VH, keyDim: dk, valueDim: dv } = a;
  const out = new Float32Array(T * VH * dv);
  const state = new Float32Array(VH * dk * dv);
  const unit = (x: Float32Array, off: number, s: number) => {
    let n = 0;
    for (let i = 0; i < dk; i++) n += x[off + i] ** 2;
    return Array.from({ length: dk }, (_, i) => (x[off + i] * s) / Math.sqrt(n + 1e-6));
  };
  for (let h = 0; h < VH; h++) {
    const kh = Math.floor(h / (VH / KH));
    let S = Array.from({ length: dk }, (_, i) =>
      Array.from({ length: dv }, (_, j) => (pos === 0 ? 0 : inp.state[(h * dk + i) * dv + j])),
    );
    for (let t = 0; t < T; t++) {
      const q = unit(inp.q, (t * KH + kh) * dk, a.scale);
      const k = unit(inp.k, (t * KH + kh) * dk, 1);
      const v = Array.from({ length: dv }, (_, j) => inp.v[(t * VH + h) * dv + j]);
      const beta = 1 / (1 + Math.exp(-inp.ba[t * 2 * VH + h]));
      const decay = Math.exp(
        -Math.exp(inp.aLog[h]) * softplus(inp.ba[t * 2 * VH + VH + h] + inp.dtBias[h]),
      );
      // (I − βkkᵀ)·(decay·S) + βkvᵀ
      S = S.map((_, i) =>
        Array.from({ length: dv }, (_, j) => {
          let m = 0;
          for (let r = 0; r < dk; r++)
            m += ((i === r ? 1 : 0) - beta * k[i] * k[r]) * decay * S[r][j];
          return m + beta * k[i] * v[j];
        }),
      );
      for (let j = 0; j < dv; j++) {
        let o = 0;
        for (let i = 0; i < dk; i++) o += S[i][j] * q[i];
        out[(t * VH + h) * dv + j] = o;
      }
    }
    for (let i = 0; i < dk; i++)
      for (let j = 0; j < dv; j++) state[(h * dk + i) * dv + j] = S[i][j];
  }
  return { out, state };
}

function reference(a: GatedDeltaRuleAttrs, inp: Inputs, step: StepShape) {
  const r = gatedDeltaRule.reference(a, { ...inp, state: inp.state.slice() }, step);
  return { out: r.out as Float32Array, state: r.state as Float32Array };
}

async function runGpu(
  a: GatedDeltaRuleAttrs,
  inp: Inputs,
  maxT: number,
  step: StepShape,
  caps = BASELINE_CAPS,
) {
  const { launches } = gatedDeltaRuleKernel(a, { caps, maxT });
  const width = a.valueHeads * a.valueDim;
  const out = new Float32Array(maxT * width).fill(SENTINEL);
  const got = await runLaunches(launches, {
    inputs: { ...inp, state: inp.state.slice(), out },
    step,
  });
  const n = step.T * width;
  expect(got.out.subarray(n).every((v) => v === SENTINEL)).toBe(true);
  return { out: got.out.subarray(0, n), state: got.state };
}

const variants = [
  attrs(2, 4, 16, 16), // the golden fixture's shape
  attrs(1, 3, 7, 5), // odd sizes, three value heads per key head
  attrs(3, 3, 12, 70), // more value columns than one workgroup holds
  attrs(1, 2, 128, 9), // Qwen3-Next's key head size: chunks of 14 tokens fit workgroup memory
];

describe('gated_delta_rule reference', () => {
  it('matches the unified recurrence in matrix form, with the state reset at pos 0', () => {
    for (const a of variants) {
      for (const T of [1, 5]) {
        for (const pos of [0, 3]) {
          const inp = data(a, T, 11 + T + pos);
          const step = { T, pos, L: 1 };
          const want = matrixForm(a, inp, T, pos);
          const got = reference(a, inp, step);
          expect(maxRelError(got.out, want.out)).toBeLessThan(1e-5);
          expect(maxRelError(got.state, want.state)).toBeLessThan(1e-5);
        }
      }
    }
  });
});

describe('gated_delta_rule kernel', () => {
  for (const [vi, a] of variants.entries()) {
    // maxT 1 (T = 1) runs the recurrent form; the rest the chunked one, over one chunk or
    // several with a partial last one (chunks of 32 tokens, 14 at keyDim 128).
    for (const T of [1, 2, 7, 33, 70]) {
      for (const pos of [0, 3]) {
        it(`heads ${a.keyHeads}/${a.valueHeads}, dk ${a.keyDim}, dv ${a.valueDim}, T = ${T}, pos = ${pos}`, async () => {
          const { caps } = await testGpu();
          const maxT = T === 1 ? 1 : T + 2;
          const inp = data(a, maxT, 100 + 10 * vi + T + pos);
          if (pos === 0) inp.state.fill(-1e4); // must be ignored
          const step = { T, pos, L: 1 };
          const got = await runGpu(a, inp, maxT, step, caps);
          const want = reference(a, inp, step);
          expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
          expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
        });
      }
    }
  }

  it('prefill(T) then a decode step equals prefill(T + 1)', async () => {
    const { caps } = await testGpu();
    for (const a of variants) {
      const width = a.valueHeads * a.valueDim;
      const key = a.keyHeads * a.keyDim;
      for (const T of [1, 4, 9]) {
        const inp = data(a, T + 1, 400 + T);
        const full = await runGpu(a, inp, T + 1, { T: T + 1, pos: 0, L: 1 }, caps);
        const pre = await runGpu(a, inp, T + 1, { T, pos: 0, L: 1 }, caps);
        const row = (x: Float32Array, w: number) => x.slice(T * w, (T + 1) * w);
        const one = {
          ...inp,
          q: row(inp.q, key),
          k: row(inp.k, key),
          v: row(inp.v, width),
          ba: row(inp.ba, 2 * a.valueHeads),
          state: pre.state,
        };
        const dec = await runGpu(a, one, 1, { T: 1, pos: T, L: 1 }, caps);
        expect(maxRelError(dec.out, full.out.subarray(T * width))).toBeLessThanOrEqual(TOL);
        expect(maxRelError(dec.state, full.state)).toBeLessThanOrEqual(TOL);
      }
    }
  });

  it('chunks prefill within the workgroup memory and binds at most 8 storage buffers', () => {
    for (const [dk, chunk] of [
      [16, 32],
      [128, 14],
      [256, 7],
    ]) {
      const { launches } = gatedDeltaRuleKernel(attrs(2, 4, dk, 16), {
        caps: BASELINE_CAPS,
        maxT: 64,
      });
      expect(launches[0].kernel.name).toContain(`_chunk${chunk}_`);
      const storage = launches[0].kernel.bindings.filter((b) => b.access !== 'uniform');
      expect(storage.length).toBeLessThanOrEqual(BASELINE_CAPS.maxStorageBuffersPerStage);
    }
    const decode = gatedDeltaRuleKernel(attrs(2, 4, 16, 16), { caps: BASELINE_CAPS, maxT: 1 });
    expect(decode.launches[0].kernel.name).toContain('_recurrent_');
  });

  it('rejects value heads that key heads do not divide', () => {
    expect(() => gatedDeltaRuleKernel(attrs(2, 3, 4, 4), { caps: BASELINE_CAPS, maxT: 4 })).toThrow(
      /multiple of keyHeads/,
    );
  });
});
