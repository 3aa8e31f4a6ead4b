/**
 * Static block-sparse attention masks (`attention(pattern: block_sparse(block: B, layout: L))`;
 * the layouts are described in src/spec/kinds/sparsity.ts).
 *
 * Query position p and key position j fall in blocks qb = floor(p / B) and kb = floor(j / B).
 * The pair is visible when it is visible without the pattern (causal: j ≤ p; the step's keys
 * otherwise) and keepBlock(layout, qb, kb). Every layout keeps qb = kb, so a causal query always
 * sees itself and no softmax row is empty. The CPU reference applies this mask densely; the
 * kernel (codegen/kernels/attention.ts) walks only the kept key blocks, the cost model counts
 * only kept pairs, so both scale with the density.
 *
 * Random blocks (BigBird, `random(r: R, seed: S)` beside a local layout of band L and G global
 * blocks): query block qb >= G also keeps randomBlocks(...): R key blocks drawn without
 * replacement, uniformly, from the candidates the layout drops: [G, qb − L] and, bidirectional,
 * [qb + L, nkb) (nkb: the step's key blocks, ceil(keys / B)). Causal queries draw from the past
 * only, so a block's draw never changes as the sequence grows and prefill and decode agree. With
 * fewer than R candidates (early blocks) all of them are kept: r is clamped, not an error.
 * The draw is Floyd's subset sampling with a u32 hash of (seed, qb, j) in place of a generator,
 * so the kernel recomputes it from (qb, kb) alone, in the same integer arithmetic.
 *
 * Per-head draws (`random(..., per_head: true)`, BigBird's own form): query head h draws its own
 * blocks from a hash of (seed, h, qb, j); under GQA that is the query head, so the heads sharing
 * a KV head see different blocks (the kernel reads the union of the group's draws once and masks
 * each row by its own head's). Only which blocks changes, never how many: the candidates are the
 * blocks the layout drops, so a draw cannot collide with the band or the global blocks on any
 * head, and every head keeps min(R, candidates) random blocks. Their key pairs still differ per
 * head where a drawn block is partial (bidirectional: the step's last key block), so the cost
 * model counts pairs per head. Without per_head (the default, so existing specs keep their
 * pattern) one draw serves every head.
 *
 * Variant: BigBird's ITC form (window + global + random). It differs from the reference code
 * (google-research/bigbird, HF BigBirdModel) in that the global blocks are the first G (not the
 * first and last), the window is L blocks each side (theirs: 3 blocks, one each side), one draw
 * serves all heads unless per_head is set (theirs: one per head, drawn only in training: in eval
 * mode HF's random slots all point at block 0), and the draw is this hash, not numpy's
 * generator, so a checkpoint trained there sees other random blocks here.
 *
 * The pattern keeps every KV row: a later query block may keep any earlier block (a strided
 * summary block, a global one), so the cache is not bounded by the layout; only the FLOPs and
 * the bytes read are.
 */
import type { BlockLayout, BlockSparsePattern, LocalLayout } from '../spec/kinds/sparsity.ts';

/** Whether query block qb keeps key block kb (causality aside). */
export function keepBlock(l: BlockLayout, qb: number, kb: number): boolean {
  if (qb < l.global || kb < l.global) return true;
  const d = Math.abs(qb - kb);
  if (l.kind === 'offsets') return l.keep.includes(d);
  if (d < (l.kind === 'local' ? l.blocks : l.local)) return true;
  return l.kind === 'strided' && kb % l.stride === l.stride - 1;
}

/** One round of a 32-bit integer mixer (xorshift-multiply); the WGSL below is the same. */
function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** The draw's word for (seed, query block, Floyd step j). */
export function randomHash(seed: number, qb: number, j: number): number {
  return mix32((mix32((mix32(seed >>> 0) ^ qb) >>> 0) ^ j) >>> 0);
}

/** A per-head draw's word for (seed, query head, query block, Floyd step j). */
export function randomHeadHash(seed: number, head: number, qb: number, j: number): number {
  return randomHash(mix32((mix32(seed >>> 0) ^ head) >>> 0), qb, j);
}

/** Whether each query head draws its own random blocks (`random(..., per_head: true)`). */
export function perHeadDraws(p: BlockSparsePattern | null | undefined): boolean {
  return (p?.random?.perHead ?? false) && p!.layout.kind === 'local';
}

/**
 * Query block qb's random key blocks, in draw order (see the header): none for a global query
 * block or a pattern without random blocks. `causal` limits the draw to earlier blocks; `nkb` is
 * the step's key block count (read only when bidirectional); `head`, the query head, is read
 * only by per-head draws.
 */
