/**
 * Decode kernels of the fused expert projections (src/passes/fuse-moe.ts; semantics:
 * MoeMatmulAttrs' prologue, route and combine in src/graph/ops.ts, reference: moeMatmul in
 * src/ops/moe.ts). Both are GEMVs like moe.ts's: a workgroup computes CPW output columns of one
 * row with TPC lanes per column.
 * - routed (gate_up): workgroup (x, p) serves pair p = t·topK + j. It first routes token t itself
 *   from the logits (WebGPU has no barrier across workgroups, so every workgroup repeats the
 *   ranking: k argmax trees over the experts' values in workgroup memory, which costs far less
 *   than a dispatch), normalises x's row t when the norm is fused (a sum tree for the mean and
 *   the variance), then runs pair p's products. Workgroup (0, t·topK) writes the ids and weights
 *   (and counts the load) for the down projection.
 * - combined (down): workgroup (x, t) computes its columns of token t's output: each lane sums
 *   weights[t, j]·(x_p · W[e_j]) over the token's k pairs as it goes, so the weighted sum needs
 *   no float atomics and no second pass; the shared expert's output, the residual multiplier and
 *   the residual follow in the epilogue. A later part of a split projection adds to out.
 */
import type { MoeMatmulAttrs } from '../../src/graph/ops.ts';
import { SIGMOID_NORM_EPS, moeSlots, sharedCount } from '../../src/ops/moe.ts';
export { routedWorkgroupBytes } from '../../src/ops/moe.ts';
import type { KernelLaunch } from '../kernel-ir.ts';
import { wgslF32 } from './wgsl-builder.ts';
import { wgReductionsWgsl } from './wg-reduce.ts';
import {
  declare,
  expertGroupReader,
  expertWeights,
  features,
  gemvInputs,
  launch,
  moeMatmulHeader,
  type Access,
  type Elem,
} from './moe.ts';
import {
  expertColumnWgsl,
  expertDotLoop,
  gemvName,
  gemvShape,
  laneReduceWgsl,
} from './moe-gemv.ts';

