/**
 * Per-head BigBird random blocks (`random(r:, seed:, per_head: true)`, src/ops/block-sparse.ts):
 * each query head draws its own blocks from (seed, head, query block). The draw gives heads
 * different blocks but as many (the candidates exclude the band and the global blocks, so no
 * head's draw collides with them), leaves the shared draw (per_head absent) as it was, and the
 * reference equals a dense softmax under a per-head mask. The flash kernel, which visits the
 * union of a workgroup's heads' blocks and masks each row by its own head's, matches the
 * reference on awkward shapes: T not a block multiple, T = 1 at the first token and far in,
 * GQA groups of 3 and 24 (a decode workgroup then holds only part of a group), MHA,
 * bidirectional with a partial last key block, the largest r (16), batched decode; and never
 * reads a block no head of the group keeps. The cost model's FLOPs and bytes equal a count over
 * every head's visible keys.
 *
 * Tolerances: 1e-6 relative for the f64 reference against the f64 dense softmax, 1e-4 for the
 * f32 kernel (the other attention kernel tests' bound).
 */
import { describe, expect, it } from 'vitest';
import { attentionKernel } from '../../codegen/kernels/attention.ts';
import { attention, visibleRanges } from '../../src/ops/attention.ts';
import { causalDensity, keepPatternBlock, randomBlocks } from '../../src/ops/block-sparse.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';
import {
  bigbirdAttrs as attrs,
  bigbirdPattern,
  expectBatchedDecodeMatches,
  expectDroppedBlocksUnread,
  expectKernelMatches,
  expectReferenceMatchesDense,
  bigbirdLabel as label,
  runBigBirdKernel as runKernel,
  stepOf,
  type BigBirdCase as Case,
} from '../helpers/bigbird.ts';

const bigbird = bigbirdPattern(true);
const sharedDraw = bigbirdPattern(false);

const cases: Case[] = [
  // Prefill from the first token, T not a multiple of the block, GQA (2 heads per kv head).
  { heads: 4, kvHeads: 2, hd: 8, T: 37, maxT: 40, pos: 0, pattern: bigbird(4, 1, 1, 2) },
  // T = 1 at the first token (nothing to draw) and far in, a group of 4 in one workgroup.
  { heads: 4, kvHeads: 1, hd: 8, T: 1, maxT: 1, pos: 0, pattern: bigbird(4, 2, 1, 3) },
  { heads: 4, kvHeads: 1, hd: 16, T: 1, maxT: 1, pos: 203, pattern: bigbird(8, 2, 1, 3, 99) },
  // A group of 24: decode workgroups hold 16 rows, so one holds heads 0–15, the other 16–23.
  { heads: 24, kvHeads: 1, hd: 4, T: 1, maxT: 1, pos: 97, pattern: bigbird(4, 1, 1, 4, 21) },
  // Decode over a long cache (17 key splits): the parallel block scan walks each thread's run of
  // blocks against the workgroup's draws, and the splits divide the kept blocks.
  { heads: 4, kvHeads: 2, hd: 8, T: 1, maxT: 1, pos: 4100, pattern: bigbird(4, 2, 1, 3, 5) },
  // A chunk after cached rows straddling blocks of 5, groups of 3 (rows wrap tokens), no globals.
  { heads: 6, kvHeads: 2, hd: 12, T: 19, maxT: 20, pos: 33, pattern: bigbird(5, 1, 0, 2, 3) },
  // MHA: every kv head one query head.
  { heads: 3, kvHeads: 3, hd: 8, T: 26, maxT: 32, pos: 50, pattern: bigbird(4, 1, 1, 3, 12) },
  // Bidirectional: draws on both sides, the last key block partial (41 keys, blocks of 3).
  {
    heads: 4,
    kvHeads: 1,
    hd: 8,
    T: 9,
    maxT: 12,
    pos: 0,
    causal: false,
    keys: 41,
    pattern: bigbird(3, 2, 0, 4, 11),
  },
  {
    heads: 4,
    kvHeads: 2,
    hd: 8,
    T: 30,
    maxT: 32,
    pos: 0,
    causal: false,
    pattern: bigbird(4, 1, 1, 2, 5),
  },
  // The largest r (16) over blocks of 2: a workgroup's rows draw up to 32 × 16 blocks.
  { heads: 2, kvHeads: 1, hd: 8, T: 40, maxT: 40, pos: 60, pattern: bigbird(2, 1, 1, 16, 4) },
  // A longer prefill: 300 tokens in blocks of 8, r above the early blocks' candidates.
  { heads: 4, kvHeads: 2, hd: 8, T: 300, maxT: 300, pos: 0, pattern: bigbird(8, 2, 1, 3) },
];

