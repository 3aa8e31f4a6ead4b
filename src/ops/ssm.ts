/**
 * State-space scans: Mamba-1's selective scan and Mamba-2's SSD. The references run the
 * plain recurrence token by token in f64 (HF MambaMixer.slow_forward and the cached
 * single-token path of Mamba2Mixer.torch_forward); the kernels compute the same thing
 * chunked and in parallel (codegen/kernels/ssm.ts).
 *
 * State reset rule: at step.pos === 0 the incoming state is treated as all zeros (a new
 * sequence), so the runtime never has to clear state buffers.
 */
import type {
  Cost,
  Mamba1StepAttrs,
  SelectiveScanAttrs,
  SsdAttrs,
  StepShape,
} from '../graph/ops.ts';
import { activate, softplus } from './math.ts';
import { f32, inPlace, rule, type Arrays, type OpDefinition } from './types.ts';

function need(op: string, inputs: Arrays, name: string, n: number): Float32Array {
  const v = f32(inputs, name);
  if (v.length < n) throw new Error(`${op}: ${name} has ${v.length} elements, needs ${n}`);
  return v;
}

function positiveInt(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1)
    throw new Error(`${op}: ${name} must be a positive integer, got ${v}`);
}

/** Mamba-2's step size: softplus(dt + dtBias) clamped to [dtMin, dtMax] (HF's time_step_limit). */
export function ssdStep(a: Pick<SsdAttrs, 'dtMin' | 'dtMax'>, dtPlusBias: number): number {
  return Math.min(Math.max(softplus(dtPlusBias), a.dtMin), a.dtMax);
}

export const selectiveScan: OpDefinition<SelectiveScanAttrs> = {
  check(a) {
    positiveInt('selective_scan', 'dInner', a.dInner);
    positiveInt('selective_scan', 'dState', a.dState);
  },
  inputs: (a) => ({
    x: rule(['T', a.dInner]),
    dt: rule(['T', a.dInner]),
    aLog: rule([a.dInner, a.dState]),
    b: rule(['T', a.dState]),
    c: rule(['T', a.dState]),
    d: rule([a.dInner]),
    z: rule(['T', a.dInner]),
    state: inPlace([a.dInner, a.dState]),
  }),
  /** state: h after the step's last token, in place. */
  outputs: (a) => ({ out: rule(['T', a.dInner]), state: inPlace([a.dInner, a.dState]) }),
  reference(a, inputs, step) {
    selectiveScan.check(a);
    const { dInner: D, dState: N } = a;
    const T = step.T;
    const op = 'selective_scan';
    const x = need(op, inputs, 'x', T * D);
    const dt = need(op, inputs, 'dt', T * D);
    const aLog = need(op, inputs, 'aLog', D * N);
    const b = need(op, inputs, 'b', T * N);
    const c = need(op, inputs, 'c', T * N);
    const dSkip = need(op, inputs, 'd', D);
    const z = need(op, inputs, 'z', T * D);
    const state = need(op, inputs, 'state', D * N);
    const h =
      step.pos === 0 ? new Float64Array(D * N) : Float64Array.from(state.subarray(0, D * N));
    const A = Float64Array.from(aLog.subarray(0, D * N), (v) => -Math.exp(v));
    const out = new Float32Array(T * D);
    for (let t = 0; t < T; t++) {
      for (let d = 0; d < D; d++) {
        const xv = x[t * D + d];
        const delta = softplus(dt[t * D + d]);
        let y = 0;
        for (let n = 0; n < N; n++) {
          const i = d * N + n;
          h[i] = Math.exp(delta * A[i]) * h[i] + delta * b[t * N + n] * xv;
          y += h[i] * c[t * N + n];
        }
        out[t * D + d] = (y + dSkip[d] * xv) * activate('silu', z[t * D + d]);
      }
    }
    state.set(h);
    return { out, state };
  },
  cost(a: SelectiveScanAttrs, step: StepShape): Cost {
    const { dInner: D, dState: N } = a;
    const T = step.T;
    return {
      // Per (t, d, n): δ·A, exp (~4), decay FMA, δ·B·x, y FMA; per (t, d): softplus, skip, silu gate.
      flops: T * D * N * 10 + T * D * 14,
      bytesRead: 4 * (3 * T * D + 2 * T * N + 2 * D * N + D),
      bytesWritten: 4 * (T * D + D * N),
    };
  },
};

