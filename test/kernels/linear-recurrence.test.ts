/**
 * The linear recurrence kernels against the f64 CPU reference (src/ops/linear-recurrence.ts),
 * on random inputs: every decay (none, fixed, head, key) × update (add, delta, dplr), the
 * normaliser, awkward sizes (key/value dims 1, 5, 16, 33; heads shared 3:1, key heads repeated
 * to 6 value heads, gate heads ≠ heads), in the recurrent form (decode, and dplr's prefill) and
 * the chunked form (over one chunk, several, and a partial last one). Where the generator picks
 * the multi-pass form (maxT past one of its chunks: the 70-token and 16384-token cases here) the
 * same checks run it; test/kernels/linear-recurrence-chunks.test.ts covers it on its own.
 *
 * Tolerance: max |gpu − ref| / max |ref| ≤ 1e-4 over all outputs, and over the final state
 * (f32 kernels against an f64 reference; measured worst cases are far below, see the log).
 * The issue's acceptance checks: chunked and recurrent forms agree within 1e-4 at T = 1, C − 1,
 * C, C + 1, 3C + 5; prefill(T) then one decode step equals prefill(T + 1); decays stay finite and
 * correct over 16384 tokens with strong decay (g ≈ −5 a step) and with none; position 0 ignores
 * whatever the state buffer holds.
 */
import { describe, expect, it } from 'vitest';
import {
  chunkTokens,
  linearRecurrenceKernel,
  recurrenceForm,
  recurrenceLaunch,
  type RecurrenceForm,
} from '../../codegen/kernels/linear-recurrence.ts';
import type { LinearRecurrenceAttrs, PointwiseInput, StepShape } from '../../src/graph/ops.ts';
import { linearRecurrence } from '../../src/ops/linear-recurrence.ts';
import { batchedDefinition } from '../../src/ops/batch.ts';
import { norm } from '../../src/ops/norm.ts';
import { rope } from '../../src/ops/rope.ts';
import { pointwise } from '../../src/ops/pointwise.ts';
import { BASELINE_CAPS, type DeviceCaps } from '../../src/target.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, rng } from '../helpers/numeric.ts';
import {
  attrs,
  data,
  gdnAttrs,
  glaAttrs,
  half,
  perHead,
  reference,
  retAttrs,
  runRecurrence,
  same,
  uniform,
  VH,
  x,
  type Inputs,
} from '../helpers/linear-recurrence.ts';

const TOL = 1e-4;
const SENTINEL = 31337;

type Decay = LinearRecurrenceAttrs['decay'];
type Update = LinearRecurrenceAttrs['update'];

async function runGpu(
  a: LinearRecurrenceAttrs,
  inp: Inputs,
  maxT: number,
  step: StepShape,
  form: RecurrenceForm | null,
  caps: DeviceCaps,
) {
  // The generator's choice may be the multi-pass form, whose launches share scratch buffers.
  const gen =
    form === null
      ? linearRecurrenceKernel(a, { caps, maxT })
      : { launches: [recurrenceLaunch(a, caps, form)], scratch: {} };
  // Rows at and beyond T are never written (runRecurrence checks).
  return runRecurrence(gen, a, inp, maxT, step);
}

const errors: string[] = [];

/** The kernel the generator picks for maxT against the reference; returns the errors. */
async function checkAgainstReference(
  a: LinearRecurrenceAttrs,
  T: number,
  pos: number,
  seed: number,
  maxT = T,
): Promise<{ out: number; state: number }> {
  const { caps } = await testGpu();
  const inp = data(a, maxT, seed);
  if (pos === 0) inp.state.fill(-1e4); // must be ignored: a new sequence starts from zeros
  const step = { T, pos, L: 1 };
  const got = await runGpu(a, inp, maxT, step, null, caps);
  const want = reference(a, inp, step);
  const err = { out: maxRelError(got.out, want.out), state: maxRelError(got.state, want.state) };
  const form = recurrenceForm(a, caps, maxT);
  const multi = linearRecurrenceKernel(a, { caps, maxT }).launches.length > 1;
  errors.push(
    `${a.decay}/${a.update}${a.normalize ? '/norm' : ''} ${multi ? 'multi-pass' : form.kind === 'chunked' ? `C${form.C}` : 'rec'} T${T} pos${pos}: out ${err.out.toExponential(1)} state ${err.state.toExponential(1)}`,
  );
  expect(err.out).toBeLessThanOrEqual(TOL);
  expect(err.state).toBeLessThanOrEqual(TOL);
  return err;
}

