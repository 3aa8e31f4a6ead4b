/**
 * The chunk-parallel (multi-pass) prefill of the linear recurrence
 * (codegen/kernels/linear-recurrence-chunks.ts) against the f64 reference: every decay
 * (none, fixed, head, key) × update (add, delta, dplr), the normaliser, awkward shapes (T = 1, T not a
 * multiple of the chunk, T over many chunks, keyDim ≠ valueDim, odd dims, 3 and 6 heads with q/k
 * heads repeated and gate heads shared), the fused prologues (feature maps, l2 norms, RoPE,
 * β and g expressions), position 0 with junk in the state buffer, and prefill then decode.
 *
 * Tolerance: max |gpu − ref| / max |ref| ≤ 1e-4 over the outputs and over the final state, the
 * existing linear-recurrence kernels' (test/kernels/linear-recurrence.test.ts): f32 kernels
 * against an f64 reference whose worst measured cases sit well below (the log prints them). The
 * multi-pass form sums in a different order from the single kernel (block Gram products, the
 * WY/UT solve) but every term is bounded the same way (decays ≤ 1, unit keys for delta, and for
 * dplr RWKV-7's a = kk·α, b = −kk with kk a unit row), so the same bound holds.
 */
import { describe, expect, it } from 'vitest';
import { multiPass, multiPassPlan } from '../../codegen/kernels/linear-recurrence-chunks.ts';
import { linearRecurrenceKernel } from '../../codegen/kernels/linear-recurrence.ts';
import type { GeneratedOp } from '../../codegen/kernels/types.ts';
import type { LinearRecurrenceAttrs, StepShape } from '../../src/graph/ops.ts';
import { linearRecurrence } from '../../src/ops/linear-recurrence.ts';
import { BASELINE_CAPS, type DeviceCaps } from '../../src/target.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError, rng } from '../helpers/numeric.ts';
import {
  attrs,
  data as plainData,
  gdnAttrs,
  glaAttrs,
  reference,
  retAttrs,
  runRecurrence,
  uniform,
  type Inputs,
} from '../helpers/linear-recurrence.ts';

const TOL = 1e-4;

/** One state head (q, k, v and gate heads one each). */
const oneHead = (o: Partial<LinearRecurrenceAttrs>) =>
  attrs({ heads: 1, qHeads: 1, kHeads: 1, vHeads: 1, gateHeads: 1, ...o });

/**
 * SwiftShader's pipeline compile time grows with a kernel's workgroup memory (seconds per pass at
 * C = 64), so most cases run at C = 16 on a device of 8 KiB workgroup memory; the same code at
 * other chunk sizes differs only in constants, and 'runs C = 64' checks the H200's chunk.
 */
async function smallCaps(): Promise<DeviceCaps> {
  const { caps } = await testGpu();
  return { ...caps, maxWorkgroupStorageBytes: 8 * 1024 };
}

/**
 * Inputs for `rows` tokens, as the single kernels' tests draw them: unit keys for delta (β ∈ (0,
 * 1) keeps the update contractive), positive q and k with normalize, log decays in [−1, 0]; with a
 * prologue every rule's shape from [−2, 2] (g [−1, 0], state [−0.5, 2]).
 */
function data(a: LinearRecurrenceAttrs, rows: number, seed: number): Inputs {
  if (!a.prologue) return plainData(a, rows, seed);
  const r = rng(seed);
  const inp: Inputs = {};
  for (const [name, rule] of Object.entries(linearRecurrence.inputs(a))) {
    const n = rule.shape.reduce<number>((p, d) => p * (typeof d === 'number' ? d : rows), 1);
    const [lo, hi] = name === 'state' ? [-0.5, 2] : name === 'g' ? [-1, 0] : [-2, 2];
    inp[name] = uniform(n, r, lo, hi);
  }
  return inp;
}

function passes(a: LinearRecurrenceAttrs, caps: DeviceCaps, maxT: number): GeneratedOp {
  const gen = multiPass(a, caps, maxT);
  if (typeof gen === 'string') throw new Error(gen);
  return gen;
}

const errors: string[] = [];

