/**
 * DeepSeek sparse attention kernels (semantics: src/ops/indexer.ts).
 *
 * indexer_topk, two launches. Scores: a thread per (query, visible position), all index heads,
 * spread over capacity / 64 workgroups per query (a decode step's one query still fills the
 * GPU), each score stored as an order-preserving u32 key in the `indexer_keys` scratch
 * ([maxT, capacity]: workgroup memory would cap the context at a few thousand positions).
 * Selection: one workgroup per query. A radix select over the keys (4 passes of 8 bits, a 256-bin
 * workgroup histogram each) finds the topk-th largest key K and how many positions scoring exactly
 * K the list still takes; a compaction (each thread a contiguous range of positions, counts
 * prefix-summed across the workgroup) then writes the positions scoring above K, and the first of
 * those scoring K, in ascending order: the reference's rule (ties go to the lower position).
 * Queries that see at most topk positions skip both and list them all.
 * Cost: heads · dim MACs per visible position, then 5 passes over its keys.
 *
 * sparse_attention: one workgroup per (query head, query). Scores of the listed rows sit in
 * workgroup memory (topk of them, so topk is capped: TOPK_LIMIT), then max, exp and sum, then a
 * thread per output dimension sums the listed rows' values in list order, the order of the
 * reference (and of dense attention, lists being ascending).
 *
 * Batched decode (attrs.batch, src/ops/batch.ts): row t of the step is sequence t's one query, at
 * step.pos + row_pos[t] (slots prefilled from prompts of different lengths sit apart:
 * codegen/kernel-ir.ts ROW_POS, which both indexer_topk launches bind), scoring the index keys of its own cache slice (rows t·capacity..) and listing
 * positions of its own sequence; sparse_attention reads those positions from the same slice.
 * B = 1 code is what it was.
 */
import { kvTypeOf, type IndexerTopkAttrs, type SparseAttentionAttrs } from '../../src/graph/ops.ts';
import { indexerTopk, sparseAttention } from '../../src/ops/indexer.ts';
import { batchedRows, ROW_POS, STEP_WGSL, storageDecl } from '../kernel-ir.ts';
import type { KernelGenerator } from './types.ts';
import { bindingLimit } from '../../src/passes/split.ts';
import { opBindings, wgslF32, type StorageBinding } from './wgsl-builder.ts';
import { wgReductionsWgsl } from './wg-reduce.ts';

/** The scratch of order-preserving score keys. */
export const INDEXER_KEYS = 'indexer_keys';
/** Threads per workgroup of the scoring launch and of sparse_attention (tree reductions: a power of two). */
const WG = 64;
/** Threads of the selection launch, one workgroup per query: its passes read every visible key. */
const WG_SELECT = 128;
/**
 * sparse_attention keeps a query head's topk scores in workgroup memory (16 KiB guaranteed by
 * WebGPU, less the reduction arrays): DeepSeek-V3.2's index_topk of 2048 fits.
 */
export const TOPK_LIMIT = 3584;

const SEL_EMPTY_WGSL = '0xffffffffu';

