/**
 * WGSL generators for the mixture-of-experts ops (semantics: src/graph/ops.ts, references:
 * src/ops/moe.ts):
 * - moe_route: one thread per token ranks the experts k times (no sort, no scratch: pick j is the
 *   best expert strictly after pick j−1 in the (value desc, index asc) order, which is also the
 *   tie rule), computes the weights and counts the expert load with atomics;
 * - moe_group: one workgroup; thread e counts and lists expert e's pairs in ascending pair order,
 *   so the schedule is deterministic and equal to the reference's;
 * - moe_matmul: prefill runs grouped tiles (workgroup y walks the experts' row tiles through the
 *   offsets, so a weight tile loaded once serves up to BM of one expert's pairs); decode and
 *   ungrouped nodes run a GEMV per pair that reads only the pair's expert. Both read the expert
 *   weights (f32, f16, q8 or q4: wType) through the one weight reader, codegen/kernels/
 *   weight-load.ts, as `load_w(i)`, unit i of the node's bound experts, and accumulate in f32;
 * - moe_combine: one thread per output element.
 */
import type {
  MoeCombineAttrs,
  MoeGroupAttrs,
  MoeMatmulAttrs,
  MoeRouteAttrs,
} from '../../src/graph/ops.ts';
import { SIGMOID_NORM_EPS, moeMatmul, moeRoute, moeSlots, routedCount } from '../../src/ops/moe.ts';
import { bindingCount } from '../../src/ops/types.ts';
import { combinedLaunch, routedLaunch, routedWorkgroupBytes } from './moe-fused.ts';
import { expertColumnWgsl, expertGroup, gemvName, gemvShape, gemvWorkgroup } from './moe-gemv.ts';
import { dtypeBytes } from '../../src/graph/dtype.ts';
import { STEP_BINDING, STEP_WGSL, type BindingDecl, type KernelLaunch } from '../kernel-ir.ts';
import type { GeneratedOp, KernelGenerator } from './types.ts';
import { FLAT_MAIN_WGSL, flatGrid, nameNum, streamWorkgroup } from './elementwise.ts';
import { wgslF32 } from './wgsl-builder.ts';
import { actExpr, withHelpers } from './wgsl-math.ts';
import { weightBinding, weightGroupBinding, type WeightBinding } from './weight-load.ts';
import { warpFloor } from './matmul/gemv.ts';

/** A WGSL element type: f32, u32, vec4<f32>, atomic<u32>, or a stored weight's (weight-load.ts). */
export type Elem = string;
export type Access = 'read' | 'read_write';

/** Bindings and their WGSL declarations (variables are b_<name> so no name shadows a builtin). */
export function declare(list: Array<[string, Access, Elem]>): {
  bindings: BindingDecl[];
  decls: string;
} {
  const bindings: BindingDecl[] = [
    STEP_BINDING,
    ...list.map(([name, access]) => ({ name, access })),
  ];
  const decls = list
    .map(
      ([name, access, elem], i) =>
        `@group(0) @binding(${i + 1}) var<storage, ${access}> b_${name}: array<${elem}>;`,
    )
    .join('\n');
  return { bindings, decls };
}

function hash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

export function launch(
  name: string,
  code: string,
  bindings: BindingDecl[],
  wg: number,
  grid: KernelLaunch['grid'],
): KernelLaunch {
  return {
    kernel: {
      name: `${name}_${hash(code)}`,
      code: withHelpers(code),
      bindings,
      workgroupSize: [wg, 1, 1],
    },
    grid,
  };
}

