/**
 * WGSL generators for the matmul family (semantics: src/ops/matmul.ts).
 *
 * Two schedules, one set of fusions:
 * - prefill (maxT > 1): workgroup tiles of BM×BN outputs, each thread a 4×4
 *   register block, x and w tiles staged K-major in workgroup memory so the
 *   inner loop is two vec4 loads and four vec4 FMAs;
 * - decode (maxT === 1): a GEMV where a group of TPC threads reduces C whole
 *   weight rows with coalesced (vec4 where K allows) reads and a workgroup tree
 *   reduction.
 * Both share the prologue norm (row statistics computed in-kernel), and one
 * epilogue (bias, activation / gating, residual, strided writes, or
 * RoPE + KV-append), so every fused variant exists once.
 */
import type { MatmulAttrs } from '../../src/graph/ops.ts';
import { validateMatmul } from '../../src/ops/matmul.ts';
import {
  STEP_BINDING,
  STEP_WGSL,
  storageDecl,
  type BindingDecl,
  type DeviceCaps,
  type KernelLaunch,
} from '../kernel-ir.ts';
import type { KernelGenerator } from './types.ts';
import { actExpr, actPrelude } from './wgsl-math.ts';

/** Storage buffers (step uniform excluded) a matmul kernel with these attrs binds. */
export function matmulStorageBindings(a: MatmulAttrs): number {
  let n = 3; // x, w, out
  if (a.bias) n++;
  if (a.residual) n++;
  if (a.prologue) n += a.prologue.kind === 'layer' && a.prologue.bias ? 2 : 1;
  if (a.ropeKv) n += 4; // cos, sin, kcache, vcache
  return n;
}

/** The prefill kernel's tile shape: BM rows × BN columns per workgroup, BK deep; 4×4 per thread. */
export interface MatmulTiling {
  BM: number;
  BN: number;
  BK: number;
  threads: number;
  workgroupBytes: number;
}

const TILE_SHAPES: ReadonlyArray<[number, number]> = [
  [128, 128],
  [64, 128],
  [64, 64],
  [32, 64],
  [32, 32],
  [16, 32],
  [16, 16],
];

/**
 * Largest tile the device's invocation and workgroup-memory limits allow, with
 * BM no taller than maxT needs (a 16-token prefill gains nothing from 64-row tiles).
 */
