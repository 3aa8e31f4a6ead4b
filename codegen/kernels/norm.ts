/**
 * RMSNorm / LayerNorm (optionally added to a residual row), and Mamba-2's gated RMSNorm: one workgroup per (row, group), grid [width/group, T].
 * Threads stride over the group (coalesced), reduce through workgroup memory with
 * a halving tree, and keep their elements in registers between the passes when
 * there are few enough per thread; otherwise they re-read x (from cache).
 */
import type { GatedNormAttrs, NormAttrs } from '../../src/graph/ops.ts';
import { gatedNorm, norm, normHasBias } from '../../src/ops/norm.ts';
import { STEP_WGSL, type KernelLaunch } from '../kernel-ir.ts';
import { type DeviceCaps } from '../../src/target.ts';
import type { KernelGenerator } from './types.ts';
import { nameNum, nextPow2 } from './elementwise.ts';
import { opBindings, wgslF32 } from './wgsl-builder.ts';
import { withHelpers } from './wgsl-math.ts';

/** Identifiers of the norm kernels' module scope and entry point. */
const NORM_RESERVED = ['WIDTH', 'GROUP', 'WG', 'PER', 'EPS', 'red', 'wg_sum', 'main', 'wid', 'lid'];

/** Elements per thread kept in registers; more would spill, and re-reading a row from cache is cheap. */
const MAX_CACHED = 16;

/** Workgroup-wide sum through a halving tree (WG a power of two); needs `const WG: u32`. */
const WG_SUM_WGSL = /* wgsl */ `var<workgroup> red: array<f32, WG>;

// The leading barrier lets the previous call's readers of red[0] finish first.
fn wg_sum(v: f32, lid: u32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { red[lid] = red[lid] + red[lid + h]; }
    workgroupBarrier();
  }
  return red[0];
}
`;

function checkGrid(op: string, groups: number, maxT: number, caps: DeviceCaps): void {
  if (groups > caps.maxWorkgroupsPerDimension || maxT > caps.maxWorkgroupsPerDimension) {
    throw new Error(
      `${op}: grid [${groups}, ${maxT}] exceeds ${caps.maxWorkgroupsPerDimension} workgroups per dimension`,
    );
  }
}

/** Threads for one (row, group) workgroup: a power of two with about 4 elements each. */
function groupWorkgroup(group: number, caps: DeviceCaps, maxT: number): number {
  // Decode has one row: spend up to the device's whole workgroup on it. Prefill has many rows: 256 keeps occupancy.
  const cap = Math.min(
    caps.maxInvocationsPerWorkgroup,
    caps.maxWorkgroupSizeX,
    maxT === 1 ? 1024 : 256,
  );
  return Math.max(1, Math.min(prevPow2(cap), Math.max(32, nextPow2(Math.ceil(group / 4)))));
}

export const normKernel: KernelGenerator<NormAttrs> = (a, { caps, maxT }) => {
  norm.check(a);
  // The fused token shift's prev[t] for t ≥ 1 is row t − 1's output, another workgroup's.
  if (a.shift && maxT !== 1)
    throw new Error(
      `norm: a fused token shift (shift) needs decode steps (maxT 1), got maxT ${maxT}`,
    );
  const groups = a.width / a.group;
  checkGrid('norm', groups, maxT, caps);
  const wg = groupWorkgroup(a.group, caps, maxT);
  const per = Math.ceil(a.group / wg);
  const cached = per <= MAX_CACHED;
  const layer = a.norm.kind === 'layer';
  const l2 = a.norm.kind === 'l2';
  const bias = normHasBias(a);

  const { bindings, decls } = opBindings(a, [
    ...NORM_RESERVED,
    ...['base', 'v', 's', 'mean', 'ss', 'j', 'd', 'inv', 'i', 'y'],
  ]);

  const xAt = (j: string) => (cached ? `v[${j}]` : `x[base + lid + ${j} * WG]`);
  // Load into registers and/or sum for the mean; RMS without caching needs no first pass.
  const firstPass = [
    cached ? '  var v: array<f32, PER>;' : '',
    layer ? '  var s = 0.0;' : '',
    cached || layer ? '  for (var j = 0u; j < PER; j++) {\n    if (lid + j * WG < GROUP) {' : '',
    cached ? '      v[j] = x[base + lid + j * WG];' : '',
    layer ? `      s = s + ${xAt('j')};` : '',
    cached || layer ? '    }\n  }' : '',
  ]
    .filter((l) => l)
    .join('\n');
  // l2: x · rsqrt(Σx² + eps), no mean over the group and no weight. perChannel: w and b span
  // the row, so group g's element i reads column g·GROUP + i.
  const p = a.perChannel ? 'wid.x * GROUP + i' : 'i';
  const scale = a.norm.kind === 'l2' ? '' : a.norm.unitOffset ? ` * (1.0 + w[${p}])` : ` * w[${p}]`;
  const meanSquare = l2 ? 'wg_sum(ss, lid)' : 'wg_sum(ss, lid) / f32(GROUP)';
  const code = `${STEP_WGSL}
${decls}
const WIDTH: u32 = ${a.width}u;
const GROUP: u32 = ${a.group}u;
const WG: u32 = ${wg}u;
const PER: u32 = ${per}u;
const EPS: f32 = ${wgslF32(a.norm.eps)};
${WG_SUM_WGSL}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (wid.y >= step.T) { return; }
  let base = wid.y * WIDTH + wid.x * GROUP;
${firstPass}
  let mean = ${layer ? 'wg_sum(s, lid) / f32(GROUP)' : '0.0'};
  var ss = 0.0;
  for (var j = 0u; j < PER; j++) {
    if (lid + j * WG < GROUP) {
      let d = ${xAt('j')} - mean;
      ss = ss + d * d;
    }
  }
  let inv = ${a.phased ? `select(1.0, inverseSqrt(${meanSquare} + EPS), step.keys > 0u)` : `inverseSqrt(${meanSquare} + EPS)`};
  for (var j = 0u; j < PER; j++) {
    let i = lid + j * WG;
    if (i < GROUP) {
      let y = ${a.residual ? 'residual[base + i] + ' : ''}((${xAt('j')} - mean) * inv${scale}${bias ? ` + b[${p}]` : ''});
      out[base + i] = y;${
        a.shift
          ? `
      // The token shift (one row, one workgroup): this thread alone reads, then writes, state[i].
      prev[i] = select(state[i], 0.0, step.pos == 0u);
      state[i] = y;`
          : ''
      }
    }
  }
}
`;
  const variant = `${a.norm.kind}${a.norm.kind !== 'l2' && a.norm.unitOffset ? '_u1' : ''}${bias ? '_b' : ''}${a.perChannel ? '_pc' : ''}${a.residual ? '_res' : ''}${a.phased ? '_phased' : ''}${a.shift ? '_shift' : ''}${cached ? '' : '_reread'}`;
  const launch: KernelLaunch = {
    kernel: {
      name: `norm_${variant}_w${a.width}_g${a.group}_wg${wg}_eps${nameNum(a.norm.eps)}`,
      code: withHelpers(code),
      bindings,
      workgroupSize: [wg, 1, 1],
    },
    grid: [groups, { sym: 'T' }, 1],
  };
  return { launches: [launch], scratch: {} };
};

