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
 * The pattern keeps every KV row: a later query block may keep any earlier block (a strided
 * summary block, a global one), so the cache is not bounded by the layout; only the FLOPs and
 * the bytes read are.
 */
import type { BlockLayout, BlockSparsePattern } from '../spec/kinds/sparsity.ts';

/** Whether query block qb keeps key block kb (causality aside). */
export function keepBlock(l: BlockLayout, qb: number, kb: number): boolean {
  if (qb < l.global || kb < l.global) return true;
  const d = Math.abs(qb - kb);
  if (l.kind === 'offsets') return l.keep.includes(d);
  if (d < (l.kind === 'local' ? l.blocks : l.local)) return true;
  return l.kind === 'strided' && kb % l.stride === l.stride - 1;
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

/** Key blocks per query block, on average, that a causal layout keeps over `blocks` blocks. */
export function causalDensity(p: BlockSparsePattern, context: number): number {
  const nb = Math.ceil(context / p.block);
  let kept = 0;
  for (let qb = 0; qb < nb; qb++) {
    for (let kb = 0; kb <= qb; kb++) if (keepBlock(p.layout, qb, kb)) kept++;
  }
  return kept / ((nb * (nb + 1)) / 2);
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
