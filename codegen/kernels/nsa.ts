/**
 * NSA kernels (semantics: src/ops/nsa.ts).
 *
 * - nsa_compress: a thread per (column, token); a token that completes a block averages the
 *   block's rows of the KV cache into the compressed caches. Most tokens do nothing: decode
 *   writes one row every `block` tokens.
 * - nsa_compressed and nsa_selected: a workgroup per (kv head, token slot). The group's query
 *   heads are scored together, so each key row is read once per group (the point of NSA's
 *   group-shared selection), through the same phases as the H2O kernel: scores into a scratch
 *   buffer, workgroup max, exponentials and sums, then a thread per output dimension.
 *   nsa_compressed then turns the probabilities into each block's importance (mean over the group,
 *   forced blocks NSA_FORCED) and takes the top `select` by repeated workgroup argmax, ties to the
 *   later block as in the reference.
 *
 * Token slots: a prefill step of T tokens runs on min(maxT, SLOTS) workgroups per kv head, each
 * taking every SLOTS-th token, so the scratch (per slot, not per token) stays bounded at long
 * prompts.
 *
 * Decode (maxT 1, one sequence) splits the keys instead, as dense attention's decode does: one
 * workgroup per kv head left 8 of an H100's 132 SMs working, and NSA decode at 128k ran at 0.36×
 * dense attention's speed (bench/results/2026-12-06-0653-nvidia-h100-nsa.json: compressed
 * 0.630 ms, selected 0.197 ms, dense 0.282 ms). Through codegen/kernels/split-decode.ts, a part
 * launch gives each (kv head, split) its share of the keys (compressed: runs of CMP_SPLIT_KEYS
 * blocks; selected: one picked block each) and leaves its max, sum and unnormalised outputs in a
 * scratch; a combine launch per kv head merges them into the outputs, and for the compressed
 * branch turns each block's probabilities
 * (its split's exponentials, rescaled to the merged max) into importances and the top `select`
 * exactly as the one-pass kernel does.
 *
 * Batched decode (attrs.batch, src/ops/batch.ts): row t of the step is sequence t's one token, at
 * step.pos + row_pos[t] (slots prefilled from prompts of different lengths sit apart:
 * codegen/kernel-ir.ts ROW_POS, bound after the op's tensors, before the scratch); it reads and writes its own slice of the caches (rows t·capacity..) and of the
 * compressed caches (rows t·NB..), and its picks are its own row. The slots then run over
 * sequences; nothing else changes, so B = 1 code is what it was.
 */
import type {
  NsaCompressAttrs,
  NsaCompressedAttrs,
  NsaSelectedAttrs,
} from '../../src/graph/ops.ts';
import {
  NSA_FORCED,
  NSA_NO_BLOCK,
  nsaBlocks,
  nsaCompress,
  nsaCompressed,
  nsaSelected,
} from '../../src/ops/nsa.ts';
import { batchedRows, ROW_POS, STEP_WGSL, storageDecl } from '../kernel-ir.ts';
import type { KernelGenerator } from './types.ts';
import { opBindings, wgslF32, withRowPos } from './wgsl-builder.ts';
import { wgReductionsWgsl } from './wg-reduce.ts';
import {
  COMBINE_WGSL,
  keySplits,
  partWgsl,
  scoresWgsl,
  SPLIT_WG,
  splitLaunches,
  splitProb,
  type Reader,
} from './split-decode.ts';

/** Scratch of nsa_compressed's probabilities and importances. */
export const NSA_CMP_PROB = 'nsa_cmp_prob';
/** Scratch of nsa_selected's probabilities. */
export const NSA_SLC_PROB = 'nsa_slc_prob';
/** Threads per workgroup: a power of two (tree reductions), the split launches' own. */
const WG = SPLIT_WG;
/** Most workgroups per kv head over a step's tokens. */
const SLOTS = 16;

const slotsFor = (maxT: number) => Math.max(1, Math.min(maxT, SLOTS));

