/**
 * The RWKV-7 part of a linear recurrence (LinearRecurrenceAttrs.rwkv7, made by the
 * rwkv7-recurrence fusion): the key preparation before the dplr update and the output correction
 * after it, as the separate ops of src/mixers/rwkv7.ts compute them (kk_in, the kk l2 norm, k_mix,
 * dplr_a, dplr_b before; the group norm, rk, the bonus group_sum and its share of `out` after).
 */
import type { LinearRecurrenceAttrs, StepShape } from '../graph/ops.ts';
import { normalizeRow } from './math.ts';
import { f32, rule, type Arrays, type TensorRule } from './types.ts';

/** Elements of the packed parameter `rwkv`: k_k, k_a, r_k, then the group norm's w and b. */
export function rwkv7ParamCols(a: LinearRecurrenceAttrs): number {
  const K = a.heads * a.keyDim;
  const lora = a.rwkv7?.lora;
  const V = a.heads * a.valueDim;
  const ups = lora
    ? K * (lora.decayRank + 1 + lora.aRank + 1) + (lora.vRank ? V * (lora.vRank + 1) : 0)
    : 0;
  return 3 * K + 2 * a.heads * a.valueDim + ups;
}

/** e^(−0.5): RWKV-7's bound on the log decay (src/mixers/rwkv7.ts). */
export const RWKV7_DECAY_SCALE = Math.exp(-0.5);

export function checkRwkv7(a: LinearRecurrenceAttrs): void {
  const r = a.rwkv7;
  if (!r) return;
  const where = 'linear_recurrence rwkv7';
  if (a.update !== 'dplr' || a.decay !== 'key')
    throw new Error(`${where}: needs update 'dplr' and decay 'key'`);
  if ([a.qHeads, a.kHeads, a.vHeads, a.gateHeads].some((n) => n !== a.heads))
    throw new Error(`${where}: q, k, v and gates must all have the ${a.heads} state heads`);
  // The bonus reads q as loaded; RWKV-7's scale is 1, so qs (q · scale) is that.
  if (a.scale !== 1) throw new Error(`${where}: needs scale 1, got ${a.scale}`);
  if ((a.batch ?? 1) > 1) throw new Error(`${where}: a batched step is not supported`);
  const p = a.prologue;
  if (p && (p.rope || Object.keys(p.l2).length > 0 || p.exprs.k || p.exprs.q))
    throw new Error(`${where}: only a prologue expression for g may come with it`);
  if (![r.kkEps, r.normEps].every((e) => Number.isFinite(e) && e >= 0))
    throw new Error(`${where}: kkEps and normEps must be finite and >= 0`);
  const l = r.lora;
  if (l) {
    if (![l.decayRank, l.aRank, l.vRank ?? 1].every((n) => Number.isInteger(n) && n >= 1))
      throw new Error(`${where}: LoRA ranks must be positive integers`);
    if (p) throw new Error(`${where}: fused LoRA ups take no prologue`);
  }
}

/** The input rules rwkv7 changes: no b, and the packed parameter. */
export function rwkv7InputRules(a: LinearRecurrenceAttrs, r: Record<string, TensorRule>): void {
  if (!a.rwkv7) return;
  delete r.b;
  const l = a.rwkv7.lora;
  if (l) {
    delete r.g;
    delete r.a;
    r.w_d = rule(['T', l.decayRank]);
    r.a_d = rule(['T', l.aRank]);
    if (l.vRank) {
      r.v_first = rule(['T', a.heads * a.valueDim]);
      r.v_d = rule(['T', l.vRank]);
    }
  }
  r.rwkv = rule([rwkv7ParamCols(a)]);
}

/**
 * The effective k, a and b the dplr update reads, from the raw k and a (eff, after the other
 * prologue work) and the packed parameter.
 */
export function rwkv7Prepare(a: LinearRecurrenceAttrs, eff: Arrays, step: StepShape): Arrays {
  if (!a.rwkv7) return eff;
  const K = a.heads * a.keyDim;
  if (a.rwkv7.lora) eff = loraUps(a, a.rwkv7.lora, eff, step);
  const k = f32(eff, 'k');
  const av = f32(eff, 'a');
  const p = f32(eff, 'rwkv');
  const n = step.T * K;
  const kkIn = new Float32Array(n);
  for (let e = 0; e < n; e++) kkIn[e] = k[e] * p[e % K];
  const kk = new Float32Array(n);
  const l2 = { kind: 'l2', eps: a.rwkv7.kkEps } as const;
  for (let t = 0; t < step.T; t++)
    normalizeRow(l2, kkIn, t * K, K, a.keyDim, undefined, undefined, kk, t * K);
  const kOut = new Float32Array(n);
  const aOut = new Float32Array(n);
  const bOut = new Float32Array(n);
  for (let e = 0; e < n; e++) {
    kOut[e] = k[e] * (1 + (av[e] - 1) * p[K + (e % K)]);
    aOut[e] = kk[e] * av[e];
    bOut[e] = -kk[e];
  }
  return { ...eff, k: kOut, a: aOut, b: bOut };
}