const DECAYS: Decay[] = ['none', 'fixed', 'head', 'key'];
const UPDATES: Update[] = ['add', 'delta', 'dplr'];

describe('linear_recurrence kernels against the reference', () => {
  for (const decay of DECAYS) {
    for (const update of UPDATES) {
      for (const normalize of update === 'add' ? [false, true] : [false]) {
        const a = attrs({ decay, update, normalize });
        const name = `${decay} decay, ${update}${normalize ? ', normalized' : ''}`;
        // T = 1 with maxT 1 is decode (recurrent); 37 tokens are two chunks, the last partial.
        it(`${name}: decode, and prefill over chunks`, async () => {
          await checkAgainstReference(a, 1, 3, 1);
          await checkAgainstReference(a, 37, 0, 2, 40);
          await checkAgainstReference(a, 37, 5, 3, 40);
        });
      }
    }
  }

  const shapes: [string, Partial<LinearRecurrenceAttrs>][] = [
    ['keyDim 1, valueDim 1', { keyDim: 1, valueDim: 1 }],
    ['keyDim 33, valueDim 5', { keyDim: 33, valueDim: 5 }],
    ['keyDim 16, valueDim 33', { keyDim: 16, valueDim: 33 }],
    ['valueDim 70 (two workgroups per head)', { keyDim: 5, valueDim: 70 }],
    ['3 heads sharing one q head', { heads: 3, qHeads: 1, kHeads: 3, vHeads: 3, gateHeads: 3 }],
    [
      '6 heads, k heads 3, v and gate heads 6',
      { heads: 6, qHeads: 3, kHeads: 3, vHeads: 6, gateHeads: 6 },
    ],
    [
      '6 heads, gate heads 2, v heads 3',
      { heads: 6, qHeads: 6, kHeads: 2, vHeads: 3, gateHeads: 2 },
    ],
  ];
  for (const [name, over] of shapes) {
    for (const [decay, update] of [
      ['key', 'delta'],
      ['head', 'add'],
      ['key', 'dplr'],
    ] as const) {
      it(`${name}: ${decay} decay, ${update}`, async () => {
        const a = attrs({ ...over, decay, update });
        await checkAgainstReference(a, 1, 2, 11);
        await checkAgainstReference(a, 45, 0, 12, 45);
      });
    }
  }

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
    await checkAgainstReference(a, 1, 4, 21);
    await checkAgainstReference(a, 70, 4, 22);
  });
});

