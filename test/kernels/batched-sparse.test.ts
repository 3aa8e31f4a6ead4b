/**
 * Batched decode (src/ops/batch.ts) of the sparse-attention ops that keep per-sequence state or
 * choose per query: H2O eviction (each sequence its own cache rows, positions and scores), NSA
 * (each sequence its own compressed blocks and block picks) and the DSA indexer (each sequence's
 * top-k over its own key cache). Each batched kernel runs B = 3 sequences step after step,
 * against the batched reference (the single-sequence reference per row on that row's slices),
 * with the sequences' states diverging (different tokens every step) and, for H2O, far past the
 * point where eviction starts.
 *
 * Tolerances: outputs within 1e-4 of the largest reference value (f32 kernels against the
 * f64-accumulating references, the single-sequence kernel tests' bound); H2O scores within 1e-5
 * and its kept positions exactly (a different eviction would show there first); block picks and
 * top-k lists exactly.
 */
import { describe, expect, it } from 'vitest';
import { h2oAttentionKernel } from '../../codegen/kernels/h2o.ts';
import { ROW_POS } from '../../codegen/kernel-ir.ts';
import {
  INDEXER_KEYS,
  indexerTopkKernel,
  sparseAttentionKernel,
} from '../../codegen/kernels/indexer.ts';
import {
  NSA_CMP_PROB,
  NSA_SLC_PROB,
  nsaCompressedKernel,
  nsaCompressKernel,
  nsaSelectedKernel,
} from '../../codegen/kernels/nsa.ts';
import type { H2oAttentionAttrs } from '../../src/graph/ops.ts';
import { indexerTopk } from '../../src/ops/indexer.ts';
import { batchedDefinition } from '../../src/ops/batch.ts';
import { dsaAttrs, dsaCaches, expectBatchedSparseAttention, nsaAttrs } from '../helpers/sparse.ts';
import { h2oAttention } from '../../src/ops/h2o.ts';
import { nsaBlocks, nsaCompress, nsaCompressed, nsaSelected } from '../../src/ops/nsa.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { runLaunches } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

const B = 3;

interface HState {
  kcache: Float32Array;
  vcache: Float32Array;
  rows: Uint32Array;
}

/** Positions and scores of an H2O rows state, apart. */
function split(rows: Uint32Array) {
  const f = new Float32Array(rows.buffer.slice(0), rows.byteOffset, rows.length);
  return {
    pos: Array.from(rows).filter((_, i) => i % 2 === 0),
    score: Float32Array.from(f.filter((_, i) => i % 2 === 1)),
  };
}

