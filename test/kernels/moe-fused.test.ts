/**
 * The decode-fused expert projections (codegen/kernels/moe-fused.ts) against moeMatmul's
 * reference (src/ops/moe.ts) on awkward shapes: gate_up with its norm (RMS, Gemma's unit offset,
 * biased LayerNorm) and the routing folded in (softmax with and without renormalisation,
 * DeepSeek-V3's grouped sigmoid with correction bias and scale, Gemma 4's per-expert scales,
 * more experts than threads, ties),
 * a folded shared expert, GPT-OSS's clamped biased SwiGLU, K not a multiple of 4, several rows
 * (batched decode); down with the combine folded in (residual, gated shared input, folded shared
 * expert, biases, residual multiplier, load counting) and a split projection's later part.
 */
import { describe, expect, it } from 'vitest';
import { moeMatmulKernel } from '../../codegen/kernels/moe.ts';
import type { MoeMatmulAttrs, StepShape } from '../../src/graph/ops.ts';
import { moeMatmul, moeSlots } from '../../src/ops/moe.ts';
import type { HostArray } from '../../src/ops/types.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';
import { LAYER, RMS, RMS_GEMMA } from '../helpers/matmul.ts';
import { words } from '../helpers/weights.ts';
import { encodeWeight } from '../../src/ops/weight-storage.ts';

const TOL = 1e-4;
const u32view = (f: Float32Array) => new Uint32Array(f.buffer, f.byteOffset, f.length);

function attrs(over: Partial<MoeMatmulAttrs>): MoeMatmulAttrs {
  return {
    op: 'moe_matmul',
    experts: 7,
    topK: 3,
    N: 21,
    K: 45,
    input: 'token',
    gated: true,
    act: 'silu',
    clamp: null,
    bias: false,
    grouped: false,
    expertStart: 0,
    expertCount: 7,
    wType: 'f32',
    ...over,
  };
}

const SOFTMAX = {
  scoring: 'softmax' as const,
  normalize: true,
  scale: 1,
  correctionBias: false,
  groups: 1,
  topkGroups: 1,
  load: true,
};

/** Random distinct ids per token (for nodes that read ids). */
function ids(T: number, E: number, K: number, seed: number): Uint32Array {
  const out = new Uint32Array(T * K);
  const r = randn(T * E, seed);
  for (let t = 0; t < T; t++) {
    const order = Array.from({ length: E }, (_, i) => i).sort(
      (p, q) => r[t * E + p] - r[t * E + q],
    );
    for (let j = 0; j < K; j++) out[t * K + j] = order[j];
  }
  return out;
}

/** Inputs the node's definition names, random (u32 ones given or zero). */
function inputsFor(a: MoeMatmulAttrs, T: number, seed: number): Record<string, HostArray> {
  const rules = moeMatmul.inputs(a);
  const out: Record<string, HostArray> = {};
  let s = seed;
  for (const [name, r] of Object.entries(rules)) {
    const n = r.shape.reduce<number>((m, d) => m * (d === 'T' ? T : (d as number)), 1);
    if (r.dtype === 'u32')
      out[name] = name === 'ids' ? ids(T, a.experts, a.topK, s) : new Uint32Array(n);
    else out[name] = randn(n, s++, name === 'logits' ? 2 : 0.5);
  }
  return out;
}

async function check(a: MoeMatmulAttrs, T: number, seed: number, tieLogits = false) {
  const caps = (await testGpu()).caps;
  const step: StepShape = { T, pos: 5, L: 1 };
  const inputs = inputsFor(a, T, seed);
  if (tieLogits && inputs.logits) {
    // Equal logits at several experts: ties rank the lower expert first.
    const l = inputs.logits as Float32Array;
    for (let t = 0; t < T; t++) l[t * a.experts + 4] = l[t * a.experts + 1] = l[t * a.experts + 2];
  }
  const copy = (x: HostArray) => (x instanceof Uint32Array ? x.slice() : Float32Array.from(x));
  const ref = moeMatmul.reference(
    a,
    Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, copy(v)])),
    step,
  );
  const { launches } = moeMatmulKernel(a, { caps, maxT: T });
  // q8 / q4 experts: the GPU reads the stored codes, the reference rounds the same values.
  const onGpu =
    a.wType === 'f32'
      ? inputs
      : { ...inputs, w: words(encodeWeight(a.wType, inputs.w as Float32Array, a.K)) };
  const outputs: Record<string, number> = {};
  for (const [name, r] of Object.entries(moeMatmul.outputs(a))) {
    if (name in inputs) continue;
    outputs[name] = r.shape.reduce<number>((m, d) => m * (d === 'T' ? T : (d as number)), 1);
  }
  const gpu = await runLaunches(launches, { inputs: onGpu, outputs, step });
  if (ref.ids) expect(Array.from(u32view(gpu.ids))).toEqual(Array.from(ref.ids));
  if (ref.weights) expect(maxRelError(gpu.weights, ref.weights as Float32Array)).toBeLessThan(TOL);
  if (ref.load) expect(Array.from(u32view(gpu.load))).toEqual(Array.from(ref.load));
  // Pairs of experts outside the node keep their (here: zero or earlier) rows on both sides.
  expect(maxRelError(gpu.out, ref.out as Float32Array)).toBeLessThan(TOL);
  return { ref, gpu };
}

