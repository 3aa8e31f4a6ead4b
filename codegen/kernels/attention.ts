/**
 * Attention kernels over the KV cache (semantics: src/ops/attention.ts).
 *
 * One FlashAttention-2 style body serves both phases. A workgroup owns a block
 * of BQ query rows that share one kv head: rows are (token, head-in-group)
 * pairs, so under GQA the heads of a group read each K/V tile once. It walks
 * the visible keys in tiles of BK rows staged in workgroup memory, keeping a
 * running max m, sum l and a rescaled accumulator per row, so the T×(pos+T)
 * score matrix never exists; only tiles inside the block's visible key range
 * are visited, which skips whatever causality or the window masks out.
 *
 * Prefill (maxT > 1) writes the normalised rows directly. Decode (maxT === 1)
 * has a single token, so parallelism comes from splitting the keys
 * (flash-decoding): a (kv heads, S) grid computes partial (m, l, acc) over S
 * slices of 0..pos whose length is derived from step.pos at run time (the grid
 * stays constant, so one recorded command buffer serves every position), then
 * a combine launch merges the slices per head.
 *
 * Attention sinks (GPT-OSS) are one more logit per head with no value row: the prefill
 * epilogue folds exp(sink) into the row's sum after the key loop, and in decode the combine
 * launch folds it into the merged sum, so the split slices stay plain partial softmaxes.
 *
 * Measured on an H100 through Dawn/Vulkan (f32): prefill with hd 128, T 2048
 * at ~7.5 TFLOP/s; decode with 8 kv heads of 128 at 16k context reads the
 * cache at ~1.2 TB/s. K/V tile rows are padded by one float in workgroup
 * memory: without it the score loop's 32-way bank conflicts cost 7x.
 *
 * StreamingLLM (sink tokens and ring caches, see KvRing): a block's visible keys are the sinks
 * [0, S) and its window range, walked as one virtual range v = 0.. (v < ns: key v; else key
 * wlo + v - ns) so that tiles, splits and masks work as without sinks; tiles stage each key from
 * its ring row. Without a ring the code is what it was.
 *
 * An f16 cache (kvType 'f16') is bound as u32 words of two halves and widened to f32 by
 * unpack2x16float (core WGSL, no shader-f16) as its tiles are staged; everything after the
 * staging is the f32 body. With 4-aligned heads a load is a vec2<u32> of four halves.
 *
 * Values read from the key rows (vFromK, MLA's latent cache) stage the V tile from kcache at
 * that column offset, and the kernel binds no vcache.
 *
 * Block-sparse layouts (src/ops/block-sparse.ts): the key loop runs over key blocks, skipping
 * those no query block of the workgroup keeps (keep_block, the reference's rule in WGSL), and
 * walks a kept block's keys in BK tiles; each score is masked by its own row's block too. A
 * workgroup's rows span BQ / group tokens (32 / group in prefill), so with blocks shorter than
 * that it visits the union of a few query blocks' kept blocks: still exact, less skipping. Decode
 * splits divide the kept blocks among the splits (counted first), not the key range.
 * Global queries (bidirectional Longformer): rows below globalQueries see every key, so a
 * block's key range is the wider of its first and last rows'.
 * Per-head random blocks (BigBird's form): a workgroup's rows may be of several query heads of
 * one kv head, each with its own draw, so it visits the union of its rows' kept blocks (the
 * group's K/V tiles still read once) and masks each row by its own head's. The rows' draws are
 * made once, into an ascending list the block loops step through (a redraw per key block would
 * cost rows × r hashes for each of the context's blocks); each row's own test runs once per kept
 * block into workgroup memory, not per score.
 */
import { kvTypeOf, type AttentionAttrs } from '../../src/graph/ops.ts';
import { attention } from '../../src/ops/attention.ts';
import { keepPatternWgsl, perHeadDraws } from '../../src/ops/block-sparse.ts';
import type { BlockSparsePattern } from '../../src/spec/kinds/sparsity.ts';
import {
  ROW_POS,
  rowPosBinding,
  rowPosScratch,
  STEP_BINDING,
  STEP_WGSL,
  storageDecl,
  type KernelLaunch,
} from '../kernel-ir.ts';
import { type DeviceCaps } from '../../src/target.ts';
import type { GeneratedOp, KernelGenerator } from './types.ts';
import { withHelpers } from './wgsl-math.ts';
import { wgslF32 } from './wgsl-builder.ts';
import { wideDecode, wideLaunch } from './attention-wide.ts';

/** Scratch buffer names of the decode path (partial softmax state per head and split). */
export const DECODE_SCRATCH = { ml: 'attn_part_ml', acc: 'attn_part_acc' } as const;

/** Most accumulator registers one thread keeps for its share of the head dimension. */
const MAX_DIMS_PER_THREAD = 8;
/** Query rows per prefill block: 32 took ~25% less time than 16 on an H100 (hd 128, T 2048). */
const MAX_BQ = 32;
const BK_CHOICES = [32, 16, 8, 4, 2, 1];

export interface FlashTiles {
  /** Query rows ((token, head) pairs of one kv head) per workgroup. */
  bq: number;
  /** Key rows per staged tile. */
  bk: number;
  /** Threads per query row; each owns head dims lane, lane + tpr, ... */
  tpr: number;
  /** Accumulator registers per thread: ceil(headDim / tpr). */
  dpt: number;
  /**
   * Threads per score (1, or a power of two from MIN_SPLIT_DOT): each sums every sp-th term of
   * the dot product, into the `dots` workgroup array, and one thread adds them up.
   */
  sp?: number;
}