export function randomBlocks(
  p: BlockSparsePattern,
  qb: number,
  nkb: number,
  causal: boolean,
  head = 0,
): number[] {
  const rnd = p.random ?? null;
  if (rnd === null || p.layout.kind !== 'local') return [];
  const { blocks: L, global: G } = p.layout as LocalLayout;
  if (qb < G) return [];
  const n1 = Math.max(0, qb + 1 - L - G);
  const n2 = causal ? 0 : Math.max(0, nkb - qb - L);
  const m = n1 + n2;
  const k = Math.min(rnd.r, m);
  const picks: number[] = [];
  const hash = rnd.perHead
    ? (j: number) => randomHeadHash(rnd.seed, head, qb, j)
    : (j: number) => randomHash(rnd.seed, qb, j);
  // Floyd: for j = m − k .. m − 1 take t uniform in [0, j], or j itself when t is taken.
  for (let j = m - k; j < m; j++) {
    const t = hash(j) % (j + 1);
    picks.push(picks.includes(t) ? j : t);
  }
  return picks.map((c) => (c < n1 ? G + c : qb + L + c - n1));
}

/**
 * Whether query block qb keeps key block kb under the whole pattern (layout and random blocks),
 * causality aside; nkb, causal and head as randomBlocks.
 */
export function keepPatternBlock(
  p: BlockSparsePattern,
  qb: number,
  kb: number,
  nkb: number,
  causal: boolean,
  head = 0,
): boolean {
  return keepBlock(p.layout, qb, kb) || randomBlocks(p, qb, nkb, causal, head).includes(kb);
}

/**
 * keepPatternBlock for one query block (and head) against many key blocks: the draw is made
 * once, not per key block.
 */
export function patternKeeper(
  p: BlockSparsePattern,
  qb: number,
  nkb: number,
  causal: boolean,
  head = 0,
): (kb: number) => boolean {
  const drawn = randomBlocks(p, qb, nkb, causal, head);
  return (kb) => keepBlock(p.layout, qb, kb) || drawn.includes(kb);
}

/**
 * The WGSL of keepPatternBlock as `fn keep_block(qb: u32, kb: u32) -> bool`, or with per-head
 * draws as perHeadWgsl's functions (no keep_block then, so a caller that forgets the head does
 * not compile). With random blocks it redraws qb's blocks per call (r² compares, no table);
 * bidirectional, it reads the key block count from the step uniform (a module-scope variable
 * would make the kernel's block loop, which holds barriers, non-uniform), so it takes one
 * unbatched step's keys.
 */
export function keepPatternWgsl(p: BlockSparsePattern, causal: boolean): string {
  const rnd = p.random ?? null;
  if (rnd === null || p.layout.kind !== 'local') return keepBlockWgsl(p.layout);
  const base = keepBlockWgsl(p.layout).replace('fn keep_block(', 'fn keep_layout(');
  const mix = `const RAND_R = ${rnd.r}u;
const RAND_SEED = ${rnd.seed >>> 0}u;
fn rand_mix(v: u32) -> u32 {
  var x = v ^ (v >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  return x ^ (x >> 16u);
}`;
  if (perHeadDraws(p)) return `${base}\n${mix}\n${perHeadWgsl(p, causal)}`;
  const draw = floydWgsl(p, causal, {
    none: 'false',
    seed: 'RAND_SEED',
    pick: (kb) => `if (${kb} == kb) { return true; }`,
  });
  return `${base}
${mix}
// BigBird's random blocks of query block qb (src/ops/block-sparse.ts randomBlocks): Floyd's draw.
fn keep_random(qb: u32, kb: u32) -> bool {
  ${draw}
  return false;
}
fn keep_block(qb: u32, kb: u32) -> bool { return keep_layout(qb, kb) || keep_random(qb, kb); }`;
}

/**
 * Floyd's draw of query block qb's random key blocks (randomBlocks) as WGSL statements, shared by
 * the shared and the per-head draw: `none` is returned for a global query block, `prelude` sets up
 * `seed`, the draw's seed word, and `pick(kb)` is run on each drawn key block kb in draw order.
 */
function floydWgsl(
  p: BlockSparsePattern,
  causal: boolean,
  o: { none: string; prelude?: string; seed: string; pick: (kb: string) => string },
): string {
  const { blocks: L, global: G } = p.layout as LocalLayout;
  return `if (qb < ${G}u) { return ${o.none}; }
  let n1 = select(0u, qb + 1u - ${L + G}u, qb + 1u > ${L + G}u);
  ${drawCount(p, causal)}
  let m = n1 + n2;
  let k = min(RAND_R, m);${o.prelude ?? ''}
  var picks: array<u32, ${p.random!.r}>;
  for (var i = 0u; i < k; i++) {
    let j = m - k + i;
    var t = rand_mix(rand_mix(rand_mix(${o.seed}) ^ qb) ^ j) % (j + 1u);
    for (var u = 0u; u < i; u++) { if (picks[u] == t) { t = j; } }
    picks[i] = t;
    ${o.pick(`select(${G}u + t, qb + ${L}u + t - n1, t >= n1)`)}
  }`;
}