/** The output correction on the recurrence's out [T, heads·valueDim], in place. */
export function rwkv7Finish(
  a: LinearRecurrenceAttrs,
  out: Float32Array,
  eff: Arrays,
  step: StepShape,
): void {
  if (!a.rwkv7) return;
  const K = a.heads * a.keyDim;
  const V = a.heads * a.valueDim;
  const [q, k, v, p] = ['q', 'k', 'v', 'rwkv'].map((n) => f32(eff, n));
  const gw = p.subarray(3 * K, 3 * K + V);
  const gb = p.subarray(3 * K + V, 3 * K + 2 * V);
  const layer = { kind: 'layer', eps: a.rwkv7.normEps, unitOffset: false, bias: true } as const;
  const normed = new Float32Array(V);
  for (let t = 0; t < step.T; t++) {
    normalizeRow(layer, out, t * V, V, a.valueDim, gw, gb, normed, 0, true);
    for (let h = 0; h < a.heads; h++) {
      let bonus = 0;
      for (let i = 0; i < a.keyDim; i++) {
        const e = t * K + h * a.keyDim + i;
        bonus += Math.fround(Math.fround(q[e] * k[e]) * p[2 * K + h * a.keyDim + i]);
      }
      bonus = Math.fround(bonus);
      for (let j = 0; j < a.valueDim; j++) {
        const c = h * a.valueDim + j;
        out[t * V + c] = normed[c] + bonus * v[t * V + c];
      }
    }
  }
}

/** g and a from the LoRA downs' outputs, as w_lora.up, the decay op, a_lora.up and a compute them. */
function loraUps(
  a: LinearRecurrenceAttrs,
  l: { decayRank: number; aRank: number; vRank?: number },
  eff: Arrays,
  step: StepShape,
): Arrays {
  const K = a.heads * a.keyDim;
  const p = f32(eff, 'rwkv');
  const at = 3 * K + 2 * a.heads * a.valueDim;
  const wW = p.subarray(at, at + K * l.decayRank);
  const bW = p.subarray(at + K * l.decayRank, at + K * (l.decayRank + 1));
  const a0 = at + K * (l.decayRank + 1);
  const wA = p.subarray(a0, a0 + K * l.aRank);
  const bA = p.subarray(a0 + K * l.aRank, a0 + K * (l.aRank + 1));
  const wd = f32(eff, 'w_d');
  const ad = f32(eff, 'a_d');
  const g = new Float32Array(step.T * K);
  const av = new Float32Array(step.T * K);
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  for (let t = 0; t < step.T; t++) {
    for (let c = 0; c < K; c++) {
      let w = 0;
      for (let r = 0; r < l.decayRank; r++)
        w += Math.fround(Math.tanh(wd[t * l.decayRank + r])) * wW[c * l.decayRank + r];
      g[t * K + c] = -RWKV7_DECAY_SCALE * sigmoid(Math.fround(Math.fround(w) + bW[c]));
      let s = 0;
      for (let r = 0; r < l.aRank; r++) s += ad[t * l.aRank + r] * wA[c * l.aRank + r];
      av[t * K + c] = sigmoid(Math.fround(Math.fround(s) + bA[c]));
    }
  }
  if (!l.vRank) return { ...eff, g, a: av };
  // v_lora.up and v_mix: v + (v_first − v)·sigmoid(W_v·v_d + b_v).
  const V = a.heads * a.valueDim;
  const v0 = a0 + K * (l.aRank + 1);
  const wV = p.subarray(v0, v0 + V * l.vRank);
  const bV = p.subarray(v0 + V * l.vRank, v0 + V * (l.vRank + 1));
  const [v, first, vd] = ['v', 'v_first', 'v_d'].map((n) => f32(eff, n));
  const vOut = new Float32Array(step.T * V);
  for (let t = 0; t < step.T; t++) {
    for (let c = 0; c < V; c++) {
      let s = 0;
      for (let r = 0; r < l.vRank; r++) s += vd[t * l.vRank + r] * wV[c * l.vRank + r];
      const m = sigmoid(Math.fround(Math.fround(s) + bV[c]));
      const x = v[t * V + c];
      vOut[t * V + c] = x + (first[t * V + c] - x) * m;
    }
  }
  return { ...eff, g, a: av, v: vOut };
}
