/**
 * Batched kernels whose rows (sequences) sit at their own positions: row s at step.pos +
 * row_pos[s] (codegen/kernel-ir.ts ROW_POS), as after prefilling batch slots from prompts of
 * different lengths (runtime/batch.ts). Each against the batched reference (src/ops/batch.ts:
 * the single-sequence reference per row, at that row's position): split-decode attention
 * (grouped queries, odd head dims, with and without a window, a capacity that no tile divides),
 * the standalone RoPE and the KV-cache append. Tolerance 1e-4 relative as attention.test.ts
 * (online softmax over tiles against the reference's two passes); rope and kv_write are exact
 * up to the f32 products (1e-6).
 *
 * Then the sparse ops that keep per-sequence state or choose per query, over several steps from
 * prefilled sequences of 7, 2 and 11 tokens (each prefilled by the one-sequence reference, as a
 * slot is by the one-sequence prefill): H2O (from rows of different fill, one sequence evicting
 * from the first step, another starting to part way through), NSA (compression, picks and both
 * branches) and the DSA indexer with sparse attention. Bounds as batched-sparse.test.ts: outputs
 * 1e-4 of the largest reference value, H2O scores 1e-5 and kept positions, block picks and top-k
 * lists exactly. Each checks that the shared-position answer differs, so row_pos is really read.
 */
import { describe, expect, it } from 'vitest';
import { ROW_POS as ROW_POS_BUF, type KernelLaunch } from '../../codegen/kernel-ir.ts';
import { attentionKernel } from '../../codegen/kernels/attention.ts';
import { h2oAttentionKernel } from '../../codegen/kernels/h2o.ts';
import { indexerTopkKernel, sparseAttentionKernel } from '../../codegen/kernels/indexer.ts';
import { kvWriteKernel, ropeKernel } from '../../codegen/kernels/rope.ts';
import {
  nsaCompressedKernel,
  nsaCompressKernel,
  nsaSelectedKernel,
} from '../../codegen/kernels/nsa.ts';
import type {
  AttentionAttrs,
  H2oAttentionAttrs,
  KvWriteAttrs,
  RopeAttrs,
  StepShape,
} from '../../src/graph/ops.ts';
import { attention, kvWrite } from '../../src/ops/attention.ts';
import { batchedDefinition } from '../../src/ops/batch.ts';
import { dsaAttrs, dsaCaches, expectBatchedSparseAttention, nsaAttrs } from '../helpers/sparse.ts';
import { h2oAttention } from '../../src/ops/h2o.ts';
import { indexerTopk, SEL_EMPTY } from '../../src/ops/indexer.ts';
import { nsaBlocks, nsaCompress, nsaCompressed, nsaSelected } from '../../src/ops/nsa.ts';
import { rope } from '../../src/ops/rope.ts';
import type { Arrays, HostArray } from '../../src/ops/types.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
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

/** Prompt lengths of the three sequences; after them, sequence s sits at LEN[1] + APART[s]. */
const LEN = [7, 2, 11];
const APART = LEN.map((n) => n - Math.min(...LEN));
const START = Math.min(...LEN);

/** Runs a batched kernel's launches with the rows APART: the op's scratch as outputs, row_pos
 * (as large as the kernel asks: H2O keeps its probabilities past the offsets) holding APART. */
async function runApart(
  gen: { launches: KernelLaunch[]; scratch: Record<string, number> },
  inputs: Record<string, HostArray>,
  outputs: Record<string, number>,
  step: StepShape,
): Promise<Record<string, Float32Array>> {
  const rowPos = new Uint32Array(Math.max(B, (gen.scratch[ROW_POS_BUF] ?? 0) / 4));
  rowPos.set(APART);
  const scratch = Object.fromEntries(
    Object.entries(gen.scratch)
      .filter(([k]) => k !== ROW_POS_BUF)
      .map(([k, bytes]) => [k, bytes / 4]),
  );
  expect(gen.launches.every((l) => l.kernel.bindings.some((b) => b.name === ROW_POS_BUF))).toBe(
    true,
  );
  return runLaunches(gen.launches, {
    inputs: { ...inputs, [ROW_POS_BUF]: rowPos },
    outputs: { ...outputs, ...scratch },
    step,
  });
}

/** Copies of every array (a reference writes its in-place state into its inputs). */
const copy = (x: Arrays): Arrays =>
  Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.slice()]));