describe('batched H2O attention kernel', () => {
  const cases: (Omit<H2oAttentionAttrs, 'op' | 'scale' | 'softcap'> & { softcap?: number })[] = [
    { heads: 4, kvHeads: 2, headDim: 8, budget: 6, recent: 2, sinkTokens: 1, batch: B },
    { heads: 3, kvHeads: 1, headDim: 6, budget: 5, recent: 1, sinkTokens: 0, batch: B, softcap: 5 },
    {
      heads: 2,
      kvHeads: 2,
      headDim: 8,
      budget: 7,
      recent: 3,
      sinkTokens: 2,
      batch: B,
      kvType: 'f16',
    },
  ];
  for (const [ci, c] of cases.entries()) {
    it(`B = ${B} sequences for 14 steps (eviction from step ${c.budget}): ${JSON.stringify(c)}`, async () => {
      const a: H2oAttentionAttrs = {
        op: 'h2o_attention',
        scale: 1 / Math.sqrt(c.headDim),
        ...c,
        softcap: c.softcap ?? null,
      };
      const def = batchedDefinition(h2oAttention);
      const kvw = a.kvHeads * a.headDim;
      const f16 = a.kvType === 'f16';
      // f16 caches are bound as u32 words of two halves (the kernel's form); the reference holds
      // the f32 values those halves round to. Both start at zero.
      let ref: HState = {
        kcache: new Float32Array(B * a.budget * kvw),
        vcache: new Float32Array(B * a.budget * kvw),
        rows: new Uint32Array(B * a.budget * 2 * a.kvHeads),
      };
      let dev: HState = {
        kcache: new Float32Array(f16 ? (B * a.budget * kvw) / 2 : B * a.budget * kvw),
        vcache: new Float32Array(f16 ? (B * a.budget * kvw) / 2 : B * a.budget * kvw),
        rows: new Uint32Array(B * a.budget * 2 * a.kvHeads),
      };
      const gen = h2oAttentionKernel(a, { caps: BASELINE_CAPS, maxT: B });
      // row_pos included, still within WebGPU's default 8 storage buffers a stage.
      expect(gen.launches[0].kernel.bindings.some((b) => b.name === ROW_POS)).toBe(true);
      expect(gen.launches[0].kernel.bindings.length - 1).toBeLessThanOrEqual(
        BASELINE_CAPS.maxStorageBuffersPerStage,
      );
      for (let pos = 0; pos < 14; pos++) {
        const s = 100 * ci + 3 * pos;
        const inputs = {
          q: randn(B * a.heads * a.headDim, s, 2),
          k: randn(B * kvw, s + 1, 2),
          v: randn(B * kvw, s + 2),
        };
        const step = { T: B, pos, L: 1 };
        const want = def.reference(
          a,
          {
            ...inputs,
            kcache: ref.kcache.slice(),
            vcache: ref.vcache.slice(),
            rows: ref.rows.slice(),
          },
          step,
        );
        const got = await runLaunches(gen.launches, {
          inputs: {
            ...inputs,
            kcache: f16 ? new Uint32Array(dev.kcache.buffer) : dev.kcache,
            vcache: f16 ? new Uint32Array(dev.vcache.buffer) : dev.vcache,
            rows: dev.rows,
            out: new Float32Array(B * a.heads * a.headDim),
          },
          // Batched, the probabilities follow the row offsets in row_pos's scratch (all 0 here).
          outputs: { [ROW_POS]: gen.scratch[ROW_POS] / 4 },
          step,
        });
        expect(
          maxRelError(got.out as Float32Array, want.out as Float32Array),
          `step ${pos}`,
        ).toBeLessThanOrEqual(1e-4);
        const g = split(new Uint32Array((got.rows as Uint32Array | Float32Array).buffer));
        const w = split(want.rows as Uint32Array);
        expect(g.pos, `kept positions at step ${pos}`).toEqual(w.pos);
        for (let i = 0; i < w.score.length; i++)
          expect(Math.abs(g.score[i] - w.score[i])).toBeLessThan(1e-5);
        ref = {
          kcache: want.kcache as Float32Array,
          vcache: want.vcache as Float32Array,
          rows: want.rows as Uint32Array,
        };
        dev = {
          kcache: new Float32Array((got.kcache as Float32Array | Uint32Array).buffer),
          vcache: new Float32Array((got.vcache as Float32Array | Uint32Array).buffer),
          rows: new Uint32Array((got.rows as Uint32Array | Float32Array).buffer),
        };
      }
      // Eviction ran and the sequences kept different tokens (their scores differ).
      const kept = (s: number) =>
        split(ref.rows.subarray(s * a.budget * 2 * a.kvHeads, (s + 1) * a.budget * 2 * a.kvHeads));
      expect(Math.max(...kept(0).pos)).toBe(13);
      expect(Array.from(kept(0).score)).not.toEqual(Array.from(kept(1).score));
    });
  }
});