export const moeRouteKernel: KernelGenerator<MoeRouteAttrs> = (a, { caps }) => {
  moeRoute.check(a);
  const E = a.experts;
  const KS = a.topK;
  const sigmoid = a.scoring === 'sigmoid';
  const grouped = a.groups > 1;
  const list: Array<[string, Access, Elem]> = [['logits', 'read', 'f32']];
  if (a.correctionBias) list.push(['bias', 'read', 'f32']);
  if (a.expertScale) list.push(['expertScale', 'read', 'f32']);
  list.push(
    ['ids', 'read_write', 'u32'],
    ['weights', 'read_write', 'f32'],
    ['load', 'read_write', 'atomic<u32>'],
  );
  const { bindings, decls } = declare(list);
  const WG = Math.min(64, caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
  const rank = sigmoid
    ? `sigmoid(b_logits[base + i])${a.correctionBias ? ' + b_bias[i]' : ''}`
    : 'b_logits[base + i]';
  // Experts outside the chosen groups rank with 0, like HF's masked_fill(…, 0.0).
  const value = grouped
    ? `select(0.0, rankv(base, i), ((allowed >> (i / GS)) & 1u) == 1u)`
    : 'rankv(base, i)';
  const groups = grouped
    ? `
  var gs: array<f32, ${a.groups}>;
  for (var g = 0u; g < G; g++) {
    // The sum of the group's two best ranked values.
    var m1 = -3.0e38;
    var m2 = -3.0e38;
    for (var i = g * GS; i < (g + 1u) * GS; i++) {
      let v = rankv(base, i);
      if (v > m1) { m2 = m1; m1 = v; } else if (v > m2) { m2 = v; }
    }
    gs[g] = m1 + m2;
  }
  for (var r = 0u; r < TG; r++) {
    var best = G;
    var bv = 0.0;
    for (var g = 0u; g < G; g++) {
      if (((allowed >> g) & 1u) == 0u && (best == G || gs[g] > bv)) { best = g; bv = gs[g]; }
    }
    allowed = allowed | (1u << best);
  }`
    : '';
  // Gemma 4's per-expert scale multiplies the finished weight.
  const es = a.expertScale ? ' * b_expertScale[selI[j]]' : '';
  const weights = sigmoid
    ? `
  var s: array<f32, KS>;
  var den = ${a.normalize ? wgslF32(SIGMOID_NORM_EPS) : '1.0'};
  for (var j = 0u; j < KS; j++) {
    s[j] = sigmoid(selL[j]);${a.normalize ? '\n    den += s[j];' : ''}
  }
  for (var j = 0u; j < KS; j++) { b_weights[t * KS + j] = s[j] / den * SCALE${es}; }`
    : `
  // Exponentials of differences from the largest logit (the first pick) never overflow.
  let m = selL[0];
  var den = 0.0;
  ${
    a.normalize
      ? 'for (var j = 0u; j < KS; j++) { den += exp(selL[j] - m); }'
      : 'for (var i = 0u; i < E; i++) { den += exp(b_logits[base + i] - m); }'
  }
  for (var j = 0u; j < KS; j++) { b_weights[t * KS + j] = exp(selL[j] - m) / den * SCALE${es}; }`;
  const code = `${STEP_WGSL}
${decls}
const E: u32 = ${E}u;
const KS: u32 = ${KS}u;
const G: u32 = ${a.groups}u;
const GS: u32 = ${E / a.groups}u;
const TG: u32 = ${a.topkGroups}u;
const SCALE: f32 = ${wgslF32(a.scale)};

fn rankv(base: u32, i: u32) -> f32 {
  return ${rank};
}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let t = gid.x;
  if (t >= step.T) { return; }
  let base = t * E;
  ${grouped ? 'var allowed = 0u;' : ''}${groups}
  var selI: array<u32, KS>;
  var selL: array<f32, KS>;
  var pv = 0.0;
  var pi = 0u;
  for (var j = 0u; j < KS; j++) {
    var bi = E;
    var bv = 0.0;
    for (var i = 0u; i < E; i++) {
      let v = ${value};
      let after = j == 0u || v < pv || (v == pv && i > pi);
      if (after && (bi == E || v > bv)) { bi = i; bv = v; }
    }
    bi = min(bi, E - 1u); // only NaN logits leave it unset
    selI[j] = bi;
    selL[j] = b_logits[base + bi];
    pv = bv;
    pi = bi;
    b_ids[t * KS + j] = bi;
    atomicAdd(&b_load[bi], 1u);
  }${weights}
}
`;
  const name = `moe_route_${a.scoring}_e${E}_k${KS}${grouped ? `_g${a.groups}` : ''}${a.expertScale ? '_es' : ''}`;
  return {
    launches: [launch(name, code, bindings, WG, [{ sym: 'T', div: WG }, 1, 1])],
    scratch: {},
  };
};

export const moeGroupKernel: KernelGenerator<MoeGroupAttrs> = (a, { caps }) => {
  if (!(a.experts > 0 && a.topK > 0)) throw new Error('moe_group: experts and top_k must be > 0');
  const { bindings, decls } = declare([
    ['ids', 'read', 'u32'],
    ['counts', 'read_write', 'u32'],
    ['offsets', 'read_write', 'u32'],
    ['order', 'read_write', 'u32'],
  ]);
  const WG = streamWorkgroup(caps);
  const code = `${STEP_WGSL}
${decls}
const E: u32 = ${a.experts}u;
const KS: u32 = ${a.topK}u;

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  let P = step.T * KS;
  for (var e = lid; e < E; e += ${WG}u) {
    var c = 0u;
    for (var p = 0u; p < P; p++) { if (b_ids[p] == e) { c++; } }
    b_counts[e] = c;
  }
  storageBarrier();
  workgroupBarrier();
  if (lid == 0u) {
    var acc = 0u;
    for (var e = 0u; e < E; e++) {
      b_offsets[e] = acc;
      acc += b_counts[e];
    }
    b_offsets[E] = acc;
  }
  storageBarrier();
  workgroupBarrier();
  for (var e = lid; e < E; e += ${WG}u) {
    var at = b_offsets[e];
    for (var p = 0u; p < P; p++) {
      if (b_ids[p] == e) {
        b_order[at] = p;
        at++;
      }
    }
  }
}
`;
  return {
    launches: [launch(`moe_group_e${a.experts}_k${a.topK}`, code, bindings, WG, [1, 1, 1])],
    scratch: {},
  };
};

/** WGSL `fn emit(e, c, g, u) -> f32`: bias, activation / gating / clamped SwiGLU of one column. */
function emitFn(a: MoeMatmulAttrs): string {
  const lines: string[] = ['var g = g0;', 'var u = u0;'];
  if (a.bias) {
    lines.push('g += b_bias[e * WR + c];');
    if (a.gated) lines.push('u += b_bias[e * WR + N + c];');
  }
  if (a.clamp) {
    lines.push(
      `let gc = min(g, ${wgslF32(a.clamp.limit)});`,
      `let uc = clamp(u, ${wgslF32(-a.clamp.limit)}, ${wgslF32(a.clamp.limit)});`,
      `return gc * sigmoid(${wgslF32(a.clamp.alpha)} * gc) * (uc + 1.0);`,
    );
  } else {
    if (a.act) lines.push(`g = ${actExpr(a.act, 'g')};`);
    lines.push(a.gated ? 'return g * u;' : 'return g;');
  }
  return `
fn emit(e: u32, c: u32, g0: f32, u0: f32) -> f32 {
  ${lines.join('\n  ')}
}`;
}

/**
 * How the node's experts are read: unit i (four consecutive k with vec4, else one element) of
 * all expertCount·rows·K elements in the binding, counted from the node's first expert, since a
 * split node binds only its own experts. q8 and q4 keep every code before every scale, so unit
 * indices are global within the binding, never per expert.
 */
export function expertWeights(a: MoeMatmulAttrs, vec4: boolean): WeightBinding {
  return weightBinding(a.wType, expertElements(a), vec4);
}

/** Elements of the node's bound experts: expertCount · rows · K. */
function expertElements(a: MoeMatmulAttrs): number {
  return a.expertCount * (a.gated ? 2 : 1) * a.N * a.K;
}

/**
 * WGSL `fn load_wg(i, x0, …)` over binding b_w when the expert GEMVs group G > 1 units
 * (moe-gemv.ts expertGroup; empty otherwise): the dot product of units i … i+G−1 of the node's
 * experts (weight-load.ts weightGroupBinding), beside `w`'s per-unit `load_w` on the same binding.
 */
export function expertGroupReader(a: MoeMatmulAttrs, vec4: boolean, w: WeightBinding): string {
  const G = expertGroup(a, vec4);
  if (G === 1) return '';
  const g = weightGroupBinding(a.wType, expertElements(a), vec4, G);
  if (g.elem !== w.elem)
    throw new Error(`moe_matmul: grouped ${a.wType} reader binds ${g.elem}, load_w ${w.elem}`);
  return g.load('load_wg', 'b_w');
}

export function moeMatmulHeader(a: MoeMatmulAttrs, decls: string, w: WeightBinding): string {
  return `${STEP_WGSL}
${decls}
${w.load('load_w', 'b_w')}
const N: u32 = ${a.N}u;
const K: u32 = ${a.K}u;
const KS: u32 = ${a.topK}u;
// Pairs per token (more with the shared expert folded in: slot KS + c is expert XS + c).
const SL: u32 = ${moeSlots(a)}u;
const XS: u32 = ${a.experts}u;
const WR: u32 = ${a.gated ? 2 * a.N : a.N}u;
const E0: u32 = ${a.expertStart}u;
const EC: u32 = ${a.expertCount}u;
${emitFn(a)}`;
}

export function features(a: MoeMatmulAttrs): string {
  const f = [a.input === 'token' ? 'tok' : 'pair'];
  if (a.gated) f.push('glu');
  if (a.clamp) f.push('clamp');
  else if (a.act) f.push(a.act);
  if (a.bias) f.push('bias');
  if (a.wType !== 'f32') f.push(a.wType);
  return f.join('_');
}

/** Rows (pairs) per grouped tile, columns per tile, reduction depth per stage. */
const BM = 16;
const BN = 64;
const BK = 16;
const TILE_THREADS = (BM / 4) * (BN / 4);

/**
 * WGSL staging one BK × BN weight tile (and the up rows' tile when gated) into workgroup memory
 * at column n, depth kk: with K % 4 === 0 each thread loads whole units of four k (a unit never
 * straddles K, since k0 and the unit's offset are multiples of 4), else single elements.
 */
function weightTileLoad(a: MoeMatmulAttrs, vec4: boolean): string {
  const up = (line: string) => (a.gated ? `\n      ${line}` : '');
  if (!vec4) {
    return `for (var l = 0u; l < ${(BN * BK) / TILE_THREADS}u; l++) {
      let i = lid + l * ${TILE_THREADS}u;
      let n = i / BK;
      let k = k0 + i % BK;
      let c = col0 + n;
      var v = 0.0;${up('var vu = 0.0;')}
      if (c < N && k < K) {
        v = load_w((wrow + c) * K + k);${up('  vu = load_w((wrow + N + c) * K + k);')}
      }
      ws[(i % BK) * BN + n] = v;${up('wus[(i % BK) * BN + n] = vu;')}
    }`;
  }
  const put = (arr: string, v: string) =>
    ['x', 'y', 'z', 'w'].map((q, j) => `${arr}[(kq + ${j}u) * BN + n] = ${v}.${q};`).join(' ');
  return `for (var l = 0u; l < ${(BN * BK) / 4 / TILE_THREADS}u; l++) {
      let i = lid + l * ${TILE_THREADS}u;
      let n = i / ${BK / 4}u;
      let kq = (i % ${BK / 4}u) * 4u;
      let k = k0 + kq;
      let c = col0 + n;
      var v = vec4<f32>(0.0);${up('var vu = vec4<f32>(0.0);')}
      if (c < N && k < K) {
        v = load_w((wrow + c) * U + k / 4u);${up('  vu = load_w((wrow + N + c) * U + k / 4u);')}
      }
      ${put('ws', 'v')}${up(put('wus', 'vu'))}
    }`;
}

function groupedLaunch(a: MoeMatmulAttrs): KernelLaunch {
  const vec4 = a.K % 4 === 0;
  const w = expertWeights(a, vec4);
  const list: Array<[string, Access, Elem]> = [
    ['x', 'read', 'f32'],
    ['w', 'read', w.elem],
  ];
  if (a.bias) list.push(['bias', 'read', 'f32']);
  list.push(['offsets', 'read', 'u32'], ['order', 'read', 'u32'], ['out', 'read_write', 'f32']);
  const { bindings, decls } = declare(list);
  const rows = [0, 1, 2, 3];
  const comp = ['x', 'y', 'z', 'w'];
  const accDecl = rows
    .map((i) => `var acc${i} = vec4<f32>(0.0);${a.gated ? ` var accu${i} = vec4<f32>(0.0);` : ''}`)
    .join('\n  ');
  const fma = rows
    .map(
      (i) => `acc${i} += xa.${comp[i]} * wb;${a.gated ? ` accu${i} += xa.${comp[i]} * wu;` : ''}`,
    )
    .join('\n      ');
  const stores = rows
    .map(
      (i) => `if (ty * 4u + ${i}u < nr) {
    let p = spair[ty * 4u + ${i}u];
    ${rows
      .map(
        (j) =>
          `if (c0 + ${j}u < N) { b_out[p * N + c0 + ${j}u] = emit(e, c0 + ${j}u, acc${i}.${comp[j]}, ${a.gated ? `accu${i}.${comp[j]}` : '0.0'}); }`,
      )
      .join('\n    ')}
  }`,
    )
    .join('\n  ');
  const code = `${moeMatmulHeader(a, decls, w)}
const U: u32 = ${vec4 ? a.K / 4 : a.K}u;
const BM: u32 = ${BM}u;
const BN: u32 = ${BN}u;
const BK: u32 = ${BK}u;
var<workgroup> xs: array<f32, ${BK * BM}>;
var<workgroup> ws: array<f32, ${BK * BN}>;
${a.gated ? `var<workgroup> wus: array<f32, ${BK * BN}>;` : ''}
var<workgroup> srow: array<u32, ${BM}>;
var<workgroup> spair: array<u32, ${BM}>;
var<workgroup> tile: vec3<u32>;

@compute @workgroup_size(${TILE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  // Workgroup y is the y-th row tile of this node's experts, counted expert by expert.
  if (lid == 0u) {
    var acc = 0u;
    var info = vec3<u32>(0u, 0u, 0u);
    // Only routed experts have pairs in the schedule (shared ones stored after them have none).
    for (var l = 0u; l < ${routedCount(a)}u; l++) {
      let s = b_offsets[E0 + l];
      let c = b_offsets[E0 + l + 1u] - s;
      let nt = (c + BM - 1u) / BM;
      if (wid.y < acc + nt) {
        let r0 = s + (wid.y - acc) * BM;
        // offsets[experts] is the step's pair count; the bound also keeps step in the layout.
        info = vec3<u32>(l, r0, min(BM, min(s + c, step.T * KS) - r0));
        break;
      }
      acc += nt;
    }
    tile = info;
  }
  let info = workgroupUniformLoad(&tile);
  let nr = info.z;
  if (nr == 0u) { return; }
  let e = info.x;
  if (lid < BM) {
    var p = 0u;
    if (lid < nr) { p = b_order[info.y + lid]; }
    spair[lid] = p;
    srow[lid] = ${a.input === 'token' ? 'p / KS' : 'p'};
  }
  workgroupBarrier();
  let col0 = wid.x * BN;
  let tx = lid % ${BN / 4}u;
  let ty = lid / ${BN / 4}u;
  let wrow = e * WR;
  ${accDecl}
  for (var k0 = 0u; k0 < K; k0 += BK) {
    for (var l = 0u; l < ${(BM * BK) / TILE_THREADS}u; l++) {
      let i = lid + l * ${TILE_THREADS}u;
      let m = i / BK;
      let k = k0 + i % BK;
      var v = 0.0;
      if (m < nr && k < K) { v = b_x[srow[m] * K + k]; }
      xs[(i % BK) * BM + m] = v;
    }
    ${weightTileLoad(a, vec4)}
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let xb = kk * BM + ty * 4u;
      let wo = kk * BN + tx * 4u;
      let xa = vec4<f32>(xs[xb], xs[xb + 1u], xs[xb + 2u], xs[xb + 3u]);
      let wb = vec4<f32>(ws[wo], ws[wo + 1u], ws[wo + 2u], ws[wo + 3u]);
      ${a.gated ? 'let wu = vec4<f32>(wus[wo], wus[wo + 1u], wus[wo + 2u], wus[wo + 3u]);' : ''}
      ${fma}
    }
    workgroupBarrier();
  }
  let c0 = col0 + tx * 4u;
  ${stores}
}
`;
  // Σ_e ceil(count_e / BM) ≤ ceil((pairs + experts·(BM − 1)) / BM) row tiles.
  return launch(
    `moe_matmul_g${BM}x${BN}${vec4 ? '_v4' : ''}_${features(a)}`,
    code,
    bindings,
    TILE_THREADS,
    [Math.ceil(a.N / BN), { sym: 'T', mul: a.topK, add: a.expertCount * (BM - 1), div: BM }, 1],
  );
}

/**
 * A GEMV's first bindings: x (vec4 rows when K allows), the expert weights and their bias; the
 * caller adds the rest.
 */
export function gemvInputs(a: MoeMatmulAttrs): {
  vec4: boolean;
  w: WeightBinding;
  list: Array<[string, Access, Elem]>;
} {
  const vec4 = a.K % 4 === 0;
  const w = expertWeights(a, vec4);
  const list: Array<[string, Access, Elem]> = [
    ['x', 'read', vec4 ? 'vec4<f32>' : 'f32'],
    ['w', 'read', w.elem],
  ];
  if (a.bias) list.push(['bias', 'read', 'f32']);
  return { vec4, w, list };
}

function gemvLaunch(a: MoeMatmulAttrs, wgMax: number, warp: number): KernelLaunch {
  const { vec4, w, list } = gemvInputs(a);
  list.push(['ids', 'read', 'u32'], ['out', 'read_write', 'f32']);
  const { bindings, decls } = declare(list);
  const shape = gemvShape(a, wgMax, warp);
  const { WG, CPW } = shape;
  const code = `${moeMatmulHeader(a, decls, w)}
${expertGroupReader(a, vec4, w)}
const U: u32 = ${vec4 ? a.K / 4 : a.K}u;
var<workgroup> red: array<f32, ${WG * (a.gated ? 2 : 1)}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let p = wid.y;
  if (p >= step.T * SL) { return; }
  let ex = select(XS + p % SL - KS, b_ids[(p / SL) * KS + min(p % SL, KS - 1u)], p % SL < KS);
  let ok = ex >= E0 && ex < E0 + EC;
  let e = select(0u, ex - E0, ok);
  let xr = ${a.input === 'token' ? 'p / SL' : 'p'} * U;
  ${expertColumnWgsl(a, shape, vec4, (k) => `b_x[xr + ${k}]`)}
}
`;
  return launch(gemvName(shape, vec4, features(a), []), code, bindings, WG, [
    Math.ceil(a.N / CPW),
    { sym: 'T', mul: moeSlots(a) },
    1,
  ]);
}

export const moeMatmulKernel: KernelGenerator<MoeMatmulAttrs> = (a, { caps, maxT }) => {
  moeMatmul.check(a);
  const storage = bindingCount(moeMatmul, a);
  if (storage > caps.maxStorageBuffersPerStage) {
    throw new Error(
      `moe_matmul: needs ${storage} storage buffers, the device allows ${caps.maxStorageBuffersPerStage}`,
    );
  }
  const wBytes = dtypeBytes(a.wType, a.expertCount * (a.gated ? 2 : 1) * a.N * a.K);
  if (wBytes > caps.maxStorageBindingBytes) {
    throw new Error(
      `moe_matmul: expert weights of ${wBytes} bytes exceed maxStorageBufferBindingSize = ${caps.maxStorageBindingBytes}; split them over experts`,
    );
  }
  if (a.sharedSlots && a.grouped)
    throw new Error('moe_matmul: a folded shared expert runs the ungrouped kernels only');
  const tiled = a.grouped && maxT > 1;
  if (tiled) {
    const bytes = 4 * (BK * BM + (a.gated ? 2 : 1) * BK * BN + 2 * BM + 4);
    if (TILE_THREADS > caps.maxInvocationsPerWorkgroup || bytes > caps.maxWorkgroupStorageBytes) {
      throw new Error('moe_matmul: the grouped tile does not fit the device workgroup limits');
    }
  }
  const wg = Math.min(caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
  const warp = warpFloor(caps);
  if (Math.ceil(a.N / 8) > caps.maxWorkgroupsPerDimension)
    throw new Error(`moe_matmul: N = ${a.N} needs more workgroups than the device allows`);
  if (a.route || a.prologue) {
    const bytes = routedWorkgroupBytes(a, gemvWorkgroup(wg));
    if (bytes > caps.maxWorkgroupStorageBytes)
      throw new Error(
        `moe_matmul: inline routing of ${a.experts} experts needs ${bytes} bytes of workgroup memory, the device allows ${caps.maxWorkgroupStorageBytes}`,
      );
  }
  const l =
    a.route || a.prologue
      ? routedLaunch(a, wg, warp)
      : a.combine
        ? combinedLaunch(a, wg, warp)
        : tiled
          ? groupedLaunch(a)
          : gemvLaunch(a, wg, warp);
  return { launches: [l], scratch: {} } satisfies GeneratedOp;
};

export const moeCombineKernel: KernelGenerator<MoeCombineAttrs> = (a, { caps, maxT }) => {
  if (!(a.width > 0 && a.topK > 0)) throw new Error('moe_combine: width and top_k must be > 0');
  const list: Array<[string, Access, Elem]> = [
    ['y', 'read', 'f32'],
    ['weights', 'read', 'f32'],
  ];
  if (a.residual) list.push(['residual', 'read', 'f32']);
  if (a.shared) list.push(['shared', 'read', 'f32']);
  if (a.shared && a.sharedGate) list.push(['sharedGate', 'read', 'f32']);
  list.push(['out', 'read_write', 'f32']);
  const { bindings, decls } = declare(list);
  const wg = streamWorkgroup(caps);
  const shared = a.shared
    ? `\n  acc += ${a.sharedGate ? 'sigmoid(b_sharedGate[t]) * ' : ''}b_shared[i];`
    : '';
  if (!Number.isFinite(a.scale))
    throw new Error(`moe_combine: scale must be finite, got ${a.scale}`);
  // The residual multiplier scales the experts' sum (shared included), not the residual.
  const scaled = a.scale !== 1 ? `\n  acc *= ${wgslF32(a.scale)};` : '';
  const code = `${STEP_WGSL}
${decls}
const WG: u32 = ${wg}u;
const W: u32 = ${a.width}u;
const KS: u32 = ${a.topK}u;
${FLAT_MAIN_WGSL}
  if (i >= step.T * W) { return; }
  let t = i / W;
  let d = i % W;
  var acc = 0.0;
  for (var j = 0u; j < KS; j++) { acc += b_weights[t * KS + j] * b_y[(t * KS + j) * W + d]; }${shared}${scaled}${a.residual ? '\n  acc += b_residual[i];' : ''}
  b_out[i] = acc;
}
`;
  const f = [
    a.residual ? 'res' : '',
    a.shared ? (a.sharedGate ? 'gshared' : 'shared') : '',
    a.scale !== 1 ? `s${nameNum(a.scale)}` : '',
  ]
    .filter(Boolean)
    .join('_');
  return {
    launches: [
      launch(
        `moe_combine_w${a.width}_k${a.topK}${f ? `_${f}` : ''}`,
        code,
        bindings,
        wg,
        flatGrid('T', a.width, maxT, wg, caps),
      ),
    ],
    scratch: {},
  };
};
