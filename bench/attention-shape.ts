/**
 * The attention layer the attention benches time (bench/run.ts's dense cases and
 * bench/sparse-cases.ts's block-sparse layouts): a Llama-3-8B-class layer, 32 query heads over
 * 8 kv heads of 128, causal, no window, softcap or sinks. One definition, so the sparse layouts'
 * speedups are over the same dense kernel that the dense table times.
 */
import type { AttentionAttrs, KvType } from '../src/graph/ops.ts';

const BENCH_HEADS = 32;
const BENCH_KV_HEADS = 8;
const BENCH_HEAD_DIM = 128;

/** The dense layer over a cache of `capacity` rows; kvType only when given (absent reads f32). */
export function benchAttentionAttrs(capacity: number, kvType?: KvType): AttentionAttrs {
  const hd = BENCH_HEAD_DIM;
  return {
    op: 'attention',
    heads: BENCH_HEADS,
    kvHeads: BENCH_KV_HEADS,
    headDim: hd,
    vHeadDim: hd,
    scale: 1 / Math.sqrt(hd),
    causal: true,
    window: null,
    softcap: null,
    sinks: false,
    capacity,
    ...(kvType === undefined ? {} : { kvType }),
  };
}

/** Byte sizes of the layer's buffers for a step of T tokens, plus the kernel's scratch. */
export function benchAttentionBytes(
  a: AttentionAttrs,
  T: number,
  scratch: Record<string, number>,
): Record<string, number> {
  const kvBytes = a.kvType === 'f16' ? 2 : 4;
  return {
    q: T * a.heads * a.headDim * 4,
    kcache: a.capacity * a.kvHeads * a.headDim * kvBytes,
    vcache: a.capacity * a.kvHeads * a.headDim * kvBytes,
    out: T * a.heads * a.headDim * 4,
    ...scratch,
  };
}
