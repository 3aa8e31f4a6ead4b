/**
 * H2O attention (semantics: src/ops/h2o.ts): one workgroup per kv head runs the step's tokens in
 * order, since token t + 1's eviction reads the scores token t's attention left. For each token:
 * a workgroup argmin over the head's evictable rows picks its row (a tree reduction on
 * (score, position), so ties go to the oldest as in the reference), the token's k and v are copied
 * into it, then the group's query heads score the kept rows together (a thread per row, each k
 * row read once for the group), reduce max and sum per head, write their outputs (slices of HD
 * threads each summing every SLICES-th row, then the slices added: each v row read once for the
 * group) and add their probabilities to the rows' scores (a thread per row, the thread that wrote
 * those probabilities, so no atomics are needed). This one-pass kernel has ONE_PASS_WG threads.
 * Each row's position and score (as f32 bits) share the `rows` buffer (src/ops/h2o.ts), so the
 * kernel binds 8 storage buffers, WebGPU's default per-stage limit.
 * Probabilities wait in the `h2o_prob` scratch ([kvHeads, budget, group]), which bounds nothing:
 * workgroup memory would cap the budget at a few thousand rows.
 *
 * A prefill chunk is serial in its tokens (kvHeads workgroups), the price of evicting exactly as
 * decode does. Decode of one sequence (maxT 1) does O(budget) work per kv head whatever the
 * context, in three launches: the eviction and the new row (a workgroup per kv head), then the
 * kept rows split over workgroups and merged (codegen/kernels/split-decode.ts), the merge adding
 * each row's probabilities to its score. One workgroup per kv head decoded Llama-3.2-1B dims at
 * 24.1 tok/s at 32k on the H100, against 343 for a window of 4,096 with sinks (budget 4,096: 64
 * threads of 8 workgroups read each layer's rows one after another); split, 175.7.
 * Batched decode (attrs.batch = B): a grid of kvHeads × B workgroups, sequence s's token (row s,
 * at step.pos + row_pos[s]: slots prefilled from prompts of different lengths sit apart,
 * codegen/kernel-ir.ts ROW_POS) evicting among and attending over its own slice of the caches,
 * rows state and probabilities, so B sequences evict independently in one dispatch.
 * row_pos would be a ninth storage buffer, so a batched kernel keeps its probabilities in the
 * row_pos scratch itself, past the first PROB0 = max(maxT, B) words, which hold the offsets (the
 * runtime writes those B words before each step; this kernel reads them and writes only past
 * them). Scratch is shared by name (codegen/emit.ts takes the largest request), so the phase's
 * row_pos buffer grows to hold them and the binding count stays at 8.
 */
import { kvTypeOf, type H2oAttentionAttrs } from '../../src/graph/ops.ts';
import { h2oAttention } from '../../src/ops/h2o.ts';
import { ROW_POS, STEP_WGSL, storageDecl } from '../kernel-ir.ts';
import type { KernelGenerator } from './types.ts';
import { opBindings, wgslF32, type StorageBinding } from './wgsl-builder.ts';
import { withHelpers } from './wgsl-math.ts';
import { wgReductionsWgsl } from './wg-reduce.ts';
import {
  COMBINE_WGSL,
  declareBindings,
  keySplits,
  partWgsl,
  SPLIT_WG,
  splitLaunches,
  splitProb,
} from './split-decode.ts';

/** Threads of split decode's workgroups: a power of two (tree reductions), split-decode.ts's. */
const WG = SPLIT_WG;
/**
 * Threads of the one-pass kernel (prefill and batched decode): its few workgroups (a kv head
 * each) walk every kept row for every token, so more threads a workgroup is more of the GPU.
 */
const ONE_PASS_WG = 256;
/** Most workgroup floats of the one-pass kernel's output partials (8 KiB). */
const OUT_PART_FLOATS = 2048;