/** WGSL `fn route(t, lid)`: moe_route for token t into sel / selw (see the header). */
function routeWgsl(a: MoeMatmulAttrs, WG: number): string {
  const r = a.route!;
  const E = a.experts;
  const sigmoid = r.scoring === 'sigmoid';
  const grouped = r.groups > 1;
  const rank = sigmoid
    ? `sigmoid(b_logits[base + i])${r.correctionBias ? ' + b_routeBias[i]' : ''}`
    : 'b_logits[base + i]';
  const groups = grouped
    ? `
  // The sum of each group's two best values; the topk_groups best groups stay, the rest rank 0.
  for (var g = lid; g < RG; g += ${WG}u) {
    var m1 = -3.0e38;
    var m2 = -3.0e38;
    for (var i = g * GS; i < (g + 1u) * GS; i++) {
      let v = rk[i];
      if (v > m1) { m2 = m1; m1 = v; } else if (v > m2) { m2 = v; }
    }
    gsc[g] = m1 + m2;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var al = 0u;
    for (var q = 0u; q < TG; q++) {
      var best = RG;
      var bv = 0.0;
      for (var g = 0u; g < RG; g++) {
        if (((al >> g) & 1u) == 0u && (best == RG || gsc[g] > bv)) { best = g; bv = gsc[g]; }
      }
      al = al | (1u << min(best, 31u));
    }
    allowed = al;
  }
  workgroupBarrier();
  let al = allowed;
  for (var i = lid; i < E; i += ${WG}u) {
    if (((al >> (i / GS)) & 1u) == 0u) { rk[i] = 0.0; }
  }
  workgroupBarrier();`
    : '';
  // Gemma 4's per-expert scale multiplies the finished weight, as moe_route's kernel does.
  const es = r.expertScale ? ' * b_expertScale[sel[j]]' : '';
  let weights: string;
  if (sigmoid) {
    weights = `
  if (lid == 0u) {
    var den = ${r.normalize ? wgslF32(SIGMOID_NORM_EPS) : '1.0'};
    for (var j = 0u; j < KS; j++) {
      let s = sigmoid(b_logits[base + sel[j]]);
      selw[j] = s;${r.normalize ? '\n      den += s;' : ''}
    }
    for (var j = 0u; j < KS; j++) { selw[j] = selw[j] / den * RSCALE${es}; }
  }`;
  } else if (r.normalize) {
    weights = `
  if (lid == 0u) {
    // Exponentials of differences from the largest logit (the first pick) never overflow.
    let m = b_logits[base + sel[0]];
    var den = 0.0;
    for (var j = 0u; j < KS; j++) { den += exp(b_logits[base + sel[j]] - m); }
    for (var j = 0u; j < KS; j++) { selw[j] = exp(b_logits[base + sel[j]] - m) / den * RSCALE${es}; }
  }`;
  } else {
    weights = `
  // The softmax over all experts: its denominator is a sum tree.
  let m = b_logits[base + sel[0]];
  var part = 0.0;
  for (var i = lid; i < E; i += ${WG}u) { part += exp(rk[i] - m); }
  let den = wg_sum(part, lid);
  if (lid == 0u) {
    for (var j = 0u; j < KS; j++) { selw[j] = exp(b_logits[base + sel[j]] - m) / den * RSCALE${es}; }
  }`;
  }
  return `
const E: u32 = ${E}u;
const RG: u32 = ${r.groups}u;
const GS: u32 = ${E / r.groups}u;
const TG: u32 = ${r.topkGroups}u;
const RSCALE: f32 = ${wgslF32(r.scale)};
var<workgroup> rk: array<f32, ${E}>;
var<workgroup> rv: array<f32, ${WG}>;
var<workgroup> ri: array<u32, ${WG}>;
var<workgroup> sel: array<u32, ${a.topK}>;
var<workgroup> selw: array<f32, ${a.topK}>;
${grouped ? `var<workgroup> gsc: array<f32, ${r.groups}>;\nvar<workgroup> allowed: u32;` : ''}

fn route(t: u32, lid: u32) {
  let base = t * E;
  for (var i = lid; i < E; i += ${WG}u) { rk[i] = ${rank}; }
  workgroupBarrier();${groups}
  // Pick j: the best value strictly after pick j − 1 in (value desc, index asc) order, as the
  // moe_route kernel ranks; each thread scans its experts, then a tree keeps the best.
  var pv = 0.0;
  var pi = 0u;
  for (var j = 0u; j < KS; j++) {
    var b = E;
    var v = 0.0;
    for (var i = lid; i < E; i += ${WG}u) {
      let x = rk[i];
      let after = j == 0u || x < pv || (x == pv && i > pi);
      if (after && (b == E || x > v)) { b = i; v = x; }
    }
    rv[lid] = v;
    ri[lid] = b;
    workgroupBarrier();
    for (var h = ${WG / 2}u; h > 0u; h = h >> 1u) {
      if (lid < h) {
        let ob = ri[lid + h];
        let ov = rv[lid + h];
        let mb = ri[lid];
        if (ob != E && (mb == E || ov > rv[lid] || (ov == rv[lid] && ob < mb))) {
          ri[lid] = ob;
          rv[lid] = ov;
        }
      }
      workgroupBarrier();
    }
    let bsel = min(ri[0], E - 1u); // only NaN logits leave it unset
    pv = rv[0];
    pi = bsel;
    if (lid == 0u) { sel[j] = bsel; }
    workgroupBarrier();
  }${weights}
  workgroupBarrier();
}`;
}

/** WGSL computing `mean` and `rstd` of x's row at unit xr (the fused norm), and `norm_x`. */
function prologueWgsl(a: MoeMatmulAttrs, vec4: boolean): { fn: string; stats: string } {
  const pro = a.prologue!;
  const X = vec4 ? 'vec4<f32>' : 'f32';
  const sum = (v: string) => (vec4 ? `dot(${v}, vec4<f32>(1.0))` : v);
  const scale = pro.unitOffset ? '(1.0 + b_normW[k])' : 'b_normW[k]';
  const bias = pro.kind === 'layer' && pro.bias ? ' + b_normB[k]' : '';
  const fn = `
const NEPS: f32 = ${wgslF32(pro.eps)};
fn norm_x(v: ${X}, k: u32, mean: f32, rstd: f32) -> ${X} {
  return ${pro.kind === 'layer' ? '(v - mean)' : 'v'} * rstd * ${scale}${bias};
}`;
  const mean =
    pro.kind === 'layer'
      ? `var ms = 0.0;
  for (var k = lid; k < U; k += WGS) { ms += ${sum('b_x[xr + k]')}; }
  let mean = wg_sum(ms, lid) / f32(K);`
      : 'let mean = 0.0;';
  const stats = `${mean}
  var ss = 0.0;
  for (var k = lid; k < U; k += WGS) {
    let d = b_x[xr + k] - mean;
    ss += ${vec4 ? 'dot(d, d)' : 'd * d'};
  }
  let rstd = inverseSqrt(wg_sum(ss, lid) / f32(K) + NEPS);`;
  return { fn, stats };
}