/**
 * Split dot products start where a tile's scores number a quarter of the workgroup's threads or
 * fewer: wide heads (MLA's 576-wide latent rows) leave tiles of a few keys, whose BQ·BK scores
 * were each one thread's serial 576 terms while the rest of the workgroup waited (the latent
 * decode at 32k took 4.06 ms a layer on the H100 at DeepSeek-V3's dims, against 0.12 ms of
 * reading its 72 MiB cache).
 */
const MIN_SPLIT_DOT = 4;
/** Most threads per score. */
const MAX_SPLIT_DOT = 32;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function maxThreads(caps: DeviceCaps): number {
  return Math.min(caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
}

/**
 * Workgroup floats of the flash body: the Q block, one K-or-V tile whose rows are
 * padded by one float (so threads reading different keys hit different banks),
 * and the scores and probabilities.
 */
export function flashFloats(
  hd: number,
  t: Pick<FlashTiles, 'bq' | 'bk' | 'sp'>,
  rowWords = 0,
): number {
  const sp = t.sp ?? 1;
  return (
    t.bq * hd +
    t.bk * (hd + 1) +
    2 * t.bq * t.bk +
    rowWords * t.bq +
    (sp > 1 ? sp * t.bq * t.bk : 0)
  );
}

/** Threads per score for a decode tile (FlashTiles.sp), within the workgroup memory left. */
function splitDot(hd: number, t: FlashTiles, floats: number, rowWords: number): number {
  let sp = 1;
  while (sp * 2 * t.bq * t.bk <= t.bq * t.tpr && sp * 2 <= Math.min(MAX_SPLIT_DOT, hd)) sp *= 2;
  while (sp >= MIN_SPLIT_DOT && flashFloats(hd, { ...t, sp }, rowWords) > floats) sp /= 2;
  return sp >= MIN_SPLIT_DOT ? sp : 1;
}

/** rowWords: workgroup words per query row beyond the body's (a per-head row mask: 1). */
function largestBk(
  hd: number,
  bq: number,
  floats: number,
  minBk: number,
  rowWords = 0,
): number | undefined {
  return BK_CHOICES.find((bk) => bk >= minBk && flashFloats(hd, { bq, bk }, rowWords) <= floats);
}

function noFit(hd: number, caps: DeviceCaps): Error {
  return new Error(
    `attention: headDim ${hd} does not fit in ${caps.maxWorkgroupStorageBytes} bytes of workgroup memory`,
  );
}

/**
 * Prefill tiles within the device's workgroup memory and invocation limits: the tallest
 * query block (up to 32 rows) that still fits a tile of at least 16 keys, then of at least 8.
 */
export function prefillTiles(headDim: number, caps: DeviceCaps, rowWords = 0): FlashTiles {
  const threads = maxThreads(caps);
  const tpr = Math.min(nextPow2(Math.ceil(headDim / MAX_DIMS_PER_THREAD)), 32, threads);
  const floats = Math.floor(caps.maxWorkgroupStorageBytes / 4);
  const bqs: number[] = [];
  for (let bq = MAX_BQ; bq >= 1; bq /= 2) if (bq * tpr <= threads) bqs.push(bq);
  for (const minBk of [16, 8, 1]) {
    for (const bq of bqs) {
      const bk = largestBk(headDim, bq, floats, minBk, rowWords);
      if (bk !== undefined) return { bq, bk, tpr, dpt: Math.ceil(headDim / tpr) };
    }
  }
  throw noFit(headDim, caps);
}

/**
 * Decode tiles: the block holds the `group` heads that share a kv head (one token), with
 * threads per row chosen to give ~256-thread workgroups. Small workgroup footprints won on
 * an H100: 32-key tiles beat 64-key ones by ~1.5x at long contexts.
 */
export function decodeTiles(
  headDim: number,
  group: number,
  caps: DeviceCaps,
  rowWords = 0,
  scan = false,
): FlashTiles {
  const threads = maxThreads(caps);
  const floats = Math.floor(caps.maxWorkgroupStorageBytes / 4);
  const minTpr = nextPow2(Math.ceil(headDim / MAX_DIMS_PER_THREAD));
  for (let bq = Math.min(16, nextPow2(group)); bq >= 1; bq /= 2) {
    const tpr = Math.min(
      Math.max(minTpr, Math.min(nextPow2(headDim), 256 / bq)),
      Math.floor(threads / bq),
    );
    if (tpr < 1) continue;
    // A parallel block scan (blockScan) takes one word per thread and one more.
    const words = rowWords + (scan ? tpr + 1 : 0);
    const bk = largestBk(headDim, bq, floats, 1, words);
    if (bk === undefined) continue;
    const t = { bq, bk, tpr, dpt: Math.ceil(headDim / tpr) };
    return { ...t, sp: splitDot(headDim, t, floats, words) };
  }
  throw noFit(headDim, caps);
}

/**
 * Key splits of the decode path: one per 256 cache rows, capped so that the grid
 * (kv heads × splits) reaches a few hundred workgroups without slicing keys too thin.
 */
export function decodeSplits(capacity: number, kvHeads: number): number {
  const cap = Math.min(128, Math.max(16, Math.ceil(512 / kvHeads)));
  return Math.max(1, Math.min(cap, Math.ceil(capacity / 256)));
}

function checkAttrs(a: AttentionAttrs): void {
  if (a.heads % a.kvHeads !== 0) {
    throw new Error(
      `attention kernel: heads (${a.heads}) must be a multiple of kvHeads (${a.kvHeads})`,
    );
  }
  if (a.window !== null && a.window < 1) throw new Error('attention kernel: window must be >= 1');
  if (a.softcap !== null && !(a.softcap > 0)) {
    throw new Error('attention kernel: softcap must be > 0');
  }
  // The definition's checks (an f16 cache's even head widths among them).
  attention.check(a);
}

function variantName(a: AttentionAttrs): string {
  const dims = a.vHeadDim === a.headDim ? `d${a.headDim}` : `d${a.headDim}v${a.vHeadDim}`;
  const parts = [`h${a.heads}kv${a.kvHeads}${dims}`, a.causal ? 'causal' : 'full'];
  if (a.window !== null) parts.push(`w${a.window}`);
  if ((a.blockCausal ?? null) !== null) parts.push(`blk${a.blockCausal}`);
  if (a.phased) parts.push('phased');
  if (a.softcap !== null) parts.push(`cap${a.softcap}`);
  if (a.sinks) parts.push('sinks');
  if (kvTypeOf(a) === 'f16') parts.push('kv16');
  if (a.sinkTokens) parts.push(`sink${a.sinkTokens}`);
  if (a.ring) parts.push(`ring${a.capacity}`);
  if ((a.vFromK ?? null) !== null) parts.push(`vk${a.vFromK}`);
  if (a.globalQueries) parts.push(`gq${a.globalQueries}`);
  const bs = a.blockSparse ?? null;
  if (bs !== null) {
    const l = bs.layout;
    const shape =
      l.kind === 'local'
        ? `local${l.blocks}`
        : l.kind === 'strided'
          ? `str${l.local}s${l.stride}`
          : `off${l.keep.join('-')}`;
    const rnd = bs.random ? `r${bs.random.r}x${bs.random.seed}${bs.random.perHead ? 'h' : ''}` : '';
    parts.push(`bs${bs.block}${shape}${l.global ? `g${l.global}` : ''}${rnd}`);
  }
  return parts.join('_');
}

function indent(text: string, by: number): string {
  const pad = ' '.repeat(by);
  return text
    .split('\n')
    .map((l) => (l === '' ? l : pad + l))
    .join('\n');
}

/**
 * The block size, the layout's keep rule, and whether any of a run of query blocks keeps kb
 * (per-head draws: keep_layout_any and the workgroup's draws, see randomSetWgsl).
 */
function blockFns(bs: BlockSparsePattern, causal: boolean): string {
  const keep = `const BLOCK = ${bs.block}u;\n${keepPatternWgsl(bs, causal)}`;
  if (perHeadDraws(bs)) return keep;
  return `${keep}
fn keep_any(qb0: u32, qb1: u32, kb: u32) -> bool {
  for (var qb = qb0; qb <= qb1; qb++) { if (keep_block(qb, kb)) { return true; } }
  return false;
}`;
}

/**
 * Per-head draws: whether any row keeps key block kb, as a statement that advances the cursor
 * `cur` through the workgroup's ascending draws (kb only grows in a block loop) and the test.
 */
function keepAnyHeads(cur: string): { advance: string; test: string } {
  return {
    advance: `while (${cur} < nr && rset[${cur}] < kb) { ${cur}++; }`,
    test: `((${cur} < nr && rset[${cur}] == kb) || keep_layout_any(qb0, qb1, kb))`,
  };
}

/**
 * A score's own block test. With random blocks (a redraw per call) it is skipped where the
 * workgroup's rows share one query block, whose kept blocks are the only ones the loop visits.
 */
function rowKeep(bs: BlockSparsePattern): string {
  // Per-head draws: the row's test for this key block, made as the block began (tileLoop).
  if (perHeadDraws(bs)) return 'rk[rr] != 0u';
  const test = 'keep_block(p / BLOCK, j / BLOCK)';
  return bs.random ? `(qb0 == qb1 || ${test})` : test;
}

/**
 * Per-head draws: every random block a row of the workgroup draws (row R: query head
 * kvh·GROUP + R % GROUP, query block of token R / GROUP), ascending and once each, so the block
 * loops step through a list instead of redrawing each row's blocks for every key block. Kept
 * in function memory, whose values stay workgroup-uniform (the loops hold barriers). At most
 * BQ · RAND_R entries: RAND_U.
 */
function randomSetWgsl(P: string): string {
  return `
  var rset: array<u32, RAND_U>;
  var nr = 0u;
  for (var R = R0; R < min(R0 + BQ, rows); R++) {
    let d = rand_draw(kvh * GROUP + R % GROUP, (${P} + R / GROUP) / BLOCK);
    for (var i = 0u; i < d.n; i++) {
      let v = d.kb[i];
      var at = 0u;
      while (at < nr && rset[at] < v) { at++; }
      if (at < nr && rset[at] == v) { continue; }
      for (var u = nr; u > at; u--) { rset[u] = rset[u - 1u]; }
      rset[at] = v;
      nr++;
    }
  }`;
}

/**
 * A block-sparse workgroup's keys: the query blocks its rows fall in (one, or two when a
 * block ends inside it), and with per-head draws the blocks its rows draw (randomSetWgsl). A
 * split (decode) workgroup then takes its share of the kept blocks (blockScan).
 */
function blockRows(P: string, perHead: boolean): string {
  return `let lo = lo0;
  let hi = hi0;
  let qb0 = (${P} + R0 / GROUP) / BLOCK;
  let qb1 = (${P} + (min(R0 + BQ, rows) - 1u) / GROUP) / BLOCK;${perHead ? randomSetWgsl(P) : ''}`;
}

/**
 * A split workgroup's share of the kept key blocks, found in parallel: each thread counts the
 * kept blocks of its own contiguous run of key blocks, an inclusive scan of those counts over the
 * workgroup (bscan) gives the total and where each run starts in kept order, and the thread whose
 * run holds the workgroup's first kept block writes that block (bstart). The block loop starts
 * there and stops after its share (kth == last), so a workgroup's serial work is its own blocks,
 * not the whole key range twice: at 32k keys in blocks of 64 the serial scans had every
 * workgroup test 1,024 blocks, and decode at any density ran slower than dense (H100: 0.58x at
 * 25%). With per-head draws each thread walks its own copy of the workgroup's sorted draws
 * (randomSetWgsl) with a cursor from the start of its run.
 */
function blockScan(P: string, perHead: boolean): string {
  const k = keepAnyHeads('cur');
  // The keep test of block kb, in a loop where kb only grows (the cursor's advance first).
  const keepIf = perHead ? `${k.advance} if (${k.test})` : 'if (keep_any(qb0, qb1, kb))';
  return `${blockRows(P, perHead)}
  let kb0 = lo / BLOCK;
  let kb1 = (hi + BLOCK - 1u) / BLOCK;
  let span = (kb1 - kb0 + WG - 1u) / WG;
  let a0 = min(kb0 + tid * span, kb1);
  let a1 = min(a0 + span, kb1);
  var own = 0u;${perHead ? '\n  var cur = 0u;' : ''}
  for (var kb = a0; kb < a1; kb++) { ${keepIf} { own++; } }
  bscan[tid] = own;
  workgroupBarrier();
  for (var off = 1u; off < WG; off = off << 1u) {
    let add = select(0u, bscan[tid - off], tid >= off);
    workgroupBarrier();
    bscan[tid] += add;
    workgroupBarrier();
  }
  let kept = workgroupUniformLoad(&bscan[WG - 1u]);
  let per = (kept + SPLITS - 1u) / SPLITS;
  let first = min(wid.z * per, kept);
  let last = min(first + per, kept);
  // Kept blocks before this thread's run: the (first + 1)th kept block is in it when
  // before <= first < before + own.
  let before = bscan[tid] - own;
  if (first < last && before <= first && first < before + own) {
    var k = before;${perHead ? '\n    cur = 0u;' : ''}
    for (var kb = a0; kb < a1; kb++) {
      ${keepIf} {
        if (k == first) { bstart = kb; break; }
        k++;
      }
    }
  }
  let start = workgroupUniformLoad(&bstart);`;
}

/** How the flash body ends: normalised rows to `out`, or partial state per key split. */
type FlashMode = { kind: 'final' } | { kind: 'split'; splits: number };

function flashLaunch(a: AttentionAttrs, t: FlashTiles, mode: FlashMode): KernelLaunch {
  const { bq, bk, tpr, dpt } = t;
  const sp = t.sp ?? 1;
  const hd = a.headDim;
  // V rows (and the accumulator and output) are vd wide; the K/V tile is sized for the wider.
  const vd = a.vHeadDim;
  const ks = Math.max(hd, vd) + 1;
  const group = a.heads / a.kvHeads;
  const wg = bq * tpr;
  const vk = a.vFromK ?? null;
  const vec = hd % 4 === 0 && vd % 4 === 0 && (vk ?? 0) % 4 === 0;
  const guardDim = dpt * tpr !== vd;
  const w = a.window;
  // Visible key range [lo, hi) of query position p; written without u32 underflow.
  const wlo = w === null ? '0u' : `select(0u, p + 1u - ${w}u, p + 1u > ${w}u)`;
  const B = a.blockCausal ?? null;
  // Block-causal: up to the end of p's block (monotone in p, so a block's last row bounds it).
  const whi = a.causal
    ? 'p + 1u'
    : B !== null
      ? `min(n, (p / ${B}u + 1u) * ${B}u)`
      : w === null
        ? 'n'
        : `min(n, p + ${w}u)`;
  // Global queries (bidirectional only) see every key: the window stops at them.
  const gq = a.globalQueries ?? 0;
  // Phased (DiffusionGemma): a step with keys > 0 denoises, seeing every key from the window of
  // its first position on (constant over the step, so a block's bounds stay its rows' bounds).
  const plo = w === null ? '0u' : `select(0u, step.pos + 1u - ${w}u, step.pos + 1u > ${w}u)`;
  const lo = a.phased
    ? `select(${wlo}, ${plo}, step.keys > 0u)`
    : gq > 0
      ? `select(${wlo}, 0u, p < ${gq}u)`
      : wlo;
  const hi = a.phased
    ? `select(${whi}, n, step.keys > 0u)`
    : gq > 0
      ? `select(${whi}, n, p < ${gq}u)`
      : whi;
  const bs = a.blockSparse ?? null;
  if (bs?.random && !a.causal && (a.batch ?? 1) > 1) {
    // keep_random reads an unbatched step's keys (src/ops/block-sparse.ts keepPatternWgsl).
    throw new Error('attention: bidirectional random blocks have no batched kernel');
  }
  const capped =
    a.softcap === null ? 's' : `${wgslF32(a.softcap)} * tanh_safe(s * ${wgslF32(1 / a.softcap)})`;
  const split = mode.kind === 'split';
  const ring = a.ring ?? null;
  // Sink tokens (with or without a ring): the block's key loop runs over virtual indices
  // [0, vn) (see the header).
  const virt = ring !== null || (a.sinkTokens ?? 0) > 0;
  const L0 = virt ? '0u' : 'lo0';
  const H0 = virt ? 'vn' : 'hi0';
  // Batched decode (a.batch): workgroup x runs over (sequence, block) pairs, sequence seq's one
  // query row attends over its own CAP cache rows, at its own position sp = step.pos +
  // row_pos[seq] (kernel-ir.ts ROW_POS: slots prefilled from prompts of different lengths).
  const batched = (a.batch ?? 1) > 1;
  const P = batched ? 'sp' : 'step.pos';
  const nb = Math.ceil(group / bq);
  // A token's row blocks, when a block holds part of its heads only (bq < group: wide heads
  // such as MLA's 576, with many heads a kv head): the grid puts them in z, so x counts tokens.
  // In x, T · group / bq blocks passed maxComputeWorkgroupsPerDimension (65,535) at 4,096
  // tokens of DeepSeek-V3's 128 heads (bq 4).
  const fold = !split && !batched && bq < group && group % bq === 0 ? group / bq : 1;
  const cb = batched ? 'cb + ' : '';
  const keyRow = virt
    ? batched
      ? `(cb + cache_row(key_at(j0 + jr, ns, wlo)))`
      : `cache_row(key_at(j0 + jr, ns, wlo))`
    : `(${cb}j0 + jr)`;
  const ringFns = virt
    ? `const SINK = ${a.sinkTokens ?? 0}u;
fn key_at(v: u32, ns: u32, wlo: u32) -> u32 { return select(wlo + v - ns, v, v < ns); }
${
  ring
    ? `const RING = ${a.capacity - ring.sink}u;
fn cache_row(j: u32) -> u32 { return select(SINK + (j - SINK) % RING, j, j < SINK); }`
    : 'fn cache_row(j: u32) -> u32 { return j; }'
}`
    : '';
  const ringRange = virt
    ? `// The sinks [0, ns) and the window [wlo, hi0) as virtual keys [0, vn).
  let ns = min(SINK, hi0);
  let wlo = max(lo0, ns);
  let vn = ns + hi0 - wlo;`
    : '';
  const keyMask = virt
    ? `let j = key_at(j0 + jj, ns, wlo);
      let ok = jj < nk && RR < rows && j < key_hi(p, n) && (j >= key_lo(p) || j < SINK);`
    : `let j = j0 + jj;
      let ok = jj < nk && RR < rows && j >= key_lo(p) && j < key_hi(p, n)${bs ? ` && ${rowKeep(bs)}` : ''};`;
  const { ml, acc: accName } = DECODE_SCRATCH;
  const dimLoop = (body: string): string => `for (var k = 0u; k < DPT; k++) {
      let d = lane + k * TPR;
      ${guardDim ? `if (d < VD) { ${body} }` : body}
    }`;
  const f16 = kvTypeOf(a) === 'f16';
  // One cache load as f32, at load unit i: 4 elements (vec: one vec2<u32> of an f16 cache) or 1
  // (element i is half i & 1 of word i >> 1).
  const load = (src: string, i: string): string => {
    if (!f16) return `${src}[${i}]`;
    if (vec) return `kv_unpack4(${src}[${i}])`;
    return `kv_unpack1(${src}[(${i}) >> 1u], ${i})`;
  };
  // Stage rows j0.. of one kv head of `src` (K: HD wide, V: VD wide) into kv[] (padded
  // stride KS); rows >= nk become 0.
  const stage = (src: string, w: 'HD' | 'VD'): string => {
    // V rows are VW wide in vcache, or KVW wide when they are read from kcache (vFromK).
    const row = w === 'HD' || vk !== null ? 'KVW' : 'VW';
    const off = w === 'HD' ? 'kvo' : 'vo';
    return vec
      ? `for (var i = tid; i < BK * ${w}4; i += WG) {
      let jr = i / ${w}4;
      let c = i % ${w}4;
      var v = vec4<f32>();
      if (jr < nk) { v = ${load(src, `${keyRow} * ${row}4 + ${off}4 + c`)}; }
      let o = jr * KS + 4u * c;
      kv[o] = v.x; kv[o + 1u] = v.y; kv[o + 2u] = v.z; kv[o + 3u] = v.w;
    }`
      : `for (var i = tid; i < BK * ${w}; i += WG) {
      let jr = i / ${w};
      var v = 0.0;
      if (jr < nk) { v = ${load(src, `${keyRow} * ${row} + ${off} + i % ${w}`)}; }
      kv[jr * KS + i % ${w}] = v;
    }`;
  };
  const kvElem = f16 ? (vec ? 'vec2<u32>' : 'u32') : vec ? 'vec4<f32>' : 'f32';
  const unpack = !f16
    ? ''
    : vec
      ? `fn kv_unpack4(w: vec2<u32>) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}`
      : `fn kv_unpack1(w: u32, e: u32) -> f32 { return unpack2x16float(w)[e & 1u]; }`;
  // Sinks enter where rows are normalised: here in prefill, in the combine launch in decode.
  const sinks = a.sinks && !split;
  // Bindings after q and kcache: vcache unless values come from kcache, then the outputs.
  const next = vk === null ? 4 : 3;
  const outDecls = split
    ? `${storageDecl(next, ml, 'read_write')}\n${storageDecl(next + 1, accName, 'read_write')}`
    : `${storageDecl(next, 'out', 'read_write')}${sinks ? `\n${storageDecl(next + 1, 'sinks', 'read')}` : ''}`;
  const epilogue = split
    ? `let part = (t * HEADS + h) * SPLITS + wid.z;
    if (lane == 0u) {
      ${ml}[2u * part] = m;
      ${ml}[2u * part + 1u] = l;
    }
    ${dimLoop(`${accName}[part * VD + d] = acc[k];`)}`
    : sinks
      ? `// The sink joins the max and the sum: out = acc·e^(m−mx) / (l·e^(m−mx) + e^(sink−mx)).
    let sink = sinks[h];
    let mx = max(m, sink);
    let keep = exp(m - mx);
    let inv = keep / (l * keep + exp(sink - mx));
    ${dimLoop('out[t * OW + h * VD + d] = acc[k] * inv;')}`
      : `let inv = 1.0 / l;
    ${dimLoop('out[t * OW + h * VD + d] = acc[k] * inv;')}`;
  // In split mode each workgroup keeps one of SPLITS slices of the block's key range,
  // cut at multiples of BK so that no slice wastes a partly filled tile.
  const perHead = perHeadDraws(bs);
  // A split (decode) block-sparse workgroup finds its share of the kept blocks (blockScan).
  const scan = bs !== null && split;
  const sliceKeys = scan
    ? blockScan(P, perHead)
    : bs
      ? blockRows(P, perHead)
      : split
        ? `let chunk = ((${H0} - ${L0} + SPLITS - 1u) / SPLITS + BK - 1u) / BK * BK;
  let lo = min(${L0} + wid.z * chunk, ${H0});
  let hi = min(lo + chunk, ${H0});`
        : `let lo = ${L0};
  let hi = ${H0};`;
  // The tile body for keys [j0, j0 + nk): scores, online softmax, accumulate.
  const tile = `    workgroupBarrier();
    ${stage('kcache', 'HD')}
    workgroupBarrier();
    ${
      sp > 1
        ? `for (var e = tid; e < BQ * BK * SP; e += WG) {
      let rr = e / (BK * SP);
      let jj = (e / SP) % BK;
      var s = 0.0;
      for (var d = e % SP; d < HD; d += SP) { s += qs[rr * HD + d] * kv[jj * KS + d]; }
      dots[e] = s;
    }
    workgroupBarrier();
    `
        : ''
    }for (var e = tid; e < BQ * BK; e += WG) {
      let rr = e / BK;
      let jj = e % BK;
      var s = 0.0;
      ${
        sp > 1
          ? 'for (var x = 0u; x < SP; x++) { s += dots[e * SP + x]; }'
          : 'for (var d = 0u; d < HD; d++) { s += qs[rr * HD + d] * kv[jj * KS + d]; }'
      }
      s = cap_score(s * SCALE);
      let RR = R0 + rr;
      let p = ${P} + RR / GROUP;
      ${keyMask}
      sc[e] = select(NEG, s, ok);
    }
    workgroupBarrier();
    ${stage(vk === null ? 'vcache' : 'kcache', 'VD')}
    var mt = NEG;
    for (var jj = 0u; jj < BK; jj++) { mt = max(mt, sc[r * BK + jj]); }
    let mn = max(m, mt);
    let alpha = exp(m - mn);
    for (var jj = lane; jj < BK; jj += TPR) {
      let sv = sc[r * BK + jj];
      pr[r * BK + jj] = select(0.0, exp(sv - mn), sv > 0.5 * NEG);
    }
    workgroupBarrier();
    var ls = 0.0;
    for (var jj = 0u; jj < BK; jj++) { ls += pr[r * BK + jj]; }
    l = l * alpha + ls;
    ${dimLoop(`var o = acc[k] * alpha;
        for (var jj = 0u; jj < BK; jj++) { o += pr[r * BK + jj] * kv[jj * KS + d]; }
        acc[k] = o;`)}
    m = mn;
`;
  // Per-head draws: each row's own keep test of key block kb, one redraw per row (read by the
  // scores after the tile's first barrier; the previous block's reads end at a barrier too).
  const rowTests = perHead
    ? `
    if (tid < BQ) {
      let RR = R0 + tid;
      rk[tid] = select(0u, 1u, RR < rows && keep_block_h(kvh * GROUP + RR % GROUP, (${P} + RR / GROUP) / BLOCK, kb));
    }`
    : '';
  const walk = keepAnyHeads('wcur');
  const blockTiles = `let kbs = max(lo, kb * BLOCK);
    let kbe = min(hi, kb * BLOCK + BLOCK);
    for (var j0 = kbs; j0 < kbe; j0 += BK) {
      let nk = min(BK, kbe - j0);
${indent(tile, 2)}
    }`;
  // Block-sparse: only the key blocks the layout keeps for the workgroup's query blocks (one or
  // two); a split workgroup's share of them, from its first (blockScan) until the share is done.
  const tileLoop = bs
    ? `${scan ? 'var kth = first;' : ''}${perHead ? '\n  var wcur = 0u;' : ''}
  for (var kb = ${scan ? 'start' : 'lo / BLOCK'}; ${scan ? 'kth < last && kb < kb1' : 'kb * BLOCK < hi'}; kb++) {${perHead ? `\n    ${walk.advance}` : ''}
    if (!${perHead ? walk.test : 'keep_any(qb0, qb1, kb)'}) { continue; }${scan ? '\n    kth++;' : ''}${rowTests}
    ${blockTiles}
  }`
    : `for (var j0 = lo; j0 < hi; j0 += BK) {
    let nk = min(BK, hi - j0);
${tile}
  }`;
  // Bindings after the outputs (and sinks): a batched step's row_pos.
  const rowPos = rowPosBinding(next + (split || sinks ? 2 : 1));
  const code = `${STEP_WGSL}
${storageDecl(1, 'q', 'read')}
${storageDecl(2, 'kcache', 'read', kvElem)}
${vk === null ? storageDecl(3, 'vcache', 'read', kvElem) : ''}
${outDecls}${batched ? `\n${rowPos.decl}` : ''}
const HEADS = ${a.heads}u;
const HD = ${hd}u;
const HD4 = ${Math.floor(hd / 4)}u;
const QW = ${a.heads * hd}u;
const KVW = ${a.kvHeads * hd}u;
const KVW4 = ${Math.floor((a.kvHeads * hd) / 4)}u;
const VD = ${vd}u;
const VD4 = ${Math.floor(vd / 4)}u;
const VW = ${a.kvHeads * vd}u;
const VW4 = ${Math.floor((a.kvHeads * vd) / 4)}u;
const OW = ${a.heads * vd}u;
const GROUP = ${group}u;
const SCALE = ${wgslF32(a.scale)};
const BQ = ${bq}u;
const BK = ${bk}u;
const KS = ${ks}u;
const TPR = ${tpr}u;
const DPT = ${dpt}u;
const WG = ${wg}u;
${split ? `const SPLITS = ${mode.splits}u;` : ''}${perHead ? `\n// Most random blocks a workgroup's rows draw (randomSetWgsl).\nconst RAND_U = ${bq * bs!.random!.r}u;` : ''}
// Masked-score sentinel; finite so that exp(m - m_new) stays defined while a row has seen nothing.
const NEG = -1.0e30;
var<workgroup> qs: array<f32, ${bq * hd}>;
// Holds the K tile while scoring, then the V tile of the same keys.
var<workgroup> kv: array<f32, ${bk * ks}>;
var<workgroup> sc: array<f32, ${bq * bk}>;
var<workgroup> pr: array<f32, ${bq * bk}>;${
    sp > 1
      ? `
// Split dot products (FlashTiles.sp): SP partial sums per score.
const SP = ${sp}u;
var<workgroup> dots: array<f32, ${bq * bk * sp}>;`
      : ''
  }${
    scan
      ? `
// blockScan: kept key blocks per thread's run, scanned; the workgroup's first kept block.
var<workgroup> bscan: array<u32, ${wg}>;
var<workgroup> bstart: u32;`
      : ''
  }${
    perHead
      ? `
// Per-head draws: whether row r keeps the current key block.
var<workgroup> rk: array<u32, ${bq}>;`
      : ''
  }

fn key_lo(p: u32) -> u32 { return ${lo}; }
fn key_hi(p: u32, n: u32) -> u32 { return ${hi}; }
fn cap_score(s: f32) -> f32 { return ${capped}; }
${ringFns}
${bs ? blockFns(bs, a.causal) : ''}
${unpack}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let T = ${batched ? '1u' : 'step.T'};${
    batched
      ? `
  let seq = wid.x / ${nb}u;
  let sp = step.pos + ${ROW_POS}[seq];`
      : ''
  }
  let n = ${a.causal && !a.phased ? `${P} + T` : `max(${P} + T, step.keys)`};
  let rows = T * GROUP;
  if (rows == 0u) { return; }
  let kvh = wid.y;
  let kvo = kvh * HD;
  let kvo4 = kvh * HD4;
  let vo = ${vk === null ? 'kvh * VD' : `kvo + ${vk}u`};
  let vo4 = ${vk === null ? 'kvh * VD4' : `kvo4 + ${Math.floor(vk / 4)}u`};
  // Block rows are (token, head-in-group) pairs, token-major.
  ${
    batched
      ? `let cb = seq * ${a.capacity}u;
  let R0 = (wid.x % ${nb}u) * BQ;`
      : fold > 1
        ? `// Row block wid.x · ${fold} + wid.z (the grid folds a token's ${fold} blocks into z).
  let R0 = (wid.x * ${fold}u + wid.z) * BQ;`
        : 'let R0 = wid.x * BQ;'
  }
  let r = tid / TPR;
  let lane = tid % TPR;
  let R = R0 + r;
  let t = ${batched ? 'seq + ' : ''}R / GROUP;
  let h = kvh * GROUP + R % GROUP;
  // Keys any row of this block can see: from the first row's lo to the last row's hi.
  let lo0 = key_lo(${P} + R0 / GROUP);
  let hi0 = ${gq > 0 ? `max(key_hi(${P} + R0 / GROUP, n), ` : '('}key_hi(${P} + (min(R0 + BQ, rows) - 1u) / GROUP, n));
  ${ringRange}
  ${sliceKeys}

  for (var i = tid; i < BQ * HD; i += WG) {
    let RR = R0 + i / HD;
    var v = 0.0;
    if (RR < rows) { v = q[(${batched ? 'seq + ' : ''}RR / GROUP) * QW + (kvh * GROUP + RR % GROUP) * HD + i % HD]; }
    qs[i] = v;
  }
  var m = NEG;
  var l = 0.0;
  var acc: array<f32, DPT>;
  ${tileLoop}
  if (R < rows) {
    ${epilogue}
  }
}
`;
  const name = `attention_${split ? 'split' : 'flash'}_${variantName(a)}_q${bq}k${bk}t${tpr}${sp > 1 ? `p${sp}` : ''}${batched ? `_batched_c${a.capacity}` : ''}`;
  return {
    kernel: {
      name: split ? `${name}_s${mode.splits}` : name,
      code: withHelpers(code),
      bindings: [
        STEP_BINDING,
        { name: 'q', access: 'read' },
        { name: 'kcache', access: 'read' },
        ...(vk === null ? [{ name: 'vcache', access: 'read' as const }] : []),
        ...(split
          ? [
              { name: ml, access: 'read_write' as const },
              { name: accName, access: 'read_write' as const },
            ]
          : [{ name: 'out', access: 'read_write' as const }]),
        ...(sinks ? [{ name: 'sinks', access: 'read' as const }] : []),
        ...(batched ? [rowPos.binding] : []),
      ],
      workgroupSize: [wg, 1, 1],
    },
    grid: split
      ? [batched ? { sym: 'T', mul: nb } : nb, a.kvHeads, mode.splits]
      : fold > 1
        ? [{ sym: 'T' }, a.kvHeads, fold]
        : [{ sym: 'T', mul: group, div: bq }, a.kvHeads, 1],
  };
}

/**
 * Merge the per-split partial (m, l, acc) of each (token, head) into normalised rows; a head's
 * sink logit, when the op has sinks, is one more term of the merged max and sum.
 */
function combineLaunch(a: AttentionAttrs, splits: number): KernelLaunch {
  const { ml, acc } = DECODE_SCRATCH;
  const wg = Math.min(64, nextPow2(a.vHeadDim));
  const code = `${STEP_WGSL}