/** Workgroup max and sum over one value per thread (WG threads, red_x of WG floats). */
const REDUCTIONS = wgReductionsWgsl('red_x');

const RESERVED = [
  'main',
  'KVH',
  'HD',
  'KVW',
  'QW',
  'GROUP',
  'BLOCK',
  'SELECT',
  'NB',
  'SLOTS',
  'KEYS',
  'SCALE',
  'WG',
  'NEG',
  'NONE',
  'FORCED',
  'red_x',
  'red_s',
  'red_i',
  'wg_max',
  'wg_sum',
  'key_of',
  NSA_CMP_PROB,
  NSA_SLC_PROB,
  ROW_POS,
];

function constants(a: {
  heads?: number;
  kvHeads: number;
  headDim: number;
  block: number;
  select?: number;
  scale?: number;
  capacity: number;
}): string {
  const heads = a.heads ?? a.kvHeads;
  return `const KVH = ${a.kvHeads}u;
const HD = ${a.headDim}u;
const KVW = ${a.kvHeads * a.headDim}u;
const QW = ${heads * a.headDim}u;
const GROUP = ${heads / a.kvHeads}u;
const BLOCK = ${a.block}u;
const SELECT = ${a.select ?? 1}u;
const NB = ${nsaBlocks(a)}u;
const SCALE = ${wgslF32(a.scale ?? 1)};
const WG = ${WG}u;
const NEG = -3.0e38;
const NONE = ${NSA_NO_BLOCK}u;
const FORCED = ${wgslF32(NSA_FORCED)};`;
}

/**
 * One token's attention for a kv head's group of query heads over a set of keys, shared by
 * nsa_compressed (the complete compressed blocks) and nsa_selected (the picked keys): scores into
 * the scratch P (index (base + i) * GROUP + g), workgroup max, exponentials and sums, then a thread
 * per output dimension. Leaves each key's exp(score - max) in P and 1 / sum in `inv[g]` (0 when
 * no key counts), which nsa_compressed reads on for the block importances.
 * Key i (loop variable `i`, below bound `n`) is row i of `k`/`v`, or, with `row`, the row that WGSL
 * expression gives (NONE: the key is skipped and its probability is 0).
 * Accumulators inside the loop start from explicit zero constructors: see codegen/kernels/h2o.ts.
 */
function groupAttentionWgsl(o: {
  P: string;
  i: string;
  n: string;
  k: string;
  v: string;
  row?: string;
  /** Batched: the first cache row of this token's sequence (added to every key row). */
  rowBase?: string;
}): string {
  const { P, i, n } = o;
  const at = (g: string) => `${P}[(base + ${i}) * GROUP + ${g}]`;
  const key = o.row ? 'j' : i;
  const j = o.rowBase ? `(${o.rowBase} + ${key})` : key;
  const skip = o.row ? `let j = ${o.row};\n      if (j == NONE) { continue; }\n      ` : '';
  return `${scoresWgsl({ i, start: 'tid', end: n, at, k: read(o.k), j, skip, keep: o.row ? `${o.row} != NONE` : undefined })}
    var inv = array<f32, GROUP>();
    for (var g = 0u; g < GROUP; g++) {
      let z = wg_sum(sm[g], tid);
      inv[g] = select(0.0, 1.0 / z, z > 0.0);
    }
    storageBarrier();
    for (var d = tid; d < HD; d += WG) {
      var o = array<f32, GROUP>();
      for (var ${i} = 0u; ${i} < ${n}; ${i}++) {
        ${skip.replace(/\n      /g, '\n        ')}let vd = ${o.v}[${j} * KVW + h * HD + d];
        for (var g = 0u; g < GROUP; g++) { o[g] += ${at('g')} * vd; }
      }
      for (var g = 0u; g < GROUP; g++) { out[q0 + g * HD + d] = o[g] * inv[g]; }
    }`;
}

