/**
 * The chunk-parallel (multi-pass) prefill of the linear recurrence's 'add', 'delta' and 'dplr'
 * updates (semantics: LinearRecurrenceAttrs in src/graph/ops.ts, reference
 * src/ops/linear-recurrence.ts).
 * The single-kernel chunked form (linear-recurrence.ts) walks a head's chunks one after another
 * in one workgroup, so its time grows with T at a parallelism of heads × value columns. Here the
 * work that does not depend on the state entering a chunk runs for all chunks at once, as the
 * Mamba-2 SSD kernels (ssm.ts) and fla's chunk kernels do; only a small pass walks the chunks.
 *
 * Per chunk of C tokens and state head, with G_t = Σ_{s≤t} g_s the inclusive cumulative log
 * decay inside the chunk (per key dim for 'key' decay, 0 without decay) and k̂, q̂ the keys and
 * queries after the fused prologue (expressions, rope, l2; q̂ also scaled):
 *
 * 1. prep, grid chunks × heads: for 'delta', the UT/WY form. With A the strictly lower C × C
 *    matrix A[t,u] = β_t Σ_i k̂_t[i] k̂_u[i] e^{G_t[i] − G_u[i]}, the chunk's deltas are
 *    δ = u − w S₀ where (I + A) w = diag(β)(K̂ ⊙ e^G) and (I + A) u = diag(β) V, solved by forward
 *    substitution per column (no inverse is formed). Every update also gets the decayed keys
 *    k̂_u ⊙ e^{G_C − G_u} and e^{G_C}, which carry a chunk's contribution to its end.
 * 2. pass, grid heads × value-column tiles, sequential over chunks: write S₀ of chunk c, then
 *    δ = u − w S₀ ('add': δ = v, and 1 in the normaliser's column), δ over u in place, and
 *    S ← e^{G_C} ⊙ S + (K̂ ⊙ e^{G_C − G})ᵀ δ; the last S is the op's final state.
 * 3. out, grid chunks × heads (the decayed q̂·k̂ once, then value-column tiles in turn): o_t = (q̂_t ⊙ e^{G_t}) S₀ +
 *    Σ_{u≤t} (Σ_i q̂_t[i] k̂_u[i] e^{G_t[i] − G_u[i]}) δ_u, divided by q̂_t·z_t + eps with
 *    normalize (z, the key sum, is the state's column DV with v = 1: its own o).
 *
 * 'dplr' (RWKV-7: S_t = D_t S_{t−1} + a_t x_t + k_t v_tᵀ with x_t = b_tᵀ S_{t−1}, read before the
 * token's decay) has two rank-one terms a token. With G⁻_t = G_t − g_t the exclusive cumulative
 * decay, x_t = (b_t ⊙ e^{G⁻_t})ᵀ S₀ + Σ_{u<t} A_ba[t,u] x_u + Σ_{u<t} A_bk[t,u] v_u, where
 * A_ba[t,u] = Σ_i b_t[i] a_u[i] e^{G⁻_t[i] − G_u[i]} and A_bk alike with k̂_u. So x = w S₀ + u
 * with (I − A_ba) w = B ⊙ e^{G⁻} and (I − A_ba) u = A_bk V (pass 1, forward substitution; the
 * decays of every kind are taken per key dim there), x = u + w S₀ in pass 2, which adds both
 * terms to the state, S ← e^{G_C} ⊙ S + (A ⊙ e^{G_C − G})ᵀ x + (K̂ ⊙ e^{G_C − G})ᵀ V, and pass 3
 * adds the decayed q̂·a Gram times x to the q̂·k̂ one times v. fla's chunk_dplr takes the same
 * route (its A_ab, A_ak); RWKV-7's a = kk·α, b = −kk make I − A_ba the delta rule's kind of
 * unit lower-triangular system.
 *
 * Every exponent is a G ≤ 0 or a difference G_t − G_u ≤ 0 (u ≤ t; G⁻_t − G_u for u < t), so
 * nothing large is exponentiated however strong the decay. Pass 3 recomputes the prologue (and
 * the cumulative decays) from the inputs rather than storing q̂, k̂ and G: an extra read of q, k,
 * g against three T × heads × keyDim scratch arrays and their bindings.
 *
 * Scratch, shared between layers by name, sized for one segment of S tokens (S = maxT where it
 * fits; at 16 heads of 128 × 128 and C = 64, 16 KiB of states and 16 KiB of w and decayed keys
 * per token, so 64k tokens take 1 GiB each):
 * - lr_states: the state entering each chunk, S/C · heads · keyDim · SC floats;
 * - lr_wk: per (token, head) w then the decayed key ('add': the decayed key only; 'dplr': w, the
 *   decayed a, the decayed key), then e^{G_C} per (chunk, head) (per key dim for 'key' decay);
 * - lr_u ('delta', 'dplr'): u, then δ (x), per (token, head), S · heads · valueDim floats.
 * Each must fit one storage binding (and buffer). Where maxT's would not, the step is split into
 * segments of S tokens (a multiple of C), the three passes running once per segment, each from the
 * state the segment before wrote (the op's state buffer carries it, as between steps); launches
 * for segments past the step's T return at once. Past MAX_SEGMENTS segments (or with no room for
 * one chunk) multiPassPlan names the limit and the generator keeps the single-kernel form.
 *
 * State reset rule: at step.pos == 0 the incoming state reads as zeros.
 */
import type { LinearRecurrenceAttrs } from '../../src/graph/ops.ts';
import { stateColumns } from '../../src/ops/linear-recurrence.ts';
import type { DeviceCaps } from '../../src/target.ts';
import { storageDecl, type GridDim, type KernelLaunch } from '../kernel-ir.ts';
import { header, headColumns, type LoadSubset } from './linear-recurrence.ts';
import type { GeneratedOp } from './types.ts';
import { withHelpers } from './wgsl-math.ts';

/** Scratch buffer names of the multi-pass form. */
export const LR_SCRATCH = { states: 'lr_states', wk: 'lr_wk', u: 'lr_u' } as const;

/** Most segments of a step (3 launches each) before the single-kernel form is kept instead. */
export const MAX_SEGMENTS = 16;

