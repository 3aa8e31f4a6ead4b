/**
 * The unified linear recurrence of linear attention and its relatives (the survey's form),
 * per head with state S [dk, dv]:
 *   S_t = (I − β_t k_t k_tᵀ) · (exp(d_t) · S_{t−1}) + β_t k_t v_tᵀ,   o_t = S_tᵀ q_t
 * d_t is the log of a scalar decay (≤ 0; kept in log space so nothing large is exponentiated).
 * Without the delta term (β = null) it is S_t = exp(d_t)·S_{t−1} + k_t v_tᵀ: linear attention
 * (d = 0), RetNet (constant d), Mamba-2's scalar decay; with it, DeltaNet (d = 0) and the gated
 * delta rule (Qwen3-Next). The gated_delta_rule op derives q, k, d and β from its inputs as
 * transformers' Qwen3NextGatedDeltaNet does and runs this recurrence; other members would reuse
 * `linearRecurrenceStep` with their own derivations.
 */
import type { Cost, GatedDeltaRuleAttrs, LinearRecurrenceAttrs, StepShape } from '../graph/ops.ts';
import type { Dim } from '../graph/ir.ts';
import { sigmoid, softplus } from './math.ts';
import { f32, rule, type OpDefinition, type OpReference, type TensorRule } from './types.ts';

/**
 * One token of the recurrence on one head: updates S (row-major [dk, dv], f64) in place and
 * writes o (dv). The delta form computes S ← e^d·S, then S ← S + k (β (v − Sᵀk))ᵀ, the same as
 * (I − βkkᵀ)·e^d·S + βkvᵀ, in the order transformers' torch_recurrent_gated_delta_rule uses.
 */
export function linearRecurrenceStep(
  S: Float64Array,
  dk: number,
  dv: number,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  logDecay: number,
  beta: number | null,
  o: Float64Array,
): void {
  const decay = Math.exp(logDecay);
  for (let j = 0; j < dv; j++) {
    let kv = 0;
    for (let i = 0; i < dk; i++) {
      S[i * dv + j] *= decay;
      kv += S[i * dv + j] * k[i];
    }
    const delta = beta === null ? v[j] : beta * (v[j] - kv);
    let out = 0;
    for (let i = 0; i < dk; i++) {
      S[i * dv + j] += k[i] * delta;
      out += S[i * dv + j] * q[i];
    }
    o[j] = out;
  }
}

/** x · rsqrt(Σx² + eps) over `n` elements from `off` (FLA's and transformers' l2norm, eps 1e-6). */
function l2normalize(x: Float32Array, off: number, n: number, scale: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
  const inv = scale / Math.sqrt(ss + 1e-6);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = x[off + i] * inv;
  return out;
}

export function checkGatedDeltaRuleAttrs(a: GatedDeltaRuleAttrs): void {
  for (const k of ['keyHeads', 'valueHeads', 'keyDim', 'valueDim'] as const) {
    if (!Number.isInteger(a[k]) || a[k] < 1) {
      throw new Error(`gated_delta_rule: ${k} must be a positive integer, got ${a[k]}`);
    }
  }
  if (a.valueHeads % a.keyHeads !== 0) {
    throw new Error(
      `gated_delta_rule: valueHeads (${a.valueHeads}) must be a multiple of keyHeads (${a.keyHeads})`,
    );
  }
}

