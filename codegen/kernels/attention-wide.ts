/**
 * Attention for many query heads over one wide shared kv head whose values are columns of the key
 * rows (vFromK): MLA's latent cache, where every head scores the same 576-wide rows
 * [latent | rope key] and sums their 512 latent columns. Decode splits the keys (flash-decoding);
 * prefill runs a workgroup per token and G heads over all the keys the token sees.
 *
 * The flash body of attention.ts stages a block of query rows and a tile of keys in workgroup
 * memory and walks keys a tile at a time; at 576 wide, its 16 query rows leave room for tiles of
 * 2–4 keys, so a split's keys take dozens of barrier-bound tiles (3.08 ms a layer at
 * DeepSeek-V3's dims and 32k context on an H100, against 0.12 ms of reading the cache). Here a
 * workgroup holds the queries of G heads in workgroup memory and reads key rows straight from
 * the cache, 64 keys a tile:
 *  - scores: thread (key k, head slice) dots its key row, read as vec4s, with the queries of its
 *    G / 4 heads (each cache vector feeds that many heads);
 *  - softmax: thread g < G rescales head g's running max and sum over the tile;
 *  - values: thread (vec4 column c, head slice) adds p · v for the tile's keys into registers
 *    (consecutive threads read consecutive columns of a row).
 * Each workgroup takes one of SPLITS slices of the visible keys (flash-decoding) and writes the
 * same partial (m, l, acc) as the flash body, so attention.ts's combine launch merges both.
 *
 * Measured on an H100 (bench/mla.ts, DeepSeek-V3's widths, one layer's decode attention at 32k):
 * 1.37 ms against the flash body's 3.08. The heads a workgroup holds are what counts: 8 took
 * 1.94 ms (each key row is read once per workgroup), while tiles of 32 or 128 keys, or four
 * cache loads issued before use, changed it by at most 5% or made it slower (32 keys: 2.14;
 * bench/results/2026-12-06-1404-nvidia-h100-mla-wide-variants.json). 32 heads' queries would
 * not fit 48 KiB of workgroup memory beside the scores.
 *
 * An f16 cache (--kv f16) is bound as vec2<u32> words, four halves a load, widened by
 * unpack2x16float (core WGSL) as it is read; everything else stays f32.
 *
 * Taken only where it applies (wideDecode): causal, one sequence, no window, softcap,
 * sinks, ring, block-sparse or batched rows, 4-aligned widths, and a group of at least 4 heads;
 * everything else keeps the flash body.
 */
import { kvTypeOf, type AttentionAttrs } from '../../src/graph/ops.ts';
import type { DeviceCaps } from '../../src/target.ts';
import { STEP_BINDING, STEP_WGSL, storageDecl, type KernelLaunch } from '../kernel-ir.ts';
import { withHelpers } from './wgsl-math.ts';
import { wgslF32 } from './wgsl-builder.ts';

/** Threads a workgroup: 64 keys × 4 head slices when scoring. */
const WG = 256;
/** Keys a tile. */
const BK = 64;
/** Head slices when scoring (WG / BK). */
const SLICES = WG / BK;

export interface WideTiles {
  /** Query heads a workgroup (a power of two dividing the group, at least SLICES). */
  g: number;
}

/** Workgroup bytes for G heads: their queries, the tile's scores, and per-head rescales. */
function wideBytes(a: AttentionAttrs, g: number): number {
  return 4 * (g * a.headDim + g * BK + g);
}

/** The tiles of the wide decode kernel, or null where the flash body must run instead. */
export function wideDecode(a: AttentionAttrs, caps: DeviceCaps): WideTiles | null {
  const vk = a.vFromK ?? null;
  const group = a.heads / a.kvHeads;
  const plain =
    vk !== null &&
    (a.batch ?? 1) === 1 &&
    a.causal &&
    !a.phased &&
    a.window === null &&
    (a.blockCausal ?? null) === null &&
    a.softcap === null &&
    !a.sinks &&
    !(a.sinkTokens ?? 0) &&
    (a.ring ?? null) === null &&
    (a.blockSparse ?? null) === null &&
    !(a.globalQueries ?? 0) &&
    a.headDim % 4 === 0 &&
    a.vHeadDim % 4 === 0 &&
    vk % 4 === 0 &&
    caps.maxInvocationsPerWorkgroup >= WG;
  if (!plain) return null;
  for (let g = 16; g >= SLICES; g /= 2) {
    if (group % g === 0 && wideBytes(a, g) <= caps.maxWorkgroupStorageBytes) return { g };
  }
  return null;
}