describe('linear_recurrence acceptance', () => {
  const cases: LinearRecurrenceAttrs[] = [
    attrs({ decay: 'head', update: 'delta', keyDim: 16, valueDim: 16 }),
    attrs({ decay: 'key', update: 'delta', keyDim: 16, valueDim: 9 }),
    attrs({ decay: 'key', update: 'add', keyDim: 8, valueDim: 8, normalize: true }),
    attrs({ decay: 'fixed', update: 'add', keyDim: 33, valueDim: 5 }),
  ];

  it('chunked and recurrent forms agree within 1e-4 at T = 1, C − 1, C, C + 1, 3C + 5', async () => {
    const { caps } = await testGpu();
    for (const [ci, a] of cases.entries()) {
      const C = chunkTokens(a, caps);
      for (const T of [1, C - 1, C, C + 1, 3 * C + 5]) {
        const inp = data(a, T, 100 + ci + T);
        const step = { T, pos: 3, L: 1 };
        const rec = await runGpu(a, inp, T, step, { kind: 'recurrent' }, caps);
        const chk = await runGpu(a, inp, T, step, { kind: 'chunked', C }, caps);
        const err = Math.max(maxRelError(chk.out, rec.out), maxRelError(chk.state, rec.state));
        errors.push(
          `chunked vs recurrent ${a.decay}/${a.update} C${C} T${T}: ${err.toExponential(1)}`,
        );
        expect(err).toBeLessThanOrEqual(1e-4);
      }
    }
  });

  it('prefill(T) then one decode step equals prefill(T + 1)', async () => {
    const { caps } = await testGpu();
    for (const a of [...cases, attrs({ decay: 'key', update: 'dplr' })]) {
      const width = a.heads * a.valueDim;
      for (const T of [1, 9, 40]) {
        const inp = data(a, T + 1, 400 + T);
        const full = await runGpu(a, inp, T + 1, { T: T + 1, pos: 0, L: 1 }, null, caps);
        const pre = await runGpu(a, inp, T + 1, { T, pos: 0, L: 1 }, null, caps);
        // The decode step's inputs: row T of every per-token input.
        const one: Inputs = { state: pre.state };
        for (const [name, x] of Object.entries(inp)) {
          if (name === 'state') continue;
          const w = x.length / (T + 1);
          one[name] = name === 'g' && a.decay === 'fixed' ? x : x.slice(T * w, (T + 1) * w);
        }
        const dec = await runGpu(a, one, 1, { T: 1, pos: T, L: 1 }, null, caps);
        expect(maxRelError(dec.out, full.out.subarray(T * width))).toBeLessThanOrEqual(TOL);
        expect(maxRelError(dec.state, full.state)).toBeLessThanOrEqual(TOL);
      }
    }
  });

  // Strong decay (g ≈ −5 a step: e^G underflows to 0 within a chunk) and none at all (state
  // sums grow over 16k tokens); small dims keep SwiftShader to seconds.
  const LONG = 16384;
  const one = (o: Partial<LinearRecurrenceAttrs>) =>
    attrs({
      heads: 1,
      qHeads: 1,
      kHeads: 1,
      vHeads: 1,
      gateHeads: 1,
      keyDim: 4,
      valueDim: 4,
      ...o,
    });
  for (const [name, a, g] of [
    ['strong head decay, delta', one({ decay: 'head', update: 'delta' }), [-6, -4]],
    ['strong key decay, add', one({ decay: 'key', update: 'add' }), [-6, -4]],
    ['no decay, add', one({ decay: 'none', update: 'add' }), [0, 0]],
    ['key decay of zeros, delta', one({ decay: 'key', update: 'delta' }), [0, 0]],
    ['strong key decay, dplr', one({ decay: 'key', update: 'dplr' }), [-6, -4]],
    ['key decay of zeros, dplr', one({ decay: 'key', update: 'dplr' }), [0, 0]],
  ] as const) {
    it(`stays finite and correct over ${LONG} tokens: ${name}`, async () => {
      const { caps } = await testGpu();
      const inp = data(a, LONG, 7, { g });
      const step = { T: LONG, pos: 0, L: 1 };
      const t0 = performance.now();
      const got = await runGpu(a, inp, LONG, step, null, caps);
      const ms = performance.now() - t0;
      const want = reference(a, inp, step);
      const err = {
        out: maxRelError(got.out, want.out),
        state: maxRelError(got.state, want.state),
      };
      const passes = linearRecurrenceKernel(a, { caps, maxT: LONG }).launches.length;
      errors.push(
        `${LONG} tokens, ${name} (${passes} launches): out ${err.out.toExponential(1)} state ${err.state.toExponential(1)}, GPU ${ms.toFixed(0)} ms`,
      );
      expect(got.out.every(Number.isFinite)).toBe(true);
      expect(err.out).toBeLessThanOrEqual(TOL);
      expect(err.state).toBeLessThanOrEqual(TOL);
    });
  }

  it('ignores the old state at position 0 and reads it after', async () => {
    const { caps } = await testGpu();
    for (const a of cases) {
      for (const maxT of [1, 20]) {
        const inp = data(a, maxT, 900);
        const step0 = { T: maxT, pos: 0, L: 1 };
        const zeros = await runGpu(
          a,
          { ...inp, state: inp.state.map(() => 0) },
          maxT,
          step0,
          null,
          caps,
        );
        const junk = await runGpu(
          a,
          { ...inp, state: inp.state.map(() => NaN) },
          maxT,
          step0,
          null,
          caps,
        );
        expect(junk.out).toEqual(zeros.out);
        expect(junk.state).toEqual(zeros.state);
        const later = await runGpu(a, inp, maxT, { ...step0, pos: 1 }, null, caps);
        expect(maxRelError(later.out, zeros.out)).toBeGreaterThan(1e-3);
      }
    }
  });
});

