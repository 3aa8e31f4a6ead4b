/**
 * The linear-recurrence suite (issue 11): strata's `linear_recurrence` kernels on the shapes
 * bench/peers.py gives fla's Triton kernels, in f32. Each family is one recurrence configuration;
 * prefill is one step over T tokens from position 0, decode one token at position 4096 (state
 * carried). Inputs are drawn so the recurrence stays in range (l2-normalised-scale keys, decays
 * in [−0.1, 0)): the timing of exp and division paths does not depend on the values otherwise.
 */
import type { LinearRecurrenceAttrs, SsdAttrs } from '../src/graph/ops.ts';
import { definitionFor } from '../src/ops/index.ts';
import { generatorFor } from '../codegen/kernels/index.ts';
import { recurrenceForm, recurrenceLaunch } from '../codegen/kernels/linear-recurrence.ts';
import { multiPassPlan } from '../codegen/kernels/linear-recurrence-chunks.ts';
import type { GeneratedOp } from '../codegen/kernels/types.ts';
import type { GpuContext } from '../runtime/gpu.ts';
import { timeLaunches } from './gpu-timer.ts';
import { uniform } from '../src/import/random-init.ts';

/** One family's recurrence, at 16 heads of 128 × 128 (a 2k-wide 1.3B-class layer). */
export const LINEAR_FAMILIES: { name: string; attrs: LinearRecurrenceAttrs }[] = (() => {
  const base = {
    op: 'linear_recurrence',
    heads: 16,
    qHeads: 16,
    kHeads: 16,
    vHeads: 16,
    gateHeads: 16,
    keyDim: 128,
    valueDim: 128,
    scale: 128 ** -0.5,
    normalize: false,
    normEps: 0,
  } as const;
  return [
    { name: 'retention (fixed decay)', attrs: { ...base, decay: 'fixed', update: 'add' } },
    { name: 'gla (key decay)', attrs: { ...base, decay: 'key', update: 'add' } },
    { name: 'gated delta (head decay)', attrs: { ...base, decay: 'head', update: 'delta' } },
    { name: 'delta (no decay)', attrs: { ...base, decay: 'none', update: 'delta' } },
    // RWKV-7's diagonal-plus-low-rank update (scale 1 as RWKV-7 runs it).
    { name: 'rwkv7 dplr (key decay)', attrs: { ...base, decay: 'key', update: 'dplr', scale: 1 } },
  ];
})();

export const LINEAR_PREFILL = [4096, 16384, 65536];
export const DECODE_POS = 4096;

function elements(shape: (number | string)[], T: number): number {
  return shape.reduce<number>((n, d) => n * (d === 'T' ? T : (d as number)), 1);
}

/** Inputs in range for the recurrence: q, k ~ U(±1/√dk), v ~ U(±1), g ∈ [−0.1, 0), β ∈ (0, 1). */
function initData(a: LinearRecurrenceAttrs, T: number): Record<string, Float32Array> {
  const def = definitionFor(a)!;
  const data: Record<string, Float32Array> = {};
  let seed = 1;
  const r = 1 / Math.sqrt(a.keyDim);
  for (const [name, rule] of Object.entries(def.inputs(a))) {
    const n = elements(rule.shape, T);
    const range: [number, number] =
      name === 'g'
        ? [-0.1, -1e-3]
        : name === 'beta'
          ? [0.05, 0.95]
          : name === 'v'
            ? [-1, 1]
            : [-r, r];
    data[name] = name === 'state' ? new Float32Array(n) : uniform(n, seed++, ...range);
  }
  return data;
}

export interface LinearRow {
  family: string;
  case: string;
  /** Which form ran: 'multi-pass C<n>', 'one kernel C<n>' (the single chunked kernel), 'recurrent'. */
  form: string;
  T: number;
  ms: number;
  gpuMs: number | null;
  wallMs: number;
  dispatches: number;
  tokensPerS: number;
}

/**
 * The launches timed for one case: the generator's choice ('chosen'), and for prefill also the
 * single-kernel form it replaced past one chunk ('one kernel', or 'recurrent' for dplr, which has
 * no single-kernel chunked form), so one run times the multi-pass form
 * (codegen/kernels/linear-recurrence-chunks.ts) beside the old one and fla, and each of its three
 * passes alone.
 */
function candidates(
  a: LinearRecurrenceAttrs,
  caps: GpuContext['caps'],
  T: number,
  log: (m: string) => void,
): { form: string; gen: GeneratedOp }[] {
  const gen = generatorFor(a)(a, { caps, maxT: T });
  const plan = multiPassPlan(a, caps, T);
  const multi = gen.launches.length > 1;
  if (T > 1 && !multi && typeof plan === 'string') log(`  multi-pass not taken: ${plan}`);
  const form = recurrenceForm(a, caps, T);
  const single = form.kind === 'chunked' ? `one kernel C${form.C}` : 'recurrent';
  const chosen = multi && typeof plan !== 'string' ? `multi-pass C${plan.C}` : single;
  const out = [{ form: chosen, gen }];
  // Each pass alone too (its scratch as the buffers start, zeros: the timing does not depend on
  // the values), so one run says which pass to work on next.
  if (multi && gen.launches.length === 3) {
    for (const l of gen.launches) {
      const pass = l.kernel.name.split('_')[2];
      out.push({ form: `${chosen}: ${pass} only`, gen: { launches: [l], scratch: gen.scratch } });
    }
  }
  if (multi) {
    out.push({
      form: single,
      gen: { launches: [recurrenceLaunch(a, caps, form)], scratch: {} },
    });
  }
  return out;
}