/** Sizes of the multi-pass form. */
export interface MultiPassPlan {
  /** Tokens per chunk. */
  C: number;
  /** Key dims staged per round of the Gram and S₀ products (passes 1 and 3). */
  KB: number;
  /** Value columns per workgroup of pass 3. */
  VB: number;
  /** State columns per workgroup of pass 2. */
  BV2: number;
  /**
   * Tokens per segment: the scratch holds one segment's, and a step longer than one segment runs
   * the three passes once per segment, each continuing from the state the last one wrote.
   */
  segment: number;
  /** Invocations per workgroup (passes 1 and 3, and pass 2). */
  wg: number;
  wg2: number;
  /** Scratch bytes by name. */
  scratch: Record<string, number>;
}

function maxThreads(caps: DeviceCaps): number {
  return Math.min(caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
}

const isKey = (a: LinearRecurrenceAttrs) => a.decay === 'key';
const isScalar = (a: LinearRecurrenceAttrs) => a.decay === 'fixed' || a.decay === 'head';
const isDplr = (a: LinearRecurrenceAttrs) => a.update === 'dplr';
/** The updates that solve for a per-token δ in pass 1 and keep it in lr_u. */
const solves = (a: LinearRecurrenceAttrs) => a.update === 'delta' || a.update === 'dplr';

/** Workgroup floats of pass 1 (prep). */
export function prepFloats(a: LinearRecurrenceAttrs, C: number, KB: number): number {
  let f = 3 * C; // G_t, β_t, k's l2 factor
  // A_ba and A_bk; the b, a, k̂ blocks and G, G⁻ of the block, [key dim][token].
  if (isDplr(a)) return f + 2 * C * C + 5 * C * KB;
  if (a.update === 'delta') f += C * C + C * KB * (isKey(a) ? 2 : 1); // A, the k̂ (and G) block
  return f;
}

/** Workgroup floats of pass 3 (out). */
export function outFloats(a: LinearRecurrenceAttrs, C: number, KB: number, VB: number): number {
  const vs = VB + (a.normalize ? 1 : 0);
  // dplr: the a block, the decayed q̂·a Gram and the tile's x.
  const dplr = isDplr(a) ? C * KB + C * C + C * VB : 0;
  return (
    C * KB * (isKey(a) ? 3 : 2) +
    3 * C +
    KB * vs +
    C * C +
    2 * C * VB +
    (a.normalize ? C : 0) +
    dplr
  );
}

/** Workgroup floats of pass 2. */
export function passFloats(a: LinearRecurrenceAttrs, C: number, BV2: number): number {
  return a.keyDim * BV2 + (isDplr(a) ? 2 : 1) * C * BV2;
}

/** Floats per (token, head) row of lr_wk: w ('delta', 'dplr'), the decayed a ('dplr'), the decayed key. */
function wkRow(a: LinearRecurrenceAttrs): number {
  return (isDplr(a) ? 3 : a.update === 'delta' ? 2 : 1) * a.keyDim;
}

/** Floats of e^{G_C} per (chunk, head). */
function gcWidth(a: LinearRecurrenceAttrs): number {
  return isKey(a) ? a.keyDim : isScalar(a) ? 1 : 0;
}

/**
 * The multi-pass form's sizes for op `a` at up to maxT tokens, or why it cannot run here. The
 * chunk is the longest of 64, 32, 16 whose passes fit the workgroup memory (longer chunks mean
 * fewer states to store and a shorter sequential pass; the C × C Gram matrices bound them).
 */
export function multiPassPlan(
  a: LinearRecurrenceAttrs,
  caps: DeviceCaps,
  maxT: number,
): MultiPassPlan | string {
  if ((a.batch ?? 1) > 1) return 'a batched step is decode';
  // RWKV-7's fused key preparation and output correction (a decode fusion) read whole rows.
  if (a.rwkv7) return 'the fused RWKV-7 recurrence runs token by token';
  const floats = Math.floor(caps.maxWorkgroupStorageBytes / 4);
  const threads = maxThreads(caps);
  const wg = Math.min(256, threads);
  const SC = stateColumns(a);
  let pick: { C: number; KB: number; VB: number } | null = null;
  search: for (const C of [64, 32, 16]) {
    for (const [KB, VB] of [
      [16, 32],
      [16, 16],
      [8, 16],
      [8, 8],
      [4, 8],
    ]) {
      if (prepFloats(a, C, KB) <= floats && outFloats(a, C, KB, VB) <= floats) {
        pick = { C, KB, VB };
        break search;
      }
    }
  }
  if (!pick) return `keyDim ${a.keyDim} leaves no room for a chunk of 16 in workgroup memory`;
  const { C } = pick;
  // Pass 2's parallelism is heads × column tiles: narrower tiles when heads are few.
  let BV2 = Math.min(16, 1 << Math.ceil(Math.log2(SC)));
  while (BV2 > 4 && a.heads * Math.ceil(SC / BV2) < 256) BV2 /= 2;
  while (BV2 > 1 && passFloats(a, C, BV2) > floats) BV2 /= 2;
  if (passFloats(a, C, BV2) > floats) {
    return `keyDim ${a.keyDim} leaves no room for the state pass's column in workgroup memory`;
  }
  const wg2 = Math.min(128, threads);
  const H = a.heads;
  // Scratch bytes per token (states: per chunk, counted per token), and per chunk (e^{G_C}).
  const perToken: Record<string, number> = {
    [LR_SCRATCH.states]: (4 * H * a.keyDim * SC) / C,
    [LR_SCRATCH.wk]: 4 * H * wkRow(a) + (4 * H * gcWidth(a)) / C,
  };
  if (solves(a)) perToken[LR_SCRATCH.u] = 4 * H * a.valueDim;
  const limit = Math.min(caps.maxStorageBindingBytes, caps.maxBufferBytes);
  const most = Math.min(...Object.values(perToken).map((b) => Math.floor(limit / b / C) * C));
  if (most < C) {
    const [name, bytes] = Object.entries(perToken).sort((x, y) => y[1] - x[1])[0];
    return `scratch ${name} needs ${Math.ceil(bytes * C)} bytes for one chunk of ${C} tokens, over the storage binding limit of ${limit}`;
  }
  const segment = Math.min(Math.ceil(maxT / C) * C, most);
  const segChunks = segment / C;
  if (segChunks > caps.maxWorkgroupsPerDimension) {
    return `${segChunks} chunks exceed the grid limit of ${caps.maxWorkgroupsPerDimension}`;
  }
  // A long step's segments are launches: past MAX_SEGMENTS the command list grows too long.
  const segments = Math.ceil(maxT / segment);
  if (segments > MAX_SEGMENTS) {
    return `maxT ${maxT} needs ${segments} segments of ${segment} tokens (scratch past the storage binding limit of ${limit}), over ${MAX_SEGMENTS}`;
  }
  const scratch: Record<string, number> = {
    [LR_SCRATCH.states]: 4 * segChunks * H * a.keyDim * SC,
    [LR_SCRATCH.wk]: 4 * (segment * H * wkRow(a) + segChunks * H * gcWidth(a)),
  };
  if (solves(a)) scratch[LR_SCRATCH.u] = 4 * segment * H * a.valueDim;
  return { ...pick, BV2, segment, wg, wg2, scratch };
}

/** A per-chunk pass's entry (prep and out): workgroup (chunk c, head h), its n tokens from c0. */
function chunkEntry(a: LinearRecurrenceAttrs): string {
  return `@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x;
  let h = wid.y;
  let s0 = c * C;  // the chunk's first token in the segment's scratch
  let c0 = OFF + s0;  // and in the step
  if (c >= SEGC || c0 >= step.T) { return; }
  let n = min(C, step.T - c0);
${headIndices(a)}`;
}

/** The per-head first columns of each input, as the single kernel's opening computes them. */
function headIndices(a: LinearRecurrenceAttrs): string {
  return `${headColumns(a)}
  let vc0 = h / ${a.heads / a.vHeads}u * DV;`;
}

/** Module constants of the passes (after the shared header's). */
function consts(a: LinearRecurrenceAttrs, p: MultiPassPlan, off: number): string {
  return `const C: u32 = ${p.C}u;
const OFF: u32 = ${off}u;  // the segment's first token in the step
const SEGC: u32 = ${p.segment / p.C}u;  // chunks per segment
const KB: u32 = ${p.KB}u;
const VW: u32 = ${a.vHeads * a.valueDim}u;  // floats per token of v
const WKW: u32 = ${wkRow(a)}u;  // floats per (token, head) of lr_wk
const KDO: u32 = ${(wkRow(a) / a.keyDim - 1) * a.keyDim}u;  // offset of the decayed key in it
const GC0: u32 = ${p.segment * a.heads * wkRow(a)}u;  // where e^(G_C) per (chunk, head) starts`;
}

/** e^{G_C} of chunk c, head h (key dim i), as pass 2 reads it. */
function gcRead(a: LinearRecurrenceAttrs, i: string): string {
  if (isKey(a)) return `${LR_SCRATCH.wk}[GC0 + (c * H + h) * DK + ${i}]`;
  if (isScalar(a)) return `${LR_SCRATCH.wk}[GC0 + c * H + h]`;
  return '1.0';
}

/** After the staging loop's barrier: a scalar decay's staged log decays → G_t, their prefix sums. */
function scalarPrefix(a: LinearRecurrenceAttrs, arr: string): string {
  if (!isScalar(a)) return '';
  return `
  if (lid == 0u) { for (var t = 1u; t < n; t++) { ${arr}[t] += ${arr}[t - 1u]; } }
  workgroupBarrier();`;
}

/** The k̂ l2 factor (or q̂'s, with SCALE) of token t, staged into `arr`. */
function l2Factor(a: LinearRecurrenceAttrs, which: 'q' | 'k', arr: string): string {
  const l2 = a.prologue?.l2 ?? {};
  const scale = which === 'q' ? 'SCALE * ' : '';
  if (l2[which] === undefined) return `${arr}[t] = ${which === 'q' ? 'SCALE' : '1.0'};`;
  const eps = which === 'q' ? 'Q_L2_EPS' : 'K_L2_EPS';
  const col = which === 'q' ? 'qc' : 'kc';
  return `var ss = 0.0;
    for (var i = 0u; i < DK; i++) { let x = load_${which}(c0 + t, ${col} + i); ss += x * x; }
    ${arr}[t] = ${scale}inverseSqrt(ss + ${eps});`;
}

function scratchDecl(bindings: KernelLaunch['kernel']['bindings'], names: string[]): string {
  const first = bindings.length;
  for (const name of names) bindings.push({ name, access: 'read_write' });
  return names.map((n, i) => storageDecl(first + i, n, 'read_write')).join('\n');
}

function checkBindings(kernel: KernelLaunch['kernel'], caps: DeviceCaps): string | null {
  const storage = kernel.bindings.length - 1;
  return storage > caps.maxStorageBuffersPerStage
    ? `${kernel.name} binds ${storage} storage buffers, the device allows ${caps.maxStorageBuffersPerStage}`
    : null;
}

function variantName(a: LinearRecurrenceAttrs, p: MultiPassPlan, off: number): string {
  const pre = a.prologue
    ? [
        ...Object.keys(a.prologue.l2).map((n) => `l2${n}`),
        ...(a.prologue.rope?.of ?? []).map((n) => `rope${a.prologue!.rope!.rotaryDim}${n}`),
        ...Object.keys(a.prologue.exprs),
      ]
    : [];
  const heads = [a.heads, a.qHeads, a.kHeads, a.vHeads, a.gateHeads].join('x');
  return `${a.decay}_${a.update}${a.normalize ? '_norm' : ''}${pre.length ? `_pre_${pre.join('_')}` : ''}_h${heads}_dk${a.keyDim}_dv${a.valueDim}_c${p.C}_seg${p.segment}${off ? `_at${off}` : ''}`;
}

const chunksOfT = (C: number): GridDim => ({ sym: 'T', add: C - 1, div: C });

/** A per-chunk pass's launch (prep and out): a workgroup per (chunk, head). */
function perChunk(
  pass: 'prep' | 'out',
  a: LinearRecurrenceAttrs,
  p: MultiPassPlan,
  off: number,
  code: string,
  bindings: KernelLaunch['kernel']['bindings'],
  tag = '',
): KernelLaunch {
  return {
    kernel: {
      name: `linear_recurrence_${pass}_${variantName(a, p, off)}${tag}`,
      code: withHelpers(code),
      bindings,
      workgroupSize: [p.wg, 1, 1],
    },
    grid: [chunksOfT(p.C), a.heads, 1],
  };
}

/** Pass 1: chunk-local quantities (decayed keys, e^{G_C}; for 'delta' and 'dplr' w and u). */
function prepLaunch(a: LinearRecurrenceAttrs, p: MultiPassPlan, off: number): KernelLaunch {
  if (isDplr(a)) return prepDplrLaunch(a, p, off);
  const delta = a.update === 'delta';
  const key = isKey(a);
  const scalar = isScalar(a);
  const loads: LoadSubset = {
    loads: [
      'k',
      ...(a.decay !== 'none' ? (['g'] as const) : []),
      ...(delta ? ['beta' as const] : []),
    ],
    direct: delta ? ['v'] : [],
  };
  const { decls, bindings } = header(a, p.wg, loads);
  const scratch = scratchDecl(bindings, delta ? [LR_SCRATCH.wk, LR_SCRATCH.u] : [LR_SCRATCH.wk]);
  const C = p.C;
  const G = (t: string) => (key ? 'gl' : scalar ? `p_g[${t}]` : '0.0');
  const gram = delta
    ? `
  // A[t, u] = β_t Σ_i k̂_t[i] k̂_u[i] e^(G_t[i] - G_u[i]) for u < t, key dims in blocks of KB.
  // Each entry has one owner, which sums into it across the blocks.
  for (var e = lid; e < C * C; e += WG) { p_a[e] = 0.0; }
  for (var i0 = 0u; i0 < DK; i0 += KB) {
    for (var e = lid; e < C * KB; e += WG) {
      let t = e / KB;
      let i = i0 + e % KB;
      var x = 0.0;
      if (t < n && i < DK) { x = load_k(c0 + t, kc + i) * p_kf[t]; }
      p_kb[(e % KB) * C + t] = x;
    }${
      key
        ? `
    for (var ii = lid; ii < KB; ii += WG) {
      var gs = 0.0;
      for (var t = 0u; t < C; t++) {
        if (t < n && i0 + ii < DK) { gs += load_g(c0 + t, gc + i0 + ii); }
        p_gb[ii * C + t] = gs;
      }
    }`
        : ''
    }
    workgroupBarrier();
    for (var e = lid; e < C * C; e += WG) {
      let t = e / C;
      let u = e % C;
      if (u < t) {
        var s = 0.0;
        for (var ii = 0u; ii < KB; ii++) {
          s += p_kb[ii * C + t] * p_kb[ii * C + u]${key ? ' * exp(p_gb[ii * C + t] - p_gb[ii * C + u])' : ''};
        }
        p_a[e] += s;
      }
    }
    workgroupBarrier();
  }
  for (var e = lid; e < C * C; e += WG) {
    let t = e / C;
    let u = e % C;
    p_a[e] = select(0.0, p_a[e] * p_b[t]${scalar ? ' * exp(p_g[t] - p_g[u])' : ''}, u < t);
  }
  workgroupBarrier();`
    : '';
  const code = `${decls}
${scratch}
${consts(a, p, off)}
var<workgroup> p_g: array<f32, ${C}>;   // G_t (per-head decay)
var<workgroup> p_b: array<f32, ${C}>;   // β_t
var<workgroup> p_kf: array<f32, ${C}>;  // k's l2 factor (1 without)
${delta ? `var<workgroup> p_a: array<f32, ${C * C}>;  // A, strictly lower\nvar<workgroup> p_kb: array<f32, ${C * p.KB}>;  // k̂ of a block of key dims, [key dim][token]: no bank conflicts across u\n` : ''}${delta && key ? `var<workgroup> p_gb: array<f32, ${C * p.KB}>;  // G_t[i] of the block\n` : ''}
${chunkEntry(a)}
  for (var t = lid; t < n; t += WG) {
    ${scalar ? 'p_g[t] = load_g(c0 + t, gh);' : ''}
    ${delta ? 'p_b[t] = load_beta(c0 + t, gh);' : ''}
    ${l2Factor(a, 'k', 'p_kf')}
  }
  workgroupBarrier();${scalarPrefix(a, 'p_g')}${gram}
  // Per column: the decayed keys (and w) of key dim i; ${delta ? 'u of value column j = col - DK' : 'no u'}.
  for (var col = lid; col < ${delta ? 'DK + DV' : 'DK'}; col += WG) {
    if (col < DK) {
      let i = col;${
        key
          ? `
      var gend = 0.0;
      for (var t = 0u; t < n; t++) { gend += load_g(c0 + t, gc + i); }
      var gl = 0.0;  // G_t[i]`
          : `
      let gend = ${G('n - 1u')};`
      }
      // Row t's earlier rows are this invocation's own writes to ${LR_SCRATCH.wk}, read back.
      for (var t = 0u; t < n; t++) {
        let kt = load_k(c0 + t, kc + i) * p_kf[t];${key ? '\n        gl += load_g(c0 + t, gc + i);' : ''}
        let row = ((s0 + t) * H + h) * WKW;${
          delta
            ? `
        var xt = p_b[t] * kt * exp(${G('t')});
        for (var u = 0u; u < t; u++) { xt -= p_a[t * C + u] * ${LR_SCRATCH.wk}[((s0 + u) * H + h) * WKW + i]; }
        ${LR_SCRATCH.wk}[row + i] = xt;`
            : ''
        }
        ${LR_SCRATCH.wk}[row + KDO + i] = kt * exp(gend - ${G('t')});
      }${
        key
          ? `\n      ${LR_SCRATCH.wk}[GC0 + (c * H + h) * DK + i] = exp(gend);`
          : scalar
            ? `\n      if (i == 0u) { ${LR_SCRATCH.wk}[GC0 + c * H + h] = exp(gend); }`
            : ''
      }
    }${
      delta
        ? ` else {
      let j = col - DK;
      for (var t = 0u; t < n; t++) {
        var xt = p_b[t] * v[(c0 + t) * VW + vc0 + j];
        for (var u = 0u; u < t; u++) { xt -= p_a[t * C + u] * ${LR_SCRATCH.u}[((s0 + u) * H + h) * DV + j]; }
        ${LR_SCRATCH.u}[((s0 + t) * H + h) * DV + j] = xt;
      }
    }`
        : ''
    }
  }
}
`;
  return perChunk('prep', a, p, off, code, bindings);
}

/**
 * The log decay of token t at key dim i as every decay kind gives it (scalar decays repeat one
 * value over the key dims): the 'dplr' prep takes every decay per key dim.
 */
function decayAt(a: LinearRecurrenceAttrs, t: string, i: string): string {
  if (isKey(a)) return `load_g(c0 + ${t}, gc + ${i})`;
  if (isScalar(a)) return `load_g(c0 + ${t}, gh)`;
  return '0.0';
}

/**
 * Pass 1 of 'dplr': the Gram matrices A_ba and A_bk over blocks of key dims, then per key dim
 * w (forward substitution), the decayed a and k̂ and e^{G_C}, and per value column u.
 */
function prepDplrLaunch(a: LinearRecurrenceAttrs, p: MultiPassPlan, off: number): KernelLaunch {
  const loads: LoadSubset = {
    loads: ['k', 'a', 'b', ...(a.decay !== 'none' ? (['g'] as const) : [])],
    direct: ['v'],
  };
  const { decls, bindings } = header(a, p.wg, loads);
  const scratch = scratchDecl(bindings, [LR_SCRATCH.wk, LR_SCRATCH.u]);
  const { C, KB } = p;
  const WK = LR_SCRATCH.wk;
  const U = LR_SCRATCH.u;
  const gcWrite = isKey(a)
    ? `\n      ${WK}[GC0 + (c * H + h) * DK + i] = exp(gend);`
    : isScalar(a)
      ? `\n      if (i == 0u) { ${WK}[GC0 + c * H + h] = exp(gend); }`
      : '';
  const code = `${decls}
${scratch}
${consts(a, p, off)}
const ADO: u32 = DK;  // offset of the decayed a in a row of lr_wk
var<workgroup> p_kf: array<f32, ${C}>;  // k's l2 factor (1 without)
var<workgroup> p_ab: array<f32, ${C * C}>;  // A_ba, strictly lower
var<workgroup> p_ak: array<f32, ${C * C}>;  // A_bk, strictly lower
// Blocks of KB key dims, [key dim][token]: b, a, k̂, G (inclusive) and G⁻ (exclusive).
var<workgroup> p_bb: array<f32, ${C * KB}>;
var<workgroup> p_ba: array<f32, ${C * KB}>;
var<workgroup> p_bk: array<f32, ${C * KB}>;
var<workgroup> p_gi: array<f32, ${C * KB}>;
var<workgroup> p_gx: array<f32, ${C * KB}>;

${chunkEntry(a)}
  for (var t = lid; t < n; t += WG) {
    ${l2Factor(a, 'k', 'p_kf')}
  }
  for (var e = lid; e < C * C; e += WG) {
    p_ab[e] = 0.0;
    p_ak[e] = 0.0;
  }
  workgroupBarrier();
  // A_ba[t, u] = Σ_i b_t[i] a_u[i] e^(G⁻_t[i] - G_u[i]) and A_bk alike with k̂_u, for u < t.
  // Each entry has one owner, which sums into it across the blocks.
  for (var i0 = 0u; i0 < DK; i0 += KB) {
    for (var e = lid; e < C * KB; e += WG) {
      let t = e / KB;
      let ii = e % KB;
      let i = i0 + ii;
      var xb = 0.0;
      var xa = 0.0;
      var xk = 0.0;
      if (t < n && i < DK) {
        xb = load_b(c0 + t, gc + i);
        xa = load_a(c0 + t, gc + i);
        xk = load_k(c0 + t, kc + i) * p_kf[t];
      }
      p_bb[ii * C + t] = xb;
      p_ba[ii * C + t] = xa;
      p_bk[ii * C + t] = xk;
    }
    for (var ii = lid; ii < KB; ii += WG) {
      var gs = 0.0;
      for (var t = 0u; t < C; t++) {
        p_gx[ii * C + t] = gs;
        if (t < n && i0 + ii < DK) { gs += ${decayAt(a, 't', 'i0 + ii')}; }
        p_gi[ii * C + t] = gs;
      }
    }
    workgroupBarrier();
    for (var e = lid; e < C * C; e += WG) {
      let t = e / C;
      let u = e % C;
      if (u < t) {
        var sa = 0.0;
        var sk = 0.0;
        for (var ii = 0u; ii < KB; ii++) {
          let wb = p_bb[ii * C + t] * exp(p_gx[ii * C + t] - p_gi[ii * C + u]);
          sa += wb * p_ba[ii * C + u];
          sk += wb * p_bk[ii * C + u];
        }
        p_ab[e] += sa;
        p_ak[e] += sk;
      }
    }
    workgroupBarrier();
  }
  // Per column: w, the decayed a and k̂ of key dim i; u of value column j = col - DK. Row t's
  // earlier rows are this invocation's own writes to the scratch, read back.
  for (var col = lid; col < DK + DV; col += WG) {
    if (col < DK) {
      let i = col;
      var gend = 0.0;
      for (var t = 0u; t < n; t++) { gend += ${decayAt(a, 't', 'i')}; }
      var gl = 0.0;  // G_t[i]
      for (var t = 0u; t < n; t++) {
        let gprev = gl;
        gl += ${decayAt(a, 't', 'i')};
        let row = ((s0 + t) * H + h) * WKW;
        var xt = load_b(c0 + t, gc + i) * exp(gprev);
        for (var u = 0u; u < t; u++) { xt += p_ab[t * C + u] * ${WK}[((s0 + u) * H + h) * WKW + i]; }
        ${WK}[row + i] = xt;
        let dec = exp(gend - gl);
        ${WK}[row + ADO + i] = load_a(c0 + t, gc + i) * dec;
        ${WK}[row + KDO + i] = load_k(c0 + t, kc + i) * p_kf[t] * dec;
      }${gcWrite}
    } else {
      let j = col - DK;
      for (var t = 0u; t < n; t++) {
        var xt = 0.0;
        for (var u = 0u; u < t; u++) {
          xt += p_ak[t * C + u] * v[(c0 + u) * VW + vc0 + j] + p_ab[t * C + u] * ${U}[((s0 + u) * H + h) * DV + j];
        }
        ${U}[((s0 + t) * H + h) * DV + j] = xt;
      }
    }
  }
}
`;
  return perChunk('prep', a, p, off, code, bindings);
}

/** Pass 2: the states entering each chunk, sequential over chunks, and the final state. */
function passLaunch(a: LinearRecurrenceAttrs, p: MultiPassPlan, off: number): KernelLaunch {
  const delta = a.update === 'delta';
  const dplr = isDplr(a);
  const loads: LoadSubset = { loads: [], direct: delta ? ['state'] : ['v', 'state'] };
  const { decls, bindings } = header(a, p.wg2, loads);
  const scratch = scratchDecl(
    bindings,
    solves(a)
      ? [LR_SCRATCH.states, LR_SCRATCH.wk, LR_SCRATCH.u]
      : [LR_SCRATCH.states, LR_SCRATCH.wk],
  );
  const BV = p.BV2;
  const S = LR_SCRATCH.states;
  // δ = u − w S₀ ('delta'), x = u + w S₀ ('dplr', whose v is staged beside it).
  const value = solves(a)
    ? `let r = (s0 + t) * H + h;
        x = ${LR_SCRATCH.u}[r * DV + j];
        for (var i = 0u; i < DK; i++) { x ${dplr ? '+' : '-'}= ${LR_SCRATCH.wk}[r * WKW + i] * s_s[i * BV + jj]; }
        ${LR_SCRATCH.u}[r * DV + j] = x;${
          dplr
            ? `
        xv = v[(c0 + t) * VW + vc0 + j];`
            : ''
        }`
    : a.normalize
      ? `x = select(v[(c0 + t) * VW + vc0 + min(j, DV - 1u)], 1.0, j == DV);  // z: v = 1`
      : `x = v[(c0 + t) * VW + vc0 + j];`;
  const code = `${decls}
${scratch}
${consts(a, p, off)}
const BV: u32 = ${BV}u;
var<workgroup> s_s: array<f32, ${a.keyDim * BV}>;  // S[:, j0 .. j0 + BV)
var<workgroup> s_v: array<f32, ${p.C * BV}>;  // the chunk's δ in those columns
${
  dplr
    ? `var<workgroup> s_w: array<f32, ${p.C * BV}>;  // and its v ('dplr': δ is x)
