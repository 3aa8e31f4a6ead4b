/**
 * BigBird's random blocks (`block_sparse(..., random: random(r:, seed:))`, src/ops/block-sparse.ts
 * randomBlocks): the draw keeps min(r, candidates) distinct blocks outside the band and the
 * global blocks (causal: earlier ones only), is fixed by the seed, and is about uniform; the
 * reference equals a dense masked softmax whose mask is written from the draw; the flash kernel
 * (which redraws in WGSL) matches the reference on awkward shapes (T = 1 at the first token and
 * far in, T not a block multiple, a chunk straddling blocks, bidirectional, ~1k tokens) and never
 * reads a block neither the layout nor the draw keeps; FLOPs and bytes count the random blocks.
 *
 * Tolerances: 1e-6 relative for the f64 reference against the f64 dense softmax, 1e-4 for the
 * f32 kernel (the other attention kernel tests' bound).
 */
import { describe, expect, it } from 'vitest';
import { attention } from '../../src/ops/attention.ts';
import { randomBlocks } from '../../src/ops/block-sparse.ts';
import {
  bigbirdAttrs as attrs,
  bigbirdPattern,
  expectBatchedDecodeMatches,
  expectDroppedBlocksUnread,
  expectKernelMatches,
  expectReferenceMatchesDense,
  bigbirdLabel as label,
  type BigBirdCase as Case,
} from '../helpers/bigbird.ts';

const bigbird = bigbirdPattern(false);

const cases: Case[] = [
  // Prefill from the first token, T not a multiple of the block, GQA.
  { heads: 4, kvHeads: 2, hd: 8, T: 37, maxT: 40, pos: 0, pattern: bigbird(4, 1, 1, 2) },
  // Decode at the first token (nothing to draw) and far in.
  { heads: 2, kvHeads: 1, hd: 8, T: 1, maxT: 1, pos: 0, pattern: bigbird(4, 2, 1, 3) },
  { heads: 4, kvHeads: 1, hd: 16, T: 1, maxT: 1, pos: 203, pattern: bigbird(8, 2, 1, 3, 99) },
  // Decode over a long cache: the parallel block scan redraws the shared draw per block.
  { heads: 4, kvHeads: 2, hd: 8, T: 1, maxT: 1, pos: 4100, pattern: bigbird(4, 2, 1, 3, 5) },
  // A chunk after cached rows, block of 5 (the chunk straddles blocks), no global blocks.
  { heads: 2, kvHeads: 1, hd: 12, T: 19, maxT: 20, pos: 33, pattern: bigbird(5, 1, 0, 2, 3) },
  // Bidirectional: draws on both sides, among the canvas's key blocks.
  {
    heads: 2,
    kvHeads: 2,
    hd: 8,
    T: 30,
    maxT: 32,
    pos: 0,
    causal: false,
    pattern: bigbird(4, 1, 1, 2, 5),
  },
  {
    heads: 2,
    kvHeads: 1,
    hd: 8,
    T: 9,
    maxT: 12,
    pos: 0,
    causal: false,
    keys: 41,
    pattern: bigbird(3, 2, 0, 4, 11),
  },
  // ~1k tokens, blocks of 16 (63 blocks), r larger than the early blocks' candidates.
  { heads: 4, kvHeads: 2, hd: 16, T: 1000, maxT: 1000, pos: 0, pattern: bigbird(16, 2, 1, 3) },
];

describe('BigBird random blocks: the draw', () => {
  it('keeps min(r, candidates) distinct blocks outside the band and the globals, past only when causal', () => {
    const p = bigbird(8, 2, 1, 3);
    for (let qb = 0; qb < 60; qb++) {
      const got = randomBlocks(p, qb, 60, true);
      const cands = [...Array(qb + 1).keys()].filter((kb) => kb >= 1 && qb - kb >= 2);
      expect(new Set(got).size).toBe(got.length);
      expect(got.length).toBe(qb < 1 ? 0 : Math.min(3, cands.length));
      for (const kb of got) expect(cands).toContain(kb);
      // Fixed by (seed, qb): the same at any later step (nkb is not read when causal).
      expect(randomBlocks(p, qb, 1000, true)).toEqual(got);
    }
    // Global query blocks keep everything already: no draw.
    expect(randomBlocks(bigbird(8, 1, 2, 3), 1, 10, false)).toEqual([]);
    // Bidirectional: both sides of the band, below the key block count.
    const bi = randomBlocks(bigbird(8, 1, 1, 6), 5, 9, false);
    expect(bi).toHaveLength(6);
    for (const kb of bi) expect(kb >= 1 && kb < 9 && kb !== 5).toBe(true);
    expect(randomBlocks(bigbird(8, 1, 1, 3), 5, 9, false)).not.toEqual(
      randomBlocks(bigbird(8, 1, 1, 3, 8), 5, 9, false),
    );
  });

  it('is about uniform over the candidates', () => {
    // 50 candidates, 2 draws, 4000 query blocks' worth (the same qb, 4000 seeds).
    const counts = new Array(50).fill(0);
    for (let seed = 0; seed < 4000; seed++) {
      for (const kb of randomBlocks(bigbird(4, 1, 0, 2, seed), 50, 100, true)) counts[kb]++;
    }
    // Expected 160 each; a 5-sigma band of a binomial(4000, 0.04) is about ±62.
    for (const c of counts) expect(Math.abs(c - 160)).toBeLessThan(62);
  });

  it('the reference equals a dense softmax under the drawn mask', () => {
    expectReferenceMatchesDense(cases);
  });

  it('FLOPs and bytes count the random blocks: decode reads band + global + r blocks', () => {
    const T = 4096;
    const base = attrs({
      heads: 8,
      kvHeads: 8,
      hd: 64,
      T: 1,
      maxT: 1,
      pos: T - 1,
      pattern: bigbird(64, 3, 2, 3),
    });
    const dense = { ...base, blockSparse: null };
    const step = { T: 1, pos: T - 1, L: 1 };
    const d = attention.cost(dense, step);
    const s = attention.cost(base, step);
    const noRand = attention.cost(
      { ...base, blockSparse: { ...base.blockSparse!, random: null } },
      step,
    );
    expect(s.flops / d.flops).toBeCloseTo((3 + 2 + 3) / 64, 3);
    expect(noRand.flops / d.flops).toBeCloseTo((3 + 2) / 64, 3);
    expect(s.bytesRead / d.bytesRead).toBeCloseTo((3 + 2 + 3) / 64, 2);
  });
});

describe('BigBird random blocks: the kernel', () => {
  for (const [i, c] of cases.entries()) {
    it(`matches the reference: ${label(c)}`, () => expectKernelMatches(c, i));
  }

  it('never reads a block neither the band, the globals nor the draw keeps (decode)', async () => {
    // NaN values in every dropped block: a kernel that staged one would return NaN.
    const c: Case = {
      heads: 4,
      kvHeads: 2,
      hd: 8,
      T: 1,
      maxT: 1,
      pos: 150,
      pattern: bigbird(8, 2, 1, 3),
    };
    const { nkb, dropped } = await expectDroppedBlocksUnread(c);
    // Every kv head drops the same blocks: all but the band's 2, the global and the 3 drawn.
    expect(dropped).toBe(c.kvHeads * (nkb - 2 - 1 - 3));
  });

  it('batched decode (3 sequences at one position) matches the batched reference', () =>
    expectBatchedDecodeMatches(bigbird(4, 2, 1, 3)));
});