async function check(
  a: LinearRecurrenceAttrs,
  T: number,
  pos: number,
  seed: number,
  maxT = T,
  caps?: DeviceCaps,
) {
  caps ??= await smallCaps();
  const inp = data(a, maxT, seed);
  if (pos === 0) inp.state.fill(NaN); // must be ignored: a new sequence starts from zeros
  const step = { T, pos, L: 1 };
  const gen = passes(a, caps, maxT);
  const got = await runRecurrence(gen, a, inp, maxT, step);
  const want = reference(a, inp, step);
  const err = { out: maxRelError(got.out, want.out), state: maxRelError(got.state, want.state) };
  const plan = multiPassPlan(a, caps, maxT);
  const C = typeof plan === 'string' ? '?' : plan.C;
  errors.push(
    `${a.decay}/${a.update}${a.normalize ? '/norm' : ''}${a.prologue ? '/prologue' : ''} dk${a.keyDim} dv${a.valueDim} h${a.heads} C${C} T${T} pos${pos}: out ${err.out.toExponential(1)} state ${err.state.toExponential(1)}`,
  );
  expect(got.out.every(Number.isFinite)).toBe(true);
  expect(err.out).toBeLessThanOrEqual(TOL);
  expect(err.state).toBeLessThanOrEqual(TOL);
}

describe('linear_recurrence multi-pass prefill against the reference', () => {
  for (const decay of ['none', 'fixed', 'head', 'key'] as const) {
    for (const update of ['add', 'delta', 'dplr'] as const) {
      for (const normalize of update === 'add' ? [false, true] : [false]) {
        const a = attrs({ decay, update, normalize });
        it(`${decay} decay, ${update}${normalize ? ', normalized' : ''}: T = 1, partial chunks`, async () => {
          await check(a, 1, 0, 1, 160);
          await check(a, 37, 0, 2, 160);
          await check(a, 150, 5, 3, 160);
        });
      }
    }
  }

  const shapes: [string, Partial<LinearRecurrenceAttrs>][] = [
    ['keyDim 33, valueDim 5', { keyDim: 33, valueDim: 5 }],
    ['keyDim 16, valueDim 70', { keyDim: 16, valueDim: 70 }],
    ['3 heads sharing one q head', { heads: 3, qHeads: 1, kHeads: 3, vHeads: 3, gateHeads: 3 }],
    [
      '6 heads, q/k heads 3, gate heads 2, v heads 3',
      { heads: 6, qHeads: 3, kHeads: 3, vHeads: 3, gateHeads: 2 },
    ],
  ];
  // Each shape once, the decay and update alternating (compiles dominate SwiftShader's time).
  const kinds = [
    ['key', 'delta'],
    ['head', 'add'],
    ['key', 'dplr'],
  ] as const;
  for (const [n, [name, over]] of shapes.entries()) {
    const [decay, update] = kinds[n % kinds.length];
    it(`${name}: ${decay} decay, ${update}`, async () => {
      await check(attrs({ ...over, decay, update }), 83, 3, 12, 90);
    });
  }

  it('dplr with q/k heads 3, gate (a, b, decay) heads 2 and v heads 3 of 6', async () => {
    const over = { heads: 6, qHeads: 3, kHeads: 3, vHeads: 3, gateHeads: 2 };
    await check(attrs({ ...over, decay: 'key', update: 'dplr' }), 83, 3, 13, 90);
  });

  it('normalizes with per-key decay and shared heads', async () => {
    const a = attrs({
      heads: 6,
      qHeads: 3,
      kHeads: 2,
      vHeads: 6,
      gateHeads: 3,
      decay: 'key',
      update: 'add',
      normalize: true,
      keyDim: 16,
      valueDim: 33,
    });
    await check(a, 70, 4, 22);
  });

  it('runs C = 64 (the chunk a 32 KiB device takes)', async () => {
    const { caps } = await testGpu();
    const a = attrs({ decay: 'key', update: 'delta', keyDim: 16, valueDim: 9 });
    const plan = multiPassPlan(a, caps, 200);
    expect(typeof plan !== 'string' && plan.C).toBe(64);
    await check(a, 200, 3, 41, 200, caps);
  });

  it('dplr at the chunk the device takes, at T = 1, C − 1, C, C + 1, 3C + 5', async () => {
    const { caps } = await testGpu();
    const a = attrs({ decay: 'key', update: 'dplr', keyDim: 16, valueDim: 9 });
    const plan = multiPassPlan(a, caps, 200);
    if (typeof plan === 'string') throw new Error(plan);
    expect(plan.C).toBeGreaterThanOrEqual(32);
    for (const T of [1, plan.C - 1, plan.C, plan.C + 1, 3 * plan.C + 5])
      await check(a, T, 3, 70 + T, 3 * plan.C + 5, caps);
  });

  it('spans many chunks: T = 1100', async () => {
    for (const a of [
      oneHead({ decay: 'key', update: 'dplr', keyDim: 8, valueDim: 6 }),
      oneHead({ decay: 'head', update: 'delta', keyDim: 8, valueDim: 6 }),
      oneHead({ decay: 'key', update: 'add', keyDim: 6, valueDim: 8 }),
    ]) {
      await check(a, 1100, 0, 31);
    }
  });
});