`
    : ''
}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let j0 = wid.y * BV;
  let vc0 = h / ${a.heads / a.vHeads}u * DV;
  if (OFF >= step.T) { return; }  // the step ends before this segment
  // A later segment continues from the state the one before it wrote.
  let fresh = step.pos == 0u && OFF == 0u;
  for (var e = lid; e < DK * BV; e += WG) {
    let i = e / BV;
    let j = j0 + e % BV;
    s_s[e] = select(0.0, state[(h * DK + i) * SC + min(j, SC - 1u)], !fresh && j < SC);
  }
  workgroupBarrier();
  let chunks = min(SEGC, (step.T - OFF + C - 1u) / C);
  for (var c = 0u; c < chunks; c++) {
    let s0 = c * C;
    let c0 = OFF + s0;
    let n = min(C, step.T - c0);
    for (var e = lid; e < DK * BV; e += WG) {
      let j = j0 + e % BV;
      if (j < SC) { ${S}[((c * H + h) * DK + e / BV) * SC + j] = s_s[e]; }
    }
    for (var e = lid; e < C * BV; e += WG) {
      let t = e / BV;
      let jj = e % BV;
      let j = j0 + jj;
      var x = 0.0;${dplr ? '\n      var xv = 0.0;' : ''}
      if (t < n && j < SC) {
        ${value}
      }
      s_v[e] = x;${dplr ? '\n      s_w[e] = xv;' : ''}
    }
    workgroupBarrier();
    for (var e = lid; e < DK * BV; e += WG) {
      let i = e / BV;
      let jj = e % BV;
      var acc = ${gcRead(a, 'i')} * s_s[e];
      for (var t = 0u; t < n; t++) {
        let row = ((s0 + t) * H + h) * WKW;
        acc += ${
          dplr
            ? `${LR_SCRATCH.wk}[row + DK + i] * s_v[t * BV + jj] + ${LR_SCRATCH.wk}[row + KDO + i] * s_w[t * BV + jj]`
            : `${LR_SCRATCH.wk}[row + KDO + i] * s_v[t * BV + jj]`
        };
      }
      s_s[e] = acc;
    }
    workgroupBarrier();
  }
  for (var e = lid; e < DK * BV; e += WG) {
    let j = j0 + e % BV;
    if (j < SC) { state[(h * DK + e / BV) * SC + j] = s_s[e]; }
  }
}
`;
  return {
    kernel: {
      name: `linear_recurrence_pass_${variantName(a, p, off)}_bv${BV}`,
      code: withHelpers(code),
      bindings,
      workgroupSize: [p.wg2, 1, 1],
    },
    grid: [a.heads, Math.ceil(stateColumns(a) / BV), 1],
  };
}