describe('linear_recurrence with a fused prologue', () => {
  const gla = glaAttrs();

  /** Gated DeltaNet: l2 norms of q and k, β and g from one b|a tensor and two parameters. */
  const gdn = gdnAttrs();

  /**
   * Gated DeltaNet from one in_proj row (recurrence-conv-row): q, k, v, β and g all read
   * column ranges of in_row, q | k | v | z | b | a, through one binding.
   */
  const RC = 2 * 16 + 2 * 16 + 2 * VH * 9 + 2 * VH;
  const col = (inner: number, offset: number): PointwiseInput => ({
    perToken: true,
    cols: RC,
    inner,
    repeat: 1,
    offset,
  });
  const gdnRow = attrs({
    ...gdn,
    prologue: {
      exprs: {
        q: { inputs: { in_row: col(32, 0) }, expr: x('in_row') },
        k: { inputs: { in_row: col(32, 32) }, expr: x('in_row') },
        v: { inputs: { in_row: col(VH * 9, 64) }, expr: x('in_row') },
        beta: {
          inputs: { in_row: col(VH, 64 + 2 * VH * 9) },
          expr: { fn: 'sigmoid', x: x('in_row') },
        },
        g: {
          inputs: { in_row: col(VH, 64 + 2 * VH * 9 + VH), in_aLog: perHead, in_dtBias: perHead },
          expr: {
            fn: 'neg',
            x: {
              bin: 'mul',
              a: { fn: 'exp', x: x('in_aLog') },
              b: { fn: 'softplus', x: { bin: 'add', a: x('in_row'), b: x('in_dtBias') } },
            },
          },
        },
      },
      l2: { q: 1e-6, k: 1e-6 },
    },
  });

  /**
   * RetNet-like: RoPE on q and k from shared tables over 6 of each head's 8 columns, a fixed
   * decay per head; q rotated after an elu+1 and k l2-normed after its rotation (the order the
   * prologue applies them in).
   */
  const ret = retAttrs(64);

  /** Inputs for the fused node: each rule's shape filled uniformly from [−2, 2] (g from [−1, 0]). */
  function fusedData(a: LinearRecurrenceAttrs, rows: number, seed: number): Inputs {
    const r = rng(seed);
    const inp: Inputs = {};
    for (const [name, rule] of Object.entries(linearRecurrence.inputs(a))) {
      const n = rule.shape.reduce<number>((p, d) => p * (typeof d === 'number' ? d : rows), 1);
      // A log decay read as it is must be ≤ 0.
      const [lo, hi] = name === 'state' ? [-0.5, 2] : name === 'g' ? [-1, 0] : [-2, 2];
      inp[name] = uniform(n, r, lo, hi);
    }
    return inp;
  }

  /** The unfused computation: the folded ops' references, then the plain recurrence's. */
  function unfused(a: LinearRecurrenceAttrs, inp: Inputs, step: StepShape) {
    const p = a.prologue!;
    const plain: LinearRecurrenceAttrs = { ...a, prologue: undefined };
    const own = linearRecurrence.inputs(plain);
    const eff: Inputs = { ...inp, state: inp.state.slice() };
    for (const [target, e] of Object.entries(p.exprs)) {
      const width = own[target].shape[1] as number;
      eff[target] = pointwise.reference({ op: 'pointwise', width, ...e }, inp, step)
        .out as Float32Array;
    }
    for (const target of p.rope?.of ?? []) {
      const heads = (own[target].shape[1] as number) / a.keyDim;
      const r = {
        op: 'rope',
        heads,
        headDim: a.keyDim,
        rotaryDim: p.rope!.rotaryDim,
        capacity: p.rope!.capacity,
      } as const;
      const tables = { x: eff[target], cos: inp.rope_cos, sin: inp.rope_sin };
      eff[target] = rope.reference({ ...r, pairs: 'half' }, tables, step).out as Float32Array;
    }
    for (const [target, eps] of Object.entries(p.l2)) {
      const width = own[target].shape[1] as number;
      const n = {
        op: 'norm',
        norm: { kind: 'l2', eps },
        width,
        group: a.keyDim,
        residual: false,
      } as const;
      eff[target] = norm.reference(n, { x: eff[target] }, step).out as Float32Array;
    }
    return linearRecurrence.reference(plain, eff, step);
  }

  for (const [name, a] of [
    ['GLA-like feature maps and gate', gla],
    ['gated DeltaNet norms and gates', gdn],
    ['gated DeltaNet from one row (v an expression too)', gdnRow],
    ['RetNet RoPE on q and k', ret],
  ] as const) {
    it(`${name}: the reference equals the unfused ops, and both forms match it`, async () => {
      const { caps } = await testGpu();
      for (const [T, maxT] of [
        [1, 1],
        [45, 45],
      ]) {
        const inp = fusedData(a, maxT, 60 + T);
        const step = { T, pos: 2, L: 1 };
        const want = reference(a, inp, step);
        const plain = unfused(a, inp, step);
        expect(want.out).toEqual(plain.out);
        expect(want.state).toEqual(plain.state);
        const got = await runGpu(a, inp, maxT, step, null, caps);
        const err = {
          out: maxRelError(got.out, want.out),
          state: maxRelError(got.state, want.state),
        };
        errors.push(
          `fused ${name} T${T}: out ${err.out.toExponential(1)} state ${err.state.toExponential(1)}`,
        );
        expect(err.out).toBeLessThanOrEqual(TOL);
        expect(err.state).toBeLessThanOrEqual(TOL);
      }
    });
  }

  // recurrence-low-rank: GLA's gate input computed in the recurrence, b + W x of rank 5.
  it('a low-rank gate input: the reference equals computing it first, and both forms match it', async () => {
    const { caps } = await testGpu();
    const lowRank = { name: 'in_xg', rank: 5, cols: 32, bias: true };
    const lr = { ...gla, prologue: { ...gla.prologue!, lowRank } };
    expect(Object.keys(linearRecurrence.inputs(lr))).toEqual(
      expect.arrayContaining(['in_xg_x', 'in_xg_w', 'in_xg_b']),
    );
    expect(linearRecurrence.inputs(lr).in_xg).toBeUndefined();
    for (const [T, maxT] of [
      [1, 1],
      [45, 45],
    ]) {
      const inp = fusedData(lr, maxT, 90 + T);
      const step = { T, pos: 2, L: 1 };
      const want = reference(lr, inp, step);
      const xg = new Float32Array(maxT * 32);
      for (let t = 0; t < maxT; t++)
        for (let c = 0; c < 32; c++) {
          let s = inp.in_xg_b[c];
          for (let k = 0; k < 5; k++) s += inp.in_xg_w[c * 5 + k] * inp.in_xg_x[t * 5 + k];
          xg[t * 32 + c] = s;
        }
      const plain = reference(gla, { ...inp, in_xg: xg }, step);
      expect(maxRelError(want.out, plain.out)).toBeLessThanOrEqual(1e-6);
      const got = await runGpu(lr, inp, maxT, step, null, caps);
      expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
      expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
    }
  });

  // Batched decode (src/ops/batch.ts): row s is sequence s's one token at the shared pos, its
  // state slice s; the batched reference runs the single one per row. A fused RoPE rotates
  // every row at pos, or at pos + row_pos[s] when the sequences sit apart (slots prefilled from
  // prompts of different lengths; codegen/kernel-ir.ts ROW_POS); the normaliser's z is per
  // sequence too.
  const B = 3;
  for (const [name, a] of [
    ['GLA-like feature maps and gate (normalized)', gla],
    ['gated DeltaNet norms and gates', gdn],
    ['RetNet RoPE on q and k', ret],
    ['RWKV-7-like dplr', attrs({ decay: 'key', update: 'dplr', keyDim: 8, valueDim: 70 })],
  ] as const) {
    it(`${name}: a batch of ${B} sequences matches the batched reference`, async () => {
      const { caps } = await testGpu();
      const ab = { ...a, batch: B };
      const def = batchedDefinition(linearRecurrence);
      const cases: [number, number[] | undefined][] = [
        [0, undefined],
        [5, undefined],
        [5, [0, 3, 7]],
      ];
      for (const [pos, rowPos] of cases) {
        // Per-sequence state: B slices (fusedData gives one; three draws make three).
        const inp = fusedData(a, B, 70 + pos);
        inp.state = Float32Array.from(
          { length: B * inp.state.length },
          (_, i) =>
            fusedData(a, B, 80 + pos + Math.floor(i / inp.state.length)).state[
              i % inp.state.length
            ],
        );
        if (pos === 0) inp.state.fill(NaN); // ignored at position 0 in every slice
        const step = { T: B, pos, L: 1, ...(rowPos ? { rowPos } : {}) };
        const want = def.reference(ab, { ...inp, state: inp.state.slice() }, step);
        const row_pos = Uint32Array.from(rowPos ?? [0, 0, 0]);
        const { launches } = linearRecurrenceKernel(ab, { caps, maxT: B });
        expect(launches[0].kernel.name).toMatch(/_recurrent_.*_batched$/);
        const out = new Float32Array(B * a.heads * a.valueDim).fill(SENTINEL);
        const got = await runLaunches(launches, {
          inputs: { ...inp, state: inp.state.slice(), out, row_pos },
          step,
        });
        const err = {
          out: maxRelError(got.out, want.out as Float32Array),
          state: maxRelError(got.state, want.state as Float32Array),
        };
        errors.push(
          `batched ${name} B${B} pos${pos}${rowPos ? `+[${rowPos.join(',')}]` : ''}: out ${err.out.toExponential(1)} state ${err.state.toExponential(1)}`,
        );
        expect(err.out).toBeLessThanOrEqual(TOL);
        expect(err.state).toBeLessThanOrEqual(TOL);
      }
    });
  }

  it('declares the prologue inputs in place of the inputs they compute', () => {
    expect(Object.keys(linearRecurrence.inputs(gdn))).toEqual([
      'q',
      'k',
      'v',
      'in_ba',
      'in_aLog',
      'in_dtBias',
      'state',
    ]);
    const bad = {
      ...gla,
      prologue: { exprs: { q: { inputs: { v: same(16) }, expr: x('v') } }, l2: {} },
    };
    expect(() => linearRecurrence.check(bad)).toThrow(/takes a name of the recurrence/);
  });
});