/**
 * Gated RMSNorm (HF MambaRMSNormGated, norm_before_gate=False): v = x · silu(z), each group
 * scaled by 1/sqrt(mean(v²) + eps), times w[column] (w[column in group] with groupWeight). With
 * normBeforeGate v = x and the result is multiplied by silu(z) instead. Same layout as the norm
 * kernel.
 */
export const gatedNormKernel: KernelGenerator<GatedNormAttrs> = (a, { caps, maxT }) => {
  gatedNorm.check(a);
  const groups = a.width / a.group;
  checkGrid('gated_norm', groups, maxT, caps);
  const wg = groupWorkgroup(a.group, caps, maxT);
  const per = Math.ceil(a.group / wg);
  const cached = per <= MAX_CACHED;
  const { bindings, decls } = opBindings(a, [
    ...NORM_RESERVED,
    ...['silu_z', 'gated', 'col', 'base', 'v', 'ss', 'j', 'e', 'inv', 'i'],
  ]);
  const vAt = (j: string) => (cached ? `v[${j}]` : `gated(base + lid + ${j} * WG)`);
  const code = `${STEP_WGSL}
${decls}
const WIDTH: u32 = ${a.width}u;
const GROUP: u32 = ${a.group}u;
const WG: u32 = ${wg}u;
const PER: u32 = ${per}u;
const EPS: f32 = ${wgslF32(a.eps)};
${WG_SUM_WGSL}
fn silu_z(i: u32) -> f32 { return silu(z[i]); }
fn gated(i: u32) -> f32 {
  return ${a.normBeforeGate ? 'x[i]' : 'x[i] * silu_z(i)'};
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (wid.y >= step.T) { return; }
  let col = wid.x * GROUP;
  let base = wid.y * WIDTH + col;
${cached ? '  var v: array<f32, PER>;\n' : ''}  var ss = 0.0;
  for (var j = 0u; j < PER; j++) {
    if (lid + j * WG < GROUP) {
${cached ? '      v[j] = gated(base + lid + j * WG);\n' : ''}      let e = ${vAt('j')};
      ss = ss + e * e;
    }
  }
  let inv = inverseSqrt(wg_sum(ss, lid) / f32(GROUP) + EPS);
  for (var j = 0u; j < PER; j++) {
    let i = lid + j * WG;
    if (i < GROUP) {
      out[base + i] = ${vAt('j')} * inv * w[${a.groupWeight ? 'i' : 'col + i'}]${a.normBeforeGate ? ' * silu_z(base + i)' : ''};
    }
  }
}
`;
  const launch: KernelLaunch = {
    kernel: {
      name: `gated_norm${a.normBeforeGate ? '_prenorm' : ''}${a.groupWeight ? '_gw' : ''}_w${a.width}_g${a.group}_wg${wg}${cached ? '' : '_reread'}_eps${nameNum(a.eps)}`,
      code: withHelpers(code),
      bindings,
      workgroupSize: [wg, 1, 1],
    },
    grid: [groups, { sym: 'T' }, 1],
  };
  return { launches: [launch], scratch: {} };
};

function prevPow2(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}
