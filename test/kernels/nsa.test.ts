/**
 * NSA kernels (codegen/kernels/nsa.ts) against their references (src/ops/nsa.ts), step after
 * step as a layer runs them (kv_write, compress, compressed attention + selection, selected
 * attention), on awkward shapes: T not a multiple of the block, T = 1 from the first token,
 * `select` larger than the number of blocks, select < 3 (ties among the forced blocks), GQA,
 * head widths and block counts past one workgroup (64), prefill longer than the kernel's token
 * slots (16).
 *
 * Each kernel gets the reference's own inputs (the CPU caches and picks), so one kernel's rounding
 * does not feed the next. Tolerances (f32): outputs within 1e-4 of the largest reference value
 * (f32 dot products and sums against the reference's f64, as for the dense attention kernels);
 * compressed caches within 1e-6 (an f32 sum of `block` values against f64); picks exactly: a
 * block chosen differently would show there first.
 */
import { describe, expect, it } from 'vitest';
import {
  NSA_CMP_PROB,
  NSA_SLC_PROB,
  nsaCompressedKernel,
  nsaCompressKernel,
  nsaSelectedKernel,
} from '../../codegen/kernels/nsa.ts';
import {
  NSA_NO_BLOCK,
  nsaBlocks,
  nsaCompress,
  nsaCompressed,
  nsaSelected,
} from '../../src/ops/nsa.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { nsaAttrs, type NsaShape } from '../helpers/sparse.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

interface NsaCase extends NsaShape {
  /** Tokens per step, in order. */
  steps: number[];
}

const cases: NsaCase[] = [
  // GQA, odd head width, a prefill that ends mid-block, then decode across block ends.
  { heads: 4, kvHeads: 2, hd: 7, block: 4, select: 3, capacity: 20, steps: [10, 1, 1, 1, 1, 1, 1] },
  // T = 1 from the first token; select 2 < the three forced blocks (ties to the later block).
  { heads: 2, kvHeads: 1, hd: 5, block: 3, select: 2, capacity: 14, steps: Array(13).fill(1) },
  // select 16, far more than the blocks there are; a capacity that ends mid-block.
  { heads: 3, kvHeads: 3, hd: 4, block: 8, select: 16, capacity: 21, steps: [5, 13, 1, 1] },
  // Heads wider than a workgroup (70), group of 3, a prefill longer than the 16 token slots.
  { heads: 6, kvHeads: 2, hd: 70, block: 5, select: 4, capacity: 44, steps: [37, 1, 1, 1, 2] },
  // fla's smallest group (16 query heads per kv head, its Triton tile), as in its models.
  { heads: 32, kvHeads: 2, hd: 16, block: 4, select: 3, capacity: 40, steps: [37, 1, 1] },
  // 75 candidate blocks: more than one workgroup's threads for the argmax and the scores.
  { heads: 2, kvHeads: 1, hd: 3, block: 2, select: 5, capacity: 160, steps: [150, 1, 1, 1] },
  // 150 compressed blocks: decode splits them three ways (50 a split, the last one partial).
  { heads: 4, kvHeads: 2, hd: 8, block: 2, select: 4, capacity: 300, steps: [203, 1, 1] },
];

const name = (c: NsaCase) =>
  `H=${c.heads}/${c.kvHeads} hd=${c.hd} block ${c.block} select ${c.select} ` +
  `capacity ${c.capacity}, steps ${c.steps.join(',')}`;

/** Step i's q, k, v (deterministic); larger q makes attention peaked so importances spread. */
export function nsaStepInputs(c: NsaCase, T: number, i: number) {
  const kvw = c.kvHeads * c.hd;
  return {
    q: randn(T * c.heads * c.hd, 100 + i, 3),
    k: randn(T * kvw, 200 + i),
    v: randn(T * kvw, 300 + i),
  };
}

