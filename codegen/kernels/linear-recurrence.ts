/**
 * The linear recurrence (semantics: LinearRecurrenceAttrs in src/graph/ops.ts, reference in
 * src/ops/linear-recurrence.ts), one launch per step: a workgroup per (state head h, run of WG
 * value columns), an invocation per column j holding S[:, j] (keyDim values) in registers across
 * the step's tokens. At step.pos == 0 the old state reads as zeros.
 *
 * Recurrent form (decode, and a 'dplr' step within one chunk): token by token, the workgroup
 * stages q_t, k_t (and per-key decays, a_t, b_t) and each invocation applies its column's update.
 *
 * Chunked form (prefill of the 'add' and 'delta' updates): per chunk of C tokens, with
 * G_t = Σ_{s≤t} g_s the cumulative log decay inside the chunk (per key dim i for 'key' decay),
 *   D_t S_{t−1} = e^{G_t} ⊙ S₀ + Σ_{u<t} e^{G_t−G_u} ⊙ k_u δ_uᵀ
 * so each column solves its δ by forward substitution over the chunk's Gram matrices
 *   δ_t = β_t (v_t − Σ_i k_t[i] e^{G_t[i]} S₀[i] − Σ_{u<t} (Σ_i k_t[i] k_u[i] e^{G_t[i]−G_u[i]}) δ_u)
 * ('add': δ_t = v_t), emits o_t = Σ_i q_t[i] e^{G_t[i]} S₀[i] + Σ_{u≤t} (Σ_i q_t[i] k_u[i]
 * e^{G_t[i]−G_u[i]}) δ_u and ends the chunk with S[i] = e^{G_C[i]} S₀[i] + Σ_u e^{G_C[i]−G_u[i]}
 * k_u[i] δ_u. Every exponent is a difference G_t − G_u ≤ 0 (u ≤ t) or a cumulative G ≤ 0, so
 * nothing large is exponentiated however strong the decay. A per-head decay factors each pair's
 * weight out of the key sum; a per-key decay weights each term of it.
 *
 * This chunked form is one workgroup per (head, run of columns) walking its chunks in order, so
 * it is the prefill only where a step fits one chunk of the chunk-parallel multi-pass form
 * (linear-recurrence-chunks.ts), or where that form cannot run on the device; see
 * linearRecurrenceKernel. 'dplr' has no single-kernel chunked form: its prefill runs the
 * multi-pass form past one chunk, and the recurrent form within one or where the passes cannot run.
 *
 * The normaliser z (normalize) is a state column whose v is 1 and whose update is 'add', so its
 * q·z is an output like any other; it lives in workgroup memory and every run of a head's
 * columns needs it, so with normalize one workgroup holds all of a head's columns.
 *
 * Batched decode (a.batch, src/ops/batch.ts): row t is sequence t's one token, every sequence at
 * step.pos, with its own slice t of the state (z included) B · heads · keyDim · SC floats in. Only
 * the recurrent form takes a batch: workgroup z is sequence z (the grid's third dimension is T),
 * which runs its one token from its own slice, and a fused RoPE rotates every row at step.pos.
 */
import type { LinearRecurrenceAttrs, PrologueInput } from '../../src/graph/ops.ts';
import { linearRecurrence, stateColumns } from '../../src/ops/linear-recurrence.ts';
import type { DeviceCaps } from '../../src/target.ts';
import {
  ROW_POS,
  rowPosScratch,
  STEP_BINDING,
  STEP_WGSL,
  type KernelLaunch,
} from '../kernel-ir.ts';
import { nextPow2 } from './elementwise.ts';
import { POINTWISE_RESERVED, pointwiseFunction, wgslColumn } from './pointwise.ts';
import { ropeElementWgsl } from './rope.ts';
import type { KernelGenerator } from './types.ts';
import { opBindings, wgslF32, withRowPos } from './wgsl-builder.ts';
import { withHelpers } from './wgsl-math.ts';
import { multiPass, multiPassPlan } from './linear-recurrence-chunks.ts';

/** Most tokens per chunk: the Gram matrices grow as C², the per-column work per token as C. */
export const MAX_CHUNK = 32;

/** Workgroup floats of the chunked form at C tokens per chunk. */
export function chunkFloats(a: LinearRecurrenceAttrs, C: number): number {
  const DK = a.keyDim;
  let f = 2 * C * DK + C * C; // q and k rows, the q·k Gram matrix
  if (a.update === 'delta') f += C * C + C; // the k·k Gram matrix, β
  if (a.decay === 'key')
    f += C * DK + DK; // G per key dim, G at the chunk's end
  else if (a.decay !== 'none') f += 3 * C; // G_t, e^{G_t}, e^{G_n − G_t}
  if (a.normalize) f += DK + C; // z, the denominators
  return f;
}

/** Workgroup floats of the recurrent form. */
export function recurrentFloats(a: LinearRecurrenceAttrs): number {
  const rows =
    2 + (a.decay === 'key' ? 1 : 0) + (a.update === 'dplr' ? 2 : 0) + (a.normalize ? 1 : 0);
  // RWKV-7's fused group norm gathers the head's outputs (ow).
  return rows * a.keyDim + (a.rwkv7 ? a.valueDim : 0);
}

