/**
 * MoE kernels against the references in src/ops/moe.ts, and the references against
 * independent dense loops: router (softmax with and without renormalisation, DeepSeek-V3
 * sigmoid with correction bias, groups and scaling, ties, k = 1), grouping (experts with no
 * tokens, T = 1), the grouped expert matmul over random routings (gated, ungated with bias,
 * GPT-OSS clamped SwiGLU, pair input, an expert range) with f32 and with f16 / q8 / q4 stored
 * expert weights on both schedules, and the weighted combine.
 */
import { describe, expect, it } from 'vitest';
import {
  moeCombineKernel,
  moeGroupKernel,
  moeMatmulKernel,
  moeRouteKernel,
} from '../../codegen/kernels/moe.ts';
import type {
  MoeCombineAttrs,
  MoeMatmulAttrs,
  MoeRouteAttrs,
  StepShape,
} from '../../src/graph/ops.ts';
import {
  groupPairs,
  moeCombine,
  moeGroup,
  moeMatmul,
  moeRoute,
  routeToken,
  topkIndices,
} from '../../src/ops/moe.ts';
import { activate } from '../../src/ops/math.ts';
import type { Activation } from '../../src/spec/model.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn, rng } from '../helpers/numeric.ts';
import { words } from '../helpers/weights.ts';
import { encodeWeight, roundWeight } from '../../src/ops/weight-storage.ts';

const TOL = 1e-4;

function route(over: Partial<MoeRouteAttrs> = {}): MoeRouteAttrs {
  return {
    op: 'moe_route',
    experts: 8,
    topK: 2,
    scoring: 'softmax',
    normalize: true,
    scale: 1,
    correctionBias: false,
    groups: 1,
    topkGroups: 1,
    ...over,
  };
}

function mmAttrs(over: Partial<MoeMatmulAttrs> = {}): MoeMatmulAttrs {
  return {
    op: 'moe_matmul',
    experts: 5,
    topK: 2,
    N: 37,
    K: 45,
    input: 'token',
    gated: true,
    act: 'silu',
    clamp: null,
    bias: false,
    grouped: true,
    expertStart: 0,
    expertCount: 5,
    wType: 'f32',
    ...over,
  };
}

const u32view = (f: Float32Array) => new Uint32Array(f.buffer, f.byteOffset, f.length);

/** Random logits with deliberate ties: some rows repeat a value at several experts. */
function tiedLogits(T: number, E: number, seed: number): Float32Array {
  const l = randn(T * E, seed, 3);
  const r = rng(seed + 1);
  for (let t = 0; t < T; t += 2) {
    const v = l[t * E + Math.floor(r() * E)];
    // Three experts share the token's chosen value (often its maximum after the next line).
    for (let c = 0; c < 3; c++) l[t * E + Math.floor(r() * E)] = v;
    if (t % 4 === 0) for (let i = 0; i < E; i++) l[t * E + i] = Math.min(l[t * E + i], v);
  }
  return l;
}