export const indexerTopkKernel: KernelGenerator<IndexerTopkAttrs> = (a, ctx) => {
  indexerTopk.check(a);
  const bf = batchedRows(a);
  // One key per (query of the largest step, cache row): a long context with a long prefill
  // chunk outgrows a storage binding (128 MiB by default) before anything else.
  const keyBytes = 4 * ctx.maxT * a.capacity;
  const limit = bindingLimit(ctx.caps);
  if (keyBytes > limit) {
    throw new Error(
      `indexer_topk: its score scratch of maxT ${ctx.maxT} x capacity ${a.capacity} u32 keys ` +
        `(${keyBytes} bytes) exceeds the device's storage binding limit of ${limit} bytes; ` +
        `compile with a smaller --max-t (prefill chunk) or --capacity`,
    );
  }
  const maxGroups = ctx.caps.maxWorkgroupsPerDimension;
  const scoreGroups = Math.ceil(a.capacity / WG);
  if (scoreGroups > maxGroups) {
    throw new Error(
      `indexer_topk: capacity ${a.capacity} needs ${scoreGroups} workgroups of ${WG} in one grid dimension, more than the device's ${maxGroups}`,
    );
  }
  // Every buffer is one of the op's tensors or the scratch; each launch declares its own.
  // A batched step's row positions (read only) are one more.
  const { storage: ops } = opBindings(a, [INDEXER_KEYS, ROW_POS]);
  const storage: StorageBinding[] = [
    ...ops,
    { name: INDEXER_KEYS, access: 'read_write', elem: 'u32' },
    { name: ROW_POS, access: 'read', elem: 'u32' },
  ];
  const withRows = (names: string[]) => (bf.batched ? [...names, ROW_POS] : names);
  const decl = (names: string[]) =>
    withRows(names)
      .map((n, i) => {
        const b = storage.find((x) => x.name === n)!;
        return storageDecl(i + 1, n, b.access, b.elem);
      })
      .join('\n');
  const binds = (names: string[]) => [
    { name: 'step', access: 'uniform' as const },
    ...withRows(names).map((n) => ({
      name: n,
      access: storage.find((x) => x.name === n)!.access,
    })),
  ];
  const consts = `const H = ${a.heads}u;
const D = ${a.dim}u;
const TOPK = ${a.topk}u;
const CAP = ${a.capacity}u;
const SCALE = ${wgslF32(a.scale)};
const WSCALE = ${wgslF32(a.weightScale)};`;
  const scoreNames = ['q', 'w', 'kcache', INDEXER_KEYS];
  // An f16 cache is u32 words of two halves (dim even, so a key's pairs never straddle).
  const kAt = kvTypeOf(a) === 'f16' ? 'unpack2x16float(kcache[i >> 1u])[i & 1u]' : 'kcache[i]';
  const score = `${STEP_WGSL}
${decl(scoreNames)}
${consts}

// Larger float, larger key (sign bit flipped for >= 0, all bits for < 0); -0 is made +0 first so
// that equal scores give equal keys.
fn key_of(s: f32) -> u32 {
  let b = bitcast<u32>(select(s, 0.0, s == 0.0));
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn k_at(i: u32) -> f32 { return ${kAt}; }

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  let t = gid.y;
  if (t >= step.T) { return; }
  let p = ${bf.pos};
  // Lists of every visible position need no scores.
  if (j > p || p < TOPK) { return; }
  var s = 0.0;
  for (var h = 0u; h < H; h++) {
    var dot = 0.0;
    for (var d = 0u; d < D; d++) { dot += q[(t * H + h) * D + d] * k_at(${bf.kvRow('j')} * D + d); }
    s += w[t * H + h] * WSCALE * max(dot * SCALE, 0.0);
  }
  ${INDEXER_KEYS}[t * CAP + j] = key_of(s);
}
`;
  const selectNames = [INDEXER_KEYS, 'sel'];
  const select = `${STEP_WGSL}
${decl(selectNames)}
${consts}
const WG = ${WG_SELECT}u;

var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> cnt_gt: array<u32, ${WG_SELECT}>;
var<workgroup> cnt_eq: array<u32, ${WG_SELECT}>;
var<workgroup> sel_key: u32;
var<workgroup> sel_left: u32;

@compute @workgroup_size(${WG_SELECT})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let t = wid.x;
  let p = ${bf.pos};
  let n = p + 1u;
  let o = t * TOPK;
  if (n <= TOPK) {
    // Every visible position, then empty slots.
    for (var i = tid; i < TOPK; i += WG) { sel[o + i] = select(${SEL_EMPTY_WGSL}, i, i < n); }
    return;
  }
  let base = t * CAP;
  // Radix select of the TOPK-th largest key, 8 bits at a time from the top.
  var prefix = 0u;
  var mask = 0u;
  var left = TOPK;
  for (var r = 0u; r < 4u; r++) {
    let shift = 24u - 8u * r;
    for (var b = tid; b < 256u; b += WG) { atomicStore(&hist[b], 0u); }
    workgroupBarrier();
    for (var j = tid; j < n; j += WG) {
      let k = ${INDEXER_KEYS}[base + j];
      if ((k & mask) == prefix) { atomicAdd(&hist[(k >> shift) & 255u], 1u); }
    }
    workgroupBarrier();
    if (tid == 0u) {
      var b = 255u;
      loop {
        let c = atomicLoad(&hist[b]);
        if (c >= left || b == 0u) { break; }
        left -= c;
        b -= 1u;
      }
      sel_key = prefix | (b << shift);
      sel_left = left;
    }
    prefix = workgroupUniformLoad(&sel_key);
    left = workgroupUniformLoad(&sel_left);
    mask = mask | (255u << shift);
  }
  // prefix is the threshold key, left how many of the keys equal to it the list takes.
  let chunk = (n + WG - 1u) / WG;
  let j0 = min(tid * chunk, n);
  let j1 = min(j0 + chunk, n);
  var gt = 0u;
  var eq = 0u;
  for (var j = j0; j < j1; j++) {
    let k = ${INDEXER_KEYS}[base + j];
    gt += select(0u, 1u, k > prefix);
    eq += select(0u, 1u, k == prefix);
  }
  cnt_gt[tid] = gt;
  cnt_eq[tid] = eq;
  workgroupBarrier();
  var gtBefore = 0u;
  var eqBefore = 0u;
  for (var i = 0u; i < tid; i++) {
    gtBefore += cnt_gt[i];
    eqBefore += cnt_eq[i];
  }
  var at = gtBefore + min(eqBefore, left);
  var eqSeen = eqBefore;
  for (var j = j0; j < j1; j++) {
    let k = ${INDEXER_KEYS}[base + j];
    if (k > prefix) {
      sel[o + at] = j;
      at += 1u;
    } else if (k == prefix) {
      if (eqSeen < left) {
        sel[o + at] = j;
        at += 1u;
      }
      eqSeen += 1u;
    }
  }
}
`;
  const tag = `h${a.heads}d${a.dim}k${a.topk}${kvTypeOf(a) === 'f16' ? '_kv16' : ''}`;
  return {
    launches: [
      {
        kernel: {
          name: `indexer_scores_${tag}_wg${WG}${bf.suffix}`,
          code: score,
          bindings: binds(scoreNames),
          workgroupSize: [WG, 1, 1],
        },
        grid: [scoreGroups, { sym: 'T' }, 1],
      },
      {
        kernel: {
          name: `indexer_select_${tag}_wg${WG_SELECT}${bf.suffix}`,
          code: select,
          bindings: binds(selectNames),
          workgroupSize: [WG_SELECT, 1, 1],
        },
        grid: [{ sym: 'T' }, 1, 1],
      },
    ],
    scratch: { [INDEXER_KEYS]: keyBytes, ...bf.scratch(ctx.maxT) },
  };
};