/** The draw's candidates past the query block (`n2`): none when causal. */
function drawCount(p: BlockSparsePattern, causal: boolean): string {
  const L = (p.layout as LocalLayout).blocks;
  return causal
    ? 'let n2 = 0u;'
    : `let nkb = (max(step.pos + step.T, step.keys) + ${p.block - 1}u) / ${p.block}u;
  let n2 = select(0u, nkb - qb - ${L}u, nkb > qb + ${L}u);`;
}

/**
 * Per-head draws in WGSL: `rand_draw(h, qb)`, query head h's random key blocks of query block qb
 * (kb[0..n), in draw order: randomBlocks with randomHeadHash), which a kernel collects once per
 * row rather than redrawing per key block; `keep_block_h(h, qb, kb)`, the whole pattern for head
 * h; `keep_layout_any(qb0, qb1, kb)`, the layout alone for a run of query blocks.
 */
function perHeadWgsl(p: BlockSparsePattern, causal: boolean): string {
  const r = p.random!.r;
  const draw = floydWgsl(p, causal, {
    none: 'd',
    prelude: '\n  let sh = rand_mix(rand_mix(RAND_SEED) ^ h);',
    seed: 'sh',
    pick: (kb) => `d.kb[i] = ${kb};`,
  });
  return `struct RandDraw { n: u32, kb: array<u32, ${r}> }
// BigBird's random blocks of query head h and query block qb (src/ops/block-sparse.ts
// randomBlocks, per head): Floyd's draw over the hash of (seed, h, qb, j).
fn rand_draw(h: u32, qb: u32) -> RandDraw {
  var d: RandDraw;
  ${draw}
  d.n = k;
  return d;
}
fn keep_block_h(h: u32, qb: u32, kb: u32) -> bool {
  if (keep_layout(qb, kb)) { return true; }
  let d = rand_draw(h, qb);
  for (var i = 0u; i < d.n; i++) { if (d.kb[i] == kb) { return true; } }
  return false;
}
fn keep_layout_any(qb0: u32, qb1: u32, kb: u32) -> bool {
  for (var qb = qb0; qb <= qb1; qb++) { if (keep_layout(qb, kb)) { return true; } }
  return false;
}`;
}

/**
 * The WGSL of keepBlock as `fn keep_block(qb: u32, kb: u32) -> bool`: the same rule, so the
 * kernel's mask and the reference's agree by construction.
 */
export function keepBlockWgsl(l: BlockLayout): string {
  const d = 'max(qb, kb) - min(qb, kb)';
  const terms = [
    ...(l.kind === 'offsets'
      ? l.keep.map((o) => `${d} == ${o}u`)
      : [`${d} < ${l.kind === 'local' ? l.blocks : l.local}u`]),
    ...(l.global > 0 ? [`qb < ${l.global}u`, `kb < ${l.global}u`] : []),
    ...(l.kind === 'strided' ? [`kb % ${l.stride}u == ${l.stride - 1}u`] : []),
  ];
  return `fn keep_block(qb: u32, kb: u32) -> bool { return ${terms.join(' || ')}; }`;
}

/**
 * The share of causal (query block, key block) pairs a layout keeps over `context` tokens,
 * averaged over `heads` query heads (per-head draws keep as many blocks on every head, so the
 * average only matters as a check of that).
 */
export function causalDensity(p: BlockSparsePattern, context: number, heads = 1): number {
  const nb = Math.ceil(context / p.block);
  const hs = perHeadDraws(p) ? heads : 1;
  let kept = 0;
  for (let h = 0; h < hs; h++) {
    for (let qb = 0; qb < nb; qb++) {
      const keep = patternKeeper(p, qb, nb, true, h);
      for (let kb = 0; kb <= qb; kb++) if (keep(kb)) kept++;
    }
  }
  return kept / hs / ((nb * (nb + 1)) / 2);
}

/** Why a pattern cannot be used with a cache of `capacity` rows (null when it can). */
export function patternCapacityError(p: BlockSparsePattern, capacity: number): string | null {
  if (p.block > capacity) {
    return `block ${p.block} exceeds the KV capacity ${capacity} (--capacity): the whole context is one block`;
  }
  const l = p.layout;
  const far = l.kind === 'offsets' ? Math.max(...l.keep) : 0;
  if (far * p.block >= capacity) {
    return (
      `offsets keep ${far} reaches ${far} blocks of ${p.block} (${far * p.block} positions) back, ` +
      `beyond the KV capacity ${capacity} (--capacity); keep distances below ${Math.ceil(capacity / p.block)}`
    );
  }
  const g = l.global;
  if (g * p.block > capacity) {
    return (
      `global ${g} blocks of ${p.block} (${g * p.block} positions) reach beyond the KV capacity ` +
      `${capacity} (--capacity); give at most ${Math.floor(capacity / p.block)} global blocks`
    );
  }
  return null;
}