/** Batched decode's per-sequence forms (see the header), or the one-sequence ones. */
function batchForms(a: { batch?: number; capacity: number }) {
  const rows = batchedRows(a);
  return {
    ...rows,
    // Row t's first row of the compressed caches.
    cmpBase: rows.batched ? 't * NB' : undefined,
    // The op's bindings, with row_pos when batched.
    bind: (op: Parameters<typeof opBindings>[0]) =>
      withRowPos(rows.batched, opBindings(op, RESERVED)),
  };
}

/**
 * The top SELECT of the importances in P[(base + c) · GROUP] (c = 0..cur) into picks row o0:
 * repeated workgroup argmax (ties to the later block); a taken block scores -2. Needs h, t, cur,
 * base and tid in scope.
 */
function topSelectWgsl(P: string): string {
  return `    // The top SELECT: repeated argmax (ties to the later block); a taken block scores -2.
    let n = min(SELECT, cur + 1u);
    let o0 = (t * KVH + h) * SELECT;
    for (var i = 0u; i < SELECT; i++) {
      if (i >= n) {
        if (tid == 0u) { picks[o0 + i] = NONE; }
        continue;
      }
      var bs = -1.0;
      var bi = 0u;
      for (var c = tid; c <= cur; c += WG) {
        let s = ${P}[(base + c) * GROUP];
        if (s > bs || (s == bs && c > bi)) { bs = s; bi = c; }
      }
      red_s[tid] = bs;
      red_i[tid] = bi;
      workgroupBarrier();
      for (var w = WG / 2u; w > 0u; w /= 2u) {
        if (tid < w) {
          let s = red_s[tid + w];
          if (s > red_s[tid] || (s == red_s[tid] && red_i[tid + w] > red_i[tid])) {
            red_s[tid] = s;
            red_i[tid] = red_i[tid + w];
          }
        }
        workgroupBarrier();
      }
      if (tid == 0u) {
        let c = red_i[0];
        picks[o0 + i] = c;
        ${P}[(base + c) * GROUP] = -2.0;
      }
      storageBarrier();
    }
`;
}

/**
 * Key i of token t's selection for kv head h (the block picked in slot i / BLOCK), or NONE when
 * the slot is empty or the key lies after p.
 */
const KEY_OF_WGSL = `fn key_of(t: u32, h: u32, i: u32, p: u32) -> u32 {
  let c = picks[(t * KVH + h) * SELECT + i / BLOCK];
  if (c == NONE) { return NONE; }
  let j = c * BLOCK + i % BLOCK;
  return select(NONE, j, j <= p);
}`;

/** A plain f32 cache's reader. */
const read =
  (buf: string): Reader =>
  (i) =>
    `${buf}[${i}]`;

/** Most compressed blocks a decode part workgroup takes (fewer when that leaves one split). */
const CMP_SPLIT_KEYS = 64;
/** Most splits of the compressed keys: 32 · 8 kv heads make 256 workgroups. */
const CMP_MAX_SPLITS = 32;

/** Splits of nb compressed blocks, and blocks per split. */
export const compressedSplits = (nb: number) => keySplits(nb, CMP_SPLIT_KEYS, CMP_MAX_SPLITS);

export const nsaCompressKernel: KernelGenerator<NsaCompressAttrs> = (a, { maxT }) => {
  nsaCompress.check(a);
  const bf = batchForms(a);
  const { bindings, decls } = bf.bind(a);
  const cmp = (c: string) => (bf.cmpBase ? `(${bf.cmpBase} + ${c})` : c);
  const code = `${STEP_WGSL}
${decls}
${constants(a)}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let t = gid.y;
  if (i >= KVW || t >= step.T) { return; }
  let p = ${bf.pos};
  if ((p + 1u) % BLOCK != 0u) { return; }
  let c = (p + 1u) / BLOCK - 1u;
  var sk = 0.0;
  var sv = 0.0;
  for (var j = c * BLOCK; j <= p; j++) {
    sk += kcache[${bf.kvRow('j')} * KVW + i];
    sv += vcache[${bf.kvRow('j')} * KVW + i];
  }
  kcmp[${cmp('c')} * KVW + i] = sk / f32(BLOCK);
  vcmp[${cmp('c')} * KVW + i] = sv / f32(BLOCK);
}
`;
  const kvw = a.kvHeads * a.headDim;
  return {
    launches: [
      {
        kernel: {
          name: `nsa_compress_w${kvw}_l${a.block}_c${a.capacity}${bf.suffix}`,
          code,
          bindings,
          workgroupSize: [WG, 1, 1],
        },
        grid: [Math.ceil(kvw / WG), { sym: 'T' }, 1],
      },
    ],
    scratch: bf.scratch(maxT),
  };
};

