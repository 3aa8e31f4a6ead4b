/**
 * The BigBird random-block kernel tests' common pieces (attention-bigbird*.test.ts): the pattern,
 * a case's attrs and step, the dense per-head masked reference, a label, and the kernel runs the
 * shared-draw and per-head tests make alike.
 */
import { expect } from 'vitest';
import { attentionKernel } from '../../codegen/kernels/attention.ts';
import type { AttentionAttrs } from '../../src/graph/ops.ts';
import { attention } from '../../src/ops/attention.ts';
import { batchedDefinition } from '../../src/ops/batch.ts';
import { keepBlock, keepPatternBlock, randomBlocks } from '../../src/ops/block-sparse.ts';
import type { BlockSparsePattern } from '../../src/spec/kinds/sparsity.ts';
import { attentionAttrs, maskedSoftmax, type AttentionCase } from './attention.ts';
import { runLaunches, testGpu } from './gpu.ts';
import { maxRelError, randn } from './numeric.ts';

/**
 * BigBird patterns with the draw shared by the heads or one per head: a local band of L blocks,
 * G global blocks and r random blocks drawn from `seed`.
 */
export const bigbirdPattern =
  (perHead: boolean) =>
  (block: number, L: number, G: number, r: number, seed = 7): BlockSparsePattern => ({
    kind: 'block_sparse',
    block,
    layout: { kind: 'local', blocks: L, global: G },
    random: { kind: 'random', r, seed, ...(perHead ? { perHead: true } : {}) },
  });

export interface BigBirdCase extends AttentionCase {
  /** Bidirectional: the step's key count (the canvas), default pos + T. */
  keys?: number;
  pattern: BlockSparsePattern;
}

/** Capacity: the case's keys and 3 spare rows. */
export function bigbirdAttrs(c: BigBirdCase): AttentionAttrs {
  return attentionAttrs(c, {
    causal: c.causal ?? true,
    capacity: Math.max(c.pos + c.maxT, c.keys ?? 0) + 3,
    blockSparse: c.pattern,
  });
}

export const stepOf = (c: BigBirdCase) => ({
  T: c.T,
  pos: c.pos,
  L: 1,
  ...(c.keys ? { keys: c.keys } : {}),
});

/**
 * Dense masked softmax over the mask written from the layout rule and each head's draw (the
 * shared draw does not read the head, so every head then has the same one).
 */
export function bigbirdReference(
  c: BigBirdCase,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
): Float32Array {
  const p = c.pattern;
  const causal = c.causal ?? true;
  const n = Math.max(c.pos + c.T, c.keys ?? 0);
  const nkb = Math.ceil(n / p.block);
  const draws = Array.from({ length: c.T }, (_, t) =>
    Array.from({ length: c.heads }, (_, h) =>
      randomBlocks(p, Math.floor((c.pos + t) / p.block), nkb, causal, h),
    ),
  );
  return maskedSoftmax(c, n, q, k, v, (t, j, h) => {
    const pos = c.pos + t;
    const kb = Math.floor(j / p.block);
    if (causal && j > pos) return false;
    return keepBlock(p.layout, Math.floor(pos / p.block), kb) || draws[t][h].includes(kb);
  });
}

export function bigbirdLabel(c: BigBirdCase): string {
  const p = c.pattern;
  const l = p.layout as { blocks: number; global: number };
  return (
    `H=${c.heads} KVH=${c.kvHeads} T=${c.T} pos=${c.pos}${c.keys ? ` keys=${c.keys}` : ''} ` +
    `${c.causal === false ? 'bidirectional ' : ''}block ${p.block} local ${l.blocks} global ${l.global} ` +
    `r ${p.random!.r} seed ${p.random!.seed}`
  );
}

/** The flash kernel on (q, kcache, vcache), `out` primed with a value no row should keep. */
export async function runBigBirdKernel(
  c: BigBirdCase,
  a: AttentionAttrs,
  q: Float32Array,
  kcache: Float32Array,
  vcache: Float32Array,
): Promise<Float32Array> {
  const gpu = await testGpu();
  const gen = attentionKernel(a, { caps: gpu.caps, maxT: c.maxT });
  const outputs: Record<string, number> = {};
  for (const [name, bytes] of Object.entries(gen.scratch)) outputs[name] = bytes / 4;
  const out = new Float32Array(c.maxT * c.heads * c.hd).fill(-777.25);
  const got = await runLaunches(gen.launches, {
    inputs: { q, kcache, vcache, out },
    outputs,
    step: stepOf(c),
  });
  return got.out.subarray(0, c.T * c.heads * c.hd);
}