describe('gate_up with the norm and routing folded in', () => {
  const cases: Array<[string, Partial<MoeMatmulAttrs>, number]> = [
    ['softmax top-3 of 7, K = 45, RMS', { prologue: RMS, route: SOFTMAX }, 1],
    // q4 / q8 experts, rows of 64 (two load units per lane step: moe-gemv.ts expertGroup).
    ['q4 experts, K = 64, RMS, 2 rows', { K: 64, wType: 'q4', prologue: RMS, route: SOFTMAX }, 2],
    ['q8 experts, K = 96, 1 row', { K: 96, N: 19, wType: 'q8', route: SOFTMAX }, 1],
    // Gemma 4: a per-expert scale on each finished weight, 2 rows.
    [
      'softmax with per-expert scales, RMS, 2 rows',
      { prologue: RMS, route: { ...SOFTMAX, expertScale: true } },
      2,
    ],
    [
      'softmax without renormalisation, ungated gelu with bias, LayerNorm, 3 rows, shared expert',
      {
        experts: 9,
        topK: 2,
        N: 16,
        K: 48,
        expertCount: 10,
        gated: false,
        act: 'gelu',
        bias: true,
        prologue: LAYER,
        route: { ...SOFTMAX, normalize: false, scale: 1.5 },
        sharedExperts: 1,
        sharedSlots: true,
      },
      3,
    ],
    [
      'grouped sigmoid with correction bias, Gemma norm, two shared slots, no load',
      {
        experts: 12,
        topK: 3,
        N: 20,
        K: 40,
        expertCount: 14,
        prologue: RMS_GEMMA,
        route: {
          ...SOFTMAX,
          scoring: 'sigmoid',
          correctionBias: true,
          groups: 4,
          topkGroups: 2,
          scale: 2.5,
          load: false,
        },
        sharedExperts: 2,
        sharedSlots: true,
      },
      2,
    ],
    [
      'GPT-OSS clamped biased SwiGLU',
      {
        experts: 5,
        topK: 2,
        N: 24,
        K: 48,
        expertCount: 5,
        act: null,
        bias: true,
        clamp: { limit: 7, alpha: 1.702 },
        prologue: RMS,
        route: SOFTMAX,
      },
      1,
    ],
    [
      'a batched step of 16 rows (past MOE_INLINE_MAX_ROWS): 11 experts top 3, shared slot, RMS',
      {
        experts: 11,
        topK: 3,
        N: 13,
        K: 45,
        expertCount: 12,
        prologue: RMS,
        route: SOFTMAX,
        sharedExperts: 1,
        sharedSlots: true,
      },
      16,
    ],
    [
      '300 experts (more than threads), top 4, routing only',
      { experts: 300, topK: 4, expertCount: 300, route: SOFTMAX },
      2,
    ],
  ];
  for (const [label, over, T] of cases) {
    it(label, async () => {
      await check(attrs(over), T, 11, true);
    });
  }

  it("a split projection's later part: the norm, its experts and the shared one, ids read", async () => {
    const a = attrs({
      experts: 6,
      expertStart: 3,
      expertCount: 4,
      prologue: RMS,
      sharedExperts: 1,
      sharedSlots: true,
    });
    const { ref } = await check(a, 2, 5);
    // Slot topK of each token is the shared expert (number 6, inside [3, 7)): computed.
    const S = moeSlots(a);
    const row = (ref.out as Float32Array).subarray(a.topK * a.N, S * a.N);
    expect(row.some((v) => v !== 0)).toBe(true);
  });
});

describe('down with the combine folded in', () => {
  const combine = { scale: 1, residual: true, shared: false, sharedGate: false, load: false };
  const cases: Array<[string, Partial<MoeMatmulAttrs>, number]> = [
    [
      'q4 experts, K = 64, residual, 3 rows',
      { input: 'pair', gated: false, act: null, N: 33, K: 64, wType: 'q4', combine },
      3,
    ],
    [
      'q8 experts, K = 32, residual and load',
      {
        input: 'pair',
        gated: false,
        act: null,
        N: 40,
        K: 32,
        wType: 'q8',
        combine: { ...combine, load: true },
      },
      1,
    ],
    [
      'residual, gated shared input, load, K = 21',
      {
        input: 'pair',
        gated: false,
        act: null,
        N: 45,
        K: 21,
        combine: { ...combine, shared: true, sharedGate: true, load: true },
      },
      1,
    ],
    [
      'folded shared expert with gate, biases, residual multiplier, 3 rows',
      {
        input: 'pair',
        gated: false,
        act: null,
        N: 48,
        K: 20,
        bias: true,
        expertCount: 8,
        sharedExperts: 1,
        sharedSlots: true,
        combine: { ...combine, shared: true, sharedGate: true, scale: 0.5 },
      },
      3,
    ],
    [
      'a batched step of 16 rows: 11 experts top 3, a gated shared slot, load',
      {
        input: 'pair',
        gated: false,
        act: null,
        experts: 11,
        N: 45,
        K: 13,
        expertCount: 12,
        sharedExperts: 1,
        sharedSlots: true,
        combine: { ...combine, shared: true, sharedGate: true, load: true },
      },
      16,
    ],
    [
      'no residual (sandwich norms), three shared slots of weight 1',
      {
        input: 'pair',
        gated: false,
        act: null,
        N: 33,
        K: 16,
        expertCount: 10,
        sharedExperts: 3,
        sharedSlots: true,
        combine: { ...combine, residual: false, shared: true },
      },
      2,
    ],
    [
      "a split projection's later part adds its experts (one of two shared slots) to out",
      {
        input: 'pair',
        gated: false,
        act: null,
        N: 30,
        K: 24,
        expertStart: 4,
        expertCount: 4,
        sharedExperts: 2,
        sharedSlots: true,
        combine: { ...combine, residual: false, shared: true, sharedGate: true },
      },
      2,
    ],
  ];
  for (const [label, over, T] of cases) {
    it(label, async () => {
      await check(attrs(over), T, 21);
    });
  }
});