describe('router reference: ranking and ties', () => {
  it('ranks ties lowest index first, like torch.topk on CPU', () => {
    expect(topkIndices([1, 3, 3, 2, 3], 3)).toEqual([1, 2, 4]);
    expect(topkIndices([0.5, 0.5, 0.5], 2)).toEqual([0, 1]);
    expect(topkIndices([-1, 4, 2], 1)).toEqual([1]);
  });

  it('softmax: renormalised (Mixtral) and not (Jamba); GPT-OSS softmax over the k equals renormalised', () => {
    const logits = [0.3, 2.0, -1.0, 1.5];
    const all = logits.map(Math.exp);
    const z = all.reduce((a, b) => a + b, 0);
    const mix = routeToken(route({ experts: 4 }), logits);
    expect(mix.ids).toEqual([1, 3]);
    expect(mix.weights[0]).toBeCloseTo(all[1] / (all[1] + all[3]), 12);
    const jamba = routeToken(route({ experts: 4, normalize: false }), logits);
    expect(jamba.weights[1]).toBeCloseTo(all[3] / z, 12);
    // GPT-OSS: topk on the logits, then softmax over the two selected logits.
    const sel = [logits[1], logits[3]];
    const oss = sel.map((v) => Math.exp(v) / (Math.exp(sel[0]) + Math.exp(sel[1])));
    expect(mix.weights[0]).toBeCloseTo(oss[0], 12);
    expect(mix.weights[1]).toBeCloseTo(oss[1], 12);
  });

  it('sigmoid with groups: correction bias selects only, masked experts rank 0, scale applies', () => {
    const a = route({
      experts: 8,
      topK: 2,
      scoring: 'sigmoid',
      correctionBias: true,
      groups: 4,
      topkGroups: 2,
      scale: 2.5,
    });
    const logits = [0, 3, -2, 1, 2, 2, -3, -1];
    const bias = [0, -1, 0, 0, 0.5, 0, 0, 2];
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    const ranked = logits.map((l, i) => sig(l) + bias[i]);
    // Group scores (sum of the two best ranked): 0.45, 0.85, 2.26, 2.32: groups 3 and 2 compete.
    const r = routeToken(a, logits, bias);
    expect(r.ids).toEqual([7, 4]);
    const w = [sig(logits[7]), sig(logits[4])];
    const den = w[0] + w[1] + 1e-20;
    expect(r.weights[0]).toBeCloseTo((w[0] / den) * 2.5, 12);
    expect(r.weights[1]).toBeCloseTo((w[1] / den) * 2.5, 12);
    expect(ranked[7]).toBeGreaterThan(ranked[4]);
  });

  it('rejects combinations it does not define', () => {
    expect(() => moeRoute.check(route({ correctionBias: true }))).toThrow(/sigmoid scoring only/);
    expect(() => moeRoute.check(route({ scoring: 'sigmoid', groups: 3, topkGroups: 1 }))).toThrow(
      /must divide/,
    );
    expect(() => moeRoute.check(route({ topK: 9 }))).toThrow(/top_k <= experts/);
  });
});

describe('moe_route kernel', () => {
  /** DeepSeek-V3's router: sigmoid, correction bias, 2 of 4 groups, scale 2.5. */
  const DEEPSEEK_V3: Partial<MoeRouteAttrs> = {
    experts: 16,
    topK: 4,
    scoring: 'sigmoid',
    correctionBias: true,
    groups: 4,
    topkGroups: 2,
    scale: 2.5,
  };
  const cases: Array<[string, MoeRouteAttrs, number]> = [
    ['softmax renormalised (Mixtral)', route({ experts: 8, topK: 2 }), 13],
    [
      'softmax, no renormalisation (Jamba), odd E',
      route({ experts: 7, topK: 3, normalize: false }),
      9,
    ],
    ['k = 1, T = 1', route({ experts: 5, topK: 1 }), 1],
    ['DeepSeek-V3: sigmoid, correction bias, groups, scale', route(DEEPSEEK_V3), 11],
    [
      'sigmoid, no normalisation',
      route({ experts: 6, topK: 2, scoring: 'sigmoid', normalize: false }),
      4,
    ],
    [
      'Gemma 4: softmax, renormalised, per-expert scales, odd E',
      route({ experts: 11, topK: 3, expertScale: true }),
      13,
    ],
    [
      'per-expert scales after sigmoid, scale and groups',
      route({ ...DEEPSEEK_V3, expertScale: true }),
      5,
    ],
  ];
  for (const [ci, [label, a, T]] of cases.entries()) {
    it(label, async () => {
      const maxT = T + 3;
      const logits = tiedLogits(maxT, a.experts, 100 + ci);
      const inputs: Record<string, Float32Array | Uint32Array> = {
        logits,
        load: Uint32Array.from({ length: a.experts }, (_, i) => i * 3),
      };
      if (a.correctionBias) {
        // Ties survive a bias that is equal across the tied experts only sometimes: use a
        // bias with repeated values.
        inputs.bias = Float32Array.from({ length: a.experts }, (_, i) => [0, 0.25, -0.25][i % 3]);
      }
      if (a.expertScale)
        inputs.expertScale = Float32Array.from(randn(a.experts, 7 + ci, 1), Math.abs);
      const step: StepShape = { T, pos: 0, L: 1 };
      const ref = moeRoute.reference(
        a,
        { ...inputs, load: (inputs.load as Uint32Array).slice() },
        step,
      );
      const { launches } = moeRouteKernel(a, { caps: (await testGpu()).caps, maxT });
      const gpu = await runLaunches(launches, {
        inputs: { ...inputs, load: (inputs.load as Uint32Array).slice() },
        outputs: { ids: maxT * a.topK, weights: maxT * a.topK },
        step,
      });
      const n = T * a.topK;
      expect(Array.from(u32view(gpu.ids).slice(0, n))).toEqual(Array.from(ref.ids));
      expect(maxRelError(gpu.weights.slice(0, n), ref.weights)).toBeLessThanOrEqual(TOL);
      expect(Array.from(u32view(gpu.load))).toEqual(Array.from(ref.load));
      // Weights of a renormalised router sum to the scale (before per-expert scales).
      if (a.normalize && !a.expertScale) {
        for (let t = 0; t < T; t++) {
          let s = 0;
          for (let j = 0; j < a.topK; j++) s += ref.weights[t * a.topK + j];
          expect(s).toBeCloseTo(a.scale, 6);
        }
      }
    });
  }

  it('ties in the scores pick the lower expert, on the GPU too', async () => {
    const a = route({ experts: 6, topK: 3 });
    // Token 0: all equal; token 1: experts 4 and 1 tie for first, 2 and 5 for third.
    const logits = Float32Array.from([1, 1, 1, 1, 1, 1, 0, 2, 1, -1, 2, 1]);
    const { launches } = moeRouteKernel(a, { caps: (await testGpu()).caps, maxT: 2 });
    const gpu = await runLaunches(launches, {
      inputs: { logits, load: new Uint32Array(6) },
      outputs: { ids: 6, weights: 6 },
      step: { T: 2, pos: 0, L: 1 },
    });
    expect(Array.from(u32view(gpu.ids))).toEqual([0, 1, 2, 1, 4, 2]);
  });
});

