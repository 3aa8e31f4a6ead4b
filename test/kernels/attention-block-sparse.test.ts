/**
 * Block-sparse layouts and global tokens (src/ops/block-sparse.ts): the reference equals a plain
 * dense masked softmax built from the rule written out here; the flash kernel matches the
 * reference on awkward shapes (T not a multiple of the block, T = 1, a single block, GQA, ~1k
 * tokens, bidirectional, global queries); the cost's FLOPs follow the density.
 */
import { describe, expect, it } from 'vitest';
import { attentionKernel } from '../../codegen/kernels/attention.ts';
import type { AttentionAttrs } from '../../src/graph/ops.ts';
import { attention, visibleRanges } from '../../src/ops/attention.ts';
import { causalDensity, keepBlock, patternCapacityError } from '../../src/ops/block-sparse.ts';
import type { BlockLayout, BlockSparsePattern } from '../../src/spec/kinds/sparsity.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';
import { packF16 } from '../../formats/safetensors.ts';
import { roundF16 } from '../../src/ops/math.ts';
import { attentionAttrs, maskedSoftmax, type AttentionCase } from '../helpers/attention.ts';

interface Case extends AttentionCase {
  pattern?: BlockSparsePattern;
  /** f16 caches (kvType 'f16'). */
  kv16?: boolean;
  /** Global tokens: sink tokens, and (bidirectional) global queries; needs window. */
  global?: number;
  window?: number | null;
}

const local = (blocks: number, global = 0): BlockLayout => ({ kind: 'local', blocks, global });
const strided = (l: number, stride: number, global = 0): BlockLayout => ({
  kind: 'strided',
  local: l,
  stride,
  global,
});
const offsets = (keep: number[], global = 0): BlockLayout => ({ kind: 'offsets', keep, global });
const bs = (block: number, layout: BlockLayout): BlockSparsePattern => ({
  kind: 'block_sparse',
  block,
  layout,
});

function attrs(c: Case): AttentionAttrs {
  const causal = c.causal ?? true;
  return attentionAttrs(c, {
    causal,
    window: c.window ?? null,
    capacity: c.pos + c.maxT + 3,
    ...(c.pattern ? { blockSparse: c.pattern } : {}),
    ...(c.kv16 ? { kvType: 'f16' as const } : {}),
    ...(c.global ? { sinkTokens: c.global } : {}),
    ...(c.global && !causal ? { globalQueries: c.global } : {}),
  });
}

/** The mask written out from the definitions, independently of visibleRanges. */
function visible(c: Case, p: number, j: number, n: number): boolean {
  const causal = c.causal ?? true;
  if (j >= n || (causal && j > p)) return false;
  if (c.pattern)
    return keepBlock(
      c.pattern.layout,
      Math.floor(p / c.pattern.block),
      Math.floor(j / c.pattern.block),
    );
  const g = c.global ?? 0;
  if (p < g && !causal) return true;
  if (j < g) return true;
  const w = c.window ?? null;
  if (w === null) return true;
  return causal ? j > p - w : Math.abs(j - p) < w;
}

/** Dense masked softmax: every (query, key) score, masked ones set to -∞. */
function reference(c: Case, q: Float32Array, k: Float32Array, v: Float32Array): Float32Array {
  const n = c.pos + c.T;
  return maskedSoftmax(c, n, q, k, v, (t, j) => visible(c, c.pos + t, j, n));
}

const cases: Case[] = [
  // T not a multiple of the block; strided summary blocks; GQA.
  { heads: 4, kvHeads: 2, hd: 8, T: 37, maxT: 40, pos: 0, pattern: bs(8, strided(1, 3)) },
  // Decode (T = 1) far into the sequence.
  { heads: 4, kvHeads: 1, hd: 16, T: 1, maxT: 1, pos: 203, pattern: bs(16, local(2, 1)) },
  { heads: 2, kvHeads: 2, hd: 8, T: 1, maxT: 1, pos: 90, pattern: bs(7, strided(2, 5)) },
  // A single block: dense causal.
  { heads: 3, kvHeads: 1, hd: 4, T: 6, maxT: 8, pos: 0, pattern: bs(64, local(1)) },
  // A prefill chunk after cached rows, block of 5 (chunks straddle blocks).
  { heads: 2, kvHeads: 1, hd: 12, T: 19, maxT: 20, pos: 33, pattern: bs(5, local(3, 2)) },
  // Bidirectional layouts.
  { heads: 2, kvHeads: 2, hd: 8, T: 30, maxT: 32, pos: 0, causal: false, pattern: bs(8, local(1)) },
  // Explicit block distances (a dilated band), with a global block; prefill and decode.
  {
    heads: 4,
    kvHeads: 2,
    hd: 8,
    T: 34,
    maxT: 36,
    pos: 0,
    pattern: bs(4, offsets([0, 2, 5], 1)),
  },
  { heads: 2, kvHeads: 1, hd: 8, T: 1, maxT: 1, pos: 77, pattern: bs(6, offsets([3, 0, 8])) },
  // f16 caches: the staging unpacks halves, the block walk is the same.
  {
    heads: 4,
    kvHeads: 2,
    hd: 8,
    T: 21,
    maxT: 24,
    pos: 5,
    pattern: bs(4, strided(1, 3)),
    kv16: true,
  },
  // Global tokens beside a window.
  { heads: 4, kvHeads: 2, hd: 8, T: 29, maxT: 32, pos: 0, window: 6, global: 3 },
  { heads: 2, kvHeads: 1, hd: 8, T: 29, maxT: 32, pos: 0, causal: false, window: 5, global: 2 },
  { heads: 2, kvHeads: 1, hd: 8, T: 1, maxT: 1, pos: 70, window: 9, global: 4 },
  // ~1k tokens with blocks of 64 and strided summaries, GQA.
  { heads: 4, kvHeads: 2, hd: 16, T: 1000, maxT: 1000, pos: 0, pattern: bs(64, strided(2, 4)) },
  // Decode over a long cache (24 key splits): several blocks per thread in the parallel block
  // scan, kept blocks spread over the splits, and (blocks of 64, a band of one) more splits than
  // kept blocks, so most splits keep nothing.
  { heads: 4, kvHeads: 2, hd: 8, T: 1, maxT: 1, pos: 6001, pattern: bs(4, strided(1, 7, 1)) },
  { heads: 2, kvHeads: 1, hd: 8, T: 1, maxT: 1, pos: 5990, pattern: bs(5, local(3, 2)) },
  { heads: 2, kvHeads: 1, hd: 8, T: 1, maxT: 1, pos: 6000, pattern: bs(64, local(1)) },
];