export const sparseAttentionKernel: KernelGenerator<SparseAttentionAttrs> = (a) => {
  sparseAttention.check(a);
  const bf = batchedRows(a);
  if (a.topk > TOPK_LIMIT) {
    throw new Error(
      `sparse_attention: topk ${a.topk} exceeds ${TOPK_LIMIT}, the most scores this kernel keeps in workgroup memory`,
    );
  }
  const reserved = [
    'main',
    'HEADS',
    'HD',
    'VD',
    'KVW',
    'VW',
    'GROUP',
    'TOPK',
    'SCALE',
    'WG',
    'NEG',
    'sc',
    'red',
    'k_at',
    'v_at',
    'wg_max',
    'wg_sum',
  ];
  const { bindings, decls } = opBindings(a, reserved);
  const f16 = kvTypeOf(a) === 'f16';
  const vk = a.vFromK ?? null;
  const vcache = vk === null ? 'vcache' : 'kcache';
  const at = (c: string) =>
    f16 ? `return unpack2x16float(${c}[i >> 1u])[i & 1u];` : `return ${c}[i];`;
  const kvw = a.kvHeads * a.headDim;
  const code = `${STEP_WGSL}
${decls}
const HEADS = ${a.heads}u;
const HD = ${a.headDim}u;
const VD = ${a.vHeadDim}u;
const KVW = ${kvw}u;
const VW = ${vk === null ? a.kvHeads * a.vHeadDim : kvw}u;
const GROUP = ${a.heads / a.kvHeads}u;
const TOPK = ${a.topk}u;
const SCALE = ${wgslF32(a.scale)};
const WG = ${WG}u;
const NEG = -3.0e38;

var<workgroup> sc: array<f32, TOPK>;
var<workgroup> red: array<f32, ${WG}>;

fn k_at(i: u32) -> f32 { ${at('kcache')} }
fn v_at(i: u32) -> f32 { ${at(vcache)} }

${wgReductionsWgsl('red')}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let h = wid.x;
  let t = wid.y;
  // The grid is exactly T rows; the check also keeps the step binding in the layout.
  if (t >= step.T) { return; }
  let qo = (t * HEADS + h) * HD;
  let ko = (h / GROUP) * HD;
  let vo = ${vk === null ? '(h / GROUP) * VD' : `ko + ${vk}u`};
  var mx = NEG;
  for (var i = tid; i < TOPK; i += WG) {
    let j = sel[t * TOPK + i];
    var s = NEG;
    if (j != ${SEL_EMPTY_WGSL}) {
      var dot = 0.0;
      for (var d = 0u; d < HD; d++) { dot += q[qo + d] * k_at(${bf.kvRow('j')} * KVW + ko + d); }
      s = dot * SCALE;
    }
    sc[i] = s;
    mx = max(mx, s);
  }
  let m = wg_max(mx, tid);
  var sm = 0.0;
  for (var i = tid; i < TOPK; i += WG) {
    let e = select(exp(sc[i] - m), 0.0, sc[i] == NEG);
    sc[i] = e;
    sm += e;
  }
  let total = wg_sum(sm, tid);
  let inv = select(0.0, 1.0 / total, total > 0.0);
  for (var d = tid; d < VD; d += WG) {
    var acc = 0.0;
    for (var i = 0u; i < TOPK; i++) {
      let j = sel[t * TOPK + i];
      if (j != ${SEL_EMPTY_WGSL}) { acc += sc[i] * v_at(${bf.kvRow('j')} * VW + vo + d); }
    }
    out[(t * HEADS + h) * VD + d] = acc * inv;
  }
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `sparse_attention_h${a.heads}x${a.kvHeads}d${a.headDim}v${a.vHeadDim}k${a.topk}${vk === null ? '' : `_vk${vk}`}${f16 ? '_kv16' : ''}_wg${WG}${bf.suffix}`,
          code,
          bindings,
          workgroupSize: [WG, 1, 1],
        },
        grid: [a.heads, { sym: 'T' }, 1],
      },
    ],
    scratch: {},
  };
};