/**
 * Element offsets of mamba1_step's packed parameter tensor, in this order: x_proj [R, D]
 * (rows dt, B, C; only when xProj), dt_proj [D, dtRank], dt_proj's bias [D], A_log [D, N], D [D], then the norm
 * weights of dt, B and C (R, when normEps is set). `total` is its length.
 */
export function mamba1StepPack(a: Omit<Mamba1StepAttrs, 'op'>) {
  const { dInner: D, dState: N, dtRank } = a;
  const R = dtRank + 2 * N;
  const wdt = a.xProj ? R * D : 0;
  const dtBias = wdt + D * dtRank;
  const aLog = dtBias + D;
  const d = aLog + D * N;
  const norms = d + D;
  return { R, wx: 0, wdt, dtBias, aLog, d, norms, total: norms + (a.normEps === null ? 0 : R) };
}

/**
 * Bytes of workgroup memory mamba1_step's fused kernel takes with `threads` threads: a reduction
 * slot per thread, x_proj's R outputs and three norm factors. The fusion checks it against the
 * device before it fuses.
 */
export function mamba1StepWorkgroupBytes(a: Omit<Mamba1StepAttrs, 'op'>, threads: number): number {
  return 4 * (threads + mamba1StepPack(a).R + 3);
}

/** RMS-normalise v[from, from + n) in place with weights w[wOff + ...]. */
function rmsInPlace(
  v: Float64Array,
  from: number,
  n: number,
  eps: number,
  w: Float32Array,
  wOff: number,
) {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += v[from + i] * v[from + i];
  const r = 1 / Math.sqrt(ss / n + eps);
  for (let i = 0; i < n; i++) v[from + i] = v[from + i] * r * w[wOff + i];
}

export const mamba1Step: OpDefinition<Mamba1StepAttrs> = {
  check(a) {
    for (const k of ['dInner', 'dState', 'dtRank'] as const) positiveInt('mamba1_step', k, a[k]);
    if (a.normEps !== null && !(a.normEps > 0))
      throw new Error(`mamba1_step: normEps must be positive or null, got ${a.normEps}`);
  },
  inputs: (a) => ({
    x: rule(['T', a.dInner]),
    ...(a.xProj ? {} : { dbc: rule(['T', mamba1StepPack(a).R]) }),
    z: rule(['T', a.dInner]),
    w: rule([mamba1StepPack(a).total]),
    state: inPlace([a.dInner, a.dState]),
  }),
  outputs: (a) => ({ out: rule(['T', a.dInner]), state: inPlace([a.dInner, a.dState]) }),
  /** x_proj, the norms and dt_proj in f64, then selective_scan's own reference on the results. */
  reference(a, inputs, step) {
    mamba1Step.check(a);
    const { dInner: D, dState: N, dtRank } = a;
    const T = step.T;
    const op = 'mamba1_step';
    const k = mamba1StepPack(a);
    const x = need(op, inputs, 'x', T * D);
    const w = need(op, inputs, 'w', k.total);
    const dt = new Float32Array(T * D);
    const b = new Float32Array(T * N);
    const c = new Float32Array(T * N);
    const dbc = new Float64Array(k.R);
    const given = a.xProj ? undefined : need(op, inputs, 'dbc', T * k.R);
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < k.R; r++) {
        let s = 0;
        if (given) s = given[t * k.R + r];
        else for (let j = 0; j < D; j++) s += w[k.wx + r * D + j] * x[t * D + j];
        dbc[r] = s;
      }
      if (a.normEps !== null) {
        rmsInPlace(dbc, 0, dtRank, a.normEps, w, k.norms);
        rmsInPlace(dbc, dtRank, N, a.normEps, w, k.norms + dtRank);
        rmsInPlace(dbc, dtRank + N, N, a.normEps, w, k.norms + dtRank + N);
      }
      for (let d = 0; d < D; d++) {
        let s = w[k.dtBias + d];
        for (let j = 0; j < dtRank; j++) s += w[k.wdt + d * dtRank + j] * dbc[j];
        dt[t * D + d] = s;
      }
      for (let n = 0; n < N; n++) {
        b[t * N + n] = dbc[dtRank + n];
        c[t * N + n] = dbc[dtRank + N + n];
      }
    }
    return selectiveScan.reference(
      { op: 'selective_scan', dInner: D, dState: N },
      {
        x,
        dt,
        aLog: w.subarray(k.aLog, k.aLog + D * N),
        b,
        c,
        d: w.subarray(k.d, k.d + D),
        z: need(op, inputs, 'z', T * D),
        state: need(op, inputs, 'state', D * N),
      },
      step,
    );
  },
  cost(a, step) {
    const k = mamba1StepPack(a);
    const T = step.T;
    const scan = selectiveScan.cost(
      { op: 'selective_scan', dInner: a.dInner, dState: a.dState },
      step,
    );
    return {
      // x_proj (when inside) and dt_proj (2 per weight element and token), the norms (~4 per
      // row element).
      flops:
        scan.flops + T * ((a.xProj ? 2 * k.R * a.dInner : 0) + 2 * a.dInner * a.dtRank + 4 * k.R),
      // The packed parameters once, x, z (and dbc) and the state (dt, B and C stay in the kernel).
      bytesRead: 4 * (k.total + 2 * T * a.dInner + (a.xProj ? 0 : T * k.R) + a.dInner * a.dState),
      bytesWritten: scan.bytesWritten,
    };
  },
};