/** Pass 3: each chunk's outputs from its entering state and its own tokens. */
function outLaunch(a: LinearRecurrenceAttrs, p: MultiPassPlan, off: number): KernelLaunch {
  const delta = a.update === 'delta';
  const dplr = isDplr(a);
  const key = isKey(a);
  const scalar = isScalar(a);
  const norm = a.normalize;
  const loads: LoadSubset = {
    loads: [
      'q',
      'k',
      ...(dplr ? (['a'] as const) : []),
      ...(a.decay !== 'none' ? (['g'] as const) : []),
    ],
    direct: delta ? ['out'] : ['v', 'out'],
  };
  const { decls, bindings } = header(a, p.wg, loads);
  const scratch = scratchDecl(
    bindings,
    solves(a) ? [LR_SCRATCH.states, LR_SCRATCH.u] : [LR_SCRATCH.states],
  );
  const { C, KB, VB } = p;
  const VS = VB + (norm ? 1 : 0);
  // G_t[i] of a block of key dims: a cumulative sum per key dim down the chunk.
  const gBlock = key
    ? `
    for (var ii = lid; ii < KB; ii += WG) {
      var gs = 0.0;
      for (var t = 0u; t < C; t++) {
        if (t < n && i0 + ii < DK) { gs += load_g(c0 + t, gc + i0 + ii); }
        o_g[ii * C + t] = gs;
      }
    }`
    : '';
  const vRead = delta
    ? `${LR_SCRATCH.u}[((s0 + t) * H + h) * DV + j]`
    : `v[(c0 + t) * VW + vc0 + j]`;
  const xRead = `${LR_SCRATCH.u}[((s0 + t) * H + h) * DV + j]`;
  const code = `${decls}
${scratch}
${consts(a, p, off)}
const VB: u32 = ${VB}u;
const NT: u32 = ${C / 4}u;  // 4-token tiles per chunk
const NJ: u32 = ${VB / 4}u;  // 4-column tiles per value tile
const VS: u32 = ${VS}u;  // staged state columns${norm ? ' (the last is z)' : ''}
var<workgroup> o_q: array<f32, ${C * KB}>;  // q̂ rows, a block of key dims
var<workgroup> o_k: array<f32, ${C * KB}>;  // k̂, [key dim][token]: no bank conflicts across u
${key ? `var<workgroup> o_g: array<f32, ${C * KB}>;  // G_t[i] of the block, [key dim][token]\n` : ''}var<workgroup> o_gt: array<f32, ${C}>;  // G_t (per-head decay)
var<workgroup> o_qf: array<f32, ${C}>;  // SCALE and q's l2 factor
var<workgroup> o_kf: array<f32, ${C}>;  // k's l2 factor
var<workgroup> o_s: array<f32, ${KB * VS}>;  // S₀ rows of the block, the tile's columns
var<workgroup> o_a: array<f32, ${C * C}>;  // decayed q̂·k̂, causal
var<workgroup> o_v: array<f32, ${C * VB}>;  // δ of the tile's columns
var<workgroup> o_o: array<f32, ${C * VB}>;  // (q̂ ⊙ e^G) S₀ of the tile's columns
${
  dplr
    ? `var<workgroup> o_ka: array<f32, ${C * KB}>;  // a, [key dim][token]
var<workgroup> o_aa: array<f32, ${C * C}>;  // decayed q̂·a, causal
var<workgroup> o_x: array<f32, ${C * VB}>;  // x of the tile's columns ('dplr': v is o_v)
`
    : ''
}${norm ? `var<workgroup> o_den: array<f32, ${C}>;\n` : ''}
${chunkEntry(a)}
  for (var t = lid; t < n; t += WG) {
    ${scalar ? 'o_gt[t] = load_g(c0 + t, gh);' : ''}
    {
      ${l2Factor(a, 'q', 'o_qf')}
    }
    {
      ${l2Factor(a, 'k', 'o_kf')}
    }
  }
  workgroupBarrier();${scalarPrefix(a, 'o_gt')}
  // The decayed q̂·k̂ once per chunk (every column tile below reads it); each entry has one
  // owner, which sums into it across the blocks of key dims.
  for (var e = lid; e < C * C; e += WG) { o_a[e] = 0.0;${dplr ? ' o_aa[e] = 0.0;' : ''} }
  for (var i0 = 0u; i0 < DK; i0 += KB) {
    for (var e = lid; e < C * KB; e += WG) {
      let t = e / KB;
      let i = i0 + e % KB;
      var xq = 0.0;
      var xk = 0.0;${dplr ? '\n      var xa = 0.0;' : ''}
      if (t < n && i < DK) {
        xq = load_q(c0 + t, qc + i) * o_qf[t];
        xk = load_k(c0 + t, kc + i) * o_kf[t];${dplr ? '\n        xa = load_a(c0 + t, gc + i);' : ''}
      }
      o_q[e] = xq;
      o_k[(e % KB) * C + t] = xk;${dplr ? '\n      o_ka[(e % KB) * C + t] = xa;' : ''}
    }${gBlock}
    workgroupBarrier();
    // 4 × 4 tiles of (t, u) per invocation: 8 staged reads feed 16 products (tiles above the
    // diagonal skipped; the mask below zeroes the diagonal tiles' upper entries).
    for (var blk = lid; blk < NT * NT; blk += WG) {
      let t4 = blk / NT * 4u;
      let u4 = blk % NT * 4u;
      if (u4 <= t4) {
        // Zeroed here, explicitly: an uninitialised var was seen zeroed once per invocation (ssm.ts).
        var r = array<vec4f, 4>(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));${
          dplr
            ? '\n        var ra = array<vec4f, 4>(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));'
            : ''
        }
        for (var ii = 0u; ii < KB; ii++) {
          let kv = vec4f(o_k[ii * C + u4], o_k[ii * C + u4 + 1u], o_k[ii * C + u4 + 2u], o_k[ii * C + u4 + 3u]);${
            dplr
              ? `
          let av = vec4f(o_ka[ii * C + u4], o_ka[ii * C + u4 + 1u], o_ka[ii * C + u4 + 2u], o_ka[ii * C + u4 + 3u]);`
              : ''
          }${
            key
              ? `
          let gu = vec4f(o_g[ii * C + u4], o_g[ii * C + u4 + 1u], o_g[ii * C + u4 + 2u], o_g[ii * C + u4 + 3u]);`
              : ''
          }
          for (var x = 0u; x < 4u; x++) {${
            dplr
              ? `
            let qd = o_q[(t4 + x) * KB + ii]${key ? ' * exp(o_g[ii * C + t4 + x] - gu)' : ''};
            r[x] += qd * kv;
            ra[x] += qd * av;`
              : `
            r[x] += o_q[(t4 + x) * KB + ii] * kv${key ? ' * exp(o_g[ii * C + t4 + x] - gu)' : ''};`
          }
          }
        }
        for (var x = 0u; x < 4u; x++) {
          let row = (t4 + x) * C + u4;
          o_a[row] += r[x].x;
          o_a[row + 1u] += r[x].y;
          o_a[row + 2u] += r[x].z;
          o_a[row + 3u] += r[x].w;${
            dplr
              ? `
          o_aa[row] += ra[x].x;
          o_aa[row + 1u] += ra[x].y;
          o_aa[row + 2u] += ra[x].z;
          o_aa[row + 3u] += ra[x].w;`
              : ''
          }
        }
      }
    }
    workgroupBarrier();
  }
  for (var e = lid; e < C * C; e += WG) {
    let t = e / C;
    let u = e % C;
    o_a[e] = select(0.0, o_a[e]${scalar ? ' * exp(o_gt[t] - o_gt[u])' : ''}, u <= t);${
      dplr
        ? `
    o_aa[e] = select(0.0, o_aa[e]${scalar ? ' * exp(o_gt[t] - o_gt[u])' : ''}, u <= t);`
        : ''
    }
  }
  var zacc = 0.0;  // (q̂ ⊙ e^G)·z₀ of token lid
  // Then per tile of VB value columns: (q̂ ⊙ e^G) S₀ over the key blocks, δ, and the outputs.
  for (var j0 = 0u; j0 < DV; j0 += VB) {
    for (var e = lid; e < C * VB; e += WG) { o_o[e] = 0.0; }
    for (var i0 = 0u; i0 < DK; i0 += KB) {${
      key
        ? `${gBlock}
      workgroupBarrier();`
        : ''
    }
      // q̂ ⊙ e^(G_t), staged as the inter-chunk term reads it.
      for (var e = lid; e < C * KB; e += WG) {
        let t = e / KB;
        let i = i0 + e % KB;
        var xq = 0.0;
        if (t < n && i < DK) { xq = load_q(c0 + t, qc + i) * o_qf[t]${key ? ' * exp(o_g[(e % KB) * C + t])' : ''}; }
        o_q[e] = xq;
      }
      for (var e = lid; e < KB * VS; e += WG) {
        let i = i0 + e / VS;
        let jj = e % VS;
        let j = select(j0 + jj, DV, jj == VB);
        var s = 0.0;
        if (i < DK && j < SC && (jj == VB || j < DV)) {
          s = ${LR_SCRATCH.states}[((c * H + h) * DK + i) * SC + j];
        }
        o_s[e] = s;
      }
      workgroupBarrier();
      // 4 × 4 tiles of (t, column) per invocation, as the Gram's.
      for (var blk = lid; blk < NT * NJ; blk += WG) {
        let t4 = blk / NJ * 4u;
        let j4 = blk % NJ * 4u;
        // Zeroed here, explicitly: an uninitialised var was seen zeroed once per invocation (ssm.ts).
        var r = array<vec4f, 4>(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));
        for (var ii = 0u; ii < KB; ii++) {
          let sv = vec4f(o_s[ii * VS + j4], o_s[ii * VS + j4 + 1u], o_s[ii * VS + j4 + 2u], o_s[ii * VS + j4 + 3u]);
          for (var x = 0u; x < 4u; x++) { r[x] += o_q[(t4 + x) * KB + ii] * sv; }
        }
        for (var x = 0u; x < 4u; x++) {
          let row = (t4 + x) * VB + j4;
          o_o[row] += r[x].x;
          o_o[row + 1u] += r[x].y;
          o_o[row + 2u] += r[x].z;
          o_o[row + 3u] += r[x].w;
        }
      }${
        norm
          ? `
      if (j0 == 0u && lid < C) {
        let t = lid;
        var s = 0.0;
        for (var ii = 0u; ii < KB; ii++) { s += o_q[t * KB + ii] * o_s[ii * VS + VB]; }
        zacc += s;
      }`
          : ''
      }
      workgroupBarrier();
    }
    for (var e = lid; e < C * VB; e += WG) {
      let t = e / VB;
      let j = j0 + e % VB;
      var x = 0.0;${dplr ? '\n      var xx = 0.0;' : ''}
      if (t < n && j < DV) {
        x = ${vRead};${
          dplr
            ? `
        xx = ${xRead};`
            : ''
        }
      }
      o_v[e] = x;${dplr ? '\n      o_x[e] = xx;' : ''}
    }${
      norm
        ? `
    if (j0 == 0u && lid < C) {
      let t = lid;
      var d = zacc${scalar ? ' * exp(o_gt[t])' : ''};
      for (var u = 0u; u <= t; u++) { d += o_a[t * C + u]; }
      o_den[t] = d + NORM_EPS;
    }`
        : ''
    }
    workgroupBarrier();
    for (var e = lid; e < C * VB; e += WG) {
      let t = e / VB;
      let jj = e % VB;
      let j = j0 + jj;
      if (t < n && j < DV) {
        var o = o_o[e]${scalar ? ' * exp(o_gt[t])' : ''};
        for (var u = 0u; u <= t; u++) { o += o_a[t * C + u] * o_v[u * VB + jj]${dplr ? ' + o_aa[t * C + u] * o_x[u * VB + jj]' : ''}; }
        out[((c0 + t) * H + h) * DV + j] = o${norm ? ' / o_den[t]' : ''};
      }
    }
    workgroupBarrier();
  }
}
`;
  return perChunk('out', a, p, off, code, bindings, `_kb${KB}_vb${VB}`);
}

/**
 * The three launches, or why they cannot run on this device (a binding count past its limit,
 * or multiPassPlan's reason).
 */
export function multiPass(
  a: LinearRecurrenceAttrs,
  caps: DeviceCaps,
  maxT: number,
): GeneratedOp | string {
  const p = multiPassPlan(a, caps, maxT);
  if (typeof p === 'string') return p;
  const launches: KernelLaunch[] = [];
  for (let off = 0; off < maxT; off += p.segment) {
    launches.push(prepLaunch(a, p, off), passLaunch(a, p, off), outLaunch(a, p, off));
  }
  for (const l of launches) {
    const why = checkBindings(l.kernel, caps);
    if (why) return why;
  }
  return { launches, scratch: p.scratch };
}