describe('linear_recurrence multi-pass with a fused prologue', () => {
  const gdn = gdnAttrs();

  const gla = glaAttrs();

  const ret = retAttrs(128);

  for (const [name, a] of [
    ['gated DeltaNet norms and gates', gdn],
    ['GLA-like feature maps and gate', gla],
    ['RetNet RoPE on q and k', ret],
  ] as const) {
    it(name, async () => {
      await check(a, 77, 2, 61, 80);
    });
  }
});

function multiPassPlanOf(a: LinearRecurrenceAttrs) {
  const plan = multiPassPlan(a, BASELINE_CAPS, 4096);
  if (typeof plan === 'string') throw new Error(plan);
  return plan;
}

/** A model-sized layer (16 heads of 128 × 128) for the plan and launch-choice checks. */
const large = () =>
  attrs({
    keyDim: 128,
    valueDim: 128,
    heads: 16,
    qHeads: 16,
    kHeads: 16,
    vHeads: 16,
    gateHeads: 16,
  });

describe('linear_recurrence multi-pass continuation and choice', () => {
  it('prefill(T) then decode steps equal prefill(T + 2)', async () => {
    const caps = await smallCaps();
    for (const a of [
      attrs({ decay: 'head', update: 'delta', keyDim: 16, valueDim: 9 }),
      attrs({ decay: 'key', update: 'add', keyDim: 8, valueDim: 8, normalize: true }),
      attrs({ decay: 'key', update: 'dplr', keyDim: 8, valueDim: 9 }),
    ]) {
      const T = 70;
      const width = a.heads * a.valueDim;
      const inp = data(a, T + 2, 400);
      const full = await runRecurrence(passes(a, caps, T + 2), a, inp, T + 2, {
        T: T + 2,
        pos: 0,
        L: 1,
      });
      const pre = await runRecurrence(passes(a, caps, T), a, inp, T + 2, { T, pos: 0, L: 1 });
      let state = pre.state;
      for (const s of [T, T + 1]) {
        const one: Inputs = { state };
        for (const [n, xs] of Object.entries(inp)) {
          if (n === 'state') continue;
          const w = xs.length / (T + 2);
          one[n] = n === 'g' && a.decay === 'fixed' ? xs : xs.slice(s * w, (s + 1) * w);
        }
        const dec = linearRecurrenceKernel(a, { caps, maxT: 1 });
        expect(dec.launches[0].kernel.name).toContain('_recurrent_');
        const got = await runRecurrence(dec, a, one, 1, { T: 1, pos: s, L: 1 });
        expect(
          maxRelError(got.out, full.out.subarray(s * width, (s + 1) * width)),
        ).toBeLessThanOrEqual(TOL);
        state = got.state;
      }
      expect(maxRelError(state, full.state)).toBeLessThanOrEqual(TOL);
    }
  });

  it('runs the passes past one chunk, the single kernel within one (dplr: token by token)', () => {
    const a = large();
    const plan = multiPassPlan(a, BASELINE_CAPS, 4096);
    if (typeof plan === 'string') throw new Error(plan);
    const names = (maxT: number, b = a) =>
      linearRecurrenceKernel(b, { caps: BASELINE_CAPS, maxT }).launches.map((l) => l.kernel.name);
    expect(names(4096).map((n) => n.split('_')[2])).toEqual(['prep', 'pass', 'out']);
    expect(names(plan.C)[0]).toContain('_chunk');
    const dplr: LinearRecurrenceAttrs = { ...a, update: 'dplr', decay: 'key' };
    expect(names(4096, dplr).map((n) => n.split('_')[2])).toEqual(['prep', 'pass', 'out']);
    expect(names(multiPassPlanOf(dplr).C, dplr)[0]).toContain('_recurrent_');
    expect(names(1, dplr)[0]).toContain('_recurrent_');
    for (const b of [a, dplr]) {
      for (const l of linearRecurrenceKernel(b, { caps: BASELINE_CAPS, maxT: 4096 }).launches) {
        expect(l.kernel.bindings.length - 1).toBeLessThanOrEqual(
          BASELINE_CAPS.maxStorageBuffersPerStage,
        );
      }
    }
  });

  it('splits a step whose scratch passes the binding limit into segments, and names the limit', () => {
    const a = large();
    // A 48 KiB device (the H200's) takes chunks of 64: at 65536 tokens 1 GiB of states and 1 GiB
    // of w and decayed keys, one segment under a 2 GiB binding.
    const h200 = {
      ...BASELINE_CAPS,
      maxWorkgroupStorageBytes: 49152,
      maxStorageBindingBytes: 2 ** 31 - 4,
      maxBufferBytes: 2 ** 40,
    };
    const big = multiPassPlan(a, h200, 65536);
    if (typeof big === 'string') throw new Error(big);
    expect([big.C, big.segment, big.scratch.lr_states]).toEqual([64, 65536, 2 ** 30]);
    // WebGPU's 128 MiB binding: chunks of 32 (16 KiB), 32 KiB of states per token, 16 segments.
    const base = multiPassPlan(a, BASELINE_CAPS, 65536);
    if (typeof base === 'string') throw new Error(base);
    expect([base.C, base.segment]).toEqual([32, 4096]);
    const gen = linearRecurrenceKernel(a, { caps: BASELINE_CAPS, maxT: 65536 });
    expect(gen.launches.length).toBe(3 * 16);
    expect(Math.max(...Object.values(gen.scratch))).toBeLessThanOrEqual(128 * 1024 * 1024);
    // Past MAX_SEGMENTS the reason names the limit, and the single kernel runs.
    const why = multiPassPlan(a, BASELINE_CAPS, 1 << 20);
    expect(why).toMatch(/maxT 1048576 needs 256 segments of 4096 tokens .*storage binding limit/);
    const one = linearRecurrenceKernel(a, { caps: BASELINE_CAPS, maxT: 1 << 20 });
    expect(one.launches.map((l) => l.kernel.name)).toHaveLength(1);
    expect(one.launches[0].kernel.name).toContain('_chunk');
  });

  it('runs a step over segments: each continues from the state the last wrote', async () => {
    // 2600 bytes a binding: 32 tokens (two chunks of 16) of w and decayed keys per segment.
    const caps = { ...(await smallCaps()), maxStorageBindingBytes: 2600, maxBufferBytes: 2600 };
    for (const a of [attrs({}), attrs({ decay: 'key', update: 'add', normalize: true })]) {
      const plan = multiPassPlan(a, caps, 80);
      if (typeof plan === 'string') throw new Error(plan);
      // Segments of 32 (delta: w and decayed keys) or 48 ('add': decayed keys only) tokens.
      expect(plan.segment).toBe(a.update === 'delta' ? 32 : 48);
      await check(a, 80, 0, 51, 80, caps);
      await check(a, 40, 3, 52, 80, caps); // into the second segment; any third returns at once
    }
  });

  it('logs the measured errors', () => {
    console.log(
      `linear_recurrence multi-pass errors (max |Δ| / max |ref|):\n  ${errors.join('\n  ')}`,
    );
  });
});