describe('moe_group kernel', () => {
  const cases: Array<[string, number, number, number, number]> = [
    // label, experts, topK, T, maxT
    ['random routing, experts with no tokens', 9, 2, 14, 16],
    ['k = 1', 4, 1, 7, 7],
    ['T = 1', 6, 3, 1, 4],
    ['many experts, one chosen by all', 40, 2, 20, 20],
  ];
  for (const [ci, [label, E, K, T, maxT]] of cases.entries()) {
    it(label, async () => {
      // Expert 1 is never chosen (and in the last case expert 7 by every token).
      const ids = randomRouting(maxT, E, K, 300 + ci, [1]);
      if (ci === 3)
        for (let t = 0; t < maxT; t++)
          if (!ids.subarray(t * K, t * K + K).includes(7)) ids[t * K] = 7;
      // Sorting must not depend on values past T.
      const step: StepShape = { T, pos: 0, L: 1 };
      const a = { op: 'moe_group' as const, experts: E, topK: K };
      const ref = moeGroup.reference(a, { ids }, step);
      expect(ref.counts[1]).toBe(0);
      const { launches } = moeGroupKernel(a, { caps: (await testGpu()).caps, maxT });
      const gpu = await runLaunches(launches, {
        inputs: { ids },
        outputs: { counts: E, offsets: E + 1, order: maxT * K },
        step,
      });
      expect(Array.from(u32view(gpu.counts))).toEqual(Array.from(ref.counts));
      expect(Array.from(u32view(gpu.offsets))).toEqual(Array.from(ref.offsets));
      expect(Array.from(u32view(gpu.order).slice(0, T * K))).toEqual(Array.from(ref.order));
    });
  }
});

/** Random distinct experts per token; `cold` experts are never chosen. */
function randomRouting(T: number, E: number, K: number, seed: number, cold: number[] = []) {
  const r = rng(seed);
  const ids = new Uint32Array(T * K);
  for (let t = 0; t < T; t++) {
    const v = Array.from({ length: E }, (_, e) => (cold.includes(e) ? -1 : r()));
    topkIndices(v, K).forEach((e, j) => (ids[t * K + j] = e));
  }
  return ids;
}

