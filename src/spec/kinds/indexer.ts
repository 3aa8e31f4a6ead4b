/**
 * The sparse-attention selector of `mla(index: ...)`: `indexer(heads:, dim:, topk:)`, DeepSeek
 * sparse attention's lightning indexer (DeepSeek-V3.2; semantics: src/ops/indexer.ts).
 */
import { defineKind, req, type Family } from '../kind.ts';
import { int } from '../values.ts';

/**
 * Each query attends only to the `topk` earlier positions (itself included) its lightning indexer
 * scores best: `heads` index heads of width `dim` (the first rope_dim of them rotated) from the q
 * latent, one index key per position from the layer input (cached: dim values per token).
 */
export interface IndexerSpec {
  kind: 'indexer';
  heads: number;
  dim: number;
  topk: number;
}

const indexer = defineKind({
  name: 'indexer',
  params: { heads: req(int(1)), dim: req(int(1)), topk: req(int(1)) },
  build: (a): IndexerSpec => ({ kind: 'indexer', heads: a.heads, dim: a.dim, topk: a.topk }),
  toArgs: (s) => [
    { name: 'heads', value: s.heads },
    { name: 'dim', value: s.dim },
    { name: 'topk', value: s.topk },
  ],
});

export const INDEXERS: Family<IndexerSpec> = {
  noun: 'sparse-attention indexer',
  example: 'indexer(heads: ..., dim: ..., topk: ...)',
  kinds: [indexer],
};