export const ssd: OpDefinition<SsdAttrs> = {
  check(a) {
    for (const k of ['heads', 'headDim', 'dState', 'groups', 'chunk'] as const)
      positiveInt('ssd', k, a[k]);
    if (a.heads % a.groups !== 0)
      throw new Error(`ssd: heads (${a.heads}) must be a multiple of groups (${a.groups})`);
    if (!(a.dtMin >= 0) || !(a.dtMax >= a.dtMin) || Number.isNaN(a.dtMax))
      throw new Error(`ssd: need 0 <= dtMin <= dtMax, got [${a.dtMin}, ${a.dtMax}]`);
    if (a.row) checkSsdRow(a);
  },
  inputs: (a) => ({
    ...(a.row
      ? { inrow: rule(['T', a.row.cols]) }
      : { x: rule(['T', a.heads * a.headDim]), dt: rule(['T', a.heads]) }),
    ...(a.packed ? { p: rule([3 * a.heads]) } : { dtBias: rule([a.heads]), aLog: rule([a.heads]) }),
    ...(a.row ? {} : { b: rule(['T', a.groups * a.dState]), c: rule(['T', a.groups * a.dState]) }),
    ...(a.packed ? {} : { d: rule([a.heads]) }),
    state: inPlace([a.heads, a.headDim, a.dState]),
  }),
  outputs: (a) => ({
    out: rule(['T', a.heads * a.headDim]),
    state: inPlace([a.heads, a.headDim, a.dState]),
  }),
  reference(a, inputs, step) {
    ssd.check(a);
    const { heads: H, headDim: P, dState: N, groups: G } = a;
    const T = step.T;
    const W = H * P;
    const GN = G * N;
    const hpg = H / G;
    const op = 'ssd';
    // The fused form's one row holds x, dt, B, C (and z) at column offsets (SsdAttrs.row).
    const rw = a.row;
    const row = rw ? need(op, inputs, 'inrow', T * rw.cols) : undefined;
    const cols = (at: number, n: number) => {
      const o = new Float32Array(T * n);
      for (let t = 0; t < T; t++)
        o.set(row!.subarray(t * rw!.cols + at, t * rw!.cols + at + n), t * n);
      return o;
    };
    const x = rw ? cols(rw.x, W) : need(op, inputs, 'x', T * W);
    const dt = rw ? cols(rw.dt, H) : need(op, inputs, 'dt', T * H);
    const z = rw && rw.z !== null ? cols(rw.z, W) : undefined;
    const packed = a.packed ? need(op, inputs, 'p', 3 * H) : undefined;
    const dtBias = packed ? packed.subarray(0, H) : need(op, inputs, 'dtBias', H);
    const aLog = packed ? packed.subarray(H, 2 * H) : need(op, inputs, 'aLog', H);
    const b = rw ? cols(rw.b, GN) : need(op, inputs, 'b', T * GN);
    const c = rw ? cols(rw.c, GN) : need(op, inputs, 'c', T * GN);
    const dSkip = packed ? packed.subarray(2 * H, 3 * H) : need(op, inputs, 'd', H);
    const state = need(op, inputs, 'state', H * P * N);
    const S =
      step.pos === 0
        ? new Float64Array(H * P * N)
        : Float64Array.from(state.subarray(0, H * P * N));
    const out = new Float32Array(T * W);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const delta = ssdStep(a, dt[t * H + h] + dtBias[h]);
        const decay = Math.exp(-delta * Math.exp(aLog[h]));
        const g = Math.floor(h / hpg);
        const bo = t * GN + g * N;
        for (let p = 0; p < P; p++) {
          const xv = x[t * W + h * P + p];
          const so = (h * P + p) * N;
          let y = 0;
          for (let n = 0; n < N; n++) {
            S[so + n] = decay * S[so + n] + delta * xv * b[bo + n];
            y += S[so + n] * c[bo + n];
          }
          const o = y + dSkip[h] * xv;
          const i = t * W + h * P + p;
          out[i] = z ? o * activate('silu', z[i]) : o;
        }
      }
    }
    state.set(S);
    return { out, state };
  },
  cost(a: SsdAttrs, step: StepShape): Cost {
    const { heads: H, headDim: P, dState: N, groups: G } = a;
    const T = step.T;
    const stateElems = H * P * N;
    let flops: number;
    if (T === 1) {
      // The recurrence: decay FMA, δ·x·B, y FMA per (h, p, n).
      flops = 6 * stateElems;
    } else {
      // The chunked algorithm the kernels run: per token and head, C·Bᵀ and its product with
      // X over the causal half of its chunk (~Q/2 keys), plus the chunk state and the
      // incoming-state output (2·P·N each); the state passing is 2·P·N per chunk and head.
      const Q = Math.min(a.chunk, T);
      flops =
        T * H * (Q / 2) * 2 * (N + P) +
        4 * T * stateElems +
        2 * Math.ceil(T / a.chunk) * stateElems;
    }
    const gate = a.row?.z != null ? T * H * P : 0;
    return {
      flops: flops + T * H * 8 + 5 * gate,
      bytesRead: 4 * (T * H * P + T * H + 2 * T * G * N + 3 * H + stateElems + gate),
      bytesWritten: 4 * (T * H * P + stateElems),
    };
  },
};

/** SsdAttrs.row: packed, and every range inside the row. */
function checkSsdRow(a: SsdAttrs): void {
  const rw = a.row!;
  if (!a.packed) throw new Error('ssd: row needs packed (the decode fusion sets both)');
  positiveInt('ssd', 'row.cols', rw.cols);
  const W = a.heads * a.headDim;
  const GN = a.groups * a.dState;
  const ranges: [string, number | null, number][] = [
    ['x', rw.x, W],
    ['b', rw.b, GN],
    ['c', rw.c, GN],
    ['dt', rw.dt, a.heads],
    ['z', rw.z, W],
  ];
  for (const [n, at, len] of ranges) {
    if (at === null) continue;
    if (!Number.isInteger(at) || at < 0 || at + len > rw.cols)
      throw new Error(`ssd: row.${n} (${at}) + ${len} columns exceeds the row's ${rw.cols}`);
  }
}