${storageDecl(1, ml, 'read')}
${storageDecl(2, acc, 'read')}
${storageDecl(3, 'out', 'read_write')}
${a.sinks ? storageDecl(4, 'sinks', 'read') : ''}
const HEADS = ${a.heads}u;
const HD = ${a.vHeadDim}u;
const SPLITS = ${splits}u;
const WG = ${wg}u;
const NEG = -1.0e30;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let h = wid.x;
  let t = wid.y;
  if (t >= step.T) { return; }
  let base = (t * HEADS + h) * SPLITS;
  var mx = ${a.sinks ? 'sinks[h]' : 'NEG'};
  for (var s = 0u; s < SPLITS; s++) { mx = max(mx, ${ml}[2u * (base + s)]); }
  var total = ${a.sinks ? 'exp(sinks[h] - mx)' : '0.0'};
  for (var s = 0u; s < SPLITS; s++) {
    total += exp(${ml}[2u * (base + s)] - mx) * ${ml}[2u * (base + s) + 1u];
  }
  let inv = 1.0 / total;
  for (var d = tid; d < HD; d += WG) {
    var o = 0.0;
    for (var s = 0u; s < SPLITS; s++) {
      o += exp(${ml}[2u * (base + s)] - mx) * ${acc}[(base + s) * HD + d];
    }
    out[t * HEADS * HD + h * HD + d] = o * inv;
  }
}
`;
  return {
    kernel: {
      name: `attention_combine_h${a.heads}d${a.vHeadDim}_s${splits}_wg${wg}${a.sinks ? '_sinks' : ''}`,
      code: withHelpers(code),
      bindings: [
        STEP_BINDING,
        { name: ml, access: 'read' },
        { name: acc, access: 'read' },
        { name: 'out', access: 'read_write' },
        ...(a.sinks ? [{ name: 'sinks', access: 'read' as const }] : []),
      ],
      workgroupSize: [wg, 1, 1],
    },
    grid: [a.heads, { sym: 'T' }, 1],
  };
}

/** Workgroup words per row beside the flash body's: per-head random blocks' row mask `rk`. */
function rowWords(a: AttentionAttrs): number {
  return perHeadDraws(a.blockSparse) ? 1 : 0;
}

/** Tiles are sized for the wider of the q/k and v heads (the K/V tile holds either). */
function tileWidth(a: AttentionAttrs): number {
  return Math.max(a.headDim, a.vHeadDim);
}

function decodeOp(a: AttentionAttrs, caps: DeviceCaps, maxT: number): GeneratedOp {
  const splits = decodeSplits(a.capacity, a.kvHeads);
  const scratch = {
    [DECODE_SCRATCH.ml]: 4 * 2 * maxT * a.heads * splits,
    [DECODE_SCRATCH.acc]: 4 * maxT * a.heads * splits * a.vHeadDim,
  };
  // Many heads over one wide kv head with values in its rows (MLA's latent): attention-wide.ts.
  const wide = wideDecode(a, caps);
  if (wide) {
    return {
      launches: [
        wideLaunch(a, wide, { kind: 'split', splits, ...DECODE_SCRATCH }),
        combineLaunch(a, splits),
      ],
      scratch,
    };
  }
  const tiles = decodeTiles(
    tileWidth(a),
    a.heads / a.kvHeads,
    caps,
    rowWords(a),
    // blockScan's words.
    a.blockSparse != null,
  );
  return {
    launches: [flashLaunch(a, tiles, { kind: 'split', splits }), combineLaunch(a, splits)],
    scratch: { ...scratch, ...((a.batch ?? 1) > 1 ? rowPosScratch(maxT) : {}) },
  };
}

export const attentionKernel: KernelGenerator<AttentionAttrs> = (a, { caps, maxT }) => {
  checkAttrs(a);
  // A batched step is one token of each sequence: the decode path, its rows being sequences.
  if (maxT === 1 || (a.batch ?? 1) > 1) return decodeOp(a, caps, maxT);
  // MLA's latent prefill: the flash body's tiles are 2-4 keys at 576 wide (1.18 s for 4096
  // tokens of DeepSeek-V3's 128 heads on an H100); the wide kernel per token is far faster.
  const wide = wideDecode(a, caps);
  if (wide) return { launches: [wideLaunch(a, wide, { kind: 'final' })], scratch: {} };
  return {
    launches: [flashLaunch(a, prefillTiles(tileWidth(a), caps, rowWords(a)), { kind: 'final' })],
    scratch: {},
  };
};