describe('linear_recurrence kernel choice', () => {
  it('picks chunks from the workgroup memory and binds at most 8 storage buffers', () => {
    for (const [dk, decay, C] of [
      [16, 'head', 32],
      [128, 'head', 14],
      [128, 'key', 9],
      [256, 'head', 7],
    ] as const) {
      const a = attrs({ keyDim: dk, valueDim: 16, decay });
      // The single kernel's form (past one chunk of the multi-pass form the generator runs that).
      const form = recurrenceForm(a, BASELINE_CAPS, 64);
      const launches = [recurrenceLaunch(a, BASELINE_CAPS, form)];
      expect(launches[0].kernel.name).toContain(`_chunk${C}_`);
    }
    for (const update of UPDATES) {
      const a = attrs({ decay: 'key', update });
      const { launches } = linearRecurrenceKernel(a, { caps: BASELINE_CAPS, maxT: 64 });
      const storage = launches[0].kernel.bindings.filter((b) => b.access !== 'uniform');
      expect(storage.length).toBeLessThanOrEqual(BASELINE_CAPS.maxStorageBuffersPerStage);
      // Past one chunk of the multi-pass form every update runs its passes.
      expect(launches[0].kernel.name).toMatch(/_chunk|_prep_/);
      for (const l of launches) {
        const n = l.kernel.bindings.filter((b) => b.access !== 'uniform').length;
        expect(n).toBeLessThanOrEqual(BASELINE_CAPS.maxStorageBuffersPerStage);
      }
    }
    const decode = linearRecurrenceKernel(attrs({}), { caps: BASELINE_CAPS, maxT: 1 });
    expect(decode.launches[0].kernel.name).toContain('_recurrent_');
  });

  it('logs the measured errors', () => {
    console.log(`linear_recurrence errors (max |Δ| / max |ref|):\n  ${errors.join('\n  ')}`);
  });
});
