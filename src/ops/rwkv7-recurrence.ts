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
  return 3 * a.heads * a.keyDim + 2 * a.heads * a.valueDim;
}

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
}

/** The input rules rwkv7 changes: no b, and the packed parameter. */
export function rwkv7InputRules(a: LinearRecurrenceAttrs, r: Record<string, TensorRule>): void {
  if (!a.rwkv7) return;
  delete r.b;
  r.rwkv = rule([rwkv7ParamCols(a)]);
}

/**
 * The effective k, a and b the dplr update reads, from the raw k and a (eff, after the other
 * prologue work) and the packed parameter.
 */
export function rwkv7Prepare(a: LinearRecurrenceAttrs, eff: Arrays, step: StepShape): Arrays {
  if (!a.rwkv7) return eff;
  const K = a.heads * a.keyDim;
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
