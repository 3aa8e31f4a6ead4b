/**
 * State-space scan kernels (semantics: src/ops/ssm.ts): Mamba-1's selective scan and
 * Mamba-2's SSD. Both recurrences are h_t = a_t·h_{t−1} + b_t per state element, which is
 * associative ((a1,b1)∘(a2,b2) = (a1·a2, a2·b1 + b2)), so prefill splits the sequence
 * into chunks: chunk-local work runs in parallel over all chunks, a cheap launch carries
 * the state across chunk boundaries (sequential over chunks ≪ T), and the outputs are
 * computed per chunk from the incoming state. The number of launches is fixed; only
 * grid sizes follow T. Decode (maxT === 1) is one fused update launch per op.
 *
 * State reset rule: at step.pos == 0 the incoming state reads as zeros (a new sequence).
 *
 * Decays stay in log space wherever they would be multiplied across many tokens: a
 * chunk's total decay is stored as Σδ (Mamba-1) or as the cumulative Σδ·a (Mamba-2) and
 * only exponentiated as a difference of such sums (≤ 0), never as a product of exps.
 * Mamba-2's cumulative sums reach −1e3 and beyond in a 256-token chunk, where one f32
 * rounding (~eps·|Λ|) would dominate Λ_t − Λ_s for nearby t, s (the largest terms), so
 * they are kept as unevaluated (hi, lo) pairs from a compensated scan: differences are
 * then accurate to eps·|Λ_t − Λ_s|.
 *
 * The fused decode kernels bind 9 storage buffers; on devices that allow fewer per stage
 * decode falls back to the chunked launches (each binds at most 8), except an SSD whose
 * dtBias, aLog and d the ssd-decode fusion packed into one tensor (7 bindings).
 */
import type { SelectiveScanAttrs, SsdAttrs } from '../../src/graph/ops.ts';
import { selectiveScan, ssd } from '../../src/ops/ssm.ts';
import {
  STEP_BINDING,
  STEP_WGSL,
  storageDecls,
  type BindingDecl,
  type GridDim,
  type KernelLaunch,
} from '../kernel-ir.ts';
import { type DeviceCaps } from '../../src/target.ts';
import type { GeneratedOp, KernelContext, KernelGenerator } from './types.ts';
import { FLAT_MAIN_WGSL, nextPow2 } from './elementwise.ts';
import { wgslF32 } from './wgsl-builder.ts';
import { withHelpers } from './wgsl-math.ts';

/** Scratch buffers of the chunked selective scan: per-chunk states, then incoming states; Σδ per chunk. */
export const SCAN_SCRATCH = { h: 'sscan_h', dsum: 'sscan_dsum' } as const;
/**
 * Scratch buffers of the chunked SSD: δ per (token, head); the in-chunk cumulative δ·a per
 * (token, head) as a (hi, lo) float pair; chunk states.
 */
export const SSD_SCRATCH = { dt: 'ssd_dt', lam: 'ssd_lam', states: 'ssd_states' } as const;

/**
 * Tokens per chunk of the selective scan's prefill (a thread walks a chunk sequentially):
 * the longest of 64, 32, 16 that still gives ~128k (chunk, channel) threads at maxT. Longer
 * chunks cut the per-chunk state traffic; shorter ones add parallelism. Measured on an H100
 * at T = 2048: dInner 5120 is fastest with 64 (0.33 ms vs 0.50 with 32), dInner 1536 with 16.
 */
export function scanChunk(dInner: number, maxT: number): number {
  for (const q of [64, 32]) if (Math.ceil(maxT / q) * dInner >= 1 << 17) return q;
  return 16;
}

/** Storage buffers the fused decode kernels bind. */
const FUSED_BINDINGS = 9;

/**
 * Double-float helpers: a vec2f (hi, lo) holds hi + lo exactly. two_sum is Knuth's
 * error-free addition. WGSL forbids reassociation, but NVIDIA's Vulkan compiler was seen
 * folding (a + b) − a to b (which zeroes every lo), so the two intermediates pass through
 * opaque(): an XOR with a mask that is 0 at run time (T < 2^31) but unknown to the compiler.
 */
const DOUBLE_F32_WGSL = /* wgsl */ `
fn opaque(v: f32) -> f32 { return bitcast<f32>(bitcast<u32>(v) ^ (step.T >> 31u)); }
fn two_sum(a: f32, b: f32) -> vec2f {
  let s = opaque(a + b);
  let bb = opaque(s - a);
  return vec2f(s, (a - (s - bb)) + (b - bb));
}
fn dd_add(x: vec2f, y: vec2f) -> vec2f {
  let s = two_sum(x.x, y.x);
  let lo = s.y + x.y + y.y;
  let hi = opaque(s.x + lo);
  return vec2f(hi, lo - (hi - s.x));
}
// (x - y) for pairs, rounded once: accurate to eps·|x - y| however large x and y are.
fn dd_diff(x: vec2f, y: vec2f) -> f32 { return (x.x - y.x) + (x.y - y.y); }
`;