export const gatedDeltaRule: OpReference<GatedDeltaRuleAttrs> = {
  reference(a, inputs, step) {
    checkGatedDeltaRuleAttrs(a);
    const { T } = step;
    const [q, k, v, ba, aLog, dtBias, state] = ['q', 'k', 'v', 'ba', 'aLog', 'dtBias', 'state'].map(
      (n) => f32(inputs, n),
    );
    const KH = a.keyHeads;
    const VH = a.valueHeads;
    const dk = a.keyDim;
    const dv = a.valueDim;
    const perKey = VH / KH;
    if (state.length < VH * dk * dv) {
      throw new Error(`gated_delta_rule: state needs ${VH * dk * dv} elements`);
    }
    const out = new Float32Array(T * VH * dv);
    const o = new Float64Array(dv);
    for (let h = 0; h < VH; h++) {
      const kh = Math.floor(h / perKey);
      // State reset rule (src/graph/ops.ts): a new sequence starts from zeros.
      const S = new Float64Array(dk * dv);
      if (step.pos > 0) for (let e = 0; e < dk * dv; e++) S[e] = state[h * dk * dv + e];
      for (let t = 0; t < T; t++) {
        const qn = l2normalize(q, (t * KH + kh) * dk, dk, a.scale);
        const kn = l2normalize(k, (t * KH + kh) * dk, dk, 1);
        const beta = sigmoid(ba[t * 2 * VH + h]);
        const logDecay = -Math.exp(aLog[h]) * softplus(ba[t * 2 * VH + VH + h] + dtBias[h]);
        const vt = v.subarray((t * VH + h) * dv, (t * VH + h + 1) * dv);
        linearRecurrenceStep(S, dk, dv, qn, kn, vt, logDecay, beta, o);
        for (let j = 0; j < dv; j++) out[(t * VH + h) * dv + j] = o[j];
      }
      for (let e = 0; e < dk * dv; e++) state[h * dk * dv + e] = S[e];
    }
    return { out, state };
  },
  cost(a: GatedDeltaRuleAttrs, step: StepShape): Cost {
    const { T } = step;
    const stateElems = a.valueHeads * a.keyDim * a.valueDim;
    const key = a.keyHeads * a.keyDim;
    const value = a.valueHeads * a.valueDim;
    return {
      // Per token and state element: decay, kᵀS, the rank-1 update and Sᵀq (about 7 FLOPs).
      flops: T * (7 * stateElems + 6 * key),
      bytesRead: 4 * (T * (2 * key + value + 2 * a.valueHeads) + 2 * a.valueHeads + stateElems),
      bytesWritten: 4 * (T * value + stateElems),
    };
  },
};

/** The head of an input with `of` heads that state head h reads (heads repeated in blocks). */
export function headOf(h: number, heads: number, of: number): number {
  return Math.floor(h / (heads / of));
}

/** State columns per key row: valueDim, plus the normaliser's running key sum. */
export function stateColumns(a: LinearRecurrenceAttrs): number {
  return a.valueDim + (a.normalize ? 1 : 0);
}

function decayShape(a: LinearRecurrenceAttrs): Dim[] {
  if (a.decay === 'fixed') return [a.gateHeads];
  return a.decay === 'head' ? ['T', a.gateHeads] : ['T', a.gateHeads * a.keyDim];
}

