/**
 * Static sparsity patterns of `attention(pattern: ...)`: `block_sparse(block: B, layout: L)`
 * cuts queries and keys into blocks of B positions and keeps the (query block, key block) pairs
 * the layout names; the flash kernel visits only those (semantics: src/ops/block-sparse.ts).
 *
 * Layouts (qb, kb: block indices, positions p live in block floor(p / B)):
 * - `local(blocks: L, global: G)`: |qb − kb| < L, a band of L blocks back to the query's own
 *   (Longformer's sliding window at block granularity);
 * - `strided(local: L, stride: S, global: G)`: the band, plus every key block with
 *   kb mod S = S − 1 (Sparse Transformer's "fixed" pattern: the last block of each run of S
 *   summarises it for every later query).
 * - `offsets(keep: [0, d1, d2, ...], global: G)`: |qb − kb| is one of the listed distances
 *   (0 required), e.g. a dilated band.
 * `global: G` (default 0) adds the first G blocks as global: every query keeps them, and their
 * queries keep every key block. `random: random(r: R, seed: S)` (local layouts only) adds BigBird's
 * random blocks: R key blocks per non-global query block, drawn from the seed among the blocks
 * the band and the global blocks leave out (causal: only earlier ones), so local + global +
 * random is BigBird's ITC layout; `per_head: true` gives each query head its own draw (BigBird's
 * form; default false: one draw for every head). Causal attention applies its token mask on top, so a layout
 * only ever removes keys; each keeps the diagonal block, so every query sees itself.
 */
import { defineKind, opt, req, toDslCall, type Family, type ValueType } from '../kind.ts';
import type { Issue, Namer } from '../checks.ts';
import { block as blockOf, bool, describeValue, int } from '../values.ts';

export interface LocalLayout {
  kind: 'local';
  /** Key blocks back from (and including) the query's own. */
  blocks: number;
  /** Leading global blocks. */
  global: number;
}

export interface StridedLayout {
  kind: 'strided';
  local: number;
  stride: number;
  global: number;
}

/**
 * Explicit block distances: query block qb keeps key block kb when |qb − kb| is listed (0, the
 * diagonal, must be). Dilated or hand-made bands that hold at any context length.
 */
export interface OffsetsLayout {
  kind: 'offsets';
  keep: number[];
  global: number;
}

export type BlockLayout = LocalLayout | StridedLayout | OffsetsLayout;

/**
 * BigBird's random blocks (`random(r: R, seed: S)`): every non-global query block also keeps R
 * key blocks drawn from those its local layout drops, the same on every run (src/ops/block-sparse.ts
 * randomBlocks states the draw).
 */
export interface RandomBlocks {
  kind: 'random';
  /** Random key blocks per query block (fewer where fewer blocks are left to draw from). */
  r: number;
  /** Seed of the draw: a u32. */
  seed: number;
  /**
   * Each query head draws its own blocks (BigBird's form); absent or false: one draw serves
   * every head, as before this option existed, so existing specs keep their pattern.
   */
  perHead?: boolean;
}

/** Most random blocks per query block: the kernel redraws them per block test, O(r²). */
export const MAX_RANDOM = 16;
/** Seeds are u32 (the WGSL hash's word). */
export const MAX_SEED = 2 ** 32 - 1;

/** Most distances an offsets layout lists: each is one comparison in the kernel's keep rule. */
export const MAX_OFFSETS = 64;

export interface BlockSparsePattern {
  kind: 'block_sparse';
  /** Positions per block, for queries and keys alike. */
  block: number;
  layout: BlockLayout;
  /** BigBird's random key blocks (local layouts only); absent or null: none. */
  random?: RandomBlocks | null;
}

export type PatternSpec = BlockSparsePattern;

/** Largest block: a block's keys are walked in tiles, so this only bounds the tables' sizes. */
export const MAX_BLOCK = 1 << 16;
/** Largest block count in a layout: 2^24 tokens (limits.ts's window cap) at blocks of one. */
export const MAX_BLOCKS = 1 << 24;

const local = defineKind({
  name: 'local',
  params: { blocks: req(int(1)), global: opt(int(0)) },
  build: (a): BlockLayout => ({ kind: 'local', blocks: a.blocks, global: a.global ?? 0 }),
  toArgs: (s) =>
    s.kind !== 'local'
      ? null
      : [
          { name: 'blocks', value: s.blocks },
          { name: 'global', value: s.global },
        ],
});

const strided = defineKind({
  name: 'strided',
  params: { local: req(int(1)), stride: req(int(2)), global: opt(int(0)) },
  build: (a): BlockLayout => ({
    kind: 'strided',
    local: a.local,
    stride: a.stride,
    global: a.global ?? 0,
  }),
  toArgs: (s) =>
    s.kind !== 'strided'
      ? null
      : [
          { name: 'local', value: s.local },
          { name: 'stride', value: s.stride },
          { name: 'global', value: s.global },
        ],
});

/** `[0, 1, 4]`: a list of integers of at least 0. */
const intList: ValueType<number[]> = {
  expects: 'a list of integers such as [0, 1, 4]',
  read(v, env, name) {
    const bad = () =>
      env.fail(`${name} must be a list of integers of at least 0, got ${describeValue(v)}`, v.span);
    if (v.type !== 'list') return bad();
    return v.items.map((item) =>
      item.type === 'number' && Number.isSafeInteger(item.value) && item.value >= 0
        ? item.value
        : env.fail(
            `${name} must list integers of at least 0, got ${describeValue(item)}`,
            item.span,
          ),
    );
  },
};

