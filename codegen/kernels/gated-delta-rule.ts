/**
 * The gated delta rule (semantics: src/ops/linear-recurrence.ts), one launch per step: a
 * workgroup per (value head, run of WG value columns), a thread per column j holding S[:, j]
 * (keyDim values) in registers across the step's tokens. At step.pos == 0 the old state reads
 * as zeros.
 *
 * Decode (maxT 1) uses the recurrent form: the workgroup stages the token's q and k rows and
 * each thread applies one rank-1 update. Prefill uses the chunked form: per chunk of C tokens
 * the workgroup stages C rows of q and k, normalises them, and builds the decay-weighted Gram
 * matrices k_t·k_u e^{G_t−G_u} and q_t·k_u e^{G_t−G_u} (G the cumulative log decay in the
 * chunk) together; each thread then solves its column's δ by forward substitution
 *   δ_t = β_t (v_t − e^{G_t} k_tᵀS₀ − Σ_{u<t} k_t·k_u e^{G_t−G_u} δ_u)
 * emits o_t = e^{G_t} q_tᵀS₀ + Σ_{u≤t} q_t·k_u e^{G_t−G_u} δ_u and ends the chunk with
 * S = e^{G_C} S₀ + Σ_u e^{G_C−G_u} k_u δ_uᵀ: four barriers per chunk instead of two per token,
 * and about half the per-thread work. Every exponent is a difference G_t − G_u ≤ 0 or a
 * cumulative G ≤ 0, so nothing large is exponentiated.
 */
import type { GatedDeltaRuleAttrs } from '../../src/graph/ops.ts';
import { checkGatedDeltaRuleAttrs } from '../../src/ops/linear-recurrence.ts';
import { STEP_BINDING, STEP_WGSL, storageDecls, type BindingDecl } from '../kernel-ir.ts';
import { type DeviceCaps } from '../../src/target.ts';
import type { KernelGenerator } from './types.ts';
import { withHelpers } from './wgsl-math.ts';

/** Columns per workgroup: whole value heads where they are small, runs of 64 otherwise. */
function columnsPerGroup(valueDim: number, maxInvocations: number): number {
  let wg = 1;
  while (wg < valueDim && wg < 64) wg *= 2;
  return Math.min(wg, maxInvocations);
}