/** Workgroup state and order of the eviction argmin (one-pass and split decode alike). */
const evictVars = (wg: number) => `var<workgroup> red_s: array<f32, ${wg}>;
var<workgroup> red_p: array<u32, ${wg}>;
var<workgroup> red_r: array<u32, ${wg}>;

// Eviction order: the smaller score, then the older position.
fn better(s: f32, p: u32, bs: f32, bp: u32) -> bool { return s < bs || (s == bs && p < bp); }`;

/** Most rows a decode part workgroup takes (fewer when that leaves one split). */
const SPLIT_ROWS = 64;
/** Most splits of the kept rows: 64 · 8 kv heads make 512 workgroups. */
const MAX_SPLITS = 64;

/**
 * Decode of one sequence (maxT 1) in three launches (see the header): the eviction and the new
 * row, one workgroup per kv head; then codegen/kernels/split-decode.ts's part launch over the kept
 * rows in splits, and its combine, which goes on to add each row's probabilities to its score.
 */
function splitDecode(
  a: H2oAttentionAttrs,
  o: {
    consts: (wg: number) => string;
    readers: string;
    evict: string;
    storage: StorageBinding[];
  },
) {
  const by = (name: string, access?: 'read') => {
    const b = o.storage.find((x) => x.name === name);
    if (!b) throw new Error(`h2o_attention: no binding '${name}'`);
    return { ...b, access: access ?? b.access };
  };
  const { splits, keys } = keySplits(a.budget, SPLIT_ROWS, MAX_SPLITS);
  const P = H2O_PROB;
  const name = kernelName(a, WG);
  const split = splitLaunches({
    name,
    consts: o.consts(WG),
    splits,
    pFloats: a.heads * a.budget,
    P,
    a,
    partInputs: [by('q'), by('kcache', 'read'), by('vcache', 'read')],
    partFns: o.readers,
    part: partWgsl({
      P,
      n: 'min(p + 1u, BUDGET)',
      keys: `${keys}u`,
      N: 'BUDGET',
      k: (i) => `k_at(${i})`,
      v: (i) => `v_at(${i})`,
      score: (x) => `cap_score(${x})`,
    }),
    combineOutputs: [by('out'), by('rows')],
    // Each kept row's score grows by what the group's heads gave it.
    combine: `${COMBINE_WGSL}
  let n = min(p + 1u, BUDGET);
  for (var r = tid; r < n; r += WG) {
    var gained = 0.0;
    for (var g = 0u; g < GROUP; g++) {
      gained += ${splitProb(`${P}[(h * BUDGET + r) * GROUP + g]`, 'r', `${keys}u`, 'g')};
    }
    let w = 2u * (r * KVH + h) + 1u;
    rows[w] = bitcast<u32>(bitcast<f32>(rows[w]) + gained);
  }`,
    combineReadsP: true,
  });
  const ev = declareBindings([by('k'), by('v'), by('kcache'), by('vcache'), by('rows')]);
  const evictCode = `${STEP_WGSL}
${ev.decls}
${o.consts(WG)}
${evictVars(WG)}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let h = wid.x;
  let t = 0u;
  let p = step.pos;
${o.evict}
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `${name}_evict`,
          code: withHelpers(evictCode),
          bindings: ev.bindings,
          workgroupSize: [WG, 1, 1] as [number, number, number],
        },
        grid: [a.kvHeads, 1, 1] as [number, number, number],
      },
      ...split.launches.map((l) => ({
        ...l,
        kernel: { ...l.kernel, code: withHelpers(l.kernel.code) },
      })),
    ],
    scratch: split.scratch,
  };
}

/** The kernel's name: its shape, policy and cache type. */
function kernelName(a: H2oAttentionAttrs, wg: number): string {
  return `h2o_attention_h${a.heads}x${a.kvHeads}d${a.headDim}_b${a.budget}r${a.recent}s${a.sinkTokens}${a.softcap === null ? '' : `_cap${a.softcap}`}${kvTypeOf(a) === 'f16' ? '_kv16' : ''}_wg${wg}`;
}

/** The scratch buffer of the probabilities each query head gives the kept rows. */
export const H2O_PROB = 'h2o_prob';

export const h2oAttentionKernel: KernelGenerator<H2oAttentionAttrs> = (a, { maxT }) => {
  h2oAttention.check(a);
  // Batched decode (src/ops/batch.ts): workgroup (h, s) runs sequence s's one token (row s of the
  // step, at step.pos + row_pos[s]) over its own slice of BUDGET cache rows, positions, scores
  // and probabilities; sequences evict independently. B = 1 builds keep the code they had.
  const B = a.batch ?? 1;
  const batched = B > 1;
  // The probabilities' buffer and first word (see the header: batched, they follow row_pos's
  // offsets in its buffer, declared f32 there and the offsets read through bitcast).
  const probBuf = batched ? ROW_POS : H2O_PROB;
  const prob0 = batched ? Math.max(maxT, B) : 0;
  const P = (i: string): string => (batched ? `${ROW_POS}[PROB0 + ${i}]` : `${H2O_PROB}[${i}]`);
  // Cache / state row r of this workgroup's sequence.
  const R = (r: string): string => (batched ? `(cb + ${r})` : r);
  const reserved = [
    'opart',
    'SLICES',
    'main',
    'HEADS',
    'KVH',
    'HD',
    'KVW',
    'QW',
    'GROUP',
    'BUDGET',
    'RECENT',
    'SINK',
    'SCALE',
    'WG',
    'NEG',
    'red_s',
    'red_p',
    'red_r',
    'red_x',
    'better',
    'wg_max',
    'wg_sum',
    'cap_score',
    'k_at',
    'v_at',
    'f16_pack2',
    'seq',
    'cb',
    'PROB0',
    'seq_pos',
    'sp',
    H2O_PROB,
    ROW_POS,
  ];
  const { bindings, storage, decls } = opBindings(a, reserved);
  const capped =
    a.softcap === null ? 's' : `${wgslF32(a.softcap)} * tanh_safe(s * ${wgslF32(1 / a.softcap)})`;
  // An f16 cache is u32 words of two halves (headDim even, so a head's pairs never straddle):
  // read through k_at / v_at, written a pair at a time, rounded as the reference rounds.
  const f16 = kvTypeOf(a) === 'f16';
  const at = (c: string) =>
    f16 ? `return unpack2x16float(${c}[i >> 1u])[i & 1u];` : `return ${c}[i];`;
  const store = f16
    ? `for (var d = 2u * tid; d < HD; d += 2u * WG) {
      let src = t * KVW + h * HD + d;
      let dst = (${R('row')} * KVW + h * HD + d) >> 1u;
      kcache[dst] = f16_pack2(k[src], k[src + 1u]);
      vcache[dst] = f16_pack2(v[src], v[src + 1u]);
    }`
    : `for (var d = tid; d < HD; d += WG) {
      kcache[${R('row')} * KVW + h * HD + d] = k[t * KVW + h * HD + d];
      vcache[${R('row')} * KVW + h * HD + d] = v[t * KVW + h * HD + d];
    }`;
  const consts = (wg: number) => `const HEADS = ${a.heads}u;
const KVH = ${a.kvHeads}u;
const HD = ${a.headDim}u;
const KVW = ${a.kvHeads * a.headDim}u;
const QW = ${a.heads * a.headDim}u;
const GROUP = ${a.heads / a.kvHeads}u;
const BUDGET = ${a.budget}u;
const RECENT = ${a.recent}u;
const SINK = ${a.sinkTokens}u;
const SCALE = ${wgslF32(a.scale)};
const WG = ${wg}u;
const NEG = -3.0e38;`;
  const readers = `
fn cap_score(s: f32) -> f32 { return ${capped}; }
fn k_at(i: u32) -> f32 { ${at('kcache')} }
fn v_at(i: u32) -> f32 { ${at('vcache')} }`;
  // Steps 1 and 2 of a token t at position p (h, tid in scope), shared with split decode's
  // first launch.
  const evict = `    // 1. The token's row: the next free one, or the evicted token's.
    var row = p;
    if (p >= BUDGET) {
      var bs = 3.4e38;
      var bp = 0xffffffffu;
      var br = 0u;
      for (var r = tid; r < BUDGET; r += WG) {
        let at = rows[2u * (${R('r')} * KVH + h)];
        // Sinks and the RECENT tokens before p stay.
        if (at < SINK || at + RECENT >= p) { continue; }
        let s = bitcast<f32>(rows[2u * (${R('r')} * KVH + h) + 1u]);
        if (better(s, at, bs, bp)) { bs = s; bp = at; br = r; }
      }
      red_s[tid] = bs;
      red_p[tid] = bp;
      red_r[tid] = br;
      workgroupBarrier();
      for (var w = WG / 2u; w > 0u; w /= 2u) {
        if (tid < w && better(red_s[tid + w], red_p[tid + w], red_s[tid], red_p[tid])) {
          red_s[tid] = red_s[tid + w];
          red_p[tid] = red_p[tid + w];
          red_r[tid] = red_r[tid + w];
        }
        workgroupBarrier();
      }
      row = red_r[0];
      workgroupBarrier();
    }
    // 2. Its k, v (rotated at p already), position and a fresh score.
    ${store}
    if (tid == 0u) {
      rows[2u * (${R('row')} * KVH + h)] = p;
      rows[2u * (${R('row')} * KVH + h) + 1u] = 0u;
    }
    storageBarrier();`;
  if (maxT === 1 && !batched) return splitDecode(a, { consts, readers, evict, storage });
  // The outputs: SLICES groups of HD threads each sum every SLICES-th kept row into workgroup
  // partials, then the partials are added up; one thread a dimension walked every row alone, and
  // H2O's prefill, serial in its tokens, ran at 214 tok/s on the H100 (Llama-3.2-1B dims).
  const group = a.heads / a.kvHeads;
  const slices = Math.max(
    1,
    Math.min(
      Math.floor(ONE_PASS_WG / a.headDim),
      Math.floor(OUT_PART_FLOATS / (a.headDim * group)),
    ),
  );
  const output =
    slices > 1
      ? `let sl = tid / HD;
    let dd = tid % HD;
    if (sl < SLICES) {
      var o = array<f32, GROUP>();
      for (var r = sl; r < n; r += SLICES) {
        let vd = v_at(${R('r')} * KVW + h * HD + dd);
        for (var g = 0u; g < GROUP; g++) { o[g] += ${P('(pb + r) * GROUP + g')} * vd; }
      }
      for (var g = 0u; g < GROUP; g++) { opart[(sl * GROUP + g) * HD + dd] = o[g]; }
    }
    workgroupBarrier();
    for (var x = tid; x < GROUP * HD; x += WG) {
      let g = x / HD;
      var o = 0.0;
      for (var s = 0u; s < SLICES; s++) { o += opart[s * GROUP * HD + x]; }
      out[q0 + x] = o * inv[g];
    }
    workgroupBarrier();`
      : `for (var d = tid; d < HD; d += WG) {
      var o = array<f32, GROUP>();
      for (var r = 0u; r < n; r++) {
        let vd = v_at(${R('r')} * KVW + h * HD + d);
        for (var g = 0u; g < GROUP; g++) { o[g] += ${P('(pb + r) * GROUP + g')} * vd; }
      }
      for (var g = 0u; g < GROUP; g++) { out[q0 + g * HD + d] = o[g] * inv[g]; }
    }`;
  const code = withHelpers(`${STEP_WGSL}
${decls}
${storageDecl(storage.length + 1, probBuf, 'read_write')}
${consts(ONE_PASS_WG)}
const PROB0 = ${prob0}u;
${slices > 1 ? `const SLICES = ${slices}u;\n// Each slice's partial outputs, [slice][g][d].\nvar<workgroup> opart: array<f32, ${slices * a.headDim * group}>;` : ''}

${evictVars(ONE_PASS_WG)}
var<workgroup> red_x: array<f32, ${ONE_PASS_WG}>;${batched ? '\nvar<workgroup> seq_pos: u32;' : ''}
${readers}

${wgReductionsWgsl('red_x')}
@compute @workgroup_size(${ONE_PASS_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let h = wid.x;
  ${
    batched
      ? `let seq = wid.y;
  let cb = seq * BUDGET;
  let pb = (seq * KVH + h) * BUDGET;
  // Row seq of the step is sequence seq's token, at its own position. A read_write buffer's
  // words are not uniform to WGSL, and p guides the barriers below: passed on through
  // workgroup memory.
  if (tid == 0u) { seq_pos = step.pos + bitcast<u32>(${ROW_POS}[seq]); }
  let sp = workgroupUniformLoad(&seq_pos);
  for (var t = seq; t < seq + 1u; t++) {
    let p = sp;`
      : `let pb = h * BUDGET;
  for (var t = 0u; t < step.T; t++) {
    let p = step.pos + t;`
  }
${evict}
    // 3. The group's query heads attend over the kept rows together, so each k and v row is read
    // once per token, not once per query head.
    let n = min(p + 1u, BUDGET);
    let q0 = t * QW + h * GROUP * HD;
    // Accumulators declared in a loop body start from explicit zero constructors: a bare
    // "var x: array<...>;" there is zeroed once, at function entry, by Tint's SPIR-V on
    // SwiftShader (as codegen/kernels/ssm.ts notes), and kept the previous token's sums.
    var mx: array<f32, GROUP>;
    for (var g = 0u; g < GROUP; g++) { mx[g] = NEG; }
    for (var r = tid; r < n; r += WG) {
      var s = array<f32, GROUP>();
      for (var d = 0u; d < HD; d++) {
        let kd = k_at(${R('r')} * KVW + h * HD + d);
        for (var g = 0u; g < GROUP; g++) { s[g] += q[q0 + g * HD + d] * kd; }
      }
      for (var g = 0u; g < GROUP; g++) {
        let x = cap_score(s[g] * SCALE);
        ${P('(pb + r) * GROUP + g')} = x;
        mx[g] = max(mx[g], x);
      }
    }
    var m: array<f32, GROUP>;
    for (var g = 0u; g < GROUP; g++) { m[g] = wg_max(mx[g], tid); }
    var sm = array<f32, GROUP>();
    for (var r = tid; r < n; r += WG) {
      for (var g = 0u; g < GROUP; g++) {
        let e = exp(${P('(pb + r) * GROUP + g')} - m[g]);
        ${P('(pb + r) * GROUP + g')} = e;
        sm[g] += e;
      }
    }
    var inv: array<f32, GROUP>;
    for (var g = 0u; g < GROUP; g++) { inv[g] = 1.0 / wg_sum(sm[g], tid); }
    storageBarrier();
    ${output}
    // Each row's score grows by what the group's heads gave it (the same thread wrote its probs).
    for (var r = tid; r < n; r += WG) {
      var gained = 0.0;
      for (var g = 0u; g < GROUP; g++) { gained += ${P('(pb + r) * GROUP + g')} * inv[g]; }
      let w = 2u * (${R('r')} * KVH + h) + 1u;
      rows[w] = bitcast<u32>(bitcast<f32>(rows[w]) + gained);
    }
    storageBarrier();
  }
}
`);
  return {
    launches: [
      {
        kernel: {
          name: `${kernelName(a, ONE_PASS_WG)}${batched ? `_batch${B}` : ''}`,
          code,
          bindings: [...bindings, { name: probBuf, access: 'read_write' }],
          workgroupSize: [ONE_PASS_WG, 1, 1],
        },
        grid: [a.kvHeads, B, 1],
      },
    ],
    scratch: { [probBuf]: 4 * (prob0 + a.heads * a.budget * B) },
  };
};