export function matmulTiling(a: MatmulAttrs, caps: DeviceCaps, maxT: number): MatmulTiling {
  const inv = Math.min(caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
  const rowCap = Math.max(16, 2 ** Math.ceil(Math.log2(Math.max(1, maxT))));
  const wTiles = a.gated ? 2 : 1;
  for (const [BM, BN] of TILE_SHAPES) {
    const threads = (BM * BN) / 16;
    if (BM > rowCap || threads > inv) continue;
    for (const BK of [16, 8]) {
      const stats = a.prologue ? 4 * (threads + 2 * BM) : 0;
      const bytes = 4 * BK * (BM + wTiles * BN) + stats;
      if (bytes <= caps.maxWorkgroupStorageBytes)
        return { BM, BN, BK, threads, workgroupBytes: bytes };
    }
  }
  throw new Error(
    `matmul: no tile fits maxComputeInvocationsPerWorkgroup = ${inv} and ` +
      `maxComputeWorkgroupStorageSize = ${caps.maxWorkgroupStorageBytes}`,
  );
}

/** A WGSL f32 literal (eps values such as 1e-6 must stay floats). */
function lit(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`matmul: non-finite constant ${v}`);
  const s = String(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

function hash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** What both schedules share: bindings, constants, the load/norm helpers and the epilogue. */
interface Common {
  bindings: BindingDecl[];
  /** WGSL: step uniform, storage declarations, constants, helper functions. */
  header: string;
  /** K % 4 === 0: x, w and the norm weights are read as vec4, U = K/4 units per row. */
  vec4: boolean;
  U: number;
  /** Expressions on one load unit (vec4 or f32). */
  sum: (v: string) => string;
  dot: (p: string, q: string) => string;
  /** WGSL for the step's output row count and the x row of output row 0. */
  nRows: string;
  rowBase: string;
  features: string;
}

function common(a: MatmulAttrs): Common {
  const vec4 = a.K % 4 === 0;
  const X = vec4 ? 'vec4<f32>' : 'f32';
  const pro = a.prologue;
  const normBias = pro?.kind === 'layer' && pro.bias;
  // (binding name, access, element); the WGSL variable is b_<name> so `cos` never shadows a builtin
  const list: Array<[string, 'read' | 'read_write', 'f32' | 'vec4<f32>']> = [
    ['x', 'read', X],
    ['w', 'read', X],
  ];
  if (a.bias) list.push(['bias', 'read', 'f32']);
  if (a.residual) list.push(['residual', 'read', 'f32']);
  if (pro) list.push(['normW', 'read', X]);
  if (normBias) list.push(['normB', 'read', X]);
  if (a.ropeKv) list.push(['cos', 'read', 'f32'], ['sin', 'read', 'f32']);
  list.push(['out', 'read_write', 'f32']);
  if (a.ropeKv) list.push(['kcache', 'read_write', 'f32'], ['vcache', 'read_write', 'f32']);
  const bindings: BindingDecl[] = [
    STEP_BINDING,
    ...list.map(([name, access]) => ({ name, access })),
  ];
  const decls = list
    .map(([name, access, e], i) => storageDecl(i + 1, `b_${name}`, access, e))
    .join('\n');

  let norm = '';
  if (pro) {
    const scale = pro.unitOffset ? '(1.0 + b_normW[k])' : 'b_normW[k]';
    const centred = pro.kind === 'layer' ? '(v - mean)' : 'v';
    norm = `
fn norm_x(v: ${X}, k: u32, mean: f32, rstd: f32) -> ${X} {
  return ${centred} * rstd * ${scale}${normBias ? ' + b_normB[k]' : ''};
}`;
  }
  const header = [
    STEP_WGSL,
    decls,
    `const N: u32 = ${a.N}u;\nconst K: u32 = ${a.K}u;\nconst U: u32 = ${vec4 ? a.K / 4 : a.K}u;`,
    pro ? `const EPS: f32 = ${lit(pro.eps)};` : '',
    actPrelude(a.act),
    norm,
    epilogue(a),
  ].join('\n');

  const f: string[] = [];
  if (vec4) f.push('v4');
  if (pro) f.push(pro.kind === 'rms' ? 'rms' : 'ln');
  if (a.bias) f.push('bias');
  if (a.gated) f.push('glu');
  if (a.act) f.push(a.act);
  if (a.scale !== 1) f.push('scaled');
  if (a.residual) f.push('res');
  if (a.rows === 'L') f.push('lastL');
  if (!a.ropeKv && (a.outStride !== a.N || a.outOffset !== 0)) f.push('strided');
  if (a.ropeKv) f.push('ropekv');
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
  };
}

/**
 * Epilogue functions. `emit(r, c, g[, u])` finishes output column c of output row r
 * from its accumulator(s); with ropeKv, `emit_pair(r, c, a0, a1)` finishes the even
 * column c and c+1 together because RoPE rotates (2i, 2i+1) pairs.
 */
function epilogue(a: MatmulAttrs): string {
  const r = a.ropeKv;
  if (r) {
    const half = r.rotaryDim / 2;
    const bias = a.bias ? '\n  y0 += b_bias[c];\n  y1 += b_bias[c + 1u];' : '';
    return `
const QC: u32 = ${r.qCols}u;
const KVC: u32 = ${r.kvCols}u;
const HD: u32 = ${r.headDim}u;
const RD: u32 = ${r.rotaryDim}u;
fn emit_pair(r: u32, c: u32, a0: f32, a1: f32) {
  var y0 = a0;
  var y1 = a1;${bias}
  let p = step.pos + r;
  // Rows past the cache's capacity would land on other rows under robust access; drop them.
  if (p >= arrayLength(&b_kcache) / KVC) { return; }
  if (c < QC + KVC) {
    let s = select(c - QC, c, c < QC);
    let d = s % HD;
    if (d < RD) {
      let cs = b_cos[p * ${half}u + d / 2u];
      let sn = b_sin[p * ${half}u + d / 2u];
      let t0 = y0 * cs - y1 * sn;
      y1 = y1 * cs + y0 * sn;
      y0 = t0;
    }
    if (c < QC) {
      b_out[r * QC + c] = y0;
      b_out[r * QC + c + 1u] = y1;
    } else {
      b_kcache[p * KVC + s] = y0;
      b_kcache[p * KVC + s + 1u] = y1;
    }
  } else {
    let s = c - QC - KVC;
    b_vcache[p * KVC + s] = y0;
    b_vcache[p * KVC + s + 1u] = y1;
  }
}`;
  }
  const lines = [`var y = g${a.bias ? ' + b_bias[c]' : ''};`];
  if (a.act) lines.push(`y = ${actExpr(a.act, 'y')};`);
  if (a.gated) lines.push(`y = y * (u${a.bias ? ' + b_bias[N + c]' : ''});`);
  if (a.scale !== 1) lines.push(`y = y * ${lit(a.scale)};`);
  if (a.residual) lines.push('y = y + b_residual[r * N + c];');
  lines.push(`b_out[r * ${a.outStride}u + ${a.outOffset}u + c] = y;`);
  return `
fn emit(r: u32, c: u32, g: f32${a.gated ? ', u: f32' : ''}) {
  ${lines.join('\n  ')}
}`;
}

/** Split a 1-D count of workgroups over x and z when it exceeds the per-dimension limit. */
function foldGrid(blocks: number, caps: DeviceCaps, name: string): { gx: number; gz: number } {
  const max = caps.maxWorkgroupsPerDimension;
  if (blocks <= max) return { gx: blocks, gz: 1 };
  const gz = Math.ceil(blocks / max);
  if (gz > max)
    throw new Error(
      `${name}: ${blocks} column blocks exceed maxComputeWorkgroupsPerDimension squared`,
    );
  return { gx: Math.ceil(blocks / gz), gz };
}

function tiledLaunch(a: MatmulAttrs, c: Common, caps: DeviceCaps, maxT: number): KernelLaunch {
  const { BM, BN, BK, threads: NT } = matmulTiling(a, caps, maxT);
  const tiles = Math.ceil(a.N / BN);
  const { gx, gz } = foldGrid(tiles, caps, 'matmul');
  const rowTiles = Math.ceil(maxT / BM);
  if (rowTiles > caps.maxWorkgroupsPerDimension) {
    throw new Error(
      `matmul: maxT ${maxT} needs ${rowTiles} row tiles, over maxComputeWorkgroupsPerDimension`,
    );
  }

  // Each thread stages 4 consecutive k of one row per load (one vec4 read from global memory)
  // and scatters them into the K-major tile, so the inner loop reads one vec4 of 4 rows (x)
  // or 4 columns (w) per k. On an H100 this beat whole 4×4-block transposes by 10-35 %
  // because every thread shares the load work.
  const stage = (dst: string, rowsInTile: number, load: (m: string) => string): string => {
    const total = rowsInTile * (BK / 4);
    const loads = Math.ceil(total / NT);
    const rows4 = rowsInTile / 4;
    return `for (var l = 0u; l < ${loads}u; l++) {
      let i = lid + l * ${NT}u;
      if (i < ${total}u) {
        let m = i / ${BK / 4}u;
        let k = k0 + (i % ${BK / 4}u) * 4u;
        let v = ${load('m')};
        let d = (i % ${BK / 4}u) * ${4 * rows4}u + m / 4u;
        let e = m % 4u;
        ${dst}[d][e] = v.x;
        ${dst}[d + ${rows4}u][e] = v.y;
        ${dst}[d + ${2 * rows4}u][e] = v.z;
        ${dst}[d + ${3 * rows4}u][e] = v.w;
      }
    }`;
  };
  const stageX = stage('xs', BM, (m) => `load_x(row0 + ${m}, k, ${m})`);
  const stageW = stage('ws', BN, (m) => `load_w(col0 + ${m}, col0 + ${m} < N, k)`);
  const stageU = a.gated
    ? stage('wus', BN, (m) => `load_w(N + col0 + ${m}, col0 + ${m} < N, k)`)
    : '';

  // 4 consecutive k of one row of x (normalised) or w; zeros past K or outside the matrix.
  const normed = (v: string, k: string): string =>
    a.prologue ? `norm_x(${v}, ${k}, smean[m], srstd[m])` : v;
  const four = (arr: string, base: string, f: (v: string, k: string) => string): string =>
    ['x', 'y', 'z', 'w']
      .map((q, j) => {
        const kj = j ? `k + ${j}u` : 'k';
        const set = `v.${q} = ${f(`${arr}[${base} + ${kj}]`, kj)};`;
        return j ? `if (${kj} < K) { ${set} }` : set;
      })
      .join('\n  ');
  const loaders = c.vec4
    ? `
fn load_x(r: u32, k: u32, m: u32) -> vec4<f32> {
  if (r >= ${c.nRows} || k >= K) { return vec4<f32>(0.0); }
  return ${normed(`b_x[(${c.rowBase} + r) * U + k / 4u]`, 'k / 4u')};
}
fn load_w(row: u32, ok: bool, k: u32) -> vec4<f32> {
  if (!ok || k >= K) { return vec4<f32>(0.0); }
  return b_w[row * U + k / 4u];
}`
    : `
fn load_x(r: u32, k: u32, m: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (r >= ${c.nRows} || k >= K) { return v; }
  let base = (${c.rowBase} + r) * K;
  ${four('b_x', 'base', normed)}
  return v;
}
fn load_w(row: u32, ok: bool, k: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (!ok || k >= K) { return v; }
  let base = row * K;
  ${four('b_w', 'base', (v) => v)}
  return v;
}`;

  const regs = [0, 1, 2, 3];
  const comp = ['x', 'y', 'z', 'w'];
  const accDecl = regs
    .map((i) => `var acc${i} = vec4<f32>(0.0);${a.gated ? ` var accu${i} = vec4<f32>(0.0);` : ''}`)
    .join('\n  ');
  const fma = regs
    .map(
      (i) => `acc${i} += xa.${comp[i]} * wb;${a.gated ? ` accu${i} += xa.${comp[i]} * wu;` : ''}`,
    )
    .join('\n      ');

  const stores = regs
    .map((i) => {
      let body: string;
      if (a.ropeKv) {
        body = `if (c < N) { emit_pair(r, c, acc${i}.x, acc${i}.y); }
      if (c + 2u < N) { emit_pair(r, c + 2u, acc${i}.z, acc${i}.w); }`;
      } else {
        body = regs
          .map(
            (j) =>
              `if (c + ${j}u < N) { emit(r, c + ${j}u, acc${i}.${comp[j]}${a.gated ? `, accu${i}.${comp[j]}` : ''}); }`,
          )
          .join('\n      ');
      }
      return `{
    let r = row0 + ty * 4u + ${i}u;
    let c = col0 + tx * 4u;
    if (r < nRows) {
      ${body}
    }
  }`;
    })
    .join('\n  ');

  let stats = '';
  if (a.prologue) {
    const P = NT / BM;
    const layer = a.prologue.kind === 'layer';
    const sq = c.vec4 ? 'dot(d, d)' : 'd * d';
    stats = `
  // Row statistics for the prologue norm: P threads per tile row, partials combined by one.
  {
    let m = lid / ${P}u;
    let p = lid % ${P}u;
    let valid = row0 + m < nRows;
    let base = (rowBase + row0 + m) * U;
    var mean = 0.0;${
      layer
        ? `
    var s = 0.0;
    if (valid) { for (var k = p; k < U; k += ${P}u) { s += ${c.sum('b_x[base + k]')}; } }
    part[lid] = s;
    workgroupBarrier();
    if (p == 0u) {
      var t = 0.0;
      for (var q = 0u; q < ${P}u; q++) { t += part[lid + q]; }
      smean[m] = t / f32(K);
    }
    workgroupBarrier();
    mean = smean[m];`
        : ''
    }
    var ss = 0.0;
    if (valid) {
      for (var k = p; k < U; k += ${P}u) { let d = b_x[base + k] - mean; ss += ${sq}; }
    }
    part[lid] = ss;
    workgroupBarrier();
    if (p == 0u) {
      var t = 0.0;
      for (var q = 0u; q < ${P}u; q++) { t += part[lid + q]; }
      srstd[m] = inverseSqrt(t / f32(K) + EPS);
      smean[m] = mean;
    }
    workgroupBarrier();
  }`;
  }

  const code = `${c.header}
const BM4: u32 = ${BM / 4}u;
const BN4: u32 = ${BN / 4}u;
const TILES: u32 = ${tiles}u;
var<workgroup> xs: array<vec4<f32>, ${BK * (BM / 4)}>;
var<workgroup> ws: array<vec4<f32>, ${BK * (BN / 4)}>;
${a.gated ? `var<workgroup> wus: array<vec4<f32>, ${BK * (BN / 4)}>;` : ''}
${a.prologue ? `var<workgroup> part: array<f32, ${NT}>;\nvar<workgroup> smean: array<f32, ${BM}>;\nvar<workgroup> srstd: array<f32, ${BM}>;` : ''}
${loaders}

@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.z * ${gx}u + wid.x;
  if (tile >= TILES) { return; }
  let nRows = ${c.nRows};
  let rowBase = ${c.rowBase};
  let row0 = wid.y * ${BM}u;
  let col0 = tile * ${BN}u;
  let tx = lid % BN4;
  let ty = lid / BN4;
  ${stats}
  ${accDecl}
  for (var k0 = 0u; k0 < K; k0 += ${BK}u) {
    ${stageX}
    ${stageW}
    ${stageU}
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      let xa = xs[kk * BM4 + ty];
      let wb = ws[kk * BN4 + tx];
      ${a.gated ? 'let wu = wus[kk * BN4 + tx];' : ''}
      ${fma}
    }
    workgroupBarrier();
  }
  ${stores}
}
`;
  const name = `matmul_t${BM}x${BN}x${BK}_r4x4${c.features}_${hash(code)}`;
  return {
    kernel: { name, code, bindings: c.bindings, workgroupSize: [NT, 1, 1] },
    grid: [gx, { sym: a.rows, div: BM }, gz],
  };
}

function pow2Floor(n: number): number {
  return 2 ** Math.floor(Math.log2(n));
}

function gemvLaunch(a: MatmulAttrs, c: Common, caps: DeviceCaps): KernelLaunch {
  const WG = pow2Floor(Math.min(256, caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX));
  // Threads per weight row: enough that each does a few loads, at least a warp for coalescing.
  const TPC = Math.min(WG, Math.max(32, pow2Floor(Math.max(1, c.U / 4))));
  const C = a.gated ? 2 : 4; // even, so a RoPE pair never straddles two groups
  const V = a.gated ? 2 * C : C;
  const CPW = (WG / TPC) * C;
  const blocks = Math.ceil(a.N / CPW);
  const { gx, gz } = foldGrid(blocks, caps, 'matmul gemv');
  if (4 * WG * V > caps.maxWorkgroupStorageBytes) {
    throw new Error(`matmul gemv: ${4 * WG * V} bytes of workgroup memory exceed the device limit`);
  }
  const cols = Array.from({ length: C }, (_, j) => j);
  const vals = Array.from({ length: V }, (_, v) => v);
  const xLoad = a.prologue ? 'norm_x(b_x[base + k], k, mean, rstd)' : 'b_x[base + k]';
  const rows = cols.map((j) => `let w${j} = min(col0 + ${j}u, N - 1u) * U;`);
  if (a.gated) rows.push(...cols.map((j) => `let wu${j} = w${j} + N * U;`));
  const fma = cols.map((j) => `s${j} += ${c.dot('xv', `b_w[w${j} + k]`)};`);
  if (a.gated) fma.push(...cols.map((j) => `s${C + j} += ${c.dot('xv', `b_w[wu${j} + k]`)};`));

  const red = (i: string): string => `red[${i} * ${WG}u + lid]`;
  let finish: string;
  if (a.ropeKv) {
    finish = `if (col0 < N) { emit_pair(r, col0, ${red('0u')}, ${red('1u')}); }
    if (col0 + 2u < N) { emit_pair(r, col0 + 2u, ${red('2u')}, ${red('3u')}); }`;
  } else {
    finish = cols
      .map(
        (j) =>
          `if (col0 + ${j}u < N) { emit(r, col0 + ${j}u, ${red(`${j}u`)}${a.gated ? `, ${red(`${C + j}u`)}` : ''}); }`,
      )
      .join('\n    ');
  }

  let stats = '';
  if (a.prologue) {
    // Whole-workgroup tree reduction over red[0..WG); a barrier after each read of red[0]
    // keeps the next pass from overwriting it early.
    const reduce = (v: string): string => `
  red[lid] = ${v};
  workgroupBarrier();
  for (var h = ${WG / 2}u; h > 0u; h = h >> 1u) {
    if (lid < h) { red[lid] += red[lid + h]; }
    workgroupBarrier();
  }`;
    const sq = c.vec4 ? 'dot(d, d)' : 'd * d';
    const layer = a.prologue.kind === 'layer';
    stats = `
  var mean = 0.0;${
    layer
      ? `
  var s = 0.0;
  for (var k = lid; k < U; k += ${WG}u) { s += ${c.sum('b_x[base + k]')}; }${reduce('s')}
  mean = red[0] / f32(K);
  workgroupBarrier();`
      : ''
  }
  var ss = 0.0;
  for (var k = lid; k < U; k += ${WG}u) { let d = b_x[base + k] - mean; ss += ${sq}; }${reduce('ss')}
  let rstd = inverseSqrt(red[0] / f32(K) + EPS);
  workgroupBarrier();`;
  }

  const code = `${c.header}
const BLOCKS: u32 = ${blocks}u;
var<workgroup> red: array<f32, ${WG * V}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let blk = wid.z * ${gx}u + wid.x;
  if (blk >= BLOCKS) { return; }
  let r = wid.y;
  // Also keeps the step binding alive in the layout when nothing else reads it.
  if (r >= ${c.nRows}) { return; }
  let base = (${c.rowBase} + r) * U;
  ${stats}
  let lane = lid % ${TPC}u;
  let col0 = blk * ${CPW}u + (lid / ${TPC}u) * ${C}u;
  ${rows.join('\n  ')}
  ${vals.map((v) => `var s${v} = 0.0;`).join(' ')}
  for (var k = lane; k < U; k += ${TPC}u) {
    let xv = ${xLoad};
    ${fma.join('\n    ')}
  }
  ${vals.map((v) => `${red(`${v}u`)} = s${v};`).join('\n  ')}
  workgroupBarrier();
  for (var h = ${TPC / 2}u; h > 0u; h = h >> 1u) {
    if (lane < h) {
      ${vals.map((v) => `red[${v * WG}u + lid] += red[${v * WG}u + lid + h];`).join('\n      ')}
    }
    workgroupBarrier();
  }
  if (lane == 0u) {
    ${finish}
  }
}
`;
  const name = `matmul_gemv${CPW}x${TPC}${c.features}_${hash(code)}`;
  return {
    kernel: { name, code, bindings: c.bindings, workgroupSize: [WG, 1, 1] },
    grid: [gx, { sym: a.rows }, gz],
  };
}

export const matmulKernel: KernelGenerator<MatmulAttrs> = (a, { caps, maxT }) => {
  validateMatmul(a);
  const storage = matmulStorageBindings(a);
  if (storage > caps.maxStorageBuffersPerStage) {
    throw new Error(
      `matmul${a.ropeKv ? ' (ropeKv)' : ''}: needs ${storage} storage buffers but the device allows ` +
        `maxStorageBuffersPerShaderStage = ${caps.maxStorageBuffersPerStage}; do not fuse this much here`,
    );
  }
  const wBytes = 4 * (a.gated ? 2 : 1) * a.N * a.K;
  if (wBytes > caps.maxStorageBindingBytes) {
    throw new Error(
      `matmul: weight of ${wBytes} bytes exceeds maxStorageBufferBindingSize = ${caps.maxStorageBindingBytes}; ` +
        'split it into column blocks (outStride/outOffset)',
    );
  }
  if (!Number.isInteger(maxT) || maxT < 1)
    throw new Error(`matmul: maxT must be a positive integer, got ${maxT}`);
  const c = common(a);
  const launch = maxT === 1 ? gemvLaunch(a, c, caps) : tiledLaunch(a, c, caps, maxT);
  return { launches: [launch], scratch: {} };
};
