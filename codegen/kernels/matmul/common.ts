/**
 * What every matmul schedule shares (semantics: src/ops/matmul.ts): the binding list, the
 * constants, the weight, norm and x-map load helpers, and the one epilogue (bias, activation /
 * gating, scale, the fused pointwise epilogue, residual, strided writes, or RoPE + KV-append), so
 * every fused variant exists once and every schedule has all of them.
 */
import {
  convStateName,
  EPILOGUE_VALUE,
  kvTypeOf,
  splitOutput,
  type FusedPointwise,
  type MatmulAttrs,
} from '../../../src/graph/ops.ts';
import {
  ROW_POS,
  STEP_BINDING,
  STEP_WGSL,
  storageDecl,
  type BindingDecl,
} from '../../kernel-ir.ts';
import { type DeviceCaps } from '../../../src/target.ts';
import { actExpr } from '../wgsl-math.ts';
import { pointwiseFunction } from '../pointwise.ts';
import { weightBinding, weightGroupBinding, type WeightBinding } from '../weight-load.ts';

/** A WGSL f32 literal (eps values such as 1e-6 must stay floats). */
export function lit(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`matmul: non-finite constant ${v}`);
  const s = String(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

export function hash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/**
 * How w is bound and read: through the one weight reader (codegen/kernels/weight-load.ts) as
 * `load_wu(i)`, load unit i of the weight buffer (4 consecutive k when K % 4 === 0, else 1), in
 * f32; or, on the tensor-core schedule (`wide`), as raw f16 words 8 halves per load.
 */
function weightAccess(a: MatmulAttrs, vec4: boolean, wide: boolean, group: number): WeightBinding {
  if (wide) return { elem: 'vec4<u32>', load: () => '' };
  const elements = (a.gated ? 2 : 1) * a.N * a.K;
  // The GEMV's groups of load units (GemvShape.G) read through `load_wg` instead.
  if (group > 1) return weightGroupBinding(a.wType, elements, vec4, group);
  return weightBinding(a.wType, elements, vec4);
}

/** Schedules differ in what they need from the shared header. */
export interface CommonOptions {
  /** f16 weights read 8 halves per load as vec4<u32> (needs K % 8 === 0). */
  wideWeights?: boolean;
  /** WGSL `enable` lines the schedule needs, placed first. */
  enables?: string[];
  /**
   * The decode GEMV's load units per thread and loop step (GemvShape.G): above 1, w is read by
   * `load_wg(i, x0, …)`, the dot product of units i … i+G-1 (weight-load.ts
   * weightGroupBinding), and there is no `load_wu`.
   */
  weightGroup?: number;
}

/** What all schedules share: bindings, constants, the load/norm helpers and the epilogue. */
export interface Common {
  bindings: BindingDecl[];
  /** WGSL: enables, step uniform, storage declarations, constants, helper functions. */
  header: string;
  /** K % 4 === 0: x and the norm weights are read as vec4, U = K/4 units per row. */
  vec4: boolean;
  U: number;
  /** Expressions on one load unit (vec4 or f32). */
  sum: (v: string) => string;
  dot: (p: string, q: string) => string;
  /** WGSL for the step's output row count and the x row of output row 0. */
  nRows: string;
  rowBase: string;
  features: string;
  /** WGSL for load unit `i` of x row `row` (the x map's value under one, else b_x). */
  xUnit: (row: string, i: string) => string;
}

export function common(a: MatmulAttrs, opts: CommonOptions = {}): Common {
  const vec4 = a.K % 4 === 0;
  const X = vec4 ? 'vec4<f32>' : 'f32';
  const pro = a.prologue;
  const normBias = pro?.kind === 'layer' && pro.bias;
  // (binding name, access, element); the WGSL variable is b_<name> so `cos` never shadows a builtin
  // Under an x map, x and the map's other inputs are read one f32 at a time by x_map.
  const xs: Array<[string, 'read', string]> = a.xMap
    ? Object.keys(a.xMap.inputs).map((n) => [n, 'read', 'f32'])
    : [['x', 'read', X]];
  const group = opts.weightGroup ?? 1;
  const w = weightAccess(a, vec4, opts.wideWeights ?? false, group);
  const list: Array<[string, 'read' | 'read_write', string]> = [...xs, ['w', 'read', w.elem]];
  if (a.bias) list.push(['bias', 'read', 'f32']);
  if (a.residual) list.push(['residual', 'read', 'f32']);
  if (pro) list.push(['normW', 'read', X]);
  // Read one f32 at a time: a gate inside a wider row (prologueGateCols) may start anywhere.
  if (pro && a.prologueGate) list.push(['gate', 'read', 'f32']);
  if (normBias) list.push(['normB', 'read', X]);
  if (a.epilogue) for (const n of Object.keys(a.epilogue.inputs)) list.push([n, 'read', 'f32']);
  if (a.ropeKv && a.ropeKv.rotaryDim > 0) list.push(['cos', 'read', 'f32'], ['sin', 'read', 'f32']);
  if (a.conv) {
    list.push(['convW', 'read', 'f32']);
    if (a.conv.bias && !a.conv.packedBias) list.push(['convB', 'read', 'f32']);
    for (let i = 0; i < (a.conv.states?.length ?? 1); i++)
      list.push([convStateName(i), 'read_write', 'f32']);
  }
  list.push(['out', 'read_write', 'f32']);
  for (let i = 1; i < (a.splits?.length ?? 0); i++)
    list.push([splitOutput(i), 'read_write', 'f32']);
  if (a.ropeKv) {
    // An f16 cache is u32 words of two halves; emit_pair writes one whole word.
    const e = kvTypeOf(a.ropeKv) === 'f16' ? 'u32' : 'f32';
    list.push(['kcache', 'read_write', e], ['vcache', 'read_write', e]);
    // A batched row's own position offset (kernel-ir.ts ROW_POS): slots prefilled apart.
    if ((a.ropeKv.batch ?? 1) > 1) list.push([ROW_POS, 'read', 'u32']);
  }
  const bindings: BindingDecl[] = [
    STEP_BINDING,
    ...list.map(([name, access]) => ({ name, access })),
  ];
  const decls = list
    .map(([name, access, e], i) => storageDecl(i + 1, `b_${name}`, access, e))
    .join('\n');

  let norm = '';
  if (pro) {
    // One group's weight shared by every group (prologueGroupWeight): unit k % group units.
    const wk = a.prologueGroupWeight
      ? `k % ${vec4 ? a.prologueGroup! / 4 : a.prologueGroup!}u`
      : 'k';
    const scale = pro.unitOffset ? `(1.0 + b_normW[${wk}])` : `b_normW[${wk}]`;
    const centred = pro.kind === 'layer' ? '(v - mean)' : 'v';
    norm = `
fn norm_x(v: ${X}, k: u32, mean: f32, rstd: f32) -> ${X} {
  return ${centred} * rstd * ${scale}${normBias ? ' + b_normB[k]' : ''};
}`;
    // prologueGate: silu(gate) for the load unit whose first element is gate element e.
    if (a.prologueGate)
      norm += `
fn gate_x(e: u32) -> ${X} {
  let z = ${vec4 ? 'vec4<f32>(b_gate[e], b_gate[e + 1u], b_gate[e + 2u], b_gate[e + 3u])' : 'b_gate[e]'};
  return z / (1.0 + exp(-z));
}`;
  }
  const header = [
    ...(opts.enables ?? []),
    STEP_WGSL,
    decls,
    `const N: u32 = ${a.N}u;\nconst K: u32 = ${a.K}u;\nconst U: u32 = ${vec4 ? a.K / 4 : a.K}u;`,
    pro ? `const EPS: f32 = ${lit(pro.eps)};` : '',
    norm,
    w.load(group > 1 ? 'load_wg' : 'load_wu', 'b_w'),
    a.xType === 'f16' ? roundX(vec4) : '',
    xMapLoad(a, vec4),
    epilogue(a),
  ].join('\n');

  const f: string[] = [];
  if (vec4) f.push('v4');
  if (a.wType !== 'f32') f.push(a.xType === 'f16' ? 'f16' : a.wType === 'f16' ? 'w16' : a.wType);
  if (pro) f.push(pro.kind === 'rms' ? 'rms' : 'ln');
  if (a.prologueGroup !== undefined) f.push(`g${a.prologueGroup}`);
  if (a.prologueGroupWeight) f.push('gw');
  if (a.prologueGate) f.push('gate');
  if (a.prologueGateCols) f.push(`gc${a.prologueGateCols.cols}o${a.prologueGateCols.offset}`);
  if (a.xMap) f.push(a.splitXMaps ? 'xmaps' : 'xmap');
  if (a.bias) f.push('bias');
  if (a.gated) f.push('glu');
  if (a.act) f.push(a.act);
  if (a.scale !== 1) f.push('scaled');
  if (a.epilogue) f.push('epi');
  if (a.residual) f.push('res');
  if (a.rows === 'L') f.push('lastL');
  if (!a.ropeKv && (a.outStride !== a.N || a.outOffset !== 0)) f.push('strided');
  if (a.ropeKv) f.push(kvTypeOf(a.ropeKv) === 'f16' ? 'ropekv16' : 'ropekv');
  if (a.ropeKv?.rotaryDim === 0) f.push('norope');
  if (a.ropeKv?.ring) f.push(`ring${a.ropeKv.ring.sink}r${a.ropeKv.ring.rows}`);
  if ((a.ropeKv?.batch ?? 1) > 1) f.push(`batch${a.ropeKv!.batch}`);
  if (a.splits) f.push(`split${a.splits.length}`);
  if (a.conv)
    f.push(
      `conv${a.conv.channels}k${a.conv.kernel}${a.conv.bias ? 'b' : ''}${a.conv.silu ? 's' : ''}${(a.conv.batch ?? 1) > 1 ? `x${a.conv.batch}` : ''}` +
        `${a.conv.offset ? `o${a.conv.offset}` : ''}${a.conv.states ? `st${a.conv.states.join('_')}` : ''}${a.conv.packedBias ? 'pb' : ''}`,
    );
  return {
    bindings,
    header,
    vec4,
    U: vec4 ? a.K / 4 : a.K,
    sum: (v) => (vec4 ? `dot(${v}, vec4<f32>(1.0))` : v),
    dot: (p, q) => (vec4 ? `dot(${p}, ${q})` : `(${p} * ${q})`),
    nRows: a.rows === 'T' ? 'step.T' : 'step.L',
    rowBase: a.rows === 'T' ? '0u' : '(step.T - step.L)',
    features: f.length ? `_${f.join('_')}` : '',
    xUnit: (row, i) => (a.xMap ? `load_xu(${row}, ${i})` : `b_x[(${row}) * U + ${i}]`),
  };
}

/**
 * Under an x map: `x_map(t, k)`, element k of x row t as the products read it, and
 * `load_xu(t, i)`, load unit i of that row (4 k when vec4, else 1).
 */
function xMapLoad(a: MatmulAttrs, vec4: boolean): string {
  if (!a.xMap) return '';
  if (a.splitXMaps && a.splits) return splitXMapLoad(a.splitXMaps, a.splits, vec4);
  const f = pointwiseFunction('x_map', a.xMap.inputs, a.xMap.expr, { binding: (n) => `b_${n}` });
  const body = vec4
    ? 'let k = 4u * i;\n  return vec4<f32>(x_map(t, k), x_map(t, k + 1u), x_map(t, k + 2u), x_map(t, k + 3u));'
    : 'return x_map(t, i);';
  return `
${f}
fn load_xu(t: u32, i: u32) -> ${vec4 ? 'vec4<f32>' : 'f32'} {
  ${body}
}`;
}

/**
 * Under per-split x maps (MatmulAttrs.splitXMaps): `x_map_<i>` and `load_xu_<i>` for each split
 * i as xMapLoad makes them, and `load_xs(t, i, n)`, load unit i of the x row t that output column
 * n reads (its split's map).
 */
function splitXMapLoad(maps: FusedPointwise[], splits: number[], vec4: boolean): string {
  const X = vec4 ? 'vec4<f32>' : 'f32';
  const fns = maps.map((m, s) => {
    const f = pointwiseFunction(`x_map_${s}`, m.inputs, m.expr, { binding: (n) => `b_${n}` });
    const body = vec4
      ? `let k = 4u * i;\n  return vec4<f32>(x_map_${s}(t, k), x_map_${s}(t, k + 1u), x_map_${s}(t, k + 2u), x_map_${s}(t, k + 3u));`
      : `return x_map_${s}(t, i);`;
    return `${f}\nfn load_xu_${s}(t: u32, i: u32) -> ${X} {\n  ${body}\n}`;
  });
  let c0 = 0;
  const arms = splits.map((n, s) => {
    c0 += n;
    return s === splits.length - 1
      ? `return load_xu_${s}(t, i);`
      : `if (n < ${c0}u) { return load_xu_${s}(t, i); }`;
  });
  return `
${fns.join('\n')}
fn load_xs(t: u32, i: u32, n: u32) -> ${X} {
  ${arms.join('\n  ')}
}`;
}

/**
 * `round_x(v)`: x rounded to the nearest f16 (ties to even) and back (xType f16), as every
 * schedule stages it, through wgsl-math's f16_rne (not pack2x16float, whose rounding WGSL leaves
 * to the implementation; see there).
 */
function roundX(vec4: boolean): string {
  const T = vec4 ? 'vec4<f32>' : 'f32';
  const body = vec4
    ? 'return vec4<f32>(f16_rne(v.x), f16_rne(v.y), f16_rne(v.z), f16_rne(v.w));'
    : 'return f16_rne(v);';
  return `
fn round_x(v: ${T}) -> ${T} {
  ${body}
}`;
}

/**
 * Epilogue functions. `emit(r, c, g[, u])` finishes output column c of output row r
 * from its accumulator(s); with ropeKv, `emit_pair(r, c, a0, a1)` finishes the even
 * column c and c+1 together because RoPE rotates (2i, 2i+1) pairs. The same pair is one u32
 * word of an f16 cache, so its one thread writes the whole word (no other thread touches it).
 */
function epilogue(a: MatmulAttrs): string {
  const r = a.ropeKv;
  if (r) {
    const half = r.rotaryDim / 2;
    const bias = a.bias ? '\n  y0 += b_bias[c];\n  y1 += b_bias[c + 1u];' : '';
    // Element e = p * KVC + s (s even) of an f16 cache is the low half of word e / 2, each value
    // rounded to nearest even by f16_pack2 (wgsl-math.ts), as the reference rounds it.
    // The cache row is `cr`: the position, or its ring row (KvRing) for a ring cache.
    const store = (cache: string): string =>
      kvTypeOf(r) === 'f16'
        ? `${cache}[(cr * KVC + s) >> 1u] = f16_pack2(y0, y1);`
        : `${cache}[cr * KVC + s] = y0;
      ${cache}[cr * KVC + s + 1u] = y1;`;
    // The capacity bounds the positions (rope table rows; the cache's rows too without a ring):
    // an f16 buffer's arrayLength counts words, not elements.
    // Batched (r.batch): row r is sequence r at step.pos + row_pos[r], in its own slice of
    // cache rows.
    const batched = (r.batch ?? 1) > 1;
    const cap =
      r.ring || batched || kvTypeOf(r) === 'f16'
        ? `${r.capacity}u`
        : 'arrayLength(&b_kcache) / KVC';
    const ringRow = r.ring
      ? `select(${r.ring.sink}u + (p - ${r.ring.sink}u) % ${r.ring.rows - r.ring.sink}u, p, p < ${r.ring.sink}u)`
      : 'p';
    const row = batched ? `r * ${r.ring ? r.ring.rows : r.capacity}u + ${ringRow}` : ringRow;
    return `
const QC: u32 = ${r.qCols}u;
const KVC: u32 = ${r.kvCols}u;
const HD: u32 = ${r.headDim}u;
const RD: u32 = ${r.rotaryDim}u;
fn emit_pair(r: u32, c: u32, a0: f32, a1: f32) {
  var y0 = a0;
  var y1 = a1;${bias}
  let p = step.pos + ${batched ? `b_${ROW_POS}[r]` : 'r'};
  // Rows past the cache's capacity would land on other rows under robust access; drop them.
  if (p >= ${cap}) { return; }
  let cr = ${row};
  if (c < QC + KVC) {
    let s = select(c - QC, c, c < QC);
    ${
      half > 0
        ? `let d = s % HD;
    if (d < RD) {
      let cs = b_cos[p * ${half}u + d / 2u];
      let sn = b_sin[p * ${half}u + d / 2u];
      let t0 = y0 * cs - y1 * sn;
      y1 = y1 * cs + y0 * sn;
      y0 = t0;
    }`
        : '// No RoPE: k and v go to the caches as computed.'
    }
    if (c < QC) {
      b_out[r * QC + c] = y0;
      b_out[r * QC + c + 1u] = y1;
    } else {
      ${store('b_kcache')}
    }
  } else {
    let s = c - QC - KVC;
    ${store('b_vcache')}
  }
}`;
  }
  const lines = [`var y = g${a.bias ? ' + b_bias[c]' : ''};`];
  if (a.act) lines.push(`y = ${actExpr(a.act, 'y')};`);
  if (a.gated) lines.push(`y = y * (u${a.bias ? ' + b_bias[N + c]' : ''});`);
  if (a.scale !== 1) lines.push(`y = y * ${lit(a.scale)};`);
  if (a.epilogue) lines.push(`y = epi(r, ${a.outOffset}u + c, y);`);
  if (a.residual) lines.push('y = y + b_residual[r * N + c];');
  if (a.conv) {
    const off = a.conv.offset ?? 0;
    const end = `c < ${off + a.conv.channels}u`;
    lines.push(`if (${off ? `c >= ${off}u && ` : ''}${end}) { y = conv_step(r, c - ${off}u, y); }`);
  }
  if (a.splits) lines.push(splitStore(a.splits));
  else lines.push(`b_out[r * ${a.outStride}u + ${a.outOffset}u + c] = y;`);
  const epi = a.epilogue
    ? pointwiseFunction('epi', a.epilogue.inputs, a.epilogue.expr, {
        binding: (n) => `b_${n}`,
        params: [EPILOGUE_VALUE],
      })
    : '';
  return `
${epi}${convStep(a)}
fn emit(r: u32, c: u32, g: f32${a.gated ? ', u: f32' : ''}) {
  ${lines.join('\n  ')}
}`;
}

/**
 * `conv_step(r, c, v)`: the conv epilogue (MatmulAttrs.conv) for column c of row r: this thread
 * alone owns column c of the state (the GEMV walks rows in order), so it reads the old rows,
 * shifts them and appends v in place. At step.pos 0 the first row reads them as zeros.
 */
function convStep(a: MatmulAttrs): string {
  const cv = a.conv;
  if (!cv) return '';
  const K = cv.kernel;
  const val = cv.silu ? 'silu(s)' : 's';
  // Batched (cv.batch): row r is sequence r, reading and shifting its own slice from sb.
  const batched = (cv.batch ?? 1) > 1;
  const sb = batched ? 'sb + ' : '';
  const bias = !cv.bias ? '0.0' : cv.packedBias ? `b_convW[${cv.channels * K}u + c]` : 'b_convB[c]';
  // Conv channel c is column i = c − c0 of the state holding channels [c0, c0 + C)
  // (MatmulAttrs.conv.states): one arm per state, each its own binding.
  const arm = (name: string, c0: number, C: number): string => `{
    let i = c - ${c0}u;${
      batched
        ? `
    let sb = r * ${(K - 1) * C}u;`
        : ''
    }
    for (var j = 0u; j < ${K - 1}u; j++) {
      s += b_convW[c * ${K}u + j] * select(b_${name}[${sb}j * ${C}u + i], 0.0, fresh);
    }
    s += b_convW[c * ${K}u + ${K - 1}u] * v;
    for (var j = 0u; j + 1u < ${K - 1}u; j++) {
      b_${name}[${sb}j * ${C}u + i] = select(b_${name}[${sb}(j + 1u) * ${C}u + i], 0.0, fresh);
    }
    b_${name}[${sb}${(K - 2) * C}u + i] = v;
  }`;
  let c0 = 0;
  const arms = (cv.states ?? [cv.channels]).map((C, i, all) => {
    const code = arm(convStateName(i), c0, C);
    c0 += C;
    return i === all.length - 1 ? code : `if (c < ${c0}u) ${code}`;
  });
  return `
fn conv_step(r: u32, c: u32, v: f32) -> f32 {
  let fresh = step.pos == 0u${batched ? ';' : ' && r == 0u;'}
  var s = ${bias};
  ${arms.join(' else ')}
  return ${val};
}`;
}

/** Column c of a split matmul goes to the output whose range holds it, dense [rows, width]. */
function splitStore(splits: number[]): string {
  let c0 = 0;
  const arms = splits.map((n, i) => {
    const arm = `b_${splitOutput(i)}[r * ${n}u + c - ${c0}u] = y;`;
    const cond = i === splits.length - 1 ? '' : `if (c < ${c0 + n}u) `;
    c0 += n;
    return `${cond}{ ${arm} }`;
  });
  return arms.join(' else ');
}

/**
 * WGSL computing the prologue norm's row statistics of the tile's BM rows into smean / srstd,
 * with P threads per row and partial sums in `part` (NT floats). Needs `lid`, `row0`, `nRows`
 * and `rowBase` in scope; every thread reaches its barriers.
 */
export function rowStats(a: MatmulAttrs, c: Common, BM: number, NT: number): string {
  if (!a.prologue) return '';
  const P = Math.max(1, Math.floor(NT / BM));
  const perPass = Math.floor(NT / P);
  const layer = a.prologue.kind === 'layer';
  const sq = c.vec4 ? 'dot(d, d)' : 'd * d';
  const active = P * perPass;
  return `
  // Row statistics for the prologue norm: ${P} thread(s) per tile row, partials combined by one.
  for (var m0 = 0u; m0 < ${BM}u; m0 += ${perPass}u) {
    let m = m0 + lid / ${P}u;
    let p = lid % ${P}u;
    let valid = lid < ${active}u && m < ${BM}u && row0 + m < nRows;
    let base = (rowBase + row0 + m) * U;
    var mean = 0.0;${
      layer
        ? `
    var s = 0.0;
    if (valid) { for (var k = p; k < U; k += ${P}u) { s += ${c.sum('b_x[base + k]')}; } }
    part[lid] = s;
    workgroupBarrier();
    if (valid && p == 0u) {
      var t = 0.0;
      for (var q = 0u; q < ${P}u; q++) { t += part[lid + q]; }
      smean[m] = t / f32(K);
    }
    workgroupBarrier();
    if (valid) { mean = smean[m]; }`
        : ''
    }
    var ss = 0.0;
    if (valid) {
      for (var k = p; k < U; k += ${P}u) { let d = b_x[base + k] - mean; ss += ${sq}; }
    }
    part[lid] = ss;
    workgroupBarrier();
    if (valid && p == 0u) {
      var t = 0.0;
      for (var q = 0u; q < ${P}u; q++) { t += part[lid + q]; }
      srstd[m] = inverseSqrt(t / f32(K) + EPS);
      smean[m] = mean;
    }
    workgroupBarrier();
  }`;
}

/** Workgroup arrays rowStats needs. */
export function rowStatsDecls(a: MatmulAttrs, BM: number, NT: number): string {
  if (!a.prologue) return '';
  return `var<workgroup> part: array<f32, ${NT}>;\nvar<workgroup> smean: array<f32, ${BM}>;\nvar<workgroup> srstd: array<f32, ${BM}>;`;
}

/** Bytes of workgroup memory rowStats uses. */
export function rowStatsBytes(a: MatmulAttrs, BM: number, NT: number): number {
  return a.prologue ? 4 * (NT + 2 * BM) : 0;
}

/** Rows a prefill tile may span: maxT to a power of two, at least 16 (taller tiles idle rows). */
export function tileRowCap(maxT: number): number {
  return Math.max(16, 2 ** Math.ceil(Math.log2(Math.max(1, maxT))));
}

/**
 * The tile rule both prefill schedules share: the first candidate (in order of preference) whose
 * grid over maxT rows and N columns gives at least its minGroups workgroups; else the one giving
 * the most. `cands` must not be empty.
 */
export function preferTile<T extends { BM: number; BN: number }>(
  cands: ReadonlyArray<{ t: T; minGroups: number }>,
  maxT: number,
  N: number,
): T {
  const groups = (t: T) => Math.ceil(maxT / t.BM) * Math.ceil(N / t.BN);
  return (
    cands.find(({ t, minGroups }) => groups(t) >= minGroups)?.t ??
    cands.map(({ t }) => t).reduce((best, t) => (groups(t) > groups(best) ? t : best))
  );
}

/** Split a 1-D count of workgroups over x and z when it exceeds the per-dimension limit. */
export function foldGrid(
  blocks: number,
  caps: DeviceCaps,
  name: string,
): { gx: number; gz: number } {
  const max = caps.maxWorkgroupsPerDimension;
  if (blocks <= max) return { gx: blocks, gz: 1 };
  const gz = Math.ceil(blocks / max);
  if (gz > max)
    throw new Error(
      `${name}: ${blocks} column blocks exceed maxComputeWorkgroupsPerDimension squared`,
    );
  return { gx: Math.ceil(blocks / gz), gz };
}

/** Refuse a row-tile count over the per-dimension grid limit. */
export function checkRowTiles(maxT: number, BM: number, caps: DeviceCaps): void {
  const rowTiles = Math.ceil(maxT / BM);
  if (rowTiles > caps.maxWorkgroupsPerDimension) {
    throw new Error(
      `matmul: maxT ${maxT} needs ${rowTiles} row tiles, over maxComputeWorkgroupsPerDimension`,
    );
  }
}