export async function benchLinear(gpu: GpuContext, log: (m: string) => void): Promise<LinearRow[]> {
  const rows: LinearRow[] = [];
  for (const f of LINEAR_FAMILIES) {
    const def = definitionFor(f.attrs)!;
    for (const T of [...LINEAR_PREFILL, 1])
      for (const { form, gen } of candidates(f.attrs, gpu.caps, T, log)) {
        const bytes: Record<string, number> = { ...gen.scratch };
        for (const [name, rule] of [
          ...Object.entries(def.inputs(f.attrs)),
          ...Object.entries(def.outputs(f.attrs)),
        ]) {
          bytes[name] = 4 * elements(rule.shape, T);
        }
        const pos = T === 1 ? DECODE_POS : 0;
        const reps = T === 1 ? 200 : T >= 65536 ? 2 : 5;
        const t = await timeLaunches(
          gpu,
          gen.launches,
          bytes,
          { T, pos, L: 1 },
          { reps, samples: 5, init: initData(f.attrs, T) },
        );
        const ms = t.gpuMs ?? t.wallMs;
        const label = T === 1 ? `decode @${DECODE_POS}` : `prefill ${T / 1024}k`;
        rows.push({
          family: f.name,
          case: label,
          form,
          T,
          ms,
          gpuMs: t.gpuMs,
          wallMs: t.wallMs,
          dispatches: gen.launches.length,
          tokensPerS: T / (ms * 1e-3),
        });
        log(
          `linear ${f.name} ${label} ${form}: ${ms.toFixed(3)} ms (${gen.launches.length} dispatch)`,
        );
      }
  }
  return rows;
}

/**
 * Mamba-2's SSD as it runs today (the `ssd` op's chunked kernels) beside the same recurrence as a
 * scalar-decay linear_recurrence (k = B shared by all heads of a group, q = C, v = δ·x), at
 * Mamba2-2.7B widths: 80 heads of 64, state 128, one group. The decision whether SSD moves onto
 * the shared op is made from these rows (the linear_recurrence row leaves out the δ·x and D·x
 * prologue/epilogue, so it favours the shared op slightly).
 */
export async function benchSsdVsRecurrence(
  gpu: GpuContext,
  log: (m: string) => void,
): Promise<{ kernel: string; case: string; T: number; ms: number; dispatches: number }[]> {
  const heads = 80;
  const headDim = 64;
  const dState = 128;
  const ssd: SsdAttrs = {
    op: 'ssd',
    heads,
    headDim,
    dState,
    groups: 1,
    chunk: 256,
    dtMin: 0,
    dtMax: Infinity,
  };
  const rec: LinearRecurrenceAttrs = {
    op: 'linear_recurrence',
    heads,
    qHeads: 1,
    kHeads: 1,
    vHeads: heads,
    gateHeads: heads,
    keyDim: dState,
    valueDim: headDim,
    scale: 1,
    decay: 'head',
    update: 'add',
    normalize: false,
    normEps: 0,
  };
  const rows = [];
  for (const T of [4096, 16384, 1]) {
    const ssdBytes: Record<string, number> = {
      x: 4 * T * heads * headDim,
      dt: 4 * T * heads,
      dtBias: 4 * heads,
      aLog: 4 * heads,
      b: 4 * T * dState,
      c: 4 * T * dState,
      d: 4 * heads,
      state: 4 * heads * headDim * dState,
      out: 4 * T * heads * headDim,
    };
    const ssdInit: Record<string, Float32Array> = {
      x: uniform(T * heads * headDim, 1, -1, 1),
      dt: uniform(T * heads, 2, -4, -2),
      dtBias: uniform(heads, 3, -0.1, 0.1),
      aLog: uniform(heads, 4, 0, 2),
      b: uniform(T * dState, 5, -0.1, 0.1),
      c: uniform(T * dState, 6, -0.1, 0.1),
      d: uniform(heads, 7, 0.5, 1.5),
    };
    const def = definitionFor(rec)!;
    const recBytes: Record<string, number> = {};
    for (const [name, rule] of [
      ...Object.entries(def.inputs(rec)),
      ...Object.entries(def.outputs(rec)),
    ])
      recBytes[name] = 4 * elements(rule.shape, T);
    const pos = T === 1 ? DECODE_POS : 0;
    const reps = T === 1 ? 200 : 3;
    for (const [kernel, attrs, bytes, init] of [
      ['ssd (today)', ssd, ssdBytes, ssdInit],
      ['linear_recurrence (head decay)', rec, recBytes, initData(rec, T)],
    ] as const) {
      const gen = generatorFor(attrs)(attrs as never, { caps: gpu.caps, maxT: T });
      const t = await timeLaunches(
        gpu,
        gen.launches,
        { ...gen.scratch, ...bytes },
        { T, pos, L: 1 },
        { reps, samples: 5, init },
      );
      const ms = t.gpuMs ?? t.wallMs;
      const label = T === 1 ? `decode @${DECODE_POS}` : `prefill ${T / 1024}k`;
      rows.push({ kernel, case: label, T, ms, dispatches: gen.launches.length });
      log(`ssd-vs-recurrence ${kernel} ${label}: ${ms.toFixed(3)} ms`);
    }
  }
  return rows;
}