describe('nsa kernels', () => {
  for (const c of cases) {
    it(`match their references step after step: ${name(c)}`, async () => {
      const gpu = await testGpu();
      const a = nsaAttrs(c);
      const maxT = Math.max(...c.steps);
      const ctx = { caps: gpu.caps, maxT };
      const genCompress = nsaCompressKernel(a.compress, ctx);
      // A step of one token runs both as a longer step's kernels would and as decode's (maxT 1:
      // the keys split over workgroups, then merged).
      const gens = (m: number) => ({
        cmp: nsaCompressedKernel(a.compressed, { ...ctx, maxT: m }),
        slc: nsaSelectedKernel(a.selected, { ...ctx, maxT: m }),
      });
      const scratch = (g: { scratch: Record<string, number> }) =>
        Object.fromEntries(Object.entries(g.scratch).map(([k, bytes]) => [k, bytes / 4]));
      const kvw = c.kvHeads * c.hd;
      const qw = c.heads * c.hd;
      const nb = nsaBlocks(c);
      const kcache = new Float32Array(c.capacity * kvw);
      const vcache = new Float32Array(c.capacity * kvw);
      let kcmp: Float32Array = new Float32Array(nb * kvw);
      let vcmp: Float32Array = new Float32Array(nb * kvw);
      let pos = 0;
      for (const [i, T] of c.steps.entries()) {
        const { q, k, v } = nsaStepInputs(c, T, i);
        kcache.set(k, pos * kvw);
        vcache.set(v, pos * kvw);
        const step = { T, pos, L: 1 };
        // Compression, from the same compressed caches on both sides.
        const gotC = await runLaunches(genCompress.launches, {
          inputs: { kcache, vcache, kcmp: kcmp.slice(), vcmp: vcmp.slice() },
          step,
        });
        const wantC = nsaCompress.reference(
          a.compress,
          { kcache, vcache, kcmp: kcmp.slice(), vcmp: vcmp.slice() },
          step,
        );
        expect(maxRelError(gotC.kcmp, wantC.kcmp)).toBeLessThan(1e-6);
        expect(maxRelError(gotC.vcmp, wantC.vcmp)).toBeLessThan(1e-6);
        kcmp = wantC.kcmp as Float32Array;
        vcmp = wantC.vcmp as Float32Array;
        // Compressed attention and selection.
        const wantA = nsaCompressed.reference(a.compressed, { q, kcmp, vcmp }, step);
        const picks = wantA.picks as Uint32Array;
        const wantS = nsaSelected.reference(a.selected, { q, kcache, vcache, picks }, step);
        for (const g of T === 1 ? [gens(maxT), gens(1)] : [gens(maxT)]) {
          const gotA = await runLaunches(g.cmp.launches, {
            inputs: { q, kcmp, vcmp },
            outputs: { out: T * qw, picks: T * c.kvHeads * c.select, ...scratch(g.cmp) },
            step,
          });
          expect(Array.from(new Uint32Array(gotA.picks.buffer))).toEqual(Array.from(picks));
          expect(maxRelError(gotA.out, wantA.out)).toBeLessThanOrEqual(1e-4);
          // Selected attention over the reference's picks.
          const gotS = await runLaunches(g.slc.launches, {
            inputs: { q, kcache, vcache, picks },
            outputs: { out: T * qw, ...scratch(g.slc) },
            step,
          });
          expect(maxRelError(gotS.out, wantS.out)).toBeLessThanOrEqual(1e-4);
        }
        pos += T;
      }
    });
  }
});

describe('nsa references', () => {
  it('pick the forced blocks first, then by importance, at most select, padded', () => {
    const c: NsaCase = {
      heads: 2,
      kvHeads: 1,
      hd: 3,
      block: 2,
      select: 6,
      capacity: 20,
      steps: [],
    };
    const a = nsaAttrs(c);
    const step = { T: 1, pos: 12, L: 1 };
    const kvw = c.kvHeads * c.hd;
    const nb = nsaBlocks(c);
    const r = nsaCompressed.reference(
      a.compressed,
      { q: randn(2 * c.hd, 1, 3), kcmp: randn(nb * kvw, 2), vcmp: randn(nb * kvw, 3) },
      step,
    );
    const picks = Array.from(r.picks as Uint32Array);
    // p = 12: the current block 6 (incomplete), the previous 5, the initial 0, then three of 1..4.
    expect(picks.slice(0, 3)).toEqual([6, 5, 0]);
    expect(new Set(picks.slice(3)).size).toBe(3);
    for (const x of picks.slice(3)) expect(x >= 1 && x <= 4).toBe(true);
    // Select 6 at p = 3: only blocks 0 and 1 are candidates.
    const early = nsaCompressed.reference(
      a.compressed,
      { q: randn(2 * c.hd, 1, 3), kcmp: randn(nb * kvw, 2), vcmp: randn(nb * kvw, 3) },
      { T: 1, pos: 3, L: 1 },
    );
    expect(Array.from(early.picks as Uint32Array)).toEqual([1, 0, ...Array(4).fill(NSA_NO_BLOCK)]);
  });

  it('give zero compressed output before the first block completes', () => {
    const c: NsaCase = { heads: 2, kvHeads: 1, hd: 3, block: 4, select: 2, capacity: 8, steps: [] };
    const a = nsaAttrs(c);
    const r = nsaCompressed.reference(
      a.compressed,
      { q: randn(3 * 2 * c.hd, 1), kcmp: randn(2 * 3, 2), vcmp: randn(2 * 3, 3) },
      { T: 3, pos: 0, L: 1 },
    );
    expect(Array.from(r.out).every((x) => x === 0)).toBe(true);
  });

  it('reject impossible attributes naming them', () => {
    const a = nsaAttrs(cases[0]);
    expect(() => nsaCompressed.check({ ...a.compressed, heads: 3 })).toThrow(/multiple of kvHeads/);
    expect(() => nsaSelected.check({ ...a.selected, select: 0 })).toThrow(/select must be/);
    expect(() => nsaCompress.check({ ...a.compress, block: 0 })).toThrow(/block must be/);
  });
});