/** Every expert applied densely to every row, then the selected pairs picked out. */
function denseReference(
  a: MoeMatmulAttrs,
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  ids: Uint32Array,
  T: number,
): Float64Array {
  const { N, K, topK } = a;
  const wr = a.gated ? 2 * N : N;
  const rows = a.input === 'token' ? T : T * topK;
  // dense[e][row][n]
  const dense: Float64Array[] = [];
  for (let e = 0; e < a.expertCount; e++) {
    const d = new Float64Array(rows * N);
    for (let r = 0; r < rows; r++) {
      for (let n = 0; n < N; n++) {
        let g = bias ? bias[e * wr + n] : 0;
        let u = bias && a.gated ? bias[e * wr + N + n] : 0;
        for (let k = 0; k < K; k++) {
          g += x[r * K + k] * w[(e * wr + n) * K + k];
          if (a.gated) u += x[r * K + k] * w[(e * wr + N + n) * K + k];
        }
        let y: number;
        if (a.clamp) {
          const gc = Math.min(g, a.clamp.limit);
          const uc = Math.max(-a.clamp.limit, Math.min(a.clamp.limit, u));
          y = (gc / (1 + Math.exp(-a.clamp.alpha * gc))) * (uc + 1);
        } else {
          y = a.act ? activate(a.act as Activation, g) : g;
          if (a.gated) y *= u;
        }
        d[r * N + n] = y;
      }
    }
    dense.push(d);
  }
  const out = new Float64Array(T * topK * N);
  for (let p = 0; p < T * topK; p++) {
    const e = ids[p] - a.expertStart;
    const r = a.input === 'token' ? Math.floor(p / topK) : p;
    if (e < 0 || e >= a.expertCount) out.fill(NaN, p * N, (p + 1) * N);
    else out.set(dense[e].subarray(r * N, (r + 1) * N), p * N);
  }
  return out;
}

describe('moe_matmul kernels (grouped prefill tiles and per-pair GEMV)', () => {
  const variants: Array<[string, Partial<MoeMatmulAttrs>]> = [
    ['gated silu (SwiGLU experts)', {}],
    [
      'ungated relu2 + bias, pair input, K % 4 == 0',
      { gated: false, act: 'relu2', bias: true, input: 'pair', K: 20, N: 70 },
    ],
    [
      'GPT-OSS clamped SwiGLU + bias',
      { act: null, clamp: { limit: 7, alpha: 1.702 }, bias: true, N: 19, K: 33 },
    ],
    ['an expert range (split weights)', { expertStart: 1, expertCount: 3, N: 66 }],
    ['top-1 routing', { topK: 1, experts: 3, expertCount: 3, N: 17, K: 8 }],
    // The shared expert's parts stored after the routed experts (sharedExperts): never routed.
    ['two shared experts stored after the routed ones', { sharedExperts: 2, expertCount: 7 }],
    [
      "a split's last part: two routed experts and the shared ones",
      { sharedExperts: 2, topK: 3, expertStart: 3, expertCount: 4, N: 30 },
    ],
  ];
  const runs: Array<[string, number, number[]]> = [
    ['prefill', 11, [11, 4, 1]],
    ['decode', 1, [1]],
  ];
  for (const [vi, [label, over]] of variants.entries()) {
    for (const [path, maxT, Ts] of runs) {
      for (const grouped of path === 'prefill' ? [true, false] : [false]) {
        it(`${label}: ${path}${grouped ? ' grouped' : ' per pair'}`, async () => {
          const a = mmAttrs({ ...over, grouped });
          const wr = a.gated ? 2 * a.N : a.N;
          const caps = (await testGpu()).caps;
          const { launches } = moeMatmulKernel(a, { caps, maxT });
          let checked = 0;
          for (const [si, T] of Ts.entries()) {
            const seed = 1000 * vi + 10 * si + maxT;
            // Expert 2 never chosen in prefill: an expert with no tokens.
            const ids = randomRouting(
              maxT,
              a.experts,
              a.topK,
              seed,
              maxT > 1 && a.experts > 3 ? [2] : [],
            );
            const xRows = a.input === 'token' ? maxT : maxT * a.topK;
            // Large enough values that the GPT-OSS clamps are active.
            const x = randn(xRows * a.K, seed + 1, a.clamp ? 3 : 1);
            const w = randn(a.expertCount * wr * a.K, seed + 2, (a.clamp ? 3 : 1) / Math.sqrt(a.K));
            const inputs: Record<string, Float32Array | Uint32Array> = {
              x,
              w,
              ids,
              out: randn(maxT * a.topK * a.N, seed + 3),
            };
            if (a.bias) inputs.bias = randn(a.expertCount * wr, seed + 4, 0.5);
            const step: StepShape = { T, pos: 0, L: 1 };
            if (grouped) {
              const g = groupPairs(ids, T * a.topK, a.experts);
              inputs.offsets = g.offsets;
              const order = new Uint32Array(maxT * a.topK);
              order.set(g.order);
              inputs.order = order;
            }
            const ref = moeMatmul.reference(
              a,
              { ...inputs, out: (inputs.out as Float32Array).slice() },
              step,
            ).out;
            const dense = denseReference(a, x, w, inputs.bias as Float32Array | undefined, ids, T);
            const gpu = await runLaunches(launches, {
              inputs: { ...inputs, out: (inputs.out as Float32Array).slice() },
              step,
            });
            const init = inputs.out as Float32Array;
            const got: number[] = [];
            const want: number[] = [];
            const wantRef: number[] = [];
            for (let i = 0; i < init.length; i++) {
              if (i < dense.length && !Number.isNaN(dense[i])) {
                got.push(gpu.out[i]);
                want.push(dense[i]);
                wantRef.push(ref[i]);
              } else {
                // Rows of other experts' pairs and rows past T*topK are left alone.
                expect(gpu.out[i], `untouched element ${i}`).toBe(init[i]);
                expect(ref[i]).toBe(init[i]);
              }
            }
            checked += got.length;
            expect(maxRelError(wantRef, want), 'reference vs dense').toBeLessThanOrEqual(1e-6);
            expect(maxRelError(got, want), `${launches[0].kernel.name} T=${T}`).toBeLessThanOrEqual(
              TOL,
            );
          }
          expect(checked, 'pairs compared').toBeGreaterThan(0);
        });
      }
    }
  }

  it('decode runs one GEMV row block per selected pair, whatever the expert count', () => {
    const a = mmAttrs({ experts: 64, expertCount: 64, grouped: false });
    const { launches } = moeMatmulKernel(a, { caps: BASELINE_CAPS, maxT: 1 });
    expect(launches[0].grid[1]).toEqual({ sym: 'T', mul: 2 });
  });
});