describe('per-head random blocks: the draw', () => {
  it('gives the heads different blocks, as many on each, outside the band and the globals', () => {
    const p = bigbird(8, 2, 1, 3);
    let differ = 0;
    for (let qb = 0; qb < 60; qb++) {
      const cands = [...Array(qb + 1).keys()].filter((kb) => kb >= 1 && qb - kb >= 2);
      const draws = Array.from({ length: 8 }, (_, h) => randomBlocks(p, qb, 60, true, h));
      for (const got of draws) {
        expect(new Set(got).size).toBe(got.length);
        expect(got.length).toBe(qb < 1 ? 0 : Math.min(3, cands.length));
        for (const kb of got) expect(cands).toContain(kb);
      }
      // Fixed by (seed, head, qb): the same at any later step and on every call.
      expect(randomBlocks(p, qb, 1000, true, 5)).toEqual(draws[5]);
      if (cands.length > 3 && new Set(draws.map((d) => [...d].sort().join())).size > 1) differ++;
    }
    // Past the first few blocks (more candidates than r), heads practically never all agree.
    expect(differ).toBe(60 - 6);
    // Two heads, one query block, by hand: different blocks.
    expect(randomBlocks(p, 40, 60, true, 0)).not.toEqual(randomBlocks(p, 40, 60, true, 1));
  });

  it('leaves the shared draw as it was: without per_head the head is not read', () => {
    const shared = sharedDraw(8, 2, 1, 3);
    for (let qb = 0; qb < 30; qb++) {
      const d = randomBlocks(shared, qb, 30, true);
      for (let h = 0; h < 4; h++) expect(randomBlocks(shared, qb, 30, true, h)).toEqual(d);
    }
    // Per head, head 0 is a draw of its own, not the shared one.
    let same = 0;
    for (let qb = 10; qb < 60; qb++) {
      const a = randomBlocks(shared, qb, 60, true).join();
      if (randomBlocks(bigbird(8, 2, 1, 3), qb, 60, true, 0).join() === a) same++;
    }
    expect(same).toBeLessThan(5);
  });

  it('is about uniform over the candidates across heads', () => {
    // 50 candidates, 2 draws, 4000 heads at one query block.
    const counts = new Array(50).fill(0);
    const p = bigbird(4, 1, 0, 2, 3);
    for (let h = 0; h < 4000; h++) for (const kb of randomBlocks(p, 50, 100, true, h)) counts[kb]++;
    // Expected 160 each; a 5-sigma band of a binomial(4000, 0.04) is about ±62.
    for (const c of counts) expect(Math.abs(c - 160)).toBeLessThan(62);
  });

  it('keeps the causal density of the shared draw (as many blocks per head)', () => {
    const shared = causalDensity(sharedDraw(16, 2, 1, 3), 2048);
    expect(causalDensity(bigbird(16, 2, 1, 3), 2048, 8)).toBeCloseTo(shared, 12);
  });

  it('the reference equals a dense softmax under each head’s mask', () => {
    expectReferenceMatchesDense(cases);
  });
});

describe('per-head random blocks: the cost model', () => {
  const decode = (perHead: boolean, kvHeads: number) =>
    attrs({
      heads: 8,
      kvHeads,
      hd: 64,
      T: 1,
      maxT: 1,
      pos: 4095,
      pattern: bigbirdPattern(perHead)(64, 3, 2, 3, 5),
    });
  const step = { T: 1, pos: 4095, L: 1 };

  it('FLOPs: as many pairs as the shared draw (causal: every drawn block is whole)', () => {
    const dense = attention.cost({ ...decode(true, 8), blockSparse: null }, step);
    const ph = attention.cost(decode(true, 8), step);
    expect(ph.flops).toBe(attention.cost(decode(false, 8), step).flops);
    expect(ph.flops / dense.flops).toBeCloseTo((3 + 2 + 3) / 64, 3);
    // MHA: each kv head reads its one head's blocks, as many as the shared draw.
    expect(ph.bytesRead).toBe(attention.cost(decode(false, 8), step).bytesRead);
  });

  it('bytes under GQA: a kv head reads the union of its query heads’ blocks', () => {
    const a = decode(true, 2);
    const nkb = 64;
    let rows = 0;
    for (let kvh = 0; kvh < 2; kvh++) {
      for (let kb = 0; kb < nkb; kb++) {
        const heads = [0, 1, 2, 3].map((g) => kvh * 4 + g);
        if (heads.some((h) => keepPatternBlock(a.blockSparse!, 63, kb, nkb, true, h))) rows += 64;
      }
    }
    const kvBytes = rows * 2 * 64 * 4;
    const qBytes = 4 * 8 * 64;
    expect(attention.cost(a, step).bytesRead).toBe(qBytes + kvBytes);
    // More than the shared draw's 8 blocks per kv head: the group's draws mostly differ.
    expect(rows).toBeGreaterThan(2 * 8 * 64);
  });

  it('FLOPs and bytes equal a count over every head’s visible keys (prefill chunks, decode)', () => {
    for (const c of cases) {
      const a = attrs(c);
      const group = c.heads / c.kvHeads;
      let pairs = 0;
      let rows = 0;
      for (let kvh = 0; kvh < c.kvHeads; kvh++) {
        // The cache rows a kv head's query heads read at any of the step's positions.
        const read = new Set<number>();
        for (let t = 0; t < c.T; t++) {
          for (let h = kvh * group; h < (kvh + 1) * group; h++) {
            for (const [lo, hi] of visibleRanges(a, c.pos + t, stepOf(c), h)) {
              pairs += hi - lo;
              for (let j = lo; j < hi; j++) read.add(j);
            }
          }
        }
        rows += read.size;
      }
      const cost = attention.cost(a, stepOf(c));
      expect(cost.flops, label(c)).toBe(pairs * (2 * c.hd + 2 * c.hd + 5));
      expect(cost.bytesRead, label(c)).toBe(4 * c.T * c.heads * c.hd + 4 * rows * 2 * c.hd);
    }
  });

  it('bidirectional: pairs are counted per head (a drawn partial block differs per head)', () => {
    const c = cases.find((c) => c.keys === 41)!;
    const a = attrs(c);
    let pairs = 0;
    for (let t = 0; t < c.T; t++) {
      for (let h = 0; h < c.heads; h++) {
        for (const [lo, hi] of visibleRanges(a, t, stepOf(c), h)) pairs += hi - lo;
      }
    }
    expect(attention.cost(a, stepOf(c)).flops).toBe(pairs * (2 * 8 + 2 * 8 + 5));
    // The heads' pair counts really differ here (the partial block 13 is drawn by some only).
    const perHead = [0, 1, 2, 3].map((h) =>
      visibleRanges(a, 0, stepOf(c), h).reduce((n, [lo, hi]) => n + hi - lo, 0),
    );
    expect(new Set(perHead).size).toBeGreaterThan(1);
  });
});