function wgslFloat(x: number): string {
  const s = String(Math.fround(x));
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/**
 * Tokens per chunk: up to 32, as many as fit the workgroup memory (q and k rows, two C×C Gram
 * matrices and six per-token scalars).
 */
export function chunkTokens(keyDim: number, caps: DeviceCaps): number {
  const floats = (c: number) => 2 * c * keyDim + 2 * c * c + 6 * c;
  let c = 32;
  while (c > 1 && 4 * floats(c) > caps.maxWorkgroupStorageBytes) c--;
  return c;
}

/**
 * The entry point's opening, the same in both forms: one workgroup per value head h and WG of its
 * DV columns, each invocation holding its column j of the [DK, DV] state (zeros at position 0),
 * and the head's decay parameters.
 */
function mainPrologue(DK: number): string {
  return /* wgsl */ `@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let kh = h / PER_KEY;
  let j = wid.y * WG + lid;
  let live = j < DV;
  let fresh = step.pos == 0u;
  var s: array<f32, ${DK}>;
  for (var i = 0u; i < DK; i++) {
    s[i] = select(0.0, state[(h * DK + i) * DV + min(j, DV - 1u)], live && !fresh);
  }
  let decayRate = -exp(aLog[h]);
  let bias = dtBias[h];`;
}

/** The recurrent form: one token at a time (decode). */
function recurrentBody(DK: number): string {
  return /* wgsl */ `
var<workgroup> qs: array<f32, ${DK}>;
var<workgroup> ks: array<f32, ${DK}>;

${mainPrologue(DK)}
  for (var t = 0u; t < step.T; t++) {
    let row = (t * KH + kh) * DK;
    for (var i = lid; i < DK; i += WG) {
      qs[i] = q[row + i];
      ks[i] = k[row + i];
    }
    workgroupBarrier();
    var qq = 0.0;
    var kk = 0.0;
    for (var i = 0u; i < DK; i++) {
      qq += qs[i] * qs[i];
      kk += ks[i] * ks[i];
    }
    let qScale = inverseSqrt(qq + 1e-6) * SCALE;
    let kScale = inverseSqrt(kk + 1e-6);
    if (live) {
      let x = ba[t * 2u * VH + VH + h] + bias;
      let decay = exp(decayRate * softplus(x));
      let beta = sigmoid(ba[t * 2u * VH + h]);
      var kv = 0.0;
      for (var i = 0u; i < DK; i++) {
        s[i] *= decay;
        kv += s[i] * ks[i];
      }
      let delta = beta * (v[(t * VH + h) * DV + j] - kv * kScale);
      var o = 0.0;
      for (var i = 0u; i < DK; i++) {
        s[i] += ks[i] * kScale * delta;
        o += s[i] * qs[i];
      }
      out[(t * VH + h) * DV + j] = o * qScale;
    }
    workgroupBarrier();
  }
  if (live) {
    for (var i = 0u; i < DK; i++) { state[(h * DK + i) * DV + j] = s[i]; }
  }
}
`;
}

/** The chunked form: C tokens per round of the workgroup (prefill). */
function chunkedBody(DK: number, C: number): string {
  return /* wgsl */ `
const C: u32 = ${C}u;
var<workgroup> qs: array<f32, ${C * DK}>;
var<workgroup> ks: array<f32, ${C * DK}>;
// Decay-weighted Gram matrices, row t, column u <= t: k_t·k_u e^(G_t-G_u) and q_t·k_u e^(G_t-G_u).
var<workgroup> kk: array<f32, ${C * C}>;
var<workgroup> qk: array<f32, ${C * C}>;
var<workgroup> gc: array<f32, ${C}>;    // log decay, then its prefix sum G_t
var<workgroup> bt: array<f32, ${C}>;    // beta
var<workgroup> inv: array<f32, ${2 * C}>; // 1/|q_t| * SCALE, then 1/|k_t|
var<workgroup> et: array<f32, ${C}>;    // e^(G_t)
var<workgroup> tail: array<f32, ${C}>;  // e^(G_n-1 - G_t)

${mainPrologue(DK)}
  var d: array<f32, ${C}>;
  let T = step.T;
  for (var c0 = 0u; c0 < T; c0 += C) {
    let n = min(C, T - c0);
    for (var e = lid; e < n * DK; e += WG) {
      let row = ((c0 + e / DK) * KH + kh) * DK + e % DK;
      qs[e] = q[row];
      ks[e] = k[row];
    }
    workgroupBarrier();
    for (var t = lid; t < n; t += WG) {
      var qq = 0.0;
      var kq = 0.0;
      for (var i = 0u; i < DK; i++) {
        qq += qs[t * DK + i] * qs[t * DK + i];
        kq += ks[t * DK + i] * ks[t * DK + i];
      }
      inv[t] = inverseSqrt(qq + 1e-6) * SCALE;
      inv[C + t] = inverseSqrt(kq + 1e-6);
      let base = (c0 + t) * 2u * VH;
      bt[t] = sigmoid(ba[base + h]);
      let x = ba[base + VH + h] + bias;
      gc[t] = decayRate * softplus(x);
    }
    workgroupBarrier();
    for (var e = lid; e < n * DK; e += WG) {
      qs[e] *= inv[e / DK];
      ks[e] *= inv[C + e / DK];
    }
    if (lid == 0u) {
      for (var t = 1u; t < n; t++) { gc[t] += gc[t - 1u]; }
    }
    workgroupBarrier();
    for (var e = lid; e < n * n; e += WG) {
      let t = e / n;
      let u = e % n;
      if (u <= t) {
        var a1 = 0.0;
        var a2 = 0.0;
        for (var i = 0u; i < DK; i++) {
          a1 += ks[t * DK + i] * ks[u * DK + i];
          a2 += qs[t * DK + i] * ks[u * DK + i];
        }
        let w = exp(gc[t] - gc[u]);
        kk[t * C + u] = a1 * w;
        qk[t * C + u] = a2 * w;
      }
    }
    for (var t = lid; t < n; t += WG) {
      et[t] = exp(gc[t]);
      tail[t] = exp(gc[n - 1u] - gc[t]);
    }
    workgroupBarrier();
    if (live) {
      for (var t = 0u; t < n; t++) {
        var kS = 0.0;
        var qS = 0.0;
        for (var i = 0u; i < DK; i++) {
          kS += ks[t * DK + i] * s[i];
          qS += qs[t * DK + i] * s[i];
        }
        var corr = et[t] * kS;
        var o = et[t] * qS;
        for (var u = 0u; u < t; u++) {
          corr += kk[t * C + u] * d[u];
          o += qk[t * C + u] * d[u];
        }
        let dt = bt[t] * (v[((c0 + t) * VH + h) * DV + j] - corr);
        d[t] = dt;
        out[((c0 + t) * VH + h) * DV + j] = o + qk[t * C + t] * dt;
      }
      let en = et[n - 1u];
      for (var i = 0u; i < DK; i++) {
        var acc = en * s[i];
        for (var u = 0u; u < n; u++) { acc += ks[u * DK + i] * tail[u] * d[u]; }
        s[i] = acc;
      }
    }
    workgroupBarrier();
  }
  if (live) {
    for (var i = 0u; i < DK; i++) { state[(h * DK + i) * DV + j] = s[i]; }
  }
}
`;
}

export const gatedDeltaRuleKernel: KernelGenerator<GatedDeltaRuleAttrs> = (a, { caps, maxT }) => {
  checkGatedDeltaRuleAttrs(a);
  const DK = a.keyDim;
  const DV = a.valueDim;
  const wg = columnsPerGroup(DV, Math.min(caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX));
  const runs = Math.ceil(DV / wg);
  if (a.valueHeads > caps.maxWorkgroupsPerDimension || runs > caps.maxWorkgroupsPerDimension) {
    throw new Error(`gated_delta_rule: ${a.valueHeads} heads × ${runs} runs exceed the grid limit`);
  }
  const chunk = maxT === 1 ? null : chunkTokens(DK, caps);
  const bindings: BindingDecl[] = [
    STEP_BINDING,
    ...['q', 'k', 'v', 'ba', 'aLog', 'dtBias'].map((name): BindingDecl => ({
      name,
      access: 'read',
    })),
    { name: 'state', access: 'read_write' },
    { name: 'out', access: 'read_write' },
  ];
  const decls = storageDecls(bindings);
  const code = `${STEP_WGSL}
${decls}
const KH: u32 = ${a.keyHeads}u;
const VH: u32 = ${a.valueHeads}u;
const DK: u32 = ${DK}u;
const DV: u32 = ${DV}u;
const PER_KEY: u32 = ${a.valueHeads / a.keyHeads}u;
const WG: u32 = ${wg}u;
const SCALE: f32 = ${wgslFloat(a.scale)};
${chunk === null ? recurrentBody(DK) : chunkedBody(DK, chunk)}`;
  const form = chunk === null ? 'recurrent' : `chunk${chunk}`;
  return {
    launches: [
      {
        kernel: {
          name: `gated_delta_rule_${form}_kh${a.keyHeads}_vh${a.valueHeads}_dk${DK}_dv${DV}_wg${wg}`,
          code: withHelpers(code),
          bindings,
          workgroupSize: [wg, 1, 1],
        },
        grid: [a.valueHeads, runs, 1],
      },
    ],
    scratch: {},
  };
};