/**
 * One expert-matmul kernel on stored expert weights against the reference (which rounds the f32
 * weights as the storage does: src/ops/weight-storage.ts roundWeight) and against the dense loop
 * over the same stored values. Those values (f16, or f16 scale × integer code) are exact in f32,
 * so only the summation order differs from the reference and f32's 1e-4 relative holds.
 */
async function checkStored(
  a: MoeMatmulAttrs,
  maxT: number,
  Ts: number[],
  seed: number,
  cold: number[] = [],
): Promise<string> {
  const wr = a.gated ? 2 * a.N : a.N;
  const caps = (await testGpu()).caps;
  const { launches } = moeMatmulKernel(a, { caps, maxT });
  for (const [si, T] of Ts.entries()) {
    const s = seed + 10 * si;
    const ids = randomRouting(maxT, a.experts, a.topK, s, cold);
    const x = randn((a.input === 'token' ? maxT : maxT * a.topK) * a.K, s + 1, a.clamp ? 3 : 1);
    // Only this node's experts are bound (a split node's binding holds its range alone).
    const w = randn(a.expertCount * wr * a.K, s + 2, (a.clamp ? 3 : 1) / Math.sqrt(a.K));
    const stored = roundWeight(a.wType, w, a.K);
    if (a.wType !== 'f32') expect(stored).not.toEqual(w); // the storage did round
    const init = randn(maxT * a.topK * a.N, s + 3);
    const inputs: Record<string, Float32Array | Uint32Array> = { x, w, ids };
    if (a.bias) inputs.bias = randn(a.expertCount * wr, s + 4, 0.5);
    if (a.grouped) {
      const g = groupPairs(ids, T * a.topK, a.experts);
      inputs.offsets = g.offsets;
      const order = new Uint32Array(maxT * a.topK);
      order.set(g.order);
      inputs.order = order;
    }
    const step: StepShape = { T, pos: 0, L: 1 };
    const ref = moeMatmul.reference(a, { ...inputs, out: init.slice() }, step).out;
    const bias = inputs.bias as Float32Array | undefined;
    const dense = denseReference(a, x, stored, bias, ids, T);
    const onGpu = { ...inputs, w: a.wType === 'f32' ? w : words(encodeWeight(a.wType, w, a.K)) };
    const gpu = await runLaunches(launches, { inputs: { ...onGpu, out: init.slice() }, step });
    const got: number[] = [];
    const want: number[] = [];
    const wantRef: number[] = [];
    for (let i = 0; i < init.length; i++) {
      if (i < dense.length && !Number.isNaN(dense[i])) {
        got.push(gpu.out[i]);
        want.push(dense[i]);
        wantRef.push(ref[i]);
      } else {
        // Rows of other experts' pairs and rows past T*topK are left alone.
        expect(gpu.out[i], `untouched element ${i}`).toBe(init[i]);
        expect(ref[i]).toBe(init[i]);
      }
    }
    expect(got.length, 'pairs compared').toBeGreaterThan(0);
    expect(maxRelError(wantRef, want), 'reference vs dense').toBeLessThanOrEqual(1e-6);
    expect(maxRelError(got, want), `${launches[0].kernel.name} T=${T}`).toBeLessThanOrEqual(TOL);
  }
  return launches[0].kernel.name;
}

