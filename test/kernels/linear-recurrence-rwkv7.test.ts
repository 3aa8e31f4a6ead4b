/**
 * The linear recurrence with RWKV-7's key preparation and output correction fused in
 * (LinearRecurrenceAttrs.rwkv7, the rwkv7-recurrence fusion) against its reference, which the
 * model test (test/model/rwkv7-decode-fusion.test.ts) checks against the separate ops; awkward
 * sizes (key dims 5 and 12, value dims 7, 10 and 64, 1 to 3 heads), decode (T 1) and a few tokens
 * in one step, position 0 ignoring the state buffer. The decay arrives through a fused prologue
 * expression as in the model (w = −e^(−0.5)·sigmoid(x)).
 *
 * Tolerance 1e-4 relative to the largest output (f32 kernel against an f64-accumulating reference
 * with f32 stores; inverseSqrt's error enters twice, kk's l2 norm and the group norm).
 */
import { describe, expect, it } from 'vitest';
import { linearRecurrenceKernel } from '../../codegen/kernels/linear-recurrence.ts';
import type { LinearRecurrenceAttrs } from '../../src/graph/ops.ts';
import { linearRecurrence, stateColumns } from '../../src/ops/linear-recurrence.ts';
import { rwkv7ParamCols } from '../../src/ops/rwkv7-recurrence.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, rng } from '../helpers/numeric.ts';

function attrs(
  heads: number,
  keyDim: number,
  valueDim: number,
  lora: { decayRank: number; aRank: number; vRank?: number } | null = null,
): LinearRecurrenceAttrs {
  const K = heads * keyDim;
  if (lora) {
    return {
      ...attrs(heads, keyDim, valueDim),
      prologue: undefined,
      rwkv7: { kkEps: 1e-6, normEps: keyDim * 1e-5, lora },
    };
  }
  const col = { perToken: true, cols: K, inner: K, repeat: 1 };
  return {
    op: 'linear_recurrence',
    heads,
    qHeads: heads,
    kHeads: heads,
    vHeads: heads,
    gateHeads: heads,
    keyDim,
    valueDim,
    scale: 1,
    decay: 'key',
    update: 'dplr',
    normalize: false,
    normEps: 1e-6,
    prologue: {
      exprs: {
        g: {
          inputs: { in_x: col },
          expr: {
            bin: 'mul',
            a: { const: -Math.exp(-0.5) },
            b: { fn: 'sigmoid', x: { in: 'in_x' } },
          },
        },
      },
      l2: {},
    },
    rwkv7: { kkEps: 1e-6, normEps: keyDim * 1e-5 },
  };
}

function inputs(a: LinearRecurrenceAttrs, T: number, seed: number): Record<string, Float32Array> {
  const r = rng(seed);
  const u = (n: number, lo: number, hi: number) =>
    Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
  const K = a.heads * a.keyDim;
  const V = a.heads * a.valueDim;
  const p = u(rwkv7ParamCols(a), -1, 1);
  const lora = a.rwkv7?.lora;
  // k_k near 0.7, k_a near 1, a small r_k, a group-norm weight near 1 (as trained models have).
  for (let i = 0; i < K; i++) {
    p[i] = 0.6 + 0.2 * r();
    p[K + i] = 0.9 + 0.2 * r();
    p[2 * K + i] *= 0.1;
  }
  for (let i = 0; i < V; i++) p[3 * K + i] += 1;
  const loraIn: Record<string, Float32Array> = lora
    ? {
        w_d: u(T * lora.decayRank, -2, 2),
        a_d: u(T * lora.aRank, -1, 1),
        ...(lora.vRank
          ? { v_d: u(T * lora.vRank, -1, 1), v_first: u(T * a.heads * a.valueDim, -1, 1) }
          : {}),
      }
    : { a: u(T * K, 0, 1), in_x: u(T * K, -2, 2) };
  return {
    ...loraIn,
    q: u(T * K, -1, 1),
    k: u(T * K, -1, 1),
    v: u(T * V, -1, 1),
    rwkv: p,
    state: u(a.heads * a.keyDim * stateColumns(a), -0.5, 0.5),
  };
}

describe('linear recurrence with rwkv7 fused, against the reference', () => {
  const cases: Array<[number, number, number, number, number, number[] | null]> = [
    // heads, keyDim, valueDim, T, pos, LoRA ranks (w, a) when the ups are fused
    [3, 12, 10, 1, 5, null],
    [2, 5, 7, 1, 0, null],
    [1, 16, 64, 3, 2, null],
    [3, 12, 10, 1, 5, [5, 7]],
    [2, 5, 7, 2, 0, [1, 3]],
    [3, 12, 10, 1, 4, [5, 7, 3]],
    [2, 5, 7, 2, 0, [2, 1, 1]],
  ];
  for (const [ci, [H, DK, DV, T, pos, ranks]] of cases.entries()) {
    const lora = ranks
      ? { decayRank: ranks[0], aRank: ranks[1], ...(ranks[2] ? { vRank: ranks[2] } : {}) }
      : null;
    it(`${H} heads of ${DK} keys, ${DV} values, T ${T} at pos ${pos}${ranks ? `, LoRA ups of ranks ${ranks}` : ''}`, async () => {
      const { caps } = await testGpu();
      const a = attrs(H, DK, DV, lora);
      const inp = inputs(a, T, 500 + ci);
      if (pos === 0) inp.state.fill(-1e4);
      const step = { T, pos, L: 1 };
      const want = linearRecurrence.reference(a, { ...inp, state: inp.state.slice() }, step);
      const launches = linearRecurrenceKernel(a, { caps, maxT: T }).launches;
      expect(launches[0].kernel.name).toContain('_rwkv7');
      expect(launches[0].kernel.bindings.map((b) => b.name)).not.toContain('b');
      const got = await runLaunches(launches, {
        inputs: { ...inp, state: inp.state.slice(), out: new Float32Array(T * H * DV) },
        step,
      });
      expect(maxRelError(got.out, want.out as Float32Array)).toBeLessThan(1e-4);
      expect(maxRelError(got.state, want.state as Float32Array)).toBeLessThan(1e-4);
    });
  }

  it('refuses what it does not define', () => {
    const a = attrs(2, 4, 4);
    expect(() => linearRecurrence.check({ ...a, update: 'delta' })).toThrow(/dplr/);
    expect(() => linearRecurrence.check({ ...a, scale: 0.5 })).toThrow(/scale 1/);
    expect(() => linearRecurrence.check({ ...a, kHeads: 1 })).toThrow(/state heads/);
    expect(() => linearRecurrence.check({ ...a, batch: 2 })).toThrow(/batched/);
  });
});