describe('batched sparse-attention kernels with rows at their own positions', () => {
  it('H2O: each sequence fills and evicts at its own position', async () => {
    const a: H2oAttentionAttrs = {
      op: 'h2o_attention',
      heads: 4,
      kvHeads: 2,
      headDim: 8,
      budget: 6,
      recent: 2,
      sinkTokens: 1,
      scale: 1 / Math.sqrt(8),
      softcap: null,
      batch: B,
    };
    const { batch: _b, ...one } = a;
    const kvw = a.kvHeads * a.headDim;
    const qw = a.heads * a.headDim;
    const per = { kv: a.budget * kvw, rows: a.budget * 2 * a.kvHeads };
    let state: Arrays = {
      kcache: new Float32Array(B * per.kv),
      vcache: new Float32Array(B * per.kv),
      rows: new Uint32Array(B * per.rows),
    };
    // Each prompt through the one-sequence reference, into its slices.
    for (let s = 0; s < B; s++) {
      const T = LEN[s];
      h2oAttention.reference(
        one,
        {
          q: randn(T * qw, 10 + s, 2),
          k: randn(T * kvw, 20 + s, 2),
          v: randn(T * kvw, 30 + s),
          kcache: state.kcache.subarray(s * per.kv, (s + 1) * per.kv),
          vcache: state.vcache.subarray(s * per.kv, (s + 1) * per.kv),
          rows: state.rows.subarray(s * per.rows, (s + 1) * per.rows),
        },
        { T, pos: 0, L: 1 },
      );
    }
    const def = batchedDefinition(h2oAttention);
    const gen = h2oAttentionKernel(a, { caps: BASELINE_CAPS, maxT: B });
    let dev: Arrays = copy(state);
    let differ = 0;
    for (let pos = START; pos < START + 6; pos++) {
      const inputs = {
        q: randn(B * qw, 100 + pos, 2),
        k: randn(B * kvw, 200 + pos, 2),
        v: randn(B * kvw, 300 + pos),
      };
      const step = { T: B, pos, L: 1, rowPos: APART };
      const want = def.reference(a, { ...inputs, ...copy(state) }, step);
      const got = await runApart(gen, { ...inputs, ...dev }, { out: B * qw }, { T: B, pos, L: 1 });
      expect(maxRelError(got.out, want.out as Float32Array), `step ${pos}`).toBeLessThanOrEqual(
        1e-4,
      );
      const gotRows = new Uint32Array(got.rows.buffer);
      const wantRows = want.rows as Uint32Array;
      const gotScores = new Float32Array(got.rows.buffer);
      const wantScores = new Float32Array(wantRows.buffer);
      for (let i = 0; i < wantRows.length; i += 2) {
        expect(gotRows[i], `kept position, word ${i} at step ${pos}`).toBe(wantRows[i]);
        expect(Math.abs(gotScores[i + 1] - wantScores[i + 1])).toBeLessThan(1e-5);
      }
      const shared = def.reference(a, { ...inputs, ...copy(state) }, { T: B, pos, L: 1 });
      if (maxRelError(got.out, shared.out as Float32Array) > 1e-2) differ++;
      state = { kcache: want.kcache, vcache: want.vcache, rows: want.rows };
      dev = { kcache: got.kcache, vcache: got.vcache, rows: gotRows };
    }
    expect(differ).toBeGreaterThan(0);
    // Each sequence's latest token sits at its own position (the one at 11 evicting from the
    // first step, the one at 2 from its fifth).
    for (let s = 0; s < B; s++) {
      const kept = Array.from(
        (state.rows as Uint32Array).subarray(s * per.rows, (s + 1) * per.rows),
      ).filter((_, i) => i % 2 === 0);
      expect(Math.max(...kept)).toBe(START + 5 + APART[s]);
    }
  });

  it('NSA: compression, block picks and both branches at each sequence position', async () => {
    const nsa = nsaAttrs({ heads: 4, kvHeads: 2, hd: 8, block: 3, select: 3, capacity: 24 }, B);
    const { compress, compressed: cmpA, selected: slcA } = nsa;
    const shape = cmpA;
    const kvw = shape.kvHeads * shape.headDim;
    const qw = shape.heads * shape.headDim;
    const nb = nsaBlocks(shape);
    const kcache = new Float32Array(B * shape.capacity * kvw);
    const vcache = new Float32Array(B * shape.capacity * kvw);
    let kcmp: Float32Array = new Float32Array(B * nb * kvw);
    let vcmp: Float32Array = new Float32Array(B * nb * kvw);
    const { batch: _b, ...one } = compress;
    const write = (s: number, p: number) => {
      kcache.set(randn(kvw, 1000 + 37 * p + s, 2), (s * shape.capacity + p) * kvw);
      vcache.set(randn(kvw, 2000 + 37 * p + s), (s * shape.capacity + p) * kvw);
    };
    // Prompts: their rows, then the one-sequence compression of their complete blocks.
    for (let s = 0; s < B; s++) {
      for (let p = 0; p < LEN[s]; p++) write(s, p);
      const kv = (x: Float32Array, n: number) => x.subarray(s * n * kvw, (s + 1) * n * kvw);
      nsaCompress.reference(
        one,
        {
          kcache: kv(kcache, shape.capacity),
          vcache: kv(vcache, shape.capacity),
          kcmp: kv(kcmp, nb),
          vcmp: kv(vcmp, nb),
        },
        { T: LEN[s], pos: 0, L: 1 },
      );
    }
    const caps = { caps: BASELINE_CAPS, maxT: B };
    const genC = nsaCompressKernel(compress, caps);
    const genA = nsaCompressedKernel(cmpA, caps);
    const genS = nsaSelectedKernel(slcA, caps);
    const differ = { compress: 0, picks: 0, selected: 0 };
    for (let pos = START; pos < START + 7; pos++) {
      for (let s = 0; s < B; s++) write(s, pos + APART[s]);
      const step = { T: B, pos, L: 1, rowPos: APART };
      const flat = { T: B, pos, L: 1 };
      const cmpIn = { kcache, vcache, kcmp, vcmp };
      const wantC = batchedDefinition(nsaCompress).reference(compress, copy(cmpIn), step);
      const gotC = await runApart(genC, copy(cmpIn), {}, flat);
      expect(maxRelError(gotC.kcmp, wantC.kcmp as Float32Array)).toBeLessThanOrEqual(1e-6);
      expect(maxRelError(gotC.vcmp, wantC.vcmp as Float32Array)).toBeLessThanOrEqual(1e-6);
      const sharedC = batchedDefinition(nsaCompress).reference(compress, copy(cmpIn), flat);
      if (maxRelError(gotC.kcmp, sharedC.kcmp as Float32Array) > 1e-2) differ.compress++;
      kcmp = wantC.kcmp as Float32Array;
      vcmp = wantC.vcmp as Float32Array;

      const q = randn(B * qw, 3000 + pos, 2);
      const wantA = batchedDefinition(nsaCompressed).reference(cmpA, { q, kcmp, vcmp }, step);
      const gotA = await runApart(
        genA,
        { q, kcmp, vcmp },
        { out: B * qw, picks: B * shape.kvHeads * shape.select },
        flat,
      );
      const picks = wantA.picks as Uint32Array;
      const gotPicks = Array.from(new Uint32Array(gotA.picks.buffer));
      expect(gotPicks, `picks at ${pos}`).toEqual(Array.from(picks));
      expect(maxRelError(gotA.out, wantA.out as Float32Array)).toBeLessThanOrEqual(1e-4);
      const sharedA = batchedDefinition(nsaCompressed).reference(cmpA, { q, kcmp, vcmp }, flat);
      if (String(gotPicks) !== String(Array.from(sharedA.picks as Uint32Array))) differ.picks++;

      const slcIn = { q, kcache, vcache, picks };
      const wantS = batchedDefinition(nsaSelected).reference(slcA, slcIn, step);
      const gotS = await runApart(genS, slcIn, { out: B * qw }, flat);
      expect(maxRelError(gotS.out, wantS.out as Float32Array)).toBeLessThanOrEqual(1e-4);
      const sharedS = batchedDefinition(nsaSelected).reference(slcA, slcIn, flat);
      if (maxRelError(gotS.out, sharedS.out as Float32Array) > 1e-2) differ.selected++;
    }
    expect(differ.compress).toBeGreaterThan(0);
    expect(differ.picks).toBeGreaterThan(0);
    expect(differ.selected).toBeGreaterThan(0);
  });

  it('DSA: each sequence its own top-k over its own positions, attention over it', async () => {
    const CAP_I = 24;
    const { ix, sa } = dsaAttrs(4, CAP_I, B);
    const { index, kcache, vcache, write } = dsaCaches(ix, sa, B);
    for (let s = 0; s < B; s++) for (let p = 0; p < LEN[s]; p++) write(s, p);
    const caps = { caps: BASELINE_CAPS, maxT: B };
    const genI = indexerTopkKernel(ix, caps);
    const genS = sparseAttentionKernel(sa, caps);
    let differ = 0;
    for (let pos = START; pos < START + 5; pos++) {
      for (let s = 0; s < B; s++) write(s, pos + APART[s]);
      const step = { T: B, pos, L: 1, rowPos: APART };
      const flat = { T: B, pos, L: 1 };
      const q = randn(B * ix.heads * ix.dim, 4000 + pos, 2);
      const w = randn(B * ix.heads, 4100 + pos);
      const want = batchedDefinition(indexerTopk).reference(ix, { q, w, kcache: index }, step);
      const got = await runApart(genI, { q, w, kcache: index }, { sel: B * ix.topk }, flat);
      const sel = want.sel as Uint32Array;
      const gotSel = Array.from(new Uint32Array(got.sel.buffer));
      expect(gotSel, `sel at ${pos}`).toEqual(Array.from(sel));
      const shared = batchedDefinition(indexerTopk).reference(ix, { q, w, kcache: index }, flat);
      if (String(gotSel) !== String(Array.from(shared.sel as Uint32Array))) differ++;
      // Every listed position is at most the sequence's own (or an empty slot).
      for (let s = 0; s < B; s++)
        for (const j of sel.subarray(s * ix.topk, (s + 1) * ix.topk))
          if (j !== SEL_EMPTY) expect(j).toBeLessThanOrEqual(pos + APART[s]);
      // sparse_attention reads no position: the lists carry them.
      await expectBatchedSparseAttention(genS, sa, { kcache, vcache, sel }, pos, step, flat);
    }
    expect(differ).toBeGreaterThan(0);
  });
});