describe('moe_matmul on f16, q8 and q4 expert weights (both schedules)', () => {
  // K: one block, several blocks; N not a multiple of the tile; expert counts and top-k odd.
  const variants: Array<[string, Partial<MoeMatmulAttrs>]> = [
    ['gated silu', { K: 64 }],
    [
      'ungated gelu + bias, pair input, 7 experts top-3',
      {
        gated: false,
        act: 'gelu',
        bias: true,
        input: 'pair',
        experts: 7,
        expertCount: 7,
        topK: 3,
        K: 96,
        N: 70,
      },
    ],
    [
      'GPT-OSS clamped SwiGLU + bias',
      { act: null, clamp: { limit: 7, alpha: 1.702 }, bias: true, N: 19, K: 32 },
    ],
    // A split node: experts 2..4 of 6; its binding holds only those three experts' codes, then
    // their scales, so the kernel's unit indices count from expert 2.
    ['experts [2, 5) of 6 (split)', { experts: 6, expertStart: 2, expertCount: 3, N: 66, K: 64 }],
    ['top-1 of 1 expert', { topK: 1, experts: 1, expertCount: 1, N: 17, K: 32 }],
  ];
  // T = 1 inside a prefill launch, odd T, and 70 tokens (more than one BM tile per expert).
  const runs: Array<[string, number, number[]]> = [
    ['prefill', 11, [11, 1, 4]],
    ['long prefill', 70, [70]],
    ['decode', 1, [1]],
  ];
  for (const wType of ['f16', 'q8', 'q4'] as const) {
    for (const [vi, [label, over]] of variants.entries()) {
      for (const [path, maxT, Ts] of runs) {
        for (const grouped of maxT > 1 ? [true, false] : [false]) {
          if (path === 'long prefill' && !grouped) continue;
          it(`${wType} ${label}: ${path}${grouped ? ' grouped' : ' per pair'}`, async () => {
            const a = mmAttrs({ ...over, grouped, wType });
            const cold = maxT > 1 && a.experts > 3 ? [a.expertStart + 1] : [];
            const name = await checkStored(a, maxT, Ts, 50_000 + 1000 * vi + maxT, cold);
            expect(name).toContain(`_${wType}`);
          });
        }
      }
    }
  }

  // f16 also takes rows that are not whole blocks: K odd (element loads) and K % 16 ≠ 0.
  for (const K of [45, 20]) {
    for (const grouped of [true, false]) {
      it(`f16 rows of ${K}: ${grouped ? 'grouped' : 'per pair'}`, async () => {
        const a = mmAttrs({ K, grouped, wType: 'f16', experts: 3, expertCount: 3, topK: 3 });
        await checkStored(a, 11, [11, 5], 60_000 + K, []);
      });
    }
  }

  it('refuses q8 / q4 rows that are not whole blocks, naming the row length', () => {
    for (const wType of ['q8', 'q4'] as const) {
      const a = mmAttrs({ K: 48, wType });
      expect(() => moeMatmulKernel(a, { caps: BASELINE_CAPS, maxT: 1 })).toThrow(
        `moe_matmul N=37 K=48: wType ${wType} needs rows of whole blocks of 32, and a row has 48 elements`,
      );
    }
  });

  it('counts the touched experts at their stored bytes; the binding check uses them too', () => {
    const a = mmAttrs({ K: 64, N: 32, gated: false, act: 'relu', experts: 4, expertCount: 4 });
    const step = { T: 1, pos: 0, L: 1 };
    const f32Read = moeMatmul.cost(a, step).bytesRead;
    const q4Read = moeMatmul.cost({ ...a, wType: 'q4' }, step).bytesRead;
    // Two experts touched, 32 rows of 64 each: 4 bytes vs 0.5 + 2/32 bytes per weight.
    expect(f32Read - q4Read).toBe(2 * 32 * 64 * (4 - (0.5 + 2 / 32)));
    // 4 experts × 64 × 64 at f32 (64 KiB) exceed a 40 KiB binding; at q8 (17 KiB) they fit.
    const caps = { ...BASELINE_CAPS, maxStorageBindingBytes: 40 * 1024 };
    const big = mmAttrs({ K: 64, N: 64, gated: false, act: 'relu', experts: 4, expertCount: 4 });
    expect(() => moeMatmulKernel(big, { caps, maxT: 1 })).toThrow(
      /exceed maxStorageBufferBindingSize/,
    );
    expect(() => moeMatmulKernel({ ...big, wType: 'q8' }, { caps, maxT: 1 })).not.toThrow();
  });
});