describe('batched NSA kernels', () => {
  // Blocks of 3, 4 picked: from position 11 (block 3 current) a pick is by importance beside
  // the forced blocks 0, cur − 1 and cur.
  const nsa = nsaAttrs({ heads: 4, kvHeads: 2, hd: 8, block: 3, select: 4, capacity: 32 }, B);
  const { compress, compressed: cmpA, selected: slcA } = nsa;
  const shape = cmpA;

  it(`B = ${B} sequences for 22 steps: compression, picks and both branches per sequence`, async () => {
    const kvw = shape.kvHeads * shape.headDim;
    const qw = shape.heads * shape.headDim;
    const nb = nsaBlocks(shape);
    const kcache = new Float32Array(B * shape.capacity * kvw);
    const vcache = new Float32Array(B * shape.capacity * kvw);
    let kcmp: Float32Array = new Float32Array(B * nb * kvw);
    let vcmp: Float32Array = new Float32Array(B * nb * kvw);
    const genC = nsaCompressKernel(compress, { caps: BASELINE_CAPS, maxT: B });
    const genA = nsaCompressedKernel(cmpA, { caps: BASELINE_CAPS, maxT: B });
    const genS = nsaSelectedKernel(slcA, { caps: BASELINE_CAPS, maxT: B });
    let byImportance = 0;
    for (let pos = 0; pos < 22; pos++) {
      const step = { T: B, pos, L: 1 };
      // kv_write's part: row pos of each sequence's slice.
      for (let s = 0; s < B; s++) {
        kcache.set(randn(kvw, 1000 + 7 * pos + s, 2), (s * shape.capacity + pos) * kvw);
        vcache.set(randn(kvw, 2000 + 7 * pos + s), (s * shape.capacity + pos) * kvw);
      }
      const q = randn(B * qw, 3000 + pos, 2);
      const wantC = batchedDefinition(nsaCompress).reference(
        compress,
        { kcache, vcache, kcmp: kcmp.slice(), vcmp: vcmp.slice() },
        step,
      );
      const gotC = await runLaunches(genC.launches, {
        inputs: { kcache, vcache, kcmp: kcmp.slice(), vcmp: vcmp.slice() },
        step,
      });
      expect(maxRelError(gotC.kcmp, wantC.kcmp as Float32Array)).toBeLessThanOrEqual(1e-6);
      expect(maxRelError(gotC.vcmp, wantC.vcmp as Float32Array)).toBeLessThanOrEqual(1e-6);
      kcmp = wantC.kcmp as Float32Array;
      vcmp = wantC.vcmp as Float32Array;
      const wantA = batchedDefinition(nsaCompressed).reference(cmpA, { q, kcmp, vcmp }, step);
      const gotA = await runLaunches(genA.launches, {
        inputs: { q, kcmp, vcmp },
        outputs: {
          out: B * qw,
          picks: B * shape.kvHeads * shape.select,
          [NSA_CMP_PROB]: genA.scratch[NSA_CMP_PROB] / 4,
        },
        step,
      });
      const picks = wantA.picks as Uint32Array;
      expect(Array.from(new Uint32Array(gotA.picks.buffer)), `picks at ${pos}`).toEqual(
        Array.from(picks),
      );
      expect(maxRelError(gotA.out, wantA.out as Float32Array)).toBeLessThanOrEqual(1e-4);
      const wantS = batchedDefinition(nsaSelected).reference(
        slcA,
        { q, kcache, vcache, picks },
        step,
      );
      const gotS = await runLaunches(genS.launches, {
        inputs: { q, kcache, vcache, picks },
        outputs: { out: B * qw, [NSA_SLC_PROB]: genS.scratch[NSA_SLC_PROB] / 4 },
        step,
      });
      expect(maxRelError(gotS.out, wantS.out as Float32Array)).toBeLessThanOrEqual(1e-4);
      // Sequences whose importances picked different blocks.
      const per = shape.kvHeads * shape.select;
      if (String(picks.subarray(0, per)) !== String(picks.subarray(per, 2 * per))) byImportance++;
    }
    expect(byImportance).toBeGreaterThan(0);
  });
});

describe('batched DSA indexer and sparse attention kernels', () => {
  const CAP = 24;
  const { ix, sa } = dsaAttrs(5, CAP, B);

  it(`B = ${B} sequences for 14 steps: each its own top-5 and attention over it`, async () => {
    const { index, kcache, vcache, write } = dsaCaches(ix, sa, B);
    const genI = indexerTopkKernel(ix, { caps: BASELINE_CAPS, maxT: B });
    const genS = sparseAttentionKernel(sa, { caps: BASELINE_CAPS, maxT: B });
    let differ = 0;
    for (let pos = 0; pos < 14; pos++) {
      const step = { T: B, pos, L: 1 };
      for (let s = 0; s < B; s++) write(s, pos);
      const q = randn(B * ix.heads * ix.dim, 4000 + pos, 2);
      const w = randn(B * ix.heads, 4100 + pos);
      const want = batchedDefinition(indexerTopk).reference(ix, { q, w, kcache: index }, step);
      const got = await runLaunches(genI.launches, {
        inputs: { q, w, kcache: index },
        outputs: { sel: B * ix.topk, [INDEXER_KEYS]: genI.scratch[INDEXER_KEYS] / 4 },
        step,
      });
      const sel = want.sel as Uint32Array;
      expect(Array.from(new Uint32Array(got.sel.buffer)), `sel at ${pos}`).toEqual(Array.from(sel));
      if (String(sel.subarray(0, ix.topk)) !== String(sel.subarray(ix.topk, 2 * ix.topk))) differ++;
      await expectBatchedSparseAttention(genS, sa, { kcache, vcache, sel }, pos, step);
    }
    // From position 5 on the lists are choices, and the sequences choose differently.
    expect(differ).toBeGreaterThan(3);
  });
});
