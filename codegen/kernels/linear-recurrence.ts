/**
 * The gated delta rule (semantics: src/ops/linear-recurrence.ts) as a recurrent kernel, one
 * launch for prefill and decode alike: a workgroup per (value head, run of WG value columns),
 * a thread per column j holding S[:, j] (keyDim values) in registers across the step's tokens.
 * Each token the workgroup stages that head's q and k rows in workgroup memory; every thread
 * derives the l2 norms from them, so no thread waits on another beyond the two barriers.
 * Tokens are sequential inside the launch (no chunked form yet): the dispatch count does not
 * depend on T, the work per thread grows linearly with it. At step.pos == 0 the old state
 * reads as zeros.
 */
import type { GatedDeltaRuleAttrs } from '../../src/graph/ops.ts';
import { checkGatedDeltaRuleAttrs } from '../../src/ops/linear-recurrence.ts';
import { STEP_BINDING, STEP_WGSL, storageDecl, type BindingDecl } from '../kernel-ir.ts';
import type { KernelGenerator } from './types.ts';

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

export const gatedDeltaRuleKernel: KernelGenerator<GatedDeltaRuleAttrs> = (a, { caps }) => {
  checkGatedDeltaRuleAttrs(a);
  const DK = a.keyDim;
  const DV = a.valueDim;
  const wg = columnsPerGroup(DV, Math.min(caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX));
  const runs = Math.ceil(DV / wg);
  if (a.valueHeads > caps.maxWorkgroupsPerDimension || runs > caps.maxWorkgroupsPerDimension) {
    throw new Error(`gated_delta_rule: ${a.valueHeads} heads × ${runs} runs exceed the grid limit`);
  }
  const bindings: BindingDecl[] = [
    STEP_BINDING,
    ...['q', 'k', 'v', 'a', 'b', 'aLog', 'dtBias'].map((name): BindingDecl => ({
      name,
      access: 'read',
    })),
    { name: 'state', access: 'read_write' },
    { name: 'out', access: 'read_write' },
  ];
  const decls = bindings
    .slice(1)
    .map((b, i) => storageDecl(i + 1, b.name, b.access as 'read' | 'read_write'))
    .join('\n');
  const code = `${STEP_WGSL}
${decls}
const KH: u32 = ${a.keyHeads}u;
const VH: u32 = ${a.valueHeads}u;
const DK: u32 = ${DK}u;
const DV: u32 = ${DV}u;
const PER_KEY: u32 = ${a.valueHeads / a.keyHeads}u;
const WG: u32 = ${wg}u;
const SCALE: f32 = ${wgslFloat(a.scale)};

var<workgroup> qs: array<f32, ${DK}>;
var<workgroup> ks: array<f32, ${DK}>;

@compute @workgroup_size(WG)
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
  let bias = dtBias[h];
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
      let x = a[t * VH + h] + bias;
      let sp = select(log(1.0 + exp(x)), x, x > 20.0);
      let decay = exp(decayRate * sp);
      let beta = 1.0 / (1.0 + exp(-b[t * VH + h]));
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
  return {
    launches: [
      {
        kernel: {
          name: `gated_delta_rule_kh${a.keyHeads}_vh${a.valueHeads}_dk${DK}_dv${DV}_wg${wg}`,
          code,
          bindings,
          workgroupSize: [wg, 1, 1],
        },
        grid: [a.valueHeads, runs, 1],
      },
    ],
    scratch: {},
  };
};