/** Tokens per chunk: up to MAX_CHUNK, as many as the device's workgroup memory holds. */
export function chunkTokens(a: LinearRecurrenceAttrs, caps: DeviceCaps): number {
  let C = MAX_CHUNK;
  while (C > 1 && 4 * chunkFloats(a, C) > caps.maxWorkgroupStorageBytes) C--;
  if (4 * chunkFloats(a, C) > caps.maxWorkgroupStorageBytes) {
    throw new Error(`linear_recurrence: keyDim ${a.keyDim} leaves no room for a chunk`);
  }
  return C;
}

/**
 * Invocations per workgroup: one per value column, at least 32 so the cooperative loads and
 * Gram sums have hands, at most 64 columns (more heads' runs keep more of the GPU busy). With
 * normalize the whole head must fit one workgroup.
 */
export function columnsPerGroup(a: LinearRecurrenceAttrs, caps: DeviceCaps): number {
  const most = Math.min(caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
  const want = Math.max(32, nextPow2(a.valueDim));
  if (a.normalize || a.rwkv7) {
    if (a.valueDim > most) {
      throw new Error(
        `linear_recurrence: ${a.normalize ? 'normalize' : "rwkv7's group norm"} keeps a head's ${a.valueDim} columns in one workgroup; the device allows ${most}`,
      );
    }
    return Math.min(want, most);
  }
  return Math.min(want, 64, most);
}

/**
 * Module-scope declarations both forms share: the bindings, sizes, and one function per input
 * that gives its value at (token t, column c of its row): what a fused prologue replaces.
 */
export function header(
  a: LinearRecurrenceAttrs,
  wg: number,
  only?: LoadSubset,
): { decls: string; bindings: KernelLaunch['kernel']['bindings'] } {
  const all = opBindings(a, RESERVED);
  // A batched fused rope reads each row's position offset (kernel-ir.ts ROW_POS).
  let { bindings, decls } = withRowPos(ropeRowPos(a), all);
  // A pass of the multi-pass form (linear-recurrence-chunks.ts) declares only what it reads.
  if (only) {
    const used = loadBindings(a, only);
    const storage = all.storage.filter((b) => used.has(b.name));
    bindings = [STEP_BINDING, ...storage.map(({ name, access }) => ({ name, access }))];
    decls = storage
      .map(
        (b, i) =>
          `@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: array<${b.elem}>;`,
      )
      .join('\n');
  }
  const DK = a.keyDim;
  const loads: string[] = [];
  // One function per input; a fused prologue's expression replaces the read (pointwise.ts
  // renders it as that op's own kernel would).
  // A fused rope rotates what the expression (or the read) gives: pre_<name> feeds load_<name>.
  const rot = a.prologue?.rope;
  // A batched step's rows are sequences, row t at step.pos + row_pos[t] (slots prefilled from
  // prompts of different lengths); one sequence's rows are pos + t.
  const at = isBatched(a) ? `(step.pos + ${ROW_POS}[t])` : '(step.pos + t)';
  const load = (name: PrologueInput | 'a' | 'b', index: string) => {
    if (only && !only.loads.includes(name)) return;
    const e = name === 'a' || name === 'b' ? undefined : a.prologue?.exprs[name];
    const rotated = rot?.of.includes(name as 'q' | 'k');
    const fn = rotated ? `pre_${name}` : `load_${name}`;
    // A low-rank input (prologue.lowRank) is computed, b + W x at its column, and passed in.
    const lr = a.prologue?.lowRank;
    if (e && lr && lr.name in e.inputs) {
      const col = wgslColumn(e.inputs[lr.name], 'c');
      loads.push(
        pointwiseFunction(`expr_${name}`, e.inputs, e.expr, { params: [lr.name] }),
        `fn ${fn}(t: u32, c: u32) -> f32 {
  let lc = ${col};
  var s = ${lr.bias ? `${lr.name}_b[lc]` : '0.0'};
  for (var r = 0u; r < ${lr.rank}u; r++) { s += ${lr.name}_w[lc * ${lr.rank}u + r] * ${lr.name}_x[t * ${lr.rank}u + r]; }
  return expr_${name}(t, c, s);
}`,
      );
    } else
      loads.push(
        e
          ? pointwiseFunction(fn, e.inputs, e.expr)
          : `fn ${fn}(t: u32, c: u32) -> f32 { return ${name}[${index}]; }`,
      );
    if (!rot || !rotated) return;
    // Column c is element e of its key head; select() evaluates both arms, so indices clamp.
    const half = rot.rotaryDim / 2;
    const xi = (i: string) => `pre_${name}(t, base + min(${i}, ${DK - 1}u))`;
    const ci = (i: string) => `rope_cos[cs + min(${i}, ${half - 1}u)]`;
    const si = (i: string) => `rope_sin[cs + min(${i}, ${half - 1}u)]`;
    loads.push(`fn load_${name}(t: u32, c: u32) -> f32 {
  let e = c % DK;
  let base = c - e;
  let cs = ${at} * ${half}u;
  return ${ropeElementWgsl({ rotaryDim: rot.rotaryDim, pairs: 'half' }, 'e', xi, ci, si)};
}`);
  };
  const row = (width: number) => `t * ${width}u + c`;
  load('q', row(a.qHeads * DK));
  load('k', row(a.kHeads * DK));
  // A later RWKV-7 layer with its value-residual LoRA fused defines load_v itself (loraVWgsl).
  if (!a.rwkv7?.lora?.vRank) load('v', row(a.vHeads * a.valueDim));
  // g holds natural-log decays (≤ 0): one per gate head, fixed or per token, or one per key dim.
  if (a.decay === 'fixed') load('g', 'c');
  if (a.decay === 'head') load('g', row(a.gateHeads));
  // RWKV-7 with its LoRA ups fused computes g and a from w_d and a_d (rwkv7Pieces).
  const lora = a.rwkv7?.lora;
  if (a.decay === 'key' && !lora) load('g', row(a.gateHeads * DK));
  if (a.update === 'delta') load('beta', row(a.gateHeads));
  if (a.update === 'dplr') {
    if (!lora) load('a', row(a.gateHeads * DK));
    // RWKV-7 computes b from k (rwkv7Pieces).
    if (!a.rwkv7) load('b', row(a.gateHeads * DK));
  }
  const l2 = a.prologue?.l2 ?? {};
  const eps = Object.entries(l2).map(
    ([n, e]) => `const ${n.toUpperCase()}_L2_EPS: f32 = ${wgslF32(e)};  // fused l2 norm of ${n}\n`,
  );
  const code = `${STEP_WGSL}
${decls}
const H: u32 = ${a.heads}u;    // state heads
const DK: u32 = ${DK}u;
const DV: u32 = ${a.valueDim}u;
const SC: u32 = ${stateColumns(a)}u;    // state columns per key row (DV, and z with normalize)
const WG: u32 = ${wg}u;
const SCALE: f32 = ${wgslF32(a.scale)};
${a.normalize ? `const NORM_EPS: f32 = ${wgslF32(a.normEps)};\n` : ''}${eps.join('')}${
    a.rwkv7
      ? `const K_ALL: u32 = ${a.heads * DK}u;  // rwkv: k_k, k_a, r_k at K_ALL apart, then w, b
const KK_EPS: f32 = ${wgslF32(a.rwkv7.kkEps)};
const GN_EPS: f32 = ${wgslF32(a.rwkv7.normEps)};
${lora ? loraWgsl(a, lora) : ''}`
      : ''
  }
${loads.join('\n\n')}
`;
  return { decls: code, bindings };
}

/** What one pass of the multi-pass form reads: load functions, and tensors read directly. */
export interface LoadSubset {
  loads: readonly (PrologueInput | 'a' | 'b')[];
  direct: readonly string[];
}

/** The op's bindings a subset touches: each load's input (or its expression's) and rope tables. */
function loadBindings(a: LinearRecurrenceAttrs, only: LoadSubset): Set<string> {
  const used = new Set<string>(only.direct);
  for (const name of only.loads) {
    const e = name === 'a' || name === 'b' ? undefined : a.prologue?.exprs[name];
    if (e) for (const n of Object.keys(e.inputs)) used.add(n);
    else used.add(name);
    if (a.prologue?.rope?.of.includes(name as 'q' | 'k')) {
      used.add('rope_cos');
      used.add('rope_sin');
    }
  }
  return used;
}

/**
 * RWKV-7's fused LoRA ups: `lora_g(t, c)`, the log decay −e^(−0.5)·sigmoid(W_w·tanh(w_d) + b_w)
 * of key column c, and `lora_a(t, c)`, sigmoid(W_a·a_d + b_a), each a dot product over the rank
 * of the column's own weight row (LinearRecurrenceAttrs.rwkv7.lora).
 */
function loraWgsl(
  a: LinearRecurrenceAttrs,
  l: { decayRank: number; aRank: number; vRank?: number },
): string {
  const K = a.heads * a.keyDim;
  const at = 3 * K + 2 * a.heads * a.valueDim;
  return `const DR: u32 = ${l.decayRank}u;
const AR: u32 = ${l.aRank}u;
const W_AT: u32 = ${at}u;  // W_w rows, then b_w
const A_AT: u32 = ${at + K * (l.decayRank + 1)}u;  // W_a rows, then b_a
fn lora_g(t: u32, c: u32) -> f32 {
  var s = 0.0;
  for (var r = 0u; r < DR; r++) { s += tanh_acc(w_d[t * DR + r]) * rwkv[W_AT + c * DR + r]; }
  return ${wgslF32(-Math.exp(-0.5))} * sigmoid(s + rwkv[W_AT + K_ALL * DR + c]);
}
fn lora_a(t: u32, c: u32) -> f32 {
  var s = 0.0;
  for (var r = 0u; r < AR; r++) { s += a_d[t * AR + r] * rwkv[A_AT + c * AR + r]; }
  return sigmoid(s + rwkv[A_AT + K_ALL * AR + c]);
}
${l.vRank ? loraVWgsl(a, l.vRank, at + K * (l.decayRank + 1 + l.aRank + 1)) : ''}`;
}

/**
 * A later RWKV-7 layer's v with its value residual (rwkv7.lora.vRank): `load_v(t, c)`, v + (v_first
 * − v)·sigmoid(W_v·v_d + b_v) at column c of the row.
 */
function loraVWgsl(a: LinearRecurrenceAttrs, vRank: number, at: number): string {
  const V = a.heads * a.valueDim;
  return `const VR: u32 = ${vRank}u;
const V_AT: u32 = ${at}u;  // W_v rows, then b_v
fn load_v(t: u32, c: u32) -> f32 {
  var s = 0.0;
  for (var r = 0u; r < VR; r++) { s += v_d[t * VR + r] * rwkv[V_AT + c * VR + r]; }
  let m = sigmoid(s + rwkv[V_AT + ${V}u * VR + c]);
  let x = v[t * ${V}u + c];
  return x + (v_first[t * ${V}u + c] - x) * m;
}
`;
}

/**
 * Module-scope identifiers of the kernel (and the load functions' parameters), which no binding
 * may take; the entry point's locals may shadow a binding because main reads only v, state, out.
 */
export const RESERVED = [
  ...POINTWISE_RESERVED,
  ...['H', 'DK', 'DV', 'SC', 'WG', 'C', 'SCALE', 'NORM_EPS', 'Q_L2_EPS', 'K_L2_EPS', 'main'],
  ...['K_ALL', 'KK_EPS', 'GN_EPS', 'ow', 'DR', 'AR', 'W_AT', 'A_AT', 'lora_g', 'lora_a'],
  ...['VR', 'V_AT', 'load_v'],
  ...[
    'qs',
    'ks',
    'qk',
    'kk',
    'bt',
    'gt',
    'et',
    'tail',
    'gk',
    'gend',
    'zs',
    'den',
    'dec',
    'as_',
    'bs',
  ],
  ...['load_q', 'load_k', 'load_g', 'load_beta', 'load_a', 'load_b', 'pre_q', 'pre_k'],
  // The multi-pass form's (linear-recurrence-chunks.ts).
  ...[
    'KB',
    'VW',
    'WKW',
    'KDO',
    'GC0',
    'BV',
    'VB',
    'VS',
    'NT',
    'NJ',
    'OFF',
    'SEGC',
    'lr_states',
    'lr_wk',
    'lr_u',
  ],
  ...['p_g', 'p_b', 'p_kf', 'p_a', 'p_kb', 'p_gb', 's_s', 's_v', 'o_q', 'o_k', 'o_g', 'o_gt'],
  ...['o_qf', 'o_kf', 'o_s', 'o_a', 'o_v', 'o_o', 'o_den'],
];

/**
 * The entry point's opening: which head and column this invocation serves, where its head's
 * rows start in each input, and its column of the state (zeros at position 0).
 */
/**
 * Each input's head for state head h (heads repeated in blocks), as a first column of its row:
 * q's and k's (qc, kc), the gate's head gh and its first key column gc. Shared with the
 * chunk-parallel passes (linear-recurrence-chunks.ts); v's column is each caller's.
 */
export function headColumns(a: LinearRecurrenceAttrs): string {
  const H = a.heads;
  return `  let qc = h / ${H / a.qHeads}u * DK;
  let kc = h / ${H / a.kHeads}u * DK;
  let gh = h / ${H / a.gateHeads}u;
  let gc = gh * DK;`;
}

function mainOpening(a: LinearRecurrenceAttrs): string {
  const DK = a.keyDim;
  const H = a.heads;
  const sb = stateBase(a);
  const z = a.normalize
    ? `
  for (var i = lid; i < DK; i += WG) { zs[i] = select(0.0, state[${sb}(h * DK + i) * SC + DV], !fresh); }`
    : '';
  // A batched step: workgroup z is sequence t (row t), whose state is slice t.
  const seq = isBatched(a)
    ? `
  let t = wid.z;
  let sb = t * H * DK * SC;`
    : '';
  return /* wgsl */ `@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;${seq}
  let j = wid.y * WG + lid;
  let live = j < DV;
${headColumns(a)}
  let vc = h / ${H / a.vHeads}u * DV + min(j, DV - 1u);
  // State reset rule: a new sequence (position 0) starts from zeros, whatever the buffer holds.
  let fresh = step.pos == 0u;
  var s: array<f32, ${DK}>;
  for (var i = 0u; i < DK; i++) {
    s[i] = select(0.0, state[${sb}(h * DK + i) * SC + min(j, DV - 1u)], live && !fresh);
  }${z}`;
}

/** The entry point's close: the column (and, from the head's first workgroup, z) back to the state. */
function mainClosing(a: LinearRecurrenceAttrs): string {
  const sb = stateBase(a);
  const z = a.normalize
    ? `
  if (wid.y == 0u) {
    for (var i = lid; i < DK; i += WG) { state[${sb}(h * DK + i) * SC + DV] = zs[i]; }
  }`
    : '';
  return `
  if (live) {
    for (var i = 0u; i < DK; i++) { state[${sb}(h * DK + i) * SC + j] = s[i]; }
  }${z}
}
`;
}

/** Whether the step's rows are sequences (batched decode) rather than one sequence's tokens. */
/** Whether the kernel reads row_pos: a batched step's fused rope (rows at their own positions). */
function ropeRowPos(a: LinearRecurrenceAttrs): boolean {
  return isBatched(a) && a.prologue?.rope !== undefined;
}

function isBatched(a: LinearRecurrenceAttrs): boolean {
  return (a.batch ?? 1) > 1;
}

/** The offset of the workgroup's sequence's state slice in a state index ('' unbatched). */
function stateBase(a: LinearRecurrenceAttrs): string {
  return isBatched(a) ? 'sb + ' : '';
}

/** The fused l2 norms (prologue.l2) as WGSL pieces: which rows, and q's SCALE moved after them. */
export function l2Pieces(a: LinearRecurrenceAttrs) {
  const l2 = a.prologue?.l2 ?? {};
  const rows = (['q', 'k'] as const).filter((n) => l2[n] !== undefined);
  return {
    any: rows.length > 0,
    /** SCALE multiplies q as it is staged, or after its norm. */
    qScale: l2.q === undefined ? ' * SCALE' : '',
    /** Sum the squares of row `at` of the listed arrays and scale it: x · rsqrt(Σx² + eps). */
    normalize: (at: string, indent: string) =>
      rows
        .map((n) => {
          const arr = `${n}s`;
          const f =
            n === 'q' ? `SCALE * inverseSqrt(${n}q + Q_L2_EPS)` : `inverseSqrt(${n}q + K_L2_EPS)`;
          return [
            `var ${n}q = 0.0;`,
            `for (var i = 0u; i < DK; i++) { ${n}q += ${arr}[${at}i] * ${arr}[${at}i]; }`,
            `let ${n}f = ${f};`,
          ]
            .map((l) => indent + l)
            .join('\n');
        })
        .join('\n'),
    scaleBy: (at: string) => rows.map((n) => `${n}s[${at}i] *= ${n}f;`).join(' '),
  };
}

/** The recurrent form: one token at a time. */
function recurrentBody(a: LinearRecurrenceAttrs): string {
  const key = a.decay === 'key';
  const scalar = a.decay === 'fixed' || a.decay === 'head';
  const delta = a.update === 'delta';
  const dplr = a.update === 'dplr';
  const r7 = !!a.rwkv7;
  const decayOf = key ? ' * dec[i]' : scalar ? ' * decay' : '';
  const l2 = l2Pieces(a);
  const lines: string[] = [];
  const push = (cond: boolean, s: string) => {
    if (cond) lines.push(s);
  };
  lines.push(`var<workgroup> qs: array<f32, ${a.keyDim}>;  // q_t · SCALE`);
  lines.push(`var<workgroup> ks: array<f32, ${a.keyDim}>;  // k_t`);
  push(key, `var<workgroup> dec: array<f32, ${a.keyDim}>;  // e^(g_t), per key dim`);
  push(dplr, `var<workgroup> as_: array<f32, ${a.keyDim}>; // a_t`);
  push(dplr, `var<workgroup> bs: array<f32, ${a.keyDim}>;  // b_t`);
  push(a.normalize, `var<workgroup> zs: array<f32, ${a.keyDim}>;  // the running key sum z`);
  push(
    r7,
    `var<workgroup> ow: array<f32, ${a.valueDim}>;  // the head's outputs, for its group norm`,
  );
  lines.push('', mainOpening(a));
  const loop = isBatched(a)
    ? '{ // a batched step: sequence t (wid.z) has its one token in row t'
    : 'for (var t = 0u; t < step.T; t++) {';
  lines.push(`  ${loop}
    // Stage token t's rows; then each invocation updates its column.
    for (var i = lid; i < DK; i += WG) {
      qs[i] = load_q(t, qc + i)${l2.qScale};
      ks[i] = load_k(t, kc + i);`);
  push(key && !a.rwkv7?.lora, `      dec[i] = exp(load_g(t, gc + i));`);
  push(!!a.rwkv7?.lora, `      dec[i] = exp(lora_g(t, gc + i));`);
  push(dplr && !r7, `      as_[i] = load_a(t, gc + i);\n      bs[i] = load_b(t, gc + i);`);
  // RWKV-7: a raw, b first k·k_k (kk before its l2 norm).
  push(
    r7,
    `      as_[i] = ${a.rwkv7?.lora ? 'lora_a' : 'load_a'}(t, gc + i);\n      bs[i] = ks[i] * rwkv[kc + i];`,
  );
  lines.push(`    }
    workgroupBarrier();`);
  if (l2.any) {
    lines.push(`    // Fused l2 norms: every invocation sums the rows, then each scales its share.
${l2.normalize('', '    ')}
    workgroupBarrier();
    for (var i = lid; i < DK; i += WG) { ${l2.scaleBy('')} }
    workgroupBarrier();`);
  }
  push(
    r7,
    `    // RWKV-7: kk = l2norm(k·k_k); k ← k·(1 + (a − 1)·k_a); a ← kk·a; b = −kk; the bonus Σ r·k·r_k.
    var kq = 0.0;
    for (var i = 0u; i < DK; i++) { kq += bs[i] * bs[i]; }
    let kf = inverseSqrt(kq + KK_EPS);
    workgroupBarrier();
    for (var i = lid; i < DK; i += WG) {
      let kkv = bs[i] * kf;
      ks[i] = ks[i] * (1.0 + (as_[i] - 1.0) * rwkv[K_ALL + kc + i]);
      as_[i] = kkv * as_[i];
      bs[i] = -kkv;
    }
    workgroupBarrier();
    var bonus = 0.0;
    for (var i = 0u; i < DK; i++) { bonus += qs[i] * ks[i] * rwkv[2u * K_ALL + kc + i]; }`,
  );
  push(scalar, `    let decay = exp(load_g(t, gh));`);
  push(delta, `    let beta_t = load_beta(t, gh);`);
  if (a.normalize) {
    lines.push(`    // z_t = D_t z_(t-1) + k_t, then the denominator q_t·z_t + eps (every invocation's own copy).
    for (var i = lid; i < DK; i += WG) { zs[i] = zs[i]${decayOf} + ks[i]; }
    workgroupBarrier();
    var qz = 0.0;
    for (var i = 0u; i < DK; i++) { qz += qs[i] * zs[i]; }
    let den = qz + NORM_EPS;`);
  }
  lines.push(`    if (live) {`);
  // DPLR reads the state before this token's decay: bᵀS_(t-1).
  push(dplr, `      var sb = 0.0;\n      for (var i = 0u; i < DK; i++) { sb += bs[i] * s[i]; }`);
  push(delta, `      var sk = 0.0;`);
  push(
    delta || decayOf !== '',
    `      for (var i = 0u; i < DK; i++) {
        s[i] = s[i]${decayOf};${delta ? '\n        sk += s[i] * ks[i];' : ''}
      }`,
  );
  const vt = 'load_v(t, vc)';
  const write = r7 ? 'ow[j] = o;' : `out[(t * H + h) * DV + j] = o${a.normalize ? ' / den' : ''};`;
  lines.push(`      let u = ${delta ? `beta_t * (${vt} - sk)` : vt};
      var o = 0.0;
      for (var i = 0u; i < DK; i++) {
        s[i] += ks[i] * u${dplr ? ' + as_[i] * sb' : ''};
        o += qs[i] * s[i];
      }
      ${write}
    }
    workgroupBarrier();`);
  // RWKV-7: the head's group norm over ow (its whole head is this workgroup), plus bonus · v.
  push(
    r7,
    `    var mean = 0.0;
    for (var c = 0u; c < DV; c++) { mean += ow[c]; }
    mean = mean / f32(DV);
    var vs = 0.0;
    for (var c = 0u; c < DV; c++) { let d = ow[c] - mean; vs += d * d; }
    let rstd = inverseSqrt(vs / f32(DV) + GN_EPS);
    if (live) {
      let c = h * DV + j;
      let y = (ow[j] - mean) * rstd * rwkv[3u * K_ALL + c] + rwkv[3u * K_ALL + H * DV + c];
      out[(t * H + h) * DV + j] = y + bonus * ${vt};
    }
    workgroupBarrier();`,
  );
  lines.push('  }');
  lines.push(mainClosing(a));
  return lines.join('\n');
}

/** The chunked form: C tokens per round of the workgroup ('add' and 'delta' updates). */
function chunkedBody(a: LinearRecurrenceAttrs, C: number): string {
  const DK = a.keyDim;
  const key = a.decay === 'key';
  const scalar = a.decay === 'fixed' || a.decay === 'head';
  const delta = a.update === 'delta';
  if (a.update === 'dplr') throw new Error('linear_recurrence: dplr has no chunked form');
  // Factors of the terms across chunks, for a per-head decay (per-key decays are in the rows).
  const et = scalar ? ' * et[t]' : '';
  const tail = scalar ? ' * tail[u]' : '';
  const decayEnd = key ? 'exp(gend[i])' : scalar ? 'et[n - 1u]' : '1.0';
  const l2 = l2Pieces(a);
  const lines: string[] = [];
  const push = (cond: boolean, s: string) => {
    if (cond) lines.push(s);
  };
  lines.push(`const C: u32 = ${C}u;
// Row t of the chunk: q_t · SCALE and k_t${key ? '; after the Gram matrices, q_t ⊙ e^(G_t) and k_t ⊙ e^(G_n - G_t)' : ''}.
var<workgroup> qs: array<f32, ${C * DK}>;
var<workgroup> ks: array<f32, ${C * DK}>;
// Decay-weighted Gram matrices, row t, column u <= t: Σ_i q_t[i] k_u[i] e^(G_t[i] - G_u[i]), and k_t·k_u alike.
var<workgroup> qk: array<f32, ${C * C}>;`);
  push(
    delta,
    `var<workgroup> kk: array<f32, ${C * C}>;\nvar<workgroup> bt: array<f32, ${C}>;  // beta_t`,
  );
  push(
    scalar,
    `var<workgroup> gt: array<f32, ${C}>;    // log decay g_t, then its prefix sum G_t
var<workgroup> et: array<f32, ${C}>;    // e^(G_t)
var<workgroup> tail: array<f32, ${C}>;  // e^(G_n - G_t), n the chunk's last token`,
  );
  push(
    key,
    `// Log decay per key dim, then its prefix sum G_t[i]${delta ? '; after the Gram matrices, k_t ⊙ e^(G_t)' : ''}.
var<workgroup> gk: array<f32, ${C * DK}>;
var<workgroup> gend: array<f32, ${DK}>;  // G_n[i]`,
  );
  push(
    a.normalize,
    `var<workgroup> zs: array<f32, ${DK}>;   // the running key sum z at the chunk's start
var<workgroup> den: array<f32, ${C}>;   // q_t·z_t + eps`,
  );
  lines.push('', mainOpening(a));
  lines.push(`  var d: array<f32, ${C}>;  // this column's delta_u for the chunk's tokens
  for (var c0 = 0u; c0 < step.T; c0 += C) {
    let n = min(C, step.T - c0);
    // Stage the chunk's rows and per-token gates.
    for (var e = lid; e < n * DK; e += WG) {
      let t = c0 + e / DK;
      let i = e % DK;
      qs[e] = load_q(t, qc + i)${l2.qScale};
      ks[e] = load_k(t, kc + i);${key ? '\n      gk[e] = load_g(t, gc + i);' : ''}
    }`);
  if (scalar || delta) {
    lines.push(`    for (var t = lid; t < n; t += WG) {`);
    push(scalar, `      gt[t] = load_g(c0 + t, gh);`);
    push(delta, `      bt[t] = load_beta(c0 + t, gh);`);
    lines.push(`    }`);
  }
  lines.push(`    workgroupBarrier();`);
  push(scalar || key, `    // Prefix sums of the log decays: G_t, all <= 0.`);
  push(
    scalar,
    `    if (lid == 0u) {
      for (var t = 1u; t < n; t++) { gt[t] += gt[t - 1u]; }
    }`,
  );
  push(
    key,
    `    for (var i = lid; i < DK; i += WG) {
      for (var t = 1u; t < n; t++) { gk[t * DK + i] += gk[(t - 1u) * DK + i]; }
      gend[i] = gk[(n - 1u) * DK + i];
    }`,
  );
  if (l2.any) {
    lines.push(`    // Fused l2 norms, a token's rows per invocation.
    for (var t = lid; t < n; t += WG) {
${l2.normalize('t * DK + ', '      ')}
      for (var i = 0u; i < DK; i++) { ${l2.scaleBy('t * DK + ')} }
    }`);
  }
  push(scalar || key || l2.any, `    workgroupBarrier();`);
  lines.push(`    // The Gram matrices, each pair weighted by its decay e^(G_t - G_u) <= 1.
    for (var e = lid; e < n * n; e += WG) {
      let t = e / n;
      let u = e % n;
      if (u <= t) {
        var qku = 0.0;${delta ? '\n        var kku = 0.0;' : ''}
        for (var i = 0u; i < DK; i++) {
          let ku = ks[u * DK + i]${key ? ' * exp(gk[t * DK + i] - gk[u * DK + i])' : ''};
          qku += qs[t * DK + i] * ku;${delta ? '\n          kku += ks[t * DK + i] * ku;' : ''}
        }${scalar ? '\n        let w = exp(gt[t] - gt[u]);' : ''}
        qk[t * C + u] = qku${scalar ? ' * w' : ''};${delta ? `\n        kk[t * C + u] = kku${scalar ? ' * w' : ''};` : ''}
      }
    }`);
  push(
    scalar,
    `    for (var t = lid; t < n; t += WG) {
      et[t] = exp(gt[t]);
      tail[t] = exp(gt[n - 1u] - gt[t]);
    }`,
  );
  lines.push(`    workgroupBarrier();`);
  if (key) {
    lines.push(`    // The rows as the terms across chunks want them (each element has one owner).
    for (var e = lid; e < n * DK; e += WG) {
      let lg = gk[e];
      qs[e] *= exp(lg);${delta ? '\n      gk[e] = ks[e] * exp(lg);' : ''}
      ks[e] *= exp(gend[e % DK] - lg);
    }
    workgroupBarrier();`);
  }
  if (a.normalize) {
    lines.push(`    // z is a column with v = 1: den_t = q_t·(D z_0) + Σ_(u<=t) qk[t, u], then z moves to the chunk's end.
    for (var t = lid; t < n; t += WG) {
      var qz = 0.0;
      for (var i = 0u; i < DK; i++) { qz += qs[t * DK + i] * zs[i]; }
      qz = qz${et};
      for (var u = 0u; u <= t; u++) { qz += qk[t * C + u]; }
      den[t] = qz + NORM_EPS;
    }
    workgroupBarrier();
    for (var i = lid; i < DK; i += WG) {
      var z = ${decayEnd} * zs[i];
      for (var u = 0u; u < n; u++) { z += ks[u * DK + i]${tail}; }
      zs[i] = z;
    }`);
  }
  const ke = key ? 'gk' : 'ks';
  const vt = 'load_v(c0 + t, vc)';
  lines.push(`    // Per column: delta_t by forward substitution, o_t, then S at the chunk's end.
    if (live) {
      for (var t = 0u; t < n; t++) {
        var qS = 0.0;${delta ? '\n        var kS = 0.0;' : ''}
        for (var i = 0u; i < DK; i++) {
          qS += qs[t * DK + i] * s[i];${delta ? `\n          kS += ${ke}[t * DK + i] * s[i];` : ''}
        }
        var o = qS${et};${delta ? `\n        var corr = kS${et};` : ''}
        for (var u = 0u; u < t; u++) {
          o += qk[t * C + u] * d[u];${delta ? '\n          corr += kk[t * C + u] * d[u];' : ''}
        }
        let dt = ${delta ? `bt[t] * (${vt} - corr)` : vt};
        d[t] = dt;
        o += qk[t * C + t] * dt;
        out[((c0 + t) * H + h) * DV + j] = o${a.normalize ? ' / den[t]' : ''};
      }
      for (var i = 0u; i < DK; i++) {
        var acc = ${decayEnd} * s[i];
        for (var u = 0u; u < n; u++) { acc += ks[u * DK + i]${tail} * d[u]; }
        s[i] = acc;
      }
    }
    workgroupBarrier();
  }`);
  lines.push(mainClosing(a));
  return lines.join('\n');
}

/** Which form a launch takes: the recurrent one, or chunks of C tokens. */
export type RecurrenceForm = { kind: 'recurrent' } | { kind: 'chunked'; C: number };

/** The form the kernel generator picks: recurrent for decode and dplr, chunked otherwise. */
export function recurrenceForm(
  a: LinearRecurrenceAttrs,
  caps: DeviceCaps,
  maxT: number,
): RecurrenceForm {
  // dplr's update reads bᵀS_(t-1) before each token's decay: its chunked form is the multi-pass
  // one only (linearRecurrenceKernel). A batched step is one token of each sequence: decode.
  if (maxT === 1 || a.update === 'dplr' || isBatched(a)) return { kind: 'recurrent' };
  return { kind: 'chunked', C: chunkTokens(a, caps) };
}

/** One launch of the recurrence in the given form. */
export function recurrenceLaunch(
  a: LinearRecurrenceAttrs,
  caps: DeviceCaps,
  form: RecurrenceForm,
): KernelLaunch {
  linearRecurrence.check(a);
  const wg = columnsPerGroup(a, caps);
  const runs = Math.ceil(a.valueDim / wg);
  if (a.heads > caps.maxWorkgroupsPerDimension || runs > caps.maxWorkgroupsPerDimension) {
    throw new Error(`linear_recurrence: ${a.heads} heads × ${runs} runs exceed the grid limit`);
  }
  const batched = isBatched(a);
  if (batched && form.kind !== 'recurrent') {
    throw new Error(
      `linear_recurrence: batched decode (batch ${a.batch}) has only the recurrent form`,
    );
  }
  if (batched && a.batch! > caps.maxWorkgroupsPerDimension) {
    throw new Error(
      `linear_recurrence: batch ${a.batch} exceeds the grid limit of ${caps.maxWorkgroupsPerDimension} sequences`,
    );
  }
  const floats = form.kind === 'chunked' ? chunkFloats(a, form.C) : recurrentFloats(a);
  if (4 * floats > caps.maxWorkgroupStorageBytes) {
    throw new Error(
      `linear_recurrence: ${4 * floats} bytes of workgroup memory exceed the device's`,
    );
  }
  const { decls, bindings } = header(a, wg);
  const body = form.kind === 'chunked' ? chunkedBody(a, form.C) : recurrentBody(a);
  const tag = form.kind === 'chunked' ? `chunk${form.C}` : 'recurrent';
  const p = a.prologue;
  const fused = p
    ? [
        ...Object.keys(p.l2).map((n) => `l2${n}`),
        ...(p.rope?.of ?? []).map((n) => `rope${p.rope!.rotaryDim}${n}`),
        ...Object.keys(p.exprs),
      ]
    : [];
  const variant = `${a.decay}_${a.update}${a.normalize ? '_norm' : ''}${a.rwkv7 ? `_rwkv7${a.rwkv7.lora ? `lora${a.rwkv7.lora.decayRank}x${a.rwkv7.lora.aRank}${a.rwkv7.lora.vRank ? `x${a.rwkv7.lora.vRank}` : ''}` : ''}` : ''}${fused.length ? `_pre_${fused.join('_')}` : ''}`;
  const heads = [a.heads, a.qHeads, a.kHeads, a.vHeads, a.gateHeads].join('x');
  return {
    kernel: {
      name: `linear_recurrence_${tag}_${variant}_h${heads}_dk${a.keyDim}_dv${a.valueDim}_wg${wg}${batched ? '_batched' : ''}`,
      code: withHelpers(`${decls}\n${body}`),
      bindings,
      workgroupSize: [wg, 1, 1],
    },
    // Batched: a layer (z) of workgroups per sequence, T of them.
    grid: [a.heads, runs, batched ? { sym: 'T' } : 1],
  };
}

/**
 * The generator: decode (maxT 1) and batched decode run the recurrent form. Prefill runs the
 * chunk-parallel passes (linear-recurrence-chunks.ts) when
 * a step may span more than one of their chunks (maxT > C): from two chunks on, their parallelism
 * over chunks is what the single kernel lacks, while a step of one chunk gains nothing from
 * writing and rereading the state and the w/u scratch. Where the passes cannot run on the device
 * (scratch past the storage binding limit, more storage buffers than a stage allows, no room in
 * workgroup memory) the prefill keeps the single-kernel chunked form, which is correct at any T,
 * only slower; multiPass names the reason. 'dplr' has no single-kernel chunked form and keeps the
 * recurrent one there (also within one chunk, and for RWKV-7's fused decode recurrence).
 */
export const linearRecurrenceKernel: KernelGenerator<LinearRecurrenceAttrs> = (
  a,
  { caps, maxT },
) => {
  const form = recurrenceForm(a, caps, maxT);
  // One sequence's prefill only: a batched step's rows are sequences (one token each).
  const prefill = form.kind === 'chunked' || (a.update === 'dplr' && maxT > 1);
  if (prefill && !isBatched(a)) {
    const plan = multiPassPlan(a, caps, maxT);
    if (typeof plan !== 'string' && maxT > plan.C) {
      const passes = multiPass(a, caps, maxT);
      if (typeof passes !== 'string') return passes;
    }
  }
  return {
    launches: [recurrenceLaunch(a, caps, form)],
    scratch: ropeRowPos(a) ? rowPosScratch(maxT) : {},
  };
};
