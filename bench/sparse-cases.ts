/**
 * The block-sparse suite (issue 17, item 3): the flash attention kernel with a block-sparse
 * layout at ~25% causal density against the same kernel dense, at 4k–32k context, prefill (one
 * step of T tokens from position 0) and decode (one token at the end of the context). The shape
 * is the attention bench's (32 heads, 8 kv heads of 128, f32 caches).
 *
 * Two layouts per context and phase, both with blocks of 64: a local band (the band width that
 * puts the density nearest 25%), and a strided one (a band of 2 blocks, one global block, and
 * every stride-th block, the stride picked for ~25%); see layoutsFor. The density column is the cost model's FLOPs
 * ratio against dense for that step (prefill: the whole causal triangle; decode: one row, where a
 * band's share is band / blocks); `speedup` is dense time over sparse time, to set beside
 * 1 / density. Caches are left zero: the kernel's time does not depend on the values.
 *
 * BigBird rows (bigbirdVariants) time window + global blocks alone, with shared random blocks
 * and with per-head ones, at the same contexts.
 *
 * Run on the GPU machine: `bash bench/device.sh sparse` (strata only; the peers script ignores
 * the suite), then read rows of `sparse` in strata.json.
 */
import type { AttentionAttrs } from '../src/graph/ops.ts';
import { attention } from '../src/ops/attention.ts';
import { causalDensity, keepBlock } from '../src/ops/block-sparse.ts';
import type { BlockLayout, BlockSparsePattern } from '../src/spec/kinds/sparsity.ts';
import { attentionKernel } from '../codegen/kernels/attention.ts';
import type { GpuContext } from '../runtime/gpu.ts';
import { benchAttentionAttrs, benchAttentionBytes } from './attention-shape.ts';
import { timeLaunches } from './gpu-timer.ts';

/** STRATA_BENCH_SPARSE=256 (and STRATA_BENCH_REPS=2) make a smoke run on SwiftShader. */
export const SPARSE_CONTEXTS = (process.env.STRATA_BENCH_SPARSE ?? '4096,8192,16384,32768')
  .split(',')
  .map(Number);
const MAX_REPS = Number(process.env.STRATA_BENCH_REPS ?? Infinity);
const BLOCK = 64;
const TARGET = 0.25;

/** Kept share of the key blocks the last query block sees: a decode step's density. */
function rowDensity(p: BlockSparsePattern, context: number): number {
  const nb = Math.ceil(context / p.block);
  let kept = 0;
  for (let kb = 0; kb < nb; kb++) if (keepBlock(p.layout, nb - 1, kb)) kept++;
  return kept / nb;
}

/**
 * The layout of each family whose density is nearest the target: over the causal triangle for
 * prefill, over the last query's row for decode (a band of nb/8 blocks is 25% of the triangle
 * but 12.5% of the last row, so each phase gets its own).
 */
export function layoutsFor(
  context: number,
  phase: 'prefill' | 'decode',
): { name: string; pattern: BlockSparsePattern }[] {
  const nb = Math.ceil(context / BLOCK);
  const density = phase === 'prefill' ? causalDensity : rowDensity;
  const nearest = (make: (k: number) => BlockLayout, ks: number[]) => {
    let best = make(ks[0]);
    let gap = Infinity;
    for (const k of ks) {
      const l = make(k);
      const g = Math.abs(
        density({ kind: 'block_sparse', block: BLOCK, layout: l }, context) - TARGET,
      );
      if (g < gap) [best, gap] = [l, g];
    }
    return { kind: 'block_sparse' as const, block: BLOCK, layout: best };
  };
  const range = (lo: number, hi: number) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  return [
    {
      name: 'local band',
      pattern: nearest((k) => ({ kind: 'local', blocks: k, global: 0 }), range(1, nb)),
    },
    {
      name: 'strided + global',
      pattern: nearest((s) => ({ kind: 'strided', local: 2, stride: s, global: 1 }), range(3, nb)),
    },
  ];
}

/**
 * BigBird at every context and phase: a band of 3 blocks and 2 global blocks alone, then with
 * r = 3 random blocks drawn once for all heads, then drawn per query head (the kernel visits the
 * union of a GQA group's draws: up to 4 × 3 random blocks per kv head here, 32 heads over 8).
 * Against each other they time the random blocks' own cost, the draw included.
 */
export function bigbirdVariants(): { name: string; pattern: BlockSparsePattern }[] {
  const layout: BlockLayout = { kind: 'local', blocks: 3, global: 2 };
  const bb = (random: BlockSparsePattern['random']): BlockSparsePattern => ({
    kind: 'block_sparse',
    block: BLOCK,
    layout,
    ...(random ? { random } : {}),
  });
  return [
    { name: 'bigbird window + global', pattern: bb(null) },
    { name: 'bigbird + random shared', pattern: bb({ kind: 'random', r: 3, seed: 1 }) },
    {
      name: 'bigbird + random per head',
      pattern: bb({ kind: 'random', r: 3, seed: 1, perHead: true }),
    },
  ];
}

export async function benchBlockSparse(gpu: GpuContext, log: (m: string) => void) {
  const rows = [];
  for (const context of SPARSE_CONTEXTS) {
    for (const phase of ['prefill', 'decode'] as const) {
      const T = phase === 'prefill' ? context : 1;
      const pos = phase === 'prefill' ? 0 : context - 1;
      const dense = benchAttentionAttrs(context);
      const step = { T, pos, L: 1 };
      const denseFlops = attention.cost(dense, step).flops;
      let denseMs = 0;
      const variants = [
        { name: 'dense', pattern: null },
        ...layoutsFor(context, phase),
        ...bigbirdVariants(),
      ];
      for (const v of variants) {
        const a: AttentionAttrs = v.pattern ? { ...dense, blockSparse: v.pattern } : dense;
        const gen = attentionKernel(a, { caps: gpu.caps, maxT: T });
        const bytes = benchAttentionBytes(a, T, gen.scratch);
        const flops = attention.cost(a, step).flops;
        const reps = Math.min(MAX_REPS, T === 1 ? 100 : Math.max(2, Math.round(5e11 / flops)));
        const t = await timeLaunches(gpu, gen.launches, bytes, step, { reps, samples: 5 });
        const ms = t.gpuMs ?? t.wallMs;
        if (v.pattern === null) denseMs = ms;
        rows.push({
          context,
          phase,
          layout: v.name,
          pattern: v.pattern,
          density: flops / denseFlops,
          ms,
          wallMs: t.wallMs,
          gpuMs: t.gpuMs,
          speedup: denseMs / ms,
          tflops: flops / (ms * 1e-3) / 1e12,
        });
        log(
          `sparse ${phase} ${context} ${v.name}: ${ms.toFixed(3)} ms, density ${(flops / denseFlops).toFixed(3)}, ` +
            `${(denseMs / ms).toFixed(2)}x dense`,
        );
      }
    }
  }
  return rows;
}