/**
 * Decode ('split'): partial (m, l, acc) of G heads over one slice of the keys, merged by the
 * combine launch. Prefill ('final'): a workgroup per (token, G heads) over all the keys its token
 * sees, rows normalised and written to `out`.
 */
export type WideMode =
  { kind: 'split'; splits: number; ml: string; acc: string } | { kind: 'final' };

export function wideLaunch(a: AttentionAttrs, t: WideTiles, mode: WideMode): KernelLaunch {
  const split = mode.kind === 'split';
  const splits = split ? mode.splits : 1;
  const { g } = t;
  const hd4 = a.headDim / 4;
  const vd4 = a.vHeadDim / 4;
  const group = a.heads / a.kvHeads;
  // Value threads: vec4 columns × head slices, as many slices as the workgroup has room for.
  let vs = 1;
  while (vs * 2 <= g && vd4 * vs * 2 <= WG) vs *= 2;
  const cols = Math.ceil((vd4 * vs) / WG);
  const gh = g / vs;
  const hpt = g / SLICES;
  const { ml, acc } = split ? mode : { ml: 'ml', acc: 'acc' };
  const f16 = kvTypeOf(a) === 'f16';
  /** Four cache elements as a vec4<f32>, at load unit i. */
  const load = (i: string) =>
    f16
      ? `vec4<f32>(unpack2x16float(kcache[${i}].x), unpack2x16float(kcache[${i}].y))`
      : `kcache[${i}]`;
  const code = `${STEP_WGSL}
${storageDecl(1, 'q', 'read', 'vec4<f32>')}
${storageDecl(2, 'kcache', 'read', f16 ? 'vec2<u32>' : 'vec4<f32>')}
${split ? `${storageDecl(3, ml, 'read_write')}\n${storageDecl(4, acc, 'read_write')}` : storageDecl(3, 'out', 'read_write')}
const GROUP = ${group}u;
const HEADS = ${a.heads}u;
const KVH = ${a.kvHeads}u;
const G = ${g}u;
const HD4 = ${hd4}u;
const KVW4 = ${(a.kvHeads * a.headDim) / 4}u;
const VK4 = ${(a.vFromK ?? 0) / 4}u;
const VD = ${a.vHeadDim}u;
const VD4 = ${vd4}u;
const SCALE = ${wgslF32(a.scale)};
const BK = ${BK}u;
const HPT = ${hpt}u;
const VS = ${vs}u;
const GH = ${gh}u;
const COLS = ${cols}u;
const WG = ${WG}u;
const SPLITS = ${splits}u;
const NEG = -1.0e30;
var<workgroup> qs: array<vec4<f32>, ${g * hd4}>;
// Scores of the tile, then their probabilities: [head][key].
var<workgroup> sc: array<f32, ${g * BK}>;
var<workgroup> alpha: array<f32, ${g}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  // Token t of the step (decode: 0) and its kv head; it sees keys 0 ..= pos + t.
  let t = wid.y / KVH;
  if (t >= step.T) { return; }
  let kvh = wid.y % KVH;
  let h0 = kvh * GROUP + wid.x * G;
  let n = step.pos + t + 1u;
  let chunk = ((n + SPLITS - 1u) / SPLITS + BK - 1u) / BK * BK;
  let lo = min(wid.z * chunk, n);
  let hi = min(lo + chunk, n);
  for (var i = tid; i < G * HD4; i += WG) { qs[i] = q[(t * HEADS + h0) * HD4 + i]; }
  // Scoring: key kk of the tile against heads hs·HPT ..; values: columns c of heads vh·GH ...
  let kk = tid % BK;
  let hs = tid / BK;
  var m = NEG;
  var l = 0.0;
  var o: array<vec4<f32>, ${cols * gh}>;
  for (var j0 = lo; j0 < hi; j0 += BK) {
    let nk = min(BK, hi - j0);
    // The previous tile's probabilities are read; the queries are staged.
    workgroupBarrier();
    // Zeroed explicitly: a var declared in a loop body kept its last value under SwiftShader.
    var s = array<f32, HPT>();
    if (kk < nk) {
      let row = (j0 + kk) * KVW4 + kvh * HD4;
      for (var c = 0u; c < HD4; c++) {
        let k = ${load('row + c')};
        for (var x = 0u; x < HPT; x++) { s[x] += dot(qs[(hs * HPT + x) * HD4 + c], k); }
      }
    }
    for (var x = 0u; x < HPT; x++) {
      sc[(hs * HPT + x) * BK + kk] = select(NEG, s[x] * SCALE, kk < nk);
    }
    workgroupBarrier();
    if (tid < G) {
      var mt = m;
      for (var jj = 0u; jj < nk; jj++) { mt = max(mt, sc[tid * BK + jj]); }
      var ls = 0.0;
      for (var jj = 0u; jj < BK; jj++) {
        let e = select(0.0, exp(sc[tid * BK + jj] - mt), jj < nk);
        sc[tid * BK + jj] = e;
        ls += e;
      }
      let a = exp(m - mt);
      l = l * a + ls;
      m = mt;
      alpha[tid] = a;
    }
    workgroupBarrier();
    for (var u = 0u; u < COLS; u++) {
      let e = tid + u * WG;
      let c = e % VD4;
      let vh = e / VD4;
      if (vh < VS) {
        for (var x = 0u; x < GH; x++) { o[u * GH + x] *= alpha[vh * GH + x]; }
        for (var jj = 0u; jj < nk; jj++) {
          let v = ${load('(j0 + jj) * KVW4 + kvh * HD4 + VK4 + c')};
          for (var x = 0u; x < GH; x++) { o[u * GH + x] += sc[(vh * GH + x) * BK + jj] * v; }
        }
      }
    }
  }
  ${
    split
      ? `if (tid < G) {
    let part = (h0 + tid) * SPLITS + wid.z;
    ${ml}[2u * part] = m;
    ${ml}[2u * part + 1u] = l;
  }`
      : `// The value threads divide by their heads' sums.
  workgroupBarrier();
  if (tid < G) { alpha[tid] = 1.0 / l; }
  workgroupBarrier();`
  }
  for (var u = 0u; u < COLS; u++) {
    let e = tid + u * WG;
    let c = e % VD4;
    let vh = e / VD4;
    if (vh < VS) {
      for (var x = 0u; x < GH; x++) {
        ${
          split
            ? `let part = (h0 + vh * GH + x) * SPLITS + wid.z;
        let v = o[u * GH + x];
        let d = part * VD + 4u * c;
        ${acc}[d] = v.x; ${acc}[d + 1u] = v.y; ${acc}[d + 2u] = v.z; ${acc}[d + 3u] = v.w;`
            : `let v = o[u * GH + x] * alpha[vh * GH + x];
        let d = (t * HEADS + h0 + vh * GH + x) * VD + 4u * c;
        out[d] = v.x; out[d + 1u] = v.y; out[d + 2u] = v.z; out[d + 3u] = v.w;`
        }
      }
    }
  }
}
`;
  const dims = `d${a.headDim}v${a.vHeadDim}vk${a.vFromK}${f16 ? '_kv16' : ''}`;
  return {
    kernel: {
      name: `attention_wide_h${a.heads}kv${a.kvHeads}${dims}_g${g}${split ? `_s${splits}` : '_final'}`,
      code: withHelpers(code),
      bindings: [
        STEP_BINDING,
        { name: 'q', access: 'read' },
        { name: 'kcache', access: 'read' },
        ...(split
          ? [
              { name: ml, access: 'read_write' as const },
              { name: acc, access: 'read_write' as const },
            ]
          : [{ name: 'out', access: 'read_write' as const }]),
      ],
      workgroupSize: [WG, 1, 1],
    },
    grid: [group / g, split ? a.kvHeads : { sym: 'T', mul: a.kvHeads }, splits],
  };
}