function label(c: Case): string {
  const p = c.pattern;
  const what = p
    ? `block ${p.block} ${p.layout.kind} ${JSON.stringify(p.layout)}`
    : `window ${c.window} global ${c.global}`;
  return `H=${c.heads} KVH=${c.kvHeads} hd=${c.hd} T=${c.T} pos=${c.pos} ${c.causal === false ? 'bidirectional ' : ''}${what}`;
}

describe('block-sparse and global-token masks', () => {
  it('layouts keep the diagonal, the band, the strided summaries and the global blocks', () => {
    const l = strided(2, 4, 1);
    const kept = (qb: number) => [...Array(qb + 1).keys()].filter((kb) => keepBlock(l, qb, kb));
    expect(kept(9)).toEqual([0, 3, 7, 8, 9]);
    expect(kept(0)).toEqual([0]);
    expect([...Array(6).keys()].every((kb) => keepBlock(l, 0, kb))).toBe(true);
    expect(
      visibleRanges({ causal: true, window: null, blockSparse: bs(4, local(2)) }, 13, {
        T: 1,
        pos: 13,
      }),
    ).toEqual([[8, 14]]);
    expect(
      visibleRanges({ causal: true, window: null, blockSparse: bs(4, strided(1, 2)) }, 13, {
        T: 1,
        pos: 13,
      }),
    ).toEqual([
      [4, 8],
      [12, 14],
    ]);
  });

  for (const c of cases.filter((c) => c.T <= 40)) {
    it(`reference equals a dense masked softmax: ${label(c)}`, () => {
      const a = attrs(c);
      const q = randn(c.T * c.heads * c.hd, 1, 2);
      const k = randn(a.capacity * c.kvHeads * c.hd, 2, 2);
      const v = randn(a.capacity * c.kvHeads * c.hd, 3);
      const got = attention.reference(
        a,
        { q, kcache: k, vcache: v },
        { T: c.T, pos: c.pos, L: 1 },
      ).out;
      expect(maxRelError(got, reference(c, q, k, v))).toBeLessThan(1e-6);
    });
  }

  it('FLOPs and bytes scale with the density: 25% of dense plus the diagonal', () => {
    const T = 4096;
    const dense: AttentionAttrs = attrs({ heads: 8, kvHeads: 8, hd: 64, T, maxT: T, pos: 0 });
    // Blocks of 64: a band of 8 blocks keeps 8 of the 64 causal blocks of the last query.
    const sparse = { ...dense, blockSparse: bs(64, local(8)) };
    const step = { T, pos: 0, L: 1 };
    const d = attention.cost(dense, step);
    const s = attention.cost(sparse, step);
    const density = causalDensity(sparse.blockSparse, T);
    // Pairs under the band: 8 blocks back, the diagonal block half full (causal).
    expect(s.flops / d.flops).toBeCloseTo(density, 1);
    expect(s.flops / d.flops).toBeGreaterThan(0.22);
    expect(s.flops / d.flops).toBeLessThan(0.24);
    // Decode at the end of a 4096-token context reads 8 blocks of the cache, not 64.
    const dd = attention.cost({ ...dense, capacity: T + 1 }, { T: 1, pos: T - 1, L: 1 });
    const sd = attention.cost({ ...sparse, capacity: T + 1 }, { T: 1, pos: T - 1, L: 1 });
    expect(sd.flops / dd.flops).toBeCloseTo(8 / 64, 3);
    expect(sd.bytesRead / dd.bytesRead).toBeCloseTo(8 / 64, 2);
  });

  it('a pattern with a window or sink tokens, or beyond the capacity, is an error', () => {
    const a = attrs({
      heads: 1,
      kvHeads: 1,
      hd: 4,
      T: 1,
      maxT: 1,
      pos: 0,
      pattern: bs(4, local(1)),
    });
    expect(() => attention.check({ ...a, window: 8 })).toThrow(
      /takes no window, sink tokens or ring/,
    );
    expect(patternCapacityError(bs(64, local(1)), 32)).toMatch(
      /block 64 exceeds the KV capacity 32 \(--capacity\)/,
    );
    expect(patternCapacityError(bs(16, local(1, 3)), 32)).toMatch(
      /global 3 blocks of 16 \(48 positions\) reach beyond the KV capacity 32 \(--capacity\); give at most 2/,
    );
    expect(patternCapacityError(bs(16, local(1, 2)), 32)).toBeNull();
    expect(patternCapacityError(bs(8, offsets([0, 4])), 32)).toMatch(
      /offsets keep 4 reaches 4 blocks of 8 \(32 positions\) back, beyond the KV capacity 32 \(--capacity\); keep distances below 4/,
    );
    expect(patternCapacityError(bs(8, offsets([0, 3])), 32)).toBeNull();
  });
});