/** The gate_up projection with its norm and / or the routing folded in (input 'token'). */
export function routedLaunch(a: MoeMatmulAttrs, wgMax: number, warp: number): KernelLaunch {
  const vec4 = a.K % 4 === 0;
  const X: Elem = vec4 ? 'vec4<f32>' : 'f32';
  const w = expertWeights(a, vec4);
  const list: Array<[string, Access, Elem]> = [['x', 'read', X]];
  if (a.prologue) {
    list.push(['normW', 'read', X]);
    if (a.prologue.kind === 'layer' && a.prologue.bias) list.push(['normB', 'read', X]);
  }
  list.push(['w', 'read', w.elem]);
  if (a.bias) list.push(['bias', 'read', 'f32']);
  if (a.route) {
    list.push(['logits', 'read', 'f32']);
    if (a.route.correctionBias) list.push(['routeBias', 'read', 'f32']);
    if (a.route.expertScale) list.push(['expertScale', 'read', 'f32']);
    list.push(['ids', 'read_write', 'u32'], ['weights', 'read_write', 'f32']);
    if (a.route.load) list.push(['load', 'read_write', 'atomic<u32>']);
  } else list.push(['ids', 'read', 'u32']);
  list.push(['out', 'read_write', 'f32']);
  const { bindings, decls } = declare(list);
  const { WG, TPC, CPW } = gemvShape(a, wgMax, warp);
  const G2 = a.gated ? 2 : 1;
  const pro = a.prologue ? prologueWgsl(a, vec4) : null;
  const xv = pro
    ? (k: string) => `norm_x(b_x[xr + ${k}], ${k}, mean, rstd)`
    : (k: string) => `b_x[xr + ${k}]`;
  const route = a.route
    ? `${a.sharedSlots ? '// Shared slots need no routing.\n  if (p % SL < KS) { route(t, lid); }' : 'route(t, lid);'}
  let ex = select(XS + p % SL - KS, sel[min(p % SL, KS - 1u)], p % SL < KS);
  if (wid.x == 0u && p % SL == 0u && lid < KS) {
    b_ids[t * KS + lid] = sel[lid];
    b_weights[t * KS + lid] = selw[lid];${a.route.load ? '\n    atomicAdd(&b_load[sel[lid]], 1u);' : ''}
  }`
    : 'let ex = select(XS + p % SL - KS, b_ids[t * KS + min(p % SL, KS - 1u)], p % SL < KS);';
  const code = `${moeMatmulHeader(a, decls, w)}
${expertGroupReader(a, vec4, w)}
const U: u32 = ${vec4 ? a.K / 4 : a.K}u;
const WG: u32 = ${WG}u;
const WGS: u32 = ${WG}u;
var<workgroup> red: array<f32, ${WG * G2}>;
${wgReductionsWgsl('red')}
${a.route ? routeWgsl(a, WG) : ''}
${pro ? pro.fn : ''}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let p = wid.y;
  if (p >= step.T * SL) { return; }
  let t = p / SL;
  ${route}
  let xr = t * U;
  ${pro ? pro.stats : ''}
  let ok = ex >= E0 && ex < E0 + EC;
  let e = select(0u, ex - E0, ok);
  ${expertColumnWgsl(a, { WG, TPC, CPW }, vec4, xv)}
}
`;
  const tags = [
    a.prologue ? (a.prologue.kind === 'rms' ? 'rms' : 'ln') : '',
    a.route ? (a.route.expertScale ? 'route_es' : 'route') : '',
  ];
  return launch(gemvName({ TPC, CPW }, vec4, features(a), tags), code, bindings, WG, [
    Math.ceil(a.N / CPW),
    { sym: 'T', mul: moeSlots(a) },
    1,
  ]);
}