describe('per-head random blocks: the kernel', () => {
  for (const [i, c] of cases.entries()) {
    it(`matches the reference: ${label(c)}`, () => expectKernelMatches(c, i));
  }

  it('fits the row mask in workgroup memory at the baseline limit, for any head width', () => {
    // Every var<workgroup> array of the generated kernels (4-byte elements), summed.
    const wgBytes = (code: string) =>
      [...code.matchAll(/var<workgroup> \w+: array<\w+, (\d+)>/g)].reduce(
        (n, m) => n + 4 * Number(m[1]),
        0,
      );
    // 453: the prefill body alone leaves 2 words of 4096 (bq 8, bk 1), too few for the mask.
    for (const hd of [8, 64, 80, 128, 192, 256, 453]) {
      for (const maxT of [1, 64]) {
        const a = attrs({
          heads: 8,
          kvHeads: 2,
          hd,
          T: 1,
          maxT,
          pos: 0,
          pattern: bigbird(16, 2, 1, 3),
        });
        for (const l of attentionKernel(a, { caps: BASELINE_CAPS, maxT }).launches) {
          expect(wgBytes(l.kernel.code), `hd ${hd} maxT ${maxT}`).toBeLessThanOrEqual(
            BASELINE_CAPS.maxWorkgroupStorageBytes,
          );
        }
      }
    }
  });

  it('differs from the shared draw’s kernel (the per-head mask is applied)', async () => {
    const c = cases[0];
    const a = attrs(c);
    const shared = { ...a, blockSparse: sharedDraw(4, 1, 1, 2) };
    const q = randn(c.maxT * c.heads * c.hd, 3, 2);
    const kcache = randn(a.capacity * c.kvHeads * c.hd, 4, 2);
    const vcache = randn(a.capacity * c.kvHeads * c.hd, 5);
    const ph = await runKernel(c, a, q, kcache, vcache);
    const sh = await runKernel(c, shared, q, kcache, vcache);
    expect(maxRelError(ph, sh)).toBeGreaterThan(1e-2);
  });

  it('never reads a block no head of the group keeps (decode, 4 heads per kv head)', async () => {
    // NaN values in every block dropped by all of a kv head's query heads: staging one gives NaN.
    const c: Case = {
      heads: 8,
      kvHeads: 2,
      hd: 8,
      T: 1,
      maxT: 1,
      pos: 150,
      pattern: bigbird(4, 2, 1, 2),
    };
    const { nkb, dropped } = await expectDroppedBlocksUnread(c);
    // Band 2 + global 1, and per kv head the union of 4 draws of 2: more than one draw's 2.
    expect(dropped).toBeGreaterThanOrEqual(2 * (nkb - 3 - 4 * 2));
    expect(dropped).toBeLessThan(2 * (nkb - 3 - 2));
  });

  it('batched decode (3 sequences at one position) matches the batched reference', () =>
    expectBatchedDecodeMatches(bigbird(4, 2, 1, 3)));
});