describe('block-sparse attention kernel', () => {
  for (const [i, c] of cases.entries()) {
    it(`matches the reference: ${label(c)}`, async () => {
      const gpu = await testGpu();
      const a = attrs(c);
      const q = randn(c.maxT * c.heads * c.hd, 10 + i, 2);
      // An f16 cache holds f16 values: the reference reads them rounded, the kernel packed.
      const kv = (v: Float32Array) => (c.kv16 ? v.map(roundF16) : v);
      const kcache = kv(randn(a.capacity * c.kvHeads * c.hd, 20 + i, 2));
      const vcache = kv(randn(a.capacity * c.kvHeads * c.hd, 30 + i));
      const onGpu = c.kv16
        ? { kcache: packF16(kcache), vcache: packF16(vcache) }
        : { kcache, vcache };
      const ow = c.heads * c.hd;
      const out = new Float32Array(c.maxT * ow).fill(-777.25);
      const step = { T: c.T, pos: c.pos, L: 1 };
      const gen = attentionKernel(a, { caps: gpu.caps, maxT: c.maxT });
      const outputs: Record<string, number> = {};
      for (const [name, bytes] of Object.entries(gen.scratch)) outputs[name] = bytes / 4;
      const got = await runLaunches(gen.launches, {
        inputs: { q, ...onGpu, out },
        outputs,
        step,
      });
      const want = attention.reference(a, { q, kcache, vcache }, step).out;
      expect(maxRelError(got.out.subarray(0, c.T * ow), want)).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('block-sparse kernel skips what the layout drops', () => {
  // NaN in every value row of a key block no query of the step keeps: a kernel that staged such
  // a block would multiply a NaN by its zero probability and return NaN.
  const skipCases: Case[] = [
    { heads: 4, kvHeads: 2, hd: 8, T: 1, maxT: 1, pos: 150, pattern: bs(8, strided(2, 6, 1)) },
    { heads: 2, kvHeads: 1, hd: 8, T: 16, maxT: 16, pos: 96, pattern: bs(16, local(2)) },
  ];
  for (const c of skipCases) {
    it(`never reads a dropped block: ${label(c)}`, async () => {
      const gpu = await testGpu();
      const a = attrs(c);
      const B = c.pattern!.block;
      const kvw = c.kvHeads * c.hd;
      const q = randn(c.maxT * c.heads * c.hd, 5, 2);
      const kcache = randn(a.capacity * kvw, 6, 2);
      const vcache = randn(a.capacity * kvw, 7);
      const qb0 = Math.floor(c.pos / B);
      const qb1 = Math.floor((c.pos + c.T - 1) / B);
      let dropped = 0;
      for (let kb = 0; kb * B < c.pos + c.T; kb++) {
        let kept = false;
        for (let qb = qb0; qb <= qb1; qb++) kept ||= keepBlock(c.pattern!.layout, qb, kb);
        if (kept) continue;
        dropped++;
        vcache.fill(NaN, kb * B * kvw, Math.min(a.capacity, (kb + 1) * B) * kvw);
      }
      expect(dropped).toBeGreaterThan(3);
      const ow = c.heads * c.hd;
      const step = { T: c.T, pos: c.pos, L: 1 };
      const gen = attentionKernel(a, { caps: gpu.caps, maxT: c.maxT });
      const outputs: Record<string, number> = {};
      for (const [name, bytes] of Object.entries(gen.scratch)) outputs[name] = bytes / 4;
      const out = new Float32Array(c.maxT * ow);
      const got = await runLaunches(gen.launches, {
        inputs: { q, kcache, vcache, out },
        outputs,
        step,
      });
      const want = attention.reference(a, { q, kcache, vcache }, step).out;
      expect(want.every(Number.isFinite)).toBe(true);
      expect(maxRelError(got.out.subarray(0, c.T * ow), want)).toBeLessThanOrEqual(1e-4);
    });
  }
});
