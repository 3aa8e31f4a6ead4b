/**
 * Batched kernels whose rows (sequences) sit at their own positions: row s at step.pos +
 * row_pos[s] (codegen/kernel-ir.ts ROW_POS), as after prefilling batch slots from prompts of
 * different lengths (runtime/batch.ts). Each against the batched reference (src/ops/batch.ts:
 * the single-sequence reference per row, at that row's position): split-decode attention
 * (grouped queries, odd head dims, with and without a window, a capacity that no tile divides),
 * the standalone RoPE and the KV-cache append. Tolerance 1e-4 relative as attention.test.ts
 * (online softmax over tiles against the reference's two passes); rope and kv_write are exact
 * up to the f32 products (1e-6).
 */
import { describe, expect, it } from 'vitest';
import { attentionKernel } from '../../codegen/kernels/attention.ts';
import { kvWriteKernel, ropeKernel } from '../../codegen/kernels/rope.ts';
import type { AttentionAttrs, KvWriteAttrs, RopeAttrs } from '../../src/graph/ops.ts';
import { attention, kvWrite } from '../../src/ops/attention.ts';
import { batchedDefinition } from '../../src/ops/batch.ts';
import { rope } from '../../src/ops/rope.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

const B = 3;
const CAP = 29;
/** The step's position is the lowest row's; the others sit 7 and 19 positions on. */
const POS = 2;
const ROW_POS = [7, 0, 19];

describe('batched kernels with rows at their own positions', () => {
  it.each([
    ['grouped queries', null],
    ['a window of 5', 5],
  ])('attention, %s', async (_, window) => {
    const { caps } = await testGpu();
    const a: AttentionAttrs = {
      op: 'attention',
      heads: 6,
      kvHeads: 2,
      headDim: 12,
      vHeadDim: 12,
      scale: 1 / Math.sqrt(12),
      causal: true,
      window,
      softcap: null,
      sinks: false,
      capacity: CAP,
      batch: B,
    };
    const q = randn(B * a.heads * a.headDim, 1);
    const kcache = randn(B * CAP * a.kvHeads * a.headDim, 2);
    const vcache = randn(B * CAP * a.kvHeads * a.vHeadDim, 3);
    const step = { T: B, pos: POS, L: 1, rowPos: ROW_POS };
    const want = batchedDefinition(attention).reference(a, { q, kcache, vcache }, step).out;
    const gen = attentionKernel(a, { caps, maxT: B });
    const outputs: Record<string, number> = {};
    for (const [name, bytes] of Object.entries(gen.scratch)) outputs[name] = bytes / 4;
    delete outputs.row_pos;
    const got = await runLaunches(gen.launches, {
      inputs: {
        q,
        kcache,
        vcache,
        out: new Float32Array(B * a.heads * a.vHeadDim),
        row_pos: Uint32Array.from(ROW_POS),
      },
      outputs,
      step,
    });
    expect(maxRelError(got.out, want)).toBeLessThanOrEqual(1e-4);
    // Rows at one position would see other keys: the offsets are read.
    const shared = batchedDefinition(attention).reference(
      a,
      { q, kcache, vcache },
      {
        ...step,
        rowPos: undefined,
      },
    ).out;
    expect(maxRelError(got.out, shared)).toBeGreaterThan(1e-2);
  });

  it('rope and the KV-cache append', async () => {
    const r: RopeAttrs = {
      op: 'rope',
      heads: 3,
      headDim: 10,
      rotaryDim: 6,
      pairs: 'half',
      capacity: CAP,
      batch: B,
    };
    const { caps } = await testGpu();
    const x = randn(B * 30, 4);
    const cos = randn(CAP * 3, 5);
    const sin = randn(CAP * 3, 6);
    const step = { T: B, pos: POS, L: 1, rowPos: ROW_POS };
    const want = batchedDefinition(rope).reference(r, { x, cos, sin }, step).out;
    const got = await runLaunches(ropeKernel(r, { caps, maxT: B }).launches, {
      inputs: { x, cos, sin, out: new Float32Array(B * 30), row_pos: Uint32Array.from(ROW_POS) },
      step,
    });
    expect(maxRelError(got.out, want)).toBeLessThanOrEqual(1e-6);

    const k: KvWriteAttrs = { op: 'kv_write', width: 8, capacity: CAP, columns: null, batch: B };
    const kx = randn(B * 8, 7);
    const cache = randn(B * CAP * 8, 8);
    const wantCache = batchedDefinition(kvWrite).reference(
      k,
      { x: kx, cache: cache.slice() },
      step,
    ).cache;
    const gotCache = await runLaunches(kvWriteKernel(k, { caps, maxT: B }).launches, {
      inputs: { x: kx, cache: cache.slice(), row_pos: Uint32Array.from(ROW_POS) },
      step,
    });
    expect(Array.from(gotCache.cache)).toEqual(Array.from(wantCache));
    // Row s's k landed in its slice at its own position.
    for (let s = 0; s < B; s++) {
      const row = s * CAP + POS + ROW_POS[s];
      expect(Array.from(gotCache.cache.subarray(row * 8, row * 8 + 8))).toEqual(
        Array.from(kx.subarray(s * 8, s * 8 + 8)),
      );
    }
  });
});
