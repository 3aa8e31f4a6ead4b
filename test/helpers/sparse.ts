/**
 * Attrs of the sparse-attention kernels' tests (NSA, DSA), built in one place so the one-sequence
 * and batched tests describe their shapes alike.
 */
import type {
  IndexerTopkAttrs,
  NsaCompressAttrs,
  NsaCompressedAttrs,
  NsaSelectedAttrs,
  SparseAttentionAttrs,
} from '../../src/graph/ops.ts';

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