export const linearRecurrence: OpDefinition<LinearRecurrenceAttrs> = {
  check(a) {
    const where = 'linear_recurrence';
    for (const k of [
      'heads',
      'qHeads',
      'kHeads',
      'vHeads',
      'gateHeads',
      'keyDim',
      'valueDim',
    ] as const) {
      if (!Number.isInteger(a[k]) || a[k] < 1) {
        throw new Error(`${where}: ${k} must be a positive integer, got ${a[k]}`);
      }
    }
    for (const k of ['qHeads', 'kHeads', 'vHeads', 'gateHeads'] as const) {
      if (a.heads % a[k] !== 0) {
        throw new Error(`${where}: heads (${a.heads}) must be a multiple of ${k} (${a[k]})`);
      }
    }
    if (a.normalize && a.update !== 'add') {
      throw new Error(`${where}: normalize needs update 'add', got '${a.update}'`);
    }
    if (!(Number.isFinite(a.scale) && Number.isFinite(a.normEps) && a.normEps >= 0)) {
      throw new Error(`${where}: scale (${a.scale}) and normEps (${a.normEps}) must be finite`);
    }
  },
  inputs(a) {
    const r: Record<string, TensorRule> = {
      q: rule(['T', a.qHeads * a.keyDim]),
      k: rule(['T', a.kHeads * a.keyDim]),
      v: rule(['T', a.vHeads * a.valueDim]),
    };
    if (a.decay !== 'none') r.g = rule(decayShape(a));
    if (a.update === 'delta') r.beta = rule(['T', a.gateHeads]);
    if (a.update === 'dplr') {
      r.a = rule(['T', a.gateHeads * a.keyDim]);
      r.b = rule(['T', a.gateHeads * a.keyDim]);
    }
    r.state = rule([a.heads, a.keyDim, stateColumns(a)], 'read_write');
    return r;
  },
  outputs(a) {
    return {
      out: rule(['T', a.heads * a.valueDim]),
      state: rule([a.heads, a.keyDim, stateColumns(a)], 'read_write'),
    };
  },
  reference(a, inputs, step) {
    linearRecurrence.check(a);
    const { T } = step;
    const H = a.heads;
    const dk = a.keyDim;
    const dv = a.valueDim;
    const cols = stateColumns(a);
    const [q, k, v, state] = ['q', 'k', 'v', 'state'].map((n) => f32(inputs, n));
    const g = a.decay === 'none' ? null : f32(inputs, 'g');
    const beta = a.update === 'delta' ? f32(inputs, 'beta') : null;
    const av = a.update === 'dplr' ? f32(inputs, 'a') : null;
    const bv = a.update === 'dplr' ? f32(inputs, 'b') : null;
    if (state.length < H * dk * cols) {
      throw new Error(
        `linear_recurrence: state needs ${H * dk * cols} elements, has ${state.length}`,
      );
    }
    const out = new Float32Array(T * H * dv);
    const S = new Float64Array(dk * cols);
    const kv = new Float64Array(cols);
    const decay = new Float64Array(dk);
    const qs = new Float64Array(dk);
    for (let h = 0; h < H; h++) {
      const [qh, kh, vh, gh] = [a.qHeads, a.kHeads, a.vHeads, a.gateHeads].map((n) =>
        headOf(h, H, n),
      );
      // State reset rule (src/graph/ops.ts): a new sequence starts from zeros.
      S.fill(0);
      if (step.pos > 0) for (let e = 0; e < dk * cols; e++) S[e] = state[h * dk * cols + e];
      for (let t = 0; t < T; t++) {
        const qo = (t * a.qHeads + qh) * dk;
        const ko = (t * a.kHeads + kh) * dk;
        const vo = (t * a.vHeads + vh) * dv;
        const go = (t * a.gateHeads + gh) * dk;
        for (let i = 0; i < dk; i++) {
          decay[i] =
            g === null
              ? 1
              : a.decay === 'fixed'
                ? Math.exp(g[gh])
                : a.decay === 'head'
                  ? Math.exp(g[t * a.gateHeads + gh])
                  : Math.exp(g[go + i]);
          qs[i] = a.scale * q[qo + i];
        }
        // DPLR reads the state before this token's decay: bᵀS_{t−1}.
        if (av && bv) {
          kv.fill(0);
          for (let i = 0; i < dk; i++)
            for (let j = 0; j < cols; j++) kv[j] += bv[go + i] * S[i * cols + j];
        }
        for (let i = 0; i < dk; i++) for (let j = 0; j < cols; j++) S[i * cols + j] *= decay[i];
        if (beta) {
          const bt = beta[t * a.gateHeads + gh];
          for (let j = 0; j < dv; j++) {
            let sk = 0;
            for (let i = 0; i < dk; i++) sk += S[i * cols + j] * k[ko + i];
            kv[j] = bt * (v[vo + j] - sk);
          }
        }
        for (let i = 0; i < dk; i++) {
          const ki = k[ko + i];
          for (let j = 0; j < dv; j++) {
            const upd = beta ? ki * kv[j] : ki * v[vo + j];
            S[i * cols + j] += upd + (av ? av[go + i] * kv[j] : 0);
          }
          if (a.normalize) S[i * cols + dv] += ki;
        }
        let denom = 1;
        if (a.normalize) {
          denom = a.normEps;
          for (let i = 0; i < dk; i++) denom += qs[i] * S[i * cols + dv];
        }
        for (let j = 0; j < dv; j++) {
          let o = 0;
          for (let i = 0; i < dk; i++) o += qs[i] * S[i * cols + j];
          out[(t * H + h) * dv + j] = o / denom;
        }
      }
      for (let e = 0; e < dk * cols; e++) state[h * dk * cols + e] = S[e];
    }
    return { out, state };
  },
  cost(a, step) {
    const { T } = step;
    const stateElems = a.heads * a.keyDim * stateColumns(a);
    const per = a.update === 'add' ? 5 : 7;
    const inputs = Object.entries(linearRecurrence.inputs(a)).filter(([n]) => n !== 'state');
    const read = inputs.reduce(
      (s, [, r]) =>
        s + r.shape.reduce<number>((p, d) => p * (d === 'T' ? T : d === 'L' ? step.L : d), 1),
      0,
    );
    return {
      // Per token and state element: decay, update (and kᵀS for delta/dplr), and Sᵀq.
      flops: T * per * stateElems,
      bytesRead: 4 * (read + stateElems),
      bytesWritten: 4 * (T * a.heads * a.valueDim + stateElems),
    };
  },
};