function maxThreads(caps: DeviceCaps): number {
  return Math.min(caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
}

function prevPow2(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

function bind(read: string[], write: string[]): BindingDecl[] {
  return [
    STEP_BINDING,
    ...read.map((name) => ({ name, access: 'read' as const })),
    ...write.map((name) => ({ name, access: 'read_write' as const })),
  ];
}

function checkBindings(op: string, bindings: BindingDecl[], caps: DeviceCaps): void {
  const storage = bindings.length - 1;
  if (storage > caps.maxStorageBuffersPerStage)
    throw new Error(
      `${op}: a launch needs ${storage} storage buffers, the device allows ${caps.maxStorageBuffersPerStage}`,
    );
}

function launch(
  op: string,
  name: string,
  bindings: BindingDecl[],
  code: string,
  wg: number,
  grid: [GridDim, GridDim, GridDim],
  caps: DeviceCaps,
): KernelLaunch {
  checkBindings(op, bindings, caps);
  return { kernel: { name, code: withHelpers(code), bindings, workgroupSize: [wg, 1, 1] }, grid };
}

/** A constant grid of `total` threads in workgroups of wg, folded into y past the per-dimension limit. */
function flatConst(op: string, total: number, wg: number, caps: DeviceCaps): [number, number, 1] {
  const groups = Math.ceil(total / wg);
  const y = Math.ceil(groups / caps.maxWorkgroupsPerDimension);
  if (y > caps.maxWorkgroupsPerDimension)
    throw new Error(`${op}: ${total} threads need more workgroups than the device allows`);
  return [Math.ceil(groups / y), y, 1];
}

/** ceil(T / q): chunks of the step. */
function chunksOfT(q: number): GridDim {
  return { sym: 'T', add: q - 1, div: q };
}

function checkChunkGrid(op: string, maxT: number, q: number, caps: DeviceCaps): void {
  if (Math.ceil(maxT / q) > caps.maxWorkgroupsPerDimension)
    throw new Error(`${op}: ${Math.ceil(maxT / q)} chunks exceed the device's grid limit`);
}

// ---------------------------------------------------------------------------------------
// Mamba-1 selective scan
// ---------------------------------------------------------------------------------------

/**
 * Decode: one thread per (channel, lane); a channel's NL lanes stride over its dState
 * state elements (coalesced) and sum y through workgroup memory.
 */
function scanStepLaunch(a: SelectiveScanAttrs, caps: DeviceCaps): KernelLaunch {
  const { dInner: D, dState: N } = a;
  const nl = Math.min(nextPow2(N), 32, prevPow2(maxThreads(caps)));
  const rpw = Math.max(1, Math.floor(Math.min(256, maxThreads(caps)) / nl));
  const wg = rpw * nl;
  const bindings = bind(['x', 'dt', 'aLog', 'b', 'c', 'd', 'z'], ['state', 'out']);
  const code = `${STEP_WGSL}
${storageDecls(bindings)}
const D: u32 = ${D}u;
const N: u32 = ${N}u;
const NL: u32 = ${nl}u;
const RPW: u32 = ${rpw}u;
const WG: u32 = ${wg}u;
var<workgroup> red: array<f32, WG>;

${FLAT_MAIN_WGSL}
  let ch = i / NL;
  let lane = lid % NL;
  let ok = ch < D && step.T > 0u;
  var y = 0.0;
  var xv = 0.0;
  if (ok) {
    xv = x[ch];
    let dl = softplus(dt[ch]);
    let dx = dl * xv;
    let fresh = step.pos == 0u;
    for (var n = lane; n < N; n += NL) {
      let j = ch * N + n;
      let hn = exp(-dl * exp(aLog[j])) * select(state[j], 0.0, fresh) + dx * b[n];
      state[j] = hn;
      y += hn * c[n];
    }
  }
  red[lid] = y;
  workgroupBarrier();
  for (var off = NL / 2u; off > 0u; off >>= 1u) {
    if (lane < off) { red[lid] += red[lid + off]; }
    workgroupBarrier();
  }
  if (ok && lane == 0u) {
    out[ch] = (red[lid] + d[ch] * xv) * silu(z[ch]);
  }
}
`;
  return launch(
    'selective_scan',
    `sscan_step_d${D}_n${N}_l${nl}`,
    bindings,
    code,
    wg,
    flatConst('selective_scan', D * nl, wg, caps),
    caps,
  );
}

/** Threads per workgroup of the per-(chunk, channel) launches. */
function scanChannelsWg(caps: DeviceCaps): number {
  return Math.min(64, maxThreads(caps));
}

/**
 * Chunk-local pass: thread (chunk, channel) runs the recurrence from a zero state over its
 * chunk, keeping h[dState] in registers; writes the chunk's final local state and Σδ (the
 * chunk's decay is exp(A·Σδ)), and out = D·x (the skip term, completed by the output pass).
 */
function scanChunkLaunch(a: SelectiveScanAttrs, q: number, caps: DeviceCaps): KernelLaunch {
  const { dInner: D, dState: N } = a;
  const wg = scanChannelsWg(caps);
  const { h, dsum } = SCAN_SCRATCH;
  const bindings = bind(['x', 'dt', 'aLog', 'b', 'd'], ['out', h, dsum]);
  const code = `${STEP_WGSL}
${storageDecls(bindings)}
const D: u32 = ${D}u;
const N: u32 = ${N}u;
const Q: u32 = ${q}u;
const WG: u32 = ${wg}u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let ch = wid.x * WG + lid;
  let k = wid.y;
  let t0 = k * Q;
  if (ch >= D || t0 >= step.T) { return; }
  let t1 = min(t0 + Q, step.T);
  var A: array<f32, N>;
  var hs: array<f32, N>;
  for (var n = 0u; n < N; n++) { A[n] = -exp(aLog[ch * N + n]); }
  let skip = d[ch];
  var sum = 0.0;
  for (var t = t0; t < t1; t++) {
    let xv = x[t * D + ch];
    let dl = softplus(dt[t * D + ch]);
    sum += dl;
    let dx = dl * xv;
    out[t * D + ch] = skip * xv;
    for (var n = 0u; n < N; n++) { hs[n] = exp(dl * A[n]) * hs[n] + dx * b[t * N + n]; }
  }
  for (var n = 0u; n < N; n++) { ${h}[(k * D + ch) * N + n] = hs[n]; }
  ${dsum}[k * D + ch] = sum;
}
`;
  return launch(
    'selective_scan',
    `sscan_chunk_d${D}_n${N}_q${q}`,
    bindings,
    code,
    wg,
    [Math.ceil(D / wg), chunksOfT(q), 1],
    caps,
  );
}

/**
 * State passing: thread (channel, state) walks the chunks in order, replacing each chunk's
 * local state with the state entering it, and writes the final state.
 */
function scanPassLaunch(a: SelectiveScanAttrs, q: number, caps: DeviceCaps): KernelLaunch {
  const { dInner: D, dState: N } = a;
  const wg = Math.min(256, maxThreads(caps));
  const { h, dsum } = SCAN_SCRATCH;
  const bindings = bind(['aLog', dsum], [h, 'state']);
  const code = `${STEP_WGSL}
${storageDecls(bindings)}
const D: u32 = ${D}u;
const N: u32 = ${N}u;
const Q: u32 = ${q}u;
const WG: u32 = ${wg}u;

${FLAT_MAIN_WGSL}
  if (i >= D * N) { return; }
  let ch = i / N;
  let A = -exp(aLog[i]);
  var hs = select(state[i], 0.0, step.pos == 0u);
  let chunks = (step.T + Q - 1u) / Q;
  for (var k = 0u; k < chunks; k++) {
    let o = k * D * N + i;
    let loc = ${h}[o];
    ${h}[o] = hs;
    hs = exp(A * ${dsum}[k * D + ch]) * hs + loc;
  }
  state[i] = hs;
}
`;
  return launch(
    'selective_scan',
    `sscan_pass_d${D}_n${N}_q${q}`,
    bindings,
    code,
    wg,
    flatConst('selective_scan', D * N, wg, caps),
    caps,
  );
}

/** Output pass: thread (chunk, channel) reruns its chunk from the incoming state, emitting y. */
function scanOutLaunch(a: SelectiveScanAttrs, q: number, caps: DeviceCaps): KernelLaunch {
  const { dInner: D, dState: N } = a;
  const wg = scanChannelsWg(caps);
  const { h } = SCAN_SCRATCH;
  const bindings = bind(['x', 'dt', 'aLog', 'b', 'c', 'z', h], ['out']);
  const code = `${STEP_WGSL}
${storageDecls(bindings)}
const D: u32 = ${D}u;
const N: u32 = ${N}u;
const Q: u32 = ${q}u;
const WG: u32 = ${wg}u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let ch = wid.x * WG + lid;
  let k = wid.y;
  let t0 = k * Q;
  if (ch >= D || t0 >= step.T) { return; }
  let t1 = min(t0 + Q, step.T);
  var A: array<f32, N>;
  var hs: array<f32, N>;
  for (var n = 0u; n < N; n++) {
    A[n] = -exp(aLog[ch * N + n]);
    hs[n] = ${h}[(k * D + ch) * N + n];
  }
  for (var t = t0; t < t1; t++) {
    let xv = x[t * D + ch];
    let dl = softplus(dt[t * D + ch]);
    let dx = dl * xv;
    var y = 0.0;
    for (var n = 0u; n < N; n++) {
      hs[n] = exp(dl * A[n]) * hs[n] + dx * b[t * N + n];
      y += hs[n] * c[t * N + n];
    }
    let o = t * D + ch;
    out[o] = (out[o] + y) * silu(z[o]);
  }
}
`;
  return launch(
    'selective_scan',
    `sscan_out_d${D}_n${N}_q${q}`,
    bindings,
    code,
    wg,
    [Math.ceil(D / wg), chunksOfT(q), 1],
    caps,
  );
}

/** The chunked selective scan (3 launches) with chunks of q tokens; exported for tests. */
export function selectiveScanChunked(
  a: SelectiveScanAttrs,
  ctx: KernelContext,
  q = scanChunk(a.dInner, ctx.maxT),
): GeneratedOp {
  selectiveScan.check(a);
  const { caps, maxT } = ctx;
  if (!Number.isInteger(q) || q < 1) throw new Error(`selective_scan: bad chunk ${q}`);
  checkChunkGrid('selective_scan', maxT, q, caps);
  const chunks = Math.ceil(maxT / q);
  return {
    launches: [scanChunkLaunch(a, q, caps), scanPassLaunch(a, q, caps), scanOutLaunch(a, q, caps)],
    scratch: {
      [SCAN_SCRATCH.h]: 4 * chunks * a.dInner * a.dState,
      [SCAN_SCRATCH.dsum]: 4 * chunks * a.dInner,
    },
  };
}

export const selectiveScanKernel: KernelGenerator<SelectiveScanAttrs> = (a, ctx) => {
  if (a.batch && a.batch > 1)
    throw new Error(
      `selective_scan: batched decode (batch ${a.batch}) runs Mamba-1 through its fused mamba1_step; compile with fusion on`,
    );
  selectiveScan.check(a);
  if (ctx.maxT === 1 && ctx.caps.maxStorageBuffersPerStage >= FUSED_BINDINGS)
    return { launches: [scanStepLaunch(a, ctx.caps)], scratch: {} };
  return selectiveScanChunked(a, ctx);
};

// ---------------------------------------------------------------------------------------
// Mamba-2 SSD
// ---------------------------------------------------------------------------------------

interface SsdShape {
  H: number;
  P: number;
  N: number;
  HPG: number;
  W: number;
  GN: number;
  Q: number;
}

function ssdShape(a: SsdAttrs): SsdShape {
  return {
    H: a.heads,
    P: a.headDim,
    N: a.dState,
    HPG: a.heads / a.groups,
    W: a.heads * a.headDim,
    GN: a.groups * a.dState,
    Q: a.chunk,
  };
}

function ssdConsts(s: SsdShape): string {
  return `const H: u32 = ${s.H}u;
const P: u32 = ${s.P}u;
const N: u32 = ${s.N}u;
const HPG: u32 = ${s.HPG}u;
const W: u32 = ${s.W}u;
const GN: u32 = ${s.GN}u;
const Q: u32 = ${s.Q}u;`;
}

function ssdName(s: SsdShape): string {
  return `h${s.H}p${s.P}n${s.N}g${s.H / s.HPG}q${s.Q}`;
}

/** δ = clamp(softplus(v), dtMin, dtMax) in WGSL; an infinite dtMax leaves the top open. */
function ssdDeltaWgsl(a: SsdAttrs): string {
  const lo = wgslF32(a.dtMin);
  const body = Number.isFinite(a.dtMax)
    ? `clamp(softplus(v), ${lo}, ${wgslF32(a.dtMax)})`
    : `max(softplus(v), ${lo})`;
  return `fn delta(v: f32) -> f32 { return ${body}; }`;
}

function ssdLimitName(a: SsdAttrs): string {
  const f = (x: number) => (Number.isFinite(x) ? String(x).replace(/[^0-9a-zA-Z]/g, '_') : 'inf');
  return `dt${f(a.dtMin)}_${f(a.dtMax)}`;
}

/** Decode: thread (head·headDim row, lane); lanes stride over dState and sum y in workgroup memory. */
function ssdStepLaunch(a: SsdAttrs, caps: DeviceCaps): KernelLaunch {
  const s = ssdShape(a);
  const nl = Math.min(nextPow2(s.N), 32, prevPow2(maxThreads(caps)));
  const rpw = Math.max(1, Math.floor(Math.min(256, maxThreads(caps)) / nl));
  const wg = rpw * nl;
  const rw = a.row;
  const bindings = rw
    ? bind(['inrow', 'p'], ['state', 'out'])
    : a.packed
      ? bind(['x', 'dt', 'p', 'b', 'c'], ['state', 'out'])
      : bind(['x', 'dt', 'dtBias', 'aLog', 'b', 'c', 'd'], ['state', 'out']);
  // The fused form (SsdAttrs.row) reads x, dt, B, C and z as column ranges of one row.
  const at = rw
    ? {
        x: (i: string) => `inrow[t * ${rw.cols}u + ${rw.x}u + ${i}]`,
        dt: (i: string) => `inrow[t * ${rw.cols}u + ${rw.dt}u + ${i}]`,
        b: (i: string) => `inrow[t * ${rw.cols}u + ${rw.b}u + ${i}]`,
        c: (i: string) => `inrow[t * ${rw.cols}u + ${rw.c}u + ${i}]`,
      }
    : {
        x: (i: string) => `x[t * W + ${i}]`,
        dt: (i: string) => `dt[t * H + ${i}]`,
        b: (i: string) => `b[t * GN + ${i}]`,
        c: (i: string) => `c[t * GN + ${i}]`,
      };
  const result =
    rw && rw.z !== null
      ? `(red[lid] + skip * xv) * silu(inrow[t * ${rw.cols}u + ${rw.z}u + row])`
      : 'red[lid] + skip * xv';
  // Batched (a.batch): row t is sequence t with its own state slice (sb), all at step.pos, so no
  // row carries state to the next; one-sequence kernels keep their text.
  const batched = (a.batch ?? 1) > 1;
  const sj = batched ? 'sb + j' : 'j';
  const [gx, gy] = flatConst('ssd', s.W * nl, wg, caps);
  // Batched: the sequences are independent, so each gets its own layer (z) of workgroups.
  const grid: [GridDim, GridDim, GridDim] = [gx, gy, batched ? { sym: 'T' } : 1];
  // Packed (SsdAttrs.packed): dtBias, aLog and d are p's three runs of H.
  const [dtBias, aLog, dSkip] = a.packed
    ? ['p[hh]', 'p[H + hh]', 'p[2u * H + hh]']
    : ['dtBias[hh]', 'aLog[hh]', 'd[hh]'];
  const code = `${STEP_WGSL}
${storageDecls(bindings)}
${ssdDeltaWgsl(a)}
${ssdConsts(s)}
const NL: u32 = ${nl}u;
const WG: u32 = ${wg}u;
var<workgroup> red: array<f32, WG>;

${FLAT_MAIN_WGSL}
  let row = i / NL;
  let lane = lid % NL;
  let ok = row < W;
  // Tokens one after another (decode has one; a packed SSD takes longer steps this way): a
  // thread keeps its row and state elements for every token.
  ${batched ? '{ let t = wid.z; // a batched step: workgroup z is sequence z' : 'for (var t = 0u; t < step.T; t++) {'}
    var y = 0.0;
    var xv = 0.0;
    var skip = 0.0;
    if (ok) {
      let hh = row / P;
      let g = hh / HPG;
      let dl = delta(${at.dt('hh')} + ${dtBias});
      let decay = exp(-dl * exp(${aLog}));
      xv = ${at.x('row')};
      skip = ${dSkip};
      let dx = dl * xv;
      let fresh = step.pos == 0u${batched ? `;\n      let sb = t * W * N;` : ' && t == 0u;'}
      for (var n = lane; n < N; n += NL) {
        let j = row * N + n;
        let sn = decay * select(state[${sj}], 0.0, fresh) + dx * ${at.b('g * N + n')};
        state[${sj}] = sn;
        y += sn * ${at.c('g * N + n')};
      }
    }
    red[lid] = y;
    workgroupBarrier();
    for (var off = NL / 2u; off > 0u; off >>= 1u) {
      if (lane < off) { red[lid] += red[lid + off]; }
      workgroupBarrier();
    }
    if (ok && lane == 0u) {
      out[t * W + row] = ${result};
    }
    workgroupBarrier();
  }
}
`;
  return launch(
    'ssd',
    `ssd_step_${ssdName(s)}_${ssdLimitName(a)}_l${nl}${a.packed ? '_packed' : ''}${batched ? '_batched' : ''}${rw ? `_row${rw.cols}_${rw.x}_${rw.b}_${rw.c}_${rw.dt}${rw.z === null ? '' : `_z${rw.z}`}` : ''}`,
    bindings,
    code,
    wg,
    grid,
    caps,
  );
}

/**
 * Launch 1, per (head, chunk): δ for every token and Λ_t = Σ_{s ≤ t in chunk} δ_s·a, the
 * in-chunk cumulative log decay (inclusive), by a Hillis–Steele scan of (hi, lo) pairs in
 * workgroup memory. Λ is stored as lam[2·(t·H + h)] = hi, lam[2·(t·H + h) + 1] = lo.
 */
function ssdDtLaunch(a: SsdAttrs, caps: DeviceCaps): KernelLaunch {
  const s = ssdShape(a);
  const wg = Math.min(nextPow2(s.Q), prevPow2(Math.min(256, maxThreads(caps))));
  const { dt: dtS, lam } = SSD_SCRATCH;
  const bindings = bind(['dt', 'dtBias', 'aLog'], [dtS, lam]);
  const code = `${STEP_WGSL}
${storageDecls(bindings)}
${DOUBLE_F32_WGSL}
${ssdDeltaWgsl(a)}
${ssdConsts(s)}
const WG: u32 = ${wg}u;
var<workgroup> sc: array<vec2f, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let hh = wid.x;
  let t0 = wid.y * Q;
  if (t0 >= step.T) { return; }
  let tEnd = min(t0 + Q, step.T);
  let A = -exp(aLog[hh]);
  let bias = dtBias[hh];
  var carry = vec2f(0.0);
  for (var s0 = 0u; s0 < Q; s0 += WG) {
    let t = t0 + s0 + lid;
    let valid = s0 + lid < Q && t < tEnd;
    var v = 0.0;
    if (valid) {
      let dl = delta(dt[t * H + hh] + bias);
      ${dtS}[t * H + hh] = dl;
      v = dl * A;
    }
    workgroupBarrier();
    sc[lid] = vec2f(v, 0.0);
    workgroupBarrier();
    for (var off = 1u; off < WG; off <<= 1u) {
      var add = vec2f(0.0);
      if (lid >= off) { add = sc[lid - off]; }
      workgroupBarrier();
      sc[lid] = dd_add(sc[lid], add);
      workgroupBarrier();
    }
    if (valid) {
      let l = dd_add(carry, sc[lid]);
      ${lam}[2u * (t * H + hh)] = l.x;
      ${lam}[2u * (t * H + hh) + 1u] = l.y;
    }
    carry = dd_add(carry, sc[WG - 1u]);
  }
}
`;
  return launch(
    'ssd',
    `ssd_dt_${ssdName(s)}_${ssdLimitName(a)}_wg${wg}`,
    bindings,
    code,
    wg,
    [s.H, chunksOfT(s.Q), 1],
    caps,
  );
}

/** WGSL accessor of the (hi, lo) cumulative log decay of token t, head h. */
function lamAtWgsl(): string {
  const { lam } = SSD_SCRATCH;
  return `fn lam_at(t: u32, h: u32) -> vec2f { return vec2f(${lam}[2u * (t * H + h)], ${lam}[2u * (t * H + h) + 1u]); }`;
}

/** Register/thread tiling of the chunk-state launch: each thread owns RP × RN of a PT × NT tile. */
export interface SsdStateTiles {
  tpp: number;
  tpn: number;
  rp: number;
  rn: number;
  /** Tokens staged per step. */
  sb: number;
}

export function ssdStateTiles(P: number, N: number, caps: DeviceCaps): SsdStateTiles {
  const threads = maxThreads(caps);
  const tpn = Math.min(16, nextPow2(N), prevPow2(threads));
  const tpp = Math.min(16, nextPow2(P), prevPow2(Math.floor(threads / tpn)));
  const rn = Math.min(4, Math.ceil(N / tpn));
  const rp = Math.min(4, Math.ceil(P / tpp));
  const floats = Math.floor(caps.maxWorkgroupStorageBytes / 4);
  let sb = 16;
  while (sb > 1 && sb * (tpp * rp + tpn * rn) > floats) sb /= 2;
  return { tpp, tpn, rp, rn, sb };
}

/**
 * Launch 2, per (tile of headDim × dState, head, chunk): the chunk's local final state
 *   S_c[p, n] = Σ_s exp(Λ_end − Λ_s)·δ_s·x_s[p]·B_s[n]
 * a small matmul over the chunk's tokens, staged through workgroup memory.
 */
function ssdStatesLaunch(a: SsdAttrs, caps: DeviceCaps): KernelLaunch {
  const s = ssdShape(a);
  const t = ssdStateTiles(s.P, s.N, caps);
  const pt = t.tpp * t.rp;
  const nt = t.tpn * t.rn;
  const tilesN = Math.ceil(s.N / nt);
  const tiles = Math.ceil(s.P / pt) * tilesN;
  const wg = t.tpp * t.tpn;
  const { dt: dtS, lam, states } = SSD_SCRATCH;
  const bindings = bind(['x', 'b', dtS, lam], [states]);
  const code = `${STEP_WGSL}
${storageDecls(bindings)}
${DOUBLE_F32_WGSL}
${ssdConsts(s)}
const TPP: u32 = ${t.tpp}u;
const TPN: u32 = ${t.tpn}u;
const RP: u32 = ${t.rp}u;
const RN: u32 = ${t.rn}u;
const PT: u32 = ${pt}u;
const NT: u32 = ${nt}u;
const SB: u32 = ${t.sb}u;
const TILES_N: u32 = ${tilesN}u;
const WG: u32 = ${wg}u;
var<workgroup> xs: array<f32, ${t.sb * pt}>;
var<workgroup> bs: array<f32, ${t.sb * nt}>;
${lamAtWgsl()}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let hh = wid.y;
  let k = wid.z;
  let t0 = k * Q;
  if (t0 >= step.T) { return; }
  let tEnd = min(t0 + Q, step.T);
  let p0 = (wid.x / TILES_N) * PT;
  let n0 = (wid.x % TILES_N) * NT;
  let g = hh / HPG;
  let lamEnd = lam_at(tEnd - 1u, hh);
  let tx = lid % TPN;
  let ty = lid / TPN;
  var acc: array<f32, ${t.rp * t.rn}>;
  for (var s0 = t0; s0 < tEnd; s0 += SB) {
    workgroupBarrier();
    for (var e = lid; e < SB * PT; e += WG) {
      let ts = s0 + e / PT;
      let p = p0 + e % PT;
      var v = 0.0;
      if (ts < tEnd && p < P) {
        v = exp(min(dd_diff(lamEnd, lam_at(ts, hh)), 0.0)) * ${dtS}[ts * H + hh] * x[ts * W + hh * P + p];
      }
      xs[e] = v;
    }
    for (var e = lid; e < SB * NT; e += WG) {
      let ts = s0 + e / NT;
      let n = n0 + e % NT;
      var v = 0.0;
      if (ts < tEnd && n < N) { v = b[ts * GN + g * N + n]; }
      bs[e] = v;
    }
    workgroupBarrier();
    for (var j = 0u; j < SB; j++) {
      for (var ip = 0u; ip < RP; ip++) {
        let xv = xs[j * PT + ty + ip * TPP];
        for (var jn = 0u; jn < RN; jn++) {
          acc[ip * RN + jn] += xv * bs[j * NT + tx + jn * TPN];
        }
      }
    }
  }
  for (var ip = 0u; ip < RP; ip++) {
    let p = p0 + ty + ip * TPP;
    for (var jn = 0u; jn < RN; jn++) {
      let n = n0 + tx + jn * TPN;
      if (p < P && n < N) { ${states}[((k * H + hh) * P + p) * N + n] = acc[ip * RN + jn]; }
    }
  }
}
`;
  return launch(
    'ssd',
    `ssd_states_${ssdName(s)}_t${t.tpp}x${t.tpn}r${t.rp}x${t.rn}s${t.sb}`,
    bindings,
    code,
    wg,
    [tiles, s.H, chunksOfT(s.Q)],
    caps,
  );
}

/**
 * Launch 3, per state element: walk the chunks in order, replacing each chunk's local state
 * with the state entering it (S_in[c+1] = exp(Λ_end(c))·S_in[c] + S_c), then write the final state.
 */
function ssdPassLaunch(a: SsdAttrs, caps: DeviceCaps): KernelLaunch {
  const s = ssdShape(a);
  const wg = Math.min(256, maxThreads(caps));
  const { lam, states } = SSD_SCRATCH;
  const bindings = bind([lam], [states, 'state']);
  const code = `${STEP_WGSL}
${storageDecls(bindings)}
${ssdConsts(s)}
const WG: u32 = ${wg}u;
const HPN: u32 = ${s.H * s.P * s.N}u;
${lamAtWgsl()}

${FLAT_MAIN_WGSL}
  if (i >= HPN) { return; }
  let hh = i / (P * N);
  var sv = select(state[i], 0.0, step.pos == 0u);
  let chunks = (step.T + Q - 1u) / Q;
  for (var k = 0u; k < chunks; k++) {
    let o = k * HPN + i;
    let loc = ${states}[o];
    ${states}[o] = sv;
    let tl = min(k * Q + Q, step.T) - 1u;
    let le = lam_at(tl, hh);
    sv = exp(le.x + le.y) * sv + loc;
  }
  state[i] = sv;
}
`;
  return launch(
    'ssd',
    `ssd_pass_${ssdName(s)}`,
    bindings,
    code,
    wg,
    flatConst('ssd', s.H * s.P * s.N, wg, caps),
    caps,
  );
}

/**
 * Tiling of the output launch: BT token rows × TPR threads per row (DPT head dims each,
 * padded to PP = DPT·TPR columns), BS key rows per staged tile (BS = BT), NK states per
 * staged slice, and SR × SC scores per thread in the C·Bᵀ tile.
 */
export interface SsdOutTiles {
  bt: number;
  bs: number;
  nk: number;
  tpr: number;
  dpt: number;
  sr: number;
  sc: number;
}

/** Workgroup floats of the output launch (rows padded by one float against bank conflicts). */
export function ssdOutFloats(
  P: number,
  t: Pick<SsdOutTiles, 'bt' | 'bs' | 'nk' | 'tpr' | 'dpt'>,
): number {
  const pp = t.tpr * t.dpt;
  const kp = t.nk + 1;
  return t.bt * (t.bs + 1) + (t.bt + t.bs + pp) * kp + t.bs * pp + 2 * t.bt + 3 * t.bs;
}

export function ssdOutTiles(P: number, N: number, Q: number, caps: DeviceCaps): SsdOutTiles {
  const threads = prevPow2(maxThreads(caps));
  const floats = Math.floor(caps.maxWorkgroupStorageBytes / 4);
  for (const bt of [32, 16, 8, 4, 2, 1]) {
    if (bt > 1 && bt / 2 >= Q) continue; // no taller than the chunk needs
    if (bt > threads) continue;
    // ~256 threads, at most 16 head dims per thread unless the device has too few threads.
    const tpr = Math.min(
      nextPow2(P),
      Math.max(256 / bt, nextPow2(Math.ceil(P / 16))),
      Math.max(1, threads / bt),
    );
    const dpt = Math.ceil(P / tpr);
    const wg = bt * tpr;
    // 2×2 scores per thread when the tile has that many; 1×1 otherwise.
    const two = bt >= 2 && bt * bt >= 4 * wg;
    for (let nk = Math.min(32, nextPow2(N)); nk >= 1; nk /= 2) {
      const t = { bt, bs: bt, nk: Math.min(nk, N), tpr, dpt, sr: two ? 2 : 1, sc: two ? 2 : 1 };
      if (ssdOutFloats(P, t) <= floats) return t;
    }
  }
  throw new Error(
    `ssd: headDim ${P} does not fit in ${caps.maxWorkgroupStorageBytes} bytes of workgroup memory`,
  );
}

/**
 * Launch 4, per (block of BT tokens, head, chunk): the outputs
 *   y_t = Σ_{s ≤ t in chunk} (C_t·B_s)·exp(Λ_t − Λ_s)·δ_s·x_s + exp(Λ_t)·C_t·S_in + D·x_t.
 * The intra-chunk part is attention-like: score tiles C·Bᵀ (SR × SC per thread, summed over
 * slices of NK states staged in workgroup memory), masked causally and scaled by the decay
 * difference (≤ 0, exponentiated once), then multiplied into a staged x tile. The
 * incoming-state part is the small matmul C_block · S_inᵀ, staged the same way.
 */
function ssdOutLaunch(a: SsdAttrs, caps: DeviceCaps): KernelLaunch {
  const s = ssdShape(a);
  const t = ssdOutTiles(s.P, s.N, s.Q, caps);
  const wg = t.bt * t.tpr;
  const pp = t.tpr * t.dpt;
  const gx = t.bs / t.sc;
  const gy = t.bt / t.sr;
  const { dt: dtS, lam, states } = SSD_SCRATCH;
  const bindings = bind(['x', 'b', 'c', 'd', dtS, lam, states], ['out']);
  const code = `${STEP_WGSL}
${storageDecls(bindings)}
${DOUBLE_F32_WGSL}
${ssdConsts(s)}
const BT: u32 = ${t.bt}u;
const BS: u32 = ${t.bs}u;
const NK: u32 = ${t.nk}u;
const TPR: u32 = ${t.tpr}u;
const DPT: u32 = ${t.dpt}u;
const PP: u32 = ${pp}u;
const SR: u32 = ${t.sr}u;
const SC: u32 = ${t.sc}u;
const GX: u32 = ${gx}u;
const GY: u32 = ${gy}u;
const WG: u32 = ${wg}u;
const SP: u32 = ${t.bs + 1}u;
const KP: u32 = ${t.nk + 1}u;
var<workgroup> sc: array<f32, ${t.bt * (t.bs + 1)}>;
var<workgroup> cs: array<f32, ${t.bt * (t.nk + 1)}>;
var<workgroup> bs: array<f32, ${t.bs * (t.nk + 1)}>;
var<workgroup> xs: array<f32, ${t.bs * pp}>;
var<workgroup> ss: array<f32, ${pp * (t.nk + 1)}>;
var<workgroup> lamT: array<vec2f, BT>;
var<workgroup> lamS: array<vec2f, BS>;
var<workgroup> dtB: array<f32, BS>;
${lamAtWgsl()}

// cs[rr, nn] = C[r0 + rr, group g, n0 + nn] (0 outside the block or dState).
fn stage_c(lid: u32, r0: u32, rEnd: u32, g: u32, n0: u32) {
  for (var e = lid; e < BT * NK; e += WG) {
    let rr = e / NK;
    let n = n0 + e % NK;
    var v = 0.0;
    if (r0 + rr < rEnd && n < N) { v = c[(r0 + rr) * GN + g * N + n]; }
    cs[rr * KP + e % NK] = v;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let hh = wid.y;
  let k = wid.z;
  let cStart = k * Q;
  if (cStart >= step.T) { return; }
  let cEnd = min(cStart + Q, step.T);
  let r0 = cStart + wid.x * BT;
  if (r0 >= cEnd) { return; }
  let rEnd = min(r0 + BT, cEnd);
  let g = hh / HPG;
  let r = lid / TPR;
  let lane = lid % TPR;
  let tq = r0 + r;
  let rowOk = tq < rEnd;
  for (var e = lid; e < BT; e += WG) {
    var v = vec2f(0.0);
    if (r0 + e < rEnd) { v = lam_at(r0 + e, hh); }
    lamT[e] = v;
  }
  var acc: array<f32, DPT>;
  for (var s0 = cStart; s0 < rEnd; s0 += BS) {
    workgroupBarrier();
    for (var e = lid; e < BS; e += WG) {
      var l = vec2f(0.0);
      var dl = 0.0;
      if (s0 + e < rEnd) {
        l = lam_at(s0 + e, hh);
        dl = ${dtS}[(s0 + e) * H + hh];
      }
      lamS[e] = l;
      dtB[e] = dl;
    }
    for (var n0 = 0u; n0 < N; n0 += NK) {
      workgroupBarrier();
      stage_c(lid, r0, rEnd, g, n0);
      for (var e = lid; e < BS * NK; e += WG) {
        let j = e / NK;
        let n = n0 + e % NK;
        var v = 0.0;
        if (s0 + j < rEnd && n < N) { v = b[(s0 + j) * GN + g * N + n]; }
        bs[j * KP + e % NK] = v;
      }
      workgroupBarrier();
      // Each cell is SR × SC scores: rows cy + i·GY, columns cx + jj·GX.
      let last = n0 + NK >= N;
      for (var cell = lid; cell < GX * GY; cell += WG) {
        let cy = cell / GX;
        let cx = cell % GX;
        var part: array<f32, ${t.sr * t.sc}>;
        // Zeroed by hand: a var declared in a loop body is not re-zeroed per iteration here
        // (seen on SwiftShader: Tint's SPIR-V initialises it once, at function entry).
        for (var q = 0u; q < SR * SC; q++) { part[q] = 0.0; }
        for (var nn = 0u; nn < NK; nn++) {
          var cv: array<f32, SR>;
          for (var i = 0u; i < SR; i++) { cv[i] = cs[(cy + i * GY) * KP + nn]; }
          for (var jj = 0u; jj < SC; jj++) {
            let bv = bs[(cx + jj * GX) * KP + nn];
            for (var i = 0u; i < SR; i++) { part[i * SC + jj] += cv[i] * bv; }
          }
        }
        for (var i = 0u; i < SR; i++) {
          let rr = cy + i * GY;
          for (var jj = 0u; jj < SC; jj++) {
            let j = cx + jj * GX;
            var v = part[i * SC + jj];
            if (n0 > 0u) { v += sc[rr * SP + j]; }
            if (last) {
              // Causal mask and decay: exp of Λ_t − Λ_s <= 0 only where s <= t.
              let ok = r0 + rr < rEnd && s0 + j <= r0 + rr;
              v = select(0.0, v * exp(min(dd_diff(lamT[rr], lamS[j]), 0.0)) * dtB[j], ok);
            }
            sc[rr * SP + j] = v;
          }
        }
      }
    }
    for (var e = lid; e < BS * PP; e += WG) {
      let j = e / PP;
      let p = e % PP;
      var v = 0.0;
      if (s0 + j < rEnd && p < P) { v = x[(s0 + j) * W + hh * P + p]; }
      xs[e] = v;
    }
    workgroupBarrier();
    if (rowOk) {
      for (var j = 0u; j < BS; j++) {
        let sv = sc[r * SP + j];
        for (var kk = 0u; kk < DPT; kk++) { acc[kk] += sv * xs[j * PP + lane + kk * TPR]; }
      }
    }
  }
  // Incoming state: y_in[p] = Σ_n C_t[n]·S_in[p, n], staged in slices of NK states.
  var yin: array<f32, DPT>;
  let so = (k * H + hh) * P * N;
  for (var n0 = 0u; n0 < N; n0 += NK) {
    workgroupBarrier();
    stage_c(lid, r0, rEnd, g, n0);
    for (var e = lid; e < PP * NK; e += WG) {
      let p = e / NK;
      let n = n0 + e % NK;
      var v = 0.0;
      if (p < P && n < N) { v = ${states}[so + p * N + n]; }
      ss[p * KP + e % NK] = v;
    }
    workgroupBarrier();
    if (rowOk) {
      for (var nn = 0u; nn < NK; nn++) {
        let cv = cs[r * KP + nn];
        for (var kk = 0u; kk < DPT; kk++) { yin[kk] += cv * ss[(lane + kk * TPR) * KP + nn]; }
      }
    }
  }
  if (rowOk) {
    let decay = exp(lamT[r].x + lamT[r].y);
    for (var kk = 0u; kk < DPT; kk++) {
      let p = lane + kk * TPR;
      if (p < P) {
        let o = tq * W + hh * P + p;
        out[o] = acc[kk] + decay * yin[kk] + d[hh] * x[o];
      }
    }
  }
}
`;
  return launch(
    'ssd',
    `ssd_out_${ssdName(s)}_b${t.bt}k${t.nk}t${t.tpr}s${t.sr}x${t.sc}`,
    bindings,
    code,
    wg,
    [Math.ceil(s.Q / t.bt), s.H, chunksOfT(s.Q)],
    caps,
  );
}

/** The chunked SSD (4 launches); exported for tests. */
export function ssdChunked(a: SsdAttrs, ctx: KernelContext): GeneratedOp {
  ssd.check(a);
  const { caps, maxT } = ctx;
  checkChunkGrid('ssd', maxT, a.chunk, caps);
  const chunks = Math.ceil(maxT / a.chunk);
  return {
    launches: [
      ssdDtLaunch(a, caps),
      ssdStatesLaunch(a, caps),
      ssdPassLaunch(a, caps),
      ssdOutLaunch(a, caps),
    ],
    scratch: {
      [SSD_SCRATCH.dt]: 4 * maxT * a.heads,
      [SSD_SCRATCH.lam]: 8 * maxT * a.heads,
      [SSD_SCRATCH.states]: 4 * chunks * a.heads * a.headDim * a.dState,
    },
  };
}

export const ssdKernel: KernelGenerator<SsdAttrs> = (a, ctx) => {
  ssd.check(a);
  // Only the ssd-decode fusion packs, for decode; the chunked launches read the parameters
  // unpacked, so a longer packed step runs its tokens in order in the step kernel.
  // A batched step is one token of each sequence, which only the step kernel takes.
  if (a.packed || (a.batch ?? 1) > 1)
    return { launches: [ssdStepLaunch(a, ctx.caps)], scratch: {} };
  if (ctx.maxT === 1 && ctx.caps.maxStorageBuffersPerStage >= FUSED_BINDINGS)
    return { launches: [ssdStepLaunch(a, ctx.caps)], scratch: {} };
  return ssdChunked(a, ctx);
};
