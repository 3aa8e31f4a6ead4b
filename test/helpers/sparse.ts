/**
 * Attrs of the sparse-attention kernels' tests (NSA, DSA), built in one place so the one-sequence
 * and batched tests describe their shapes alike, and the batched DSA tests' attention check.
 */
import { expect } from 'vitest';
import type { GeneratedOp } from '../../codegen/kernels/types.ts';
import { batchedDefinition } from '../../src/ops/batch.ts';
import { sparseAttention } from '../../src/ops/indexer.ts';
import type { StepShape } from '../../src/graph/ops.ts';
import { runLaunches } from './gpu.ts';
import { maxRelError } from './numeric.ts';
import type {
  IndexerTopkAttrs,
  NsaCompressAttrs,
  NsaCompressedAttrs,
  NsaSelectedAttrs,
  SparseAttentionAttrs,
} from '../../src/graph/ops.ts';
import { randn } from './numeric.ts';

export interface NsaShape {
  heads: number;
  kvHeads: number;
  hd: number;
  block: number;
  select: number;
  capacity: number;
}

/** NSA's three kernels' attrs (scale hd^-0.5); `batch` sequences when given. */
export function nsaAttrs(c: NsaShape, batch?: number) {
  const common = {
    kvHeads: c.kvHeads,
    headDim: c.hd,
    block: c.block,
    capacity: c.capacity,
    ...(batch !== undefined ? { batch } : {}),
  };
  const compress: NsaCompressAttrs = { op: 'nsa_compress', ...common };
  const attn = { ...common, heads: c.heads, scale: c.hd ** -0.5, select: c.select };
  const compressed: NsaCompressedAttrs = { op: 'nsa_compressed', ...attn };
  const selected: NsaSelectedAttrs = { op: 'nsa_selected', ...attn };
  return { compress, compressed, selected };
}

/**
 * The batched DSA tests' indexer (3 heads of 8) and sparse attention (4 heads over 2 KV heads,
 * key width 8, value width 6) over `batch` sequences' caches of `capacity` rows.
 */
export function dsaAttrs(
  topk: number,
  capacity: number,
  batch: number,
): { ix: IndexerTopkAttrs; sa: SparseAttentionAttrs } {
  const ix: IndexerTopkAttrs = {
    op: 'indexer_topk',
    heads: 3,
    dim: 8,
    topk,
    scale: 8 ** -0.5,
    weightScale: 3 ** -0.5,
    capacity,
    batch,
  };
  const sa: SparseAttentionAttrs = {
    op: 'sparse_attention',
    heads: 4,
    kvHeads: 2,
    headDim: 8,
    vHeadDim: 6,
    scale: 8 ** -0.5,
    topk,
    capacity,
    batch,
  };
  return { ix, sa };
}

/**
 * The batched DSA tests' caches, zero to start: the indexer's keys (`index`), kcache and vcache,
 * `batch` sequences' slices of ix.capacity rows; write(s, p) fills row p of sequence s with
 * values seeded by (s, p), as a layer's writes would.
 */
export function dsaCaches(ix: IndexerTopkAttrs, sa: SparseAttentionAttrs, batch: number) {
  const cap = ix.capacity;
  const kvw = sa.kvHeads * sa.headDim;
  const vw = sa.kvHeads * sa.vHeadDim;
  const index = new Float32Array(batch * cap * ix.dim);
  const kcache = new Float32Array(batch * cap * kvw);
  const vcache = new Float32Array(batch * cap * vw);
  const write = (s: number, p: number) => {
    const seed = 500 + 11 * p + s;
    index.set(randn(ix.dim, seed, 2), (s * cap + p) * ix.dim);
    kcache.set(randn(kvw, seed + 1, 2), (s * cap + p) * kvw);
    vcache.set(randn(vw, seed + 2), (s * cap + p) * vw);
  };
  return { index, kcache, vcache, write };
}

/**
 * Batched sparse_attention over the indexer's lists `sel` at position `pos` (queries seeded by it):
 * the kernel within 1e-4 of the batched reference at `step`. The kernel runs at `kernelStep`
 * (default `step`): it reads no position, the lists carry them.
 */
export async function expectBatchedSparseAttention(
  gen: GeneratedOp,
  sa: SparseAttentionAttrs,
  caches: { kcache: Float32Array; vcache: Float32Array; sel: Uint32Array },
  pos: number,
  step: StepShape,
  kernelStep: StepShape = step,
): Promise<void> {
  const B = sa.batch ?? 1;
  const q = randn(B * sa.heads * sa.headDim, 4200 + pos, 2);
  const want = batchedDefinition(sparseAttention).reference(sa, { q, ...caches }, step);
  const got = await runLaunches(gen.launches, {
    inputs: { q, ...caches },
    outputs: { out: B * sa.heads * sa.vHeadDim },
    step: kernelStep,
  });
  expect(maxRelError(got.out, want.out as Float32Array)).toBeLessThanOrEqual(1e-4);
}