/** Decode of one sequence (maxT 1) splits the keys (see the header). */
const splitDecode = (a: { batch?: number }, maxT: number) => maxT === 1 && (a.batch ?? 1) === 1;

export const nsaCompressedKernel: KernelGenerator<NsaCompressedAttrs> = (a, ctx) => {
  nsaCompressed.check(a);
  if (splitDecode(a, ctx.maxT)) {
    const P = NSA_CMP_PROB;
    const { splits, keys } = compressedSplits(nsaBlocks(a));
    return splitLaunches({
      name: `nsa_compressed_h${a.heads}x${a.kvHeads}d${a.headDim}_l${a.block}n${a.select}_c${a.capacity}`,
      consts: constants(a),
      splits,
      pFloats: a.heads * nsaBlocks(a),
      P,
      a,
      partInputs: [
        { name: 'q', access: 'read' },
        { name: 'kcmp', access: 'read' },
        { name: 'vcmp', access: 'read' },
      ],
      part: partWgsl({
        P,
        n: '((p + 1u) / BLOCK)',
        keys: `${keys}u`,
        N: 'NB',
        k: read('kcmp'),
        v: read('vcmp'),
      }),
      combineOutputs: [
        { name: 'out', access: 'read_write' },
        { name: 'picks', access: 'read_write', elem: 'u32' },
      ],
      // Block c's probability for query head g is its split's exponential rescaled to the
      // merged max, times the merged sum's inverse.
      combine: `${COMBINE_WGSL}
  let nc = (p + 1u) / BLOCK;
  let cur = p / BLOCK;
  let base = h * NB;
  storageBarrier();
  for (var c = tid; c <= cur; c += WG) {
    var s = 0.0;
    if (c < nc) {
      for (var g = 0u; g < GROUP; g++) {
        s += ${splitProb(`${P}[(base + c) * GROUP + g]`, 'c', `${keys}u`, 'g')};
      }
      s = s / f32(GROUP);
    }
    if (c == 0u || c == cur || c + 1u == cur) { s = FORCED; }
    ${P}[(base + c) * GROUP] = s;
  }
  storageBarrier();
${topSelectWgsl(P)}`,
      combineReadsP: true,
    });
  }
  const bf = batchForms(a);
  const { bindings, decls } = bf.bind(a);
  const slots = slotsFor(ctx.maxT);
  const P = NSA_CMP_PROB;
  const code = `${STEP_WGSL}
${decls}
${storageDecl(bindings.length, P, 'read_write')}
${constants(a)}
const SLOTS = ${slots}u;

var<workgroup> red_x: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;
${REDUCTIONS}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let h = wid.x;
  let base = (wid.y * KVH + h) * NB;
  for (var t = wid.y; t < step.T; t += SLOTS) {
    let p = ${bf.pos};
    let nc = (p + 1u) / BLOCK;
    let cur = p / BLOCK;
    let q0 = t * QW + h * GROUP * HD;
    // The group's attention over the complete blocks (none yet: sums 0, outputs 0, as fla's o_cmp
    // before the first block completes).
${groupAttentionWgsl({ P, i: 'c', n: 'nc', k: 'kcmp', v: 'vcmp', rowBase: bf.cmpBase })}
    storageBarrier();
    // Importance of each candidate block 0..cur (in the g = 0 slot; the same thread wrote it).
    for (var c = tid; c <= cur; c += WG) {
      var s = 0.0;
      if (c < nc) {
        for (var g = 0u; g < GROUP; g++) { s += ${P}[(base + c) * GROUP + g] * inv[g]; }
        s = s / f32(GROUP);
      }
      if (c == 0u || c == cur || c + 1u == cur) { s = FORCED; }
      ${P}[(base + c) * GROUP] = s;
    }
    storageBarrier();
${topSelectWgsl(P)}
  }
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `nsa_compressed_h${a.heads}x${a.kvHeads}d${a.headDim}_l${a.block}n${a.select}_c${a.capacity}_s${slots}${bf.suffix}`,
          code,
          bindings: [...bindings, { name: P, access: 'read_write' }],
          workgroupSize: [WG, 1, 1],
        },
        grid: [a.kvHeads, slots, 1],
      },
    ],
    scratch: { [P]: 4 * slots * a.heads * nsaBlocks(a), ...bf.scratch(ctx.maxT) },
  };
};

export const nsaSelectedKernel: KernelGenerator<NsaSelectedAttrs> = (a, ctx) => {
  nsaSelected.check(a);
  if (splitDecode(a, ctx.maxT)) {
    const P = NSA_SLC_PROB;
    return splitLaunches({
      name: `nsa_selected_h${a.heads}x${a.kvHeads}d${a.headDim}_l${a.block}n${a.select}_c${a.capacity}`,
      // A split per picked block.
      consts: `${constants(a)}
const KEYS = ${a.select * a.block}u;`,
      partFns: KEY_OF_WGSL,
      splits: a.select,
      pFloats: a.heads * a.select * a.block,
      P,
      a,
      partInputs: [
        { name: 'q', access: 'read' },
        { name: 'kcache', access: 'read' },
        { name: 'vcache', access: 'read' },
        { name: 'picks', access: 'read', elem: 'u32' },
      ],
      part: partWgsl({
        P,
        n: 'KEYS',
        keys: 'BLOCK',
        N: 'KEYS',
        k: read('kcache'),
        v: read('vcache'),
        row: 'key_of(t, h, i, p)',
      }),
      combineOutputs: [{ name: 'out', access: 'read_write' }],
      combine: COMBINE_WGSL,
      combineReadsP: false,
    });
  }
  const bf = batchForms(a);
  const { bindings, decls } = bf.bind(a);
  const slots = slotsFor(ctx.maxT);
  const P = NSA_SLC_PROB;
  const keys = a.select * a.block;
  const code = `${STEP_WGSL}
${decls}
${storageDecl(bindings.length, P, 'read_write')}
${constants(a)}
const SLOTS = ${slots}u;
const KEYS = ${keys}u;

var<workgroup> red_x: array<f32, WG>;
${REDUCTIONS}
${KEY_OF_WGSL}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let h = wid.x;
  let base = (wid.y * KVH + h) * KEYS;
  for (var t = wid.y; t < step.T; t += SLOTS) {
    let p = ${bf.pos};
    let q0 = t * QW + h * GROUP * HD;
${groupAttentionWgsl({ P, i: 'i', n: 'KEYS', k: 'kcache', v: 'vcache', row: 'key_of(t, h, i, p)', rowBase: bf.kvBase })}
    storageBarrier();
  }
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `nsa_selected_h${a.heads}x${a.kvHeads}d${a.headDim}_l${a.block}n${a.select}_c${a.capacity}_s${slots}${bf.suffix}`,
          code,
          bindings: [...bindings, { name: P, access: 'read_write' }],
          workgroupSize: [WG, 1, 1],
        },
        grid: [a.kvHeads, slots, 1],
      },
    ],
    scratch: { [P]: 4 * slots * a.heads * keys, ...bf.scratch(ctx.maxT) },
  };
};
