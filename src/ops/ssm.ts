/**
 * State-space scans: Mamba-1's selective scan and Mamba-2's SSD. The references run the
 * plain recurrence token by token in f64 (HF MambaMixer.slow_forward and the cached
 * single-token path of Mamba2Mixer.torch_forward); the kernels compute the same thing
 * chunked and in parallel (codegen/kernels/ssm.ts).
 *
 * State reset rule: at step.pos === 0 the incoming state is treated as all zeros (a new
 * sequence), so the runtime never has to clear state buffers.
 */
import type { Cost, SelectiveScanAttrs, SsdAttrs, StepShape } from '../graph/ops.ts';
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

export const ssd: OpDefinition<SsdAttrs> = {
  check(a) {
    for (const k of ['heads', 'headDim', 'dState', 'groups', 'chunk'] as const)
      positiveInt('ssd', k, a[k]);
    if (a.heads % a.groups !== 0)
      throw new Error(`ssd: heads (${a.heads}) must be a multiple of groups (${a.groups})`);
    if (!(a.dtMin >= 0) || !(a.dtMax >= a.dtMin) || Number.isNaN(a.dtMax))
      throw new Error(`ssd: need 0 <= dtMin <= dtMax, got [${a.dtMin}, ${a.dtMax}]`);
  },
  inputs: (a) => ({
    x: rule(['T', a.heads * a.headDim]),
    dt: rule(['T', a.heads]),
    dtBias: rule([a.heads]),
    aLog: rule([a.heads]),
    b: rule(['T', a.groups * a.dState]),
    c: rule(['T', a.groups * a.dState]),
    d: rule([a.heads]),
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
    const x = need(op, inputs, 'x', T * W);
    const dt = need(op, inputs, 'dt', T * H);
    const dtBias = need(op, inputs, 'dtBias', H);
    const aLog = need(op, inputs, 'aLog', H);
    const b = need(op, inputs, 'b', T * GN);
    const c = need(op, inputs, 'c', T * GN);
    const dSkip = need(op, inputs, 'd', H);
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
          out[t * W + h * P + p] = y + dSkip[h] * xv;
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
    return {
      flops: flops + T * H * 8,
      bytesRead: 4 * (T * H * P + T * H + 2 * T * G * N + 3 * H + stateElems),
      bytesWritten: 4 * (T * H * P + stateElems),
    };
  },
};