/** The reference against the f64 dense masked softmax, 1e-6 relative (cases of T ≤ 40 only). */
export function expectReferenceMatchesDense(cases: BigBirdCase[]): void {
  for (const c of cases.filter((c) => c.T <= 40)) {
    const a = bigbirdAttrs(c);
    const q = randn(c.T * c.heads * c.hd, 1, 2);
    const k = randn(a.capacity * c.kvHeads * c.hd, 2, 2);
    const v = randn(a.capacity * c.kvHeads * c.hd, 3);
    const got = attention.reference(a, { q, kcache: k, vcache: v }, stepOf(c)).out;
    expect(maxRelError(got, bigbirdReference(c, q, k, v)), bigbirdLabel(c)).toBeLessThan(1e-6);
  }
}

/** Case i's kernel against the reference, 1e-4 relative (inputs seeded by i). */
export async function expectKernelMatches(c: BigBirdCase, i: number): Promise<void> {
  const a = bigbirdAttrs(c);
  const q = randn(c.maxT * c.heads * c.hd, 10 + i, 2);
  const kcache = randn(a.capacity * c.kvHeads * c.hd, 20 + i, 2);
  const vcache = randn(a.capacity * c.kvHeads * c.hd, 30 + i);
  const want = attention.reference(a, { q, kcache, vcache }, stepOf(c)).out;
  expect(maxRelError(await runBigBirdKernel(c, a, q, kcache, vcache), want)).toBeLessThanOrEqual(
    1e-4,
  );
}

/**
 * Batched decode under `pattern`: 3 sequences at position 77 (4 heads over 2 kv heads, width 8)
 * against the batched reference, 1e-4 relative.
 */
export async function expectBatchedDecodeMatches(pattern: BlockSparsePattern): Promise<void> {
  const a: AttentionAttrs = {
    ...bigbirdAttrs({ heads: 4, kvHeads: 2, hd: 8, T: 1, maxT: 1, pos: 77, pattern }),
    batch: 3,
  };
  const q = randn(3 * a.heads * a.headDim, 41, 2);
  const kcache = randn(3 * a.capacity * a.kvHeads * a.headDim, 42, 2);
  const vcache = randn(3 * a.capacity * a.kvHeads * a.headDim, 43);
  const step = { T: 3, pos: 77, L: 1 };
  const want = batchedDefinition(attention).reference(a, { q, kcache, vcache }, step).out;
  const gpu = await testGpu();
  const gen = attentionKernel(a, { caps: gpu.caps, maxT: 3 });
  const outputs: Record<string, number> = {};
  for (const [name, bytes] of Object.entries(gen.scratch)) outputs[name] = bytes / 4;
  const got = await runLaunches(gen.launches, {
    inputs: { q, kcache, vcache, out: new Float32Array(3 * a.heads * a.headDim) },
    outputs,
    step,
  });
  expect(maxRelError(got.out, want as Float32Array)).toBeLessThanOrEqual(1e-4);
}

/**
 * Decode case c (T = 1) with NaN values in every block of vcache that no query head of a kv
 * head keeps, so a kernel that staged one would return NaN: the kernel's rows are all finite and
 * within 1e-4 of the reference. Returns the key block count and how many (kv head, block) pairs
 * were dropped, for the test's count of what the pattern keeps.
 */
export async function expectDroppedBlocksUnread(
  c: BigBirdCase,
): Promise<{ nkb: number; dropped: number }> {
  const a = bigbirdAttrs(c);
  const B = c.pattern.block;
  const group = c.heads / c.kvHeads;
  const q = randn(c.heads * c.hd, 5, 2);
  const kcache = randn(a.capacity * c.kvHeads * c.hd, 6, 2);
  const vcache = randn(a.capacity * c.kvHeads * c.hd, 7);
  const qb = Math.floor(c.pos / B);
  const nkb = Math.ceil((c.pos + 1) / B);
  let dropped = 0;
  for (let kvh = 0; kvh < c.kvHeads; kvh++) {
    const heads = Array.from({ length: group }, (_, g) => kvh * group + g);
    for (let kb = 0; kb < nkb; kb++) {
      if (heads.some((h) => keepPatternBlock(c.pattern, qb, kb, nkb, true, h))) continue;
      dropped++;
      for (let j = kb * B; j < Math.min(a.capacity, (kb + 1) * B); j++) {
        vcache.fill(NaN, (j * c.kvHeads + kvh) * c.hd, (j * c.kvHeads + kvh + 1) * c.hd);
      }
    }
  }
  const want = attention.reference(a, { q, kcache, vcache }, stepOf(c)).out;
  const got = await runBigBirdKernel(c, a, q, kcache, vcache);
  expect(got.every(Number.isFinite)).toBe(true);
  expect(maxRelError(got, want)).toBeLessThanOrEqual(1e-4);
  return { nkb, dropped };
}