/** The down projection with the combine folded in (input 'pair'). */
export function combinedLaunch(a: MoeMatmulAttrs, wgMax: number, warp: number): KernelLaunch {
  const c = a.combine!;
  const { vec4, w, list } = gemvInputs(a);
  list.push(['ids', 'read', 'u32'], ['weights', 'read', 'f32']);
  if (c.residual) list.push(['residual', 'read', 'f32']);
  if (c.shared && !a.sharedSlots) list.push(['shared', 'read', 'f32']);
  if (c.sharedGate) list.push(['sharedGate', 'read', 'f32']);
  if (c.load) list.push(['load', 'read_write', 'atomic<u32>']);
  list.push(['out', 'read_write', 'f32']);
  const { bindings, decls } = declare(list);
  const { WG, TPC, CPW } = gemvShape(a, wgMax, warp);
  const epi: string[] = ['var acc = red[lid];'];
  if (a.bias) {
    epi.push(`for (var j = 0u; j < SL; j++) {
      let ex = pair_expert(t, j);
      if (ex >= E0 && ex < E0 + EC) { acc += pair_weight(t, j) * b_bias[(ex - E0) * WR + c]; }
    }`);
  }
  if (c.shared && !a.sharedSlots)
    epi.push(`acc += ${c.sharedGate ? 'sigmoid(b_sharedGate[t]) * ' : ''}b_shared[t * N + c];`);
  if (c.scale !== 1) epi.push(`acc *= ${wgslF32(c.scale)};`);
  if (c.residual) epi.push('acc += b_residual[t * N + c];');
  if (a.expertStart > 0) epi.push('acc = b_out[t * N + c] + acc;');
  epi.push('b_out[t * N + c] = acc;');
  const code = `${moeMatmulHeader(a, decls, w)}
${expertGroupReader(a, vec4, w)}
const U: u32 = ${vec4 ? a.K / 4 : a.K}u;
var<workgroup> red: array<f32, ${WG}>;

fn pair_expert(t: u32, j: u32) -> u32 {
  return select(XS + j - KS, b_ids[t * KS + min(j, KS - 1u)], j < KS);
}

/** The routing weight of pair j; the shared expert's is its gate (or 1). */
fn pair_weight(t: u32, j: u32) -> f32 {
  if (j < KS) { return b_weights[t * KS + j]; }
  return ${c.sharedGate ? 'sigmoid(b_sharedGate[t])' : '1.0'};
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y;
  if (t >= step.T) { return; }
  let lane = lid % ${TPC}u;
  let c = wid.x * ${CPW}u + lid / ${TPC}u;
  let cw = min(c, N - 1u);
  var s = 0.0;
  for (var j = 0u; j < SL; j++) {
    let p = t * SL + j;
    let ex = pair_expert(t, j);
    if (ex >= E0 && ex < E0 + EC) {
      let wr = ((ex - E0) * WR + cw) * U;
      var d = 0.0;
      ${expertDotLoop(a, vec4, TPC, (k) => `b_x[p * U + ${k}]`, [['d', 'wr']])}
      s += pair_weight(t, j) * d;
    }
  }
  red[lid] = s;
  workgroupBarrier();
  ${laneReduceWgsl(TPC, WG, false)}
  if (lane == 0u && c < N) {
    ${epi.join('\n    ')}
  }${c.load ? '\n  if (wid.x == 0u && lid < KS) { atomicAdd(&b_load[b_ids[t * KS + lid]], 1u); }' : ''}
}
`;
  const tags = [
    'comb',
    c.residual ? 'res' : '',
    c.shared ? (c.sharedGate ? 'gshared' : 'shared') : '',
    a.sharedSlots ? `sx${sharedCount(a)}` : '',
    c.load ? 'load' : '',
  ];
  return launch(gemvName({ TPC, CPW }, vec4, features(a), tags), code, bindings, WG, [
    Math.ceil(a.N / CPW),
    { sym: 'T' },
    1,
  ]);
}