const offsets = defineKind({
  name: 'offsets',
  params: { keep: req(intList), global: opt(int(0)) },
  build: (a): BlockLayout => ({ kind: 'offsets', keep: a.keep, global: a.global ?? 0 }),
  toArgs: (s) =>
    s.kind !== 'offsets'
      ? null
      : [
          { name: 'keep', value: s.keep },
          { name: 'global', value: s.global },
        ],
});

const random = defineKind({
  name: 'random',
  params: { r: req(int(1)), seed: opt(int(0)), per_head: opt(bool) },
  build: (a): RandomBlocks => ({
    kind: 'random',
    r: a.r,
    seed: a.seed ?? 0,
    // Present only when set, so draws shared by all heads stay as they were.
    ...(a.per_head ? { perHead: true } : {}),
  }),
  toArgs: (s) => [
    { name: 'r', value: s.r },
    { name: 'seed', value: s.seed },
    ...(s.perHead ? [{ name: 'per_head', value: true }] : []),
  ],
});

export const RANDOMS: Family<RandomBlocks> = {
  noun: 'random block draw',
  example: 'random(r: ..., seed: ...)',
  kinds: [random],
};

export const LAYOUTS: Family<BlockLayout> = {
  noun: 'block layout',
  example: 'local(blocks: ...), strided(local: ..., stride: ...) or offsets(keep: [...])',
  kinds: [local, strided, offsets],
};

/** Settings of a pattern that cannot work, each naming the setting and the limit. */
export function checkPattern(p: PatternSpec, n: Namer): Issue[] {
  const issues: Issue[] = [];
  if (!Number.isInteger(p.block) || p.block < 1 || p.block > MAX_BLOCK) {
    issues.push({
      path: ['block'],
      message: `${n('block')} must be an integer from 1 to ${MAX_BLOCK}, got ${p.block}`,
    });
  }
  const l = p.layout;
  // Block counts: anything past a context of 2^24 tokens (limits.ts's window cap) is dense.
  const counts: [string, number][] =
    l.kind === 'local'
      ? [
          ['blocks', l.blocks],
          ['global', l.global],
        ]
      : l.kind === 'strided'
        ? [
            ['local', l.local],
            ['stride', l.stride],
            ['global', l.global],
          ]
        : [
            ['keep', Math.max(0, ...l.keep)],
            ['global', l.global],
          ];
  for (const [field, v] of counts) {
    if (v > MAX_BLOCKS) {
      issues.push({
        path: ['layout', field],
        message: `${n(field)} (${v}) exceeds the limit of ${MAX_BLOCKS} blocks`,
      });
    }
  }
  if (l.kind === 'offsets') {
    const where = { path: ['layout', 'keep'] };
    if (!l.keep.includes(0)) {
      issues.push({
        ...where,
        message: `${n('keep')} must include 0, the query's own block, so every query sees itself`,
      });
    }
    if (new Set(l.keep).size !== l.keep.length) {
      issues.push({ ...where, message: `${n('keep')} lists a block distance twice` });
    }
    if (l.keep.length > MAX_OFFSETS) {
      issues.push({
        ...where,
        message: `${n('keep')} lists ${l.keep.length} distances, over the limit of ${MAX_OFFSETS}`,
      });
    }
  }
  const rnd = p.random ?? null;
  if (rnd !== null) {
    if (l.kind !== 'local') {
      issues.push({
        path: ['random'],
        message:
          `${n('random')} blocks combine with a local layout (BigBird: window + global + random), ` +
          `not ${l.kind}: the draw is over the blocks outside the band and the global blocks`,
      });
    }
    if (!Number.isInteger(rnd.r) || rnd.r < 1 || rnd.r > MAX_RANDOM) {
      issues.push({
        path: ['random', 'r'],
        message: `${n('random')} r must be an integer from 1 to ${MAX_RANDOM}, got ${rnd.r}`,
      });
    }
    if (!Number.isInteger(rnd.seed) || rnd.seed < 0 || rnd.seed > MAX_SEED) {
      issues.push({
        path: ['random', 'seed'],
        message: `${n('random')} seed must be an integer from 0 to ${MAX_SEED} (a u32), got ${rnd.seed}`,
      });
    }
  }
  if (l.kind === 'strided' && l.stride <= l.local) {
    issues.push({
      path: ['layout', 'stride'],
      message:
        `${n('stride')} ${l.stride} must exceed ${n('local')} ${l.local}: the band of ` +
        `${l.local} blocks already keeps every block a stride that short adds`,
    });
  }
  return issues;
}

const blockSparse = defineKind({
  name: 'block_sparse',
  params: { block: req(int(1)), layout: req(blockOf(LAYOUTS)), random: opt(blockOf(RANDOMS)) },
  build: (a, ctx): PatternSpec => ({
    kind: 'block_sparse',
    block: a.block,
    layout: a.layout(ctx),
    // Present only when given, so patterns without random blocks stay as they were.
    ...(a.random ? { random: a.random(ctx) } : {}),
  }),
  check: (s, n) => checkPattern(s, n),
  toArgs: (s) => [
    { name: 'block', value: s.block },
    { name: 'layout', value: toDslCall(LAYOUTS, s.layout).value },
    ...(s.random ? [{ name: 'random', value: toDslCall(RANDOMS, s.random).value }] : []),
  ],
});

export const PATTERNS: Family<PatternSpec> = {
  noun: 'attention pattern',
  example: 'block_sparse(block: ..., layout: ...)',
  kinds: [blockSparse],
};