describe('moe_combine kernel', () => {
  const cases: Array<[string, MoeCombineAttrs, number, number]> = [
    [
      'residual',
      {
        op: 'moe_combine',
        topK: 2,
        width: 37,
        scale: 1,
        residual: true,
        shared: false,
        sharedGate: false,
      },
      9,
      12,
    ],
    [
      'residual + shared expert, residual multiplier 0.5 (Granite)',
      {
        op: 'moe_combine',
        topK: 3,
        width: 64,
        scale: 0.5,
        residual: true,
        shared: true,
        sharedGate: false,
      },
      5,
      5,
    ],
    [
      'sigmoid-gated shared expert (Qwen3-Next), scale 1.7, T = 1',
      {
        op: 'moe_combine',
        topK: 1,
        width: 19,
        scale: 1.7,
        residual: true,
        shared: true,
        sharedGate: true,
      },
      1,
      1,
    ],
  ];
  for (const [ci, [label, a, T, maxT]] of cases.entries()) {
    it(label, async () => {
      const s = 500 + 10 * ci;
      const inputs: Record<string, Float32Array> = {
        y: randn(maxT * a.topK * a.width, s),
        weights: randn(maxT * a.topK, s + 1),
        residual: randn(maxT * a.width, s + 2),
      };
      if (a.shared) inputs.shared = randn(maxT * a.width, s + 3);
      if (a.sharedGate) inputs.sharedGate = randn(maxT, s + 4, 3);
      const step: StepShape = { T, pos: 0, L: 1 };
      const ref = moeCombine.reference(a, inputs, step).out;
      // Independent loop.
      for (let t = 0; t < T; t++) {
        for (let d = 0; d < a.width; d += 7) {
          let v = 0;
          for (let j = 0; j < a.topK; j++)
            v += inputs.weights[t * a.topK + j] * inputs.y[(t * a.topK + j) * a.width + d];
          if (a.shared) {
            const g = a.sharedGate ? 1 / (1 + Math.exp(-inputs.sharedGate[t])) : 1;
            v += g * inputs.shared[t * a.width + d];
          }
          v = inputs.residual[t * a.width + d] + a.scale * v;
          expect(ref[t * a.width + d]).toBeCloseTo(v, 5);
        }
      }
      const { launches } = moeCombineKernel(a, { caps: (await testGpu()).caps, maxT });
      const gpu = await runLaunches(launches, {
        inputs,
        outputs: { out: maxT * a.width },
        step,
      });
      expect(maxRelError(gpu.out.slice(0, T * a.width), ref)).toBeLessThanOrEqual(TOL);
    });
  }
});
