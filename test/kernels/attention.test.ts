import { describe, expect, it } from 'vitest';
import {
  attentionKernel,
  decodeSplits,
  decodeTiles,
  DECODE_SCRATCH,
  flashFloats,
  prefillTiles,
} from '../../codegen/kernels/attention.ts';
import { BASELINE_CAPS, type DeviceCaps } from '../../src/target.ts';
import type { AttentionAttrs } from '../../src/graph/ops.ts';
import { attention, visibleKeys } from '../../src/ops/attention.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';
import { packF16 } from '../../formats/safetensors.ts';
import { roundF16 } from '../../src/ops/math.ts';
import { attentionAttrs, type AttentionCase } from '../helpers/attention.ts';

interface Case extends AttentionCase {
  capacity?: number;
  window?: number | null;
  softcap?: number | null;
  /** Per-head sink logits (GPT-OSS). */
  sinks?: boolean;
  /** Spread of q: large values make the softmax peaked, which exercises the running max. */
  qScale?: number;
  baseline?: boolean;
  /** f16 caches (kvType 'f16'). */
  kv16?: boolean;
  /** Bidirectional attention also sees cached rows up to this (a diffusion dual cache). */
  keys?: number;
  /** Values read from the key rows at this column (vFromK, MLA's latent cache); no vcache. */
  vk?: number;
  /** Block-causal attention over blocks of this many positions (BD3-LM); implies causal false. */
  block?: number;
  /** A phased mask (DiffusionGemma): causal at keys 0, the denoiser's mask at keys > 0. */
  phased?: boolean;
}

function attrs(c: Case): AttentionAttrs {
  return attentionAttrs(c, {
    causal: c.causal ?? true,
    window: c.window ?? null,
    softcap: c.softcap ?? null,
    sinks: c.sinks ?? false,
    capacity: c.capacity ?? c.pos + c.maxT + 3,
    ...(c.kv16 ? { kvType: 'f16' as const } : {}),
    ...(c.vk === undefined ? {} : { vFromK: c.vk }),
    ...(c.block === undefined ? {} : { causal: false, blockCausal: c.block }),
    ...(c.phased ? { phased: true } : {}),
  });
}

function label(c: Case): string {
  const a = attrs(c);
  const extra = [
    a.causal ? '' : 'non-causal',
    a.window === null ? '' : `window=${a.window}`,
    a.softcap === null ? '' : `softcap=${a.softcap}`,
    a.sinks ? 'sinks' : '',
    c.baseline ? 'baseline caps' : '',
    c.kv16 ? 'kv f16' : '',
    c.vk === undefined ? '' : `v from k at ${c.vk}`,
  ].filter(Boolean);
  if (c.keys !== undefined) extra.push(`keys=${c.keys}`);
  if (c.block !== undefined) extra.push(`block-causal ${c.block}`);
  if (c.phased) extra.push('phased');
  const vd = c.vd === undefined ? '' : ` vd=${c.vd}`;
  return `H=${c.heads} KVH=${c.kvHeads} hd=${c.hd}${vd} T=${c.T} pos=${c.pos} ${extra.join(' ')}`;
}

/** Runs the generated launches against the reference; rows >= T of `out` must keep their sentinel. */
async function check(c: Case, seed: number): Promise<void> {
  const gpu = await testGpu();
  const caps: DeviceCaps = c.baseline ? BASELINE_CAPS : gpu.caps;
  const a = attrs(c);
  const qw = c.heads * c.hd;
  const kvw = c.kvHeads * c.hd;
  const ow = c.heads * a.vHeadDim;
  const q = randn(c.maxT * qw, seed, c.qScale ?? 2);
  // Rows 0..pos-1 are past keys, pos..pos+T-1 the step's own; the rest is stale data that must be ignored.
  // An f16 cache holds f16 values: the reference reads them rounded, the kernel packed.
  const kv = (v: Float32Array) => (c.kv16 ? v.map(roundF16) : v);
  const kcache = kv(randn(a.capacity * kvw, seed + 1, 2));
  const vcache = kv(randn(a.capacity * c.kvHeads * a.vHeadDim, seed + 2));
  const caches: Record<string, Float32Array> = c.vk === undefined ? { kcache, vcache } : { kcache };
  const onGpu = c.kv16
    ? Object.fromEntries(Object.entries(caches).map(([k, v]) => [k, packF16(v)]))
    : caches;
  // Sinks around the scores' own scale, so they take a real but not dominant share.
  const sinkInput: Record<string, Float32Array> = a.sinks
    ? { sinks: randn(c.heads, seed + 3, 3) }
    : {};
  const sentinel = -777.25;
  const out = new Float32Array(c.maxT * ow).fill(sentinel);
  const step = { T: c.T, pos: c.pos, L: 1, ...(c.keys === undefined ? {} : { keys: c.keys }) };
  const gen = attentionKernel(a, { caps, maxT: c.maxT });
  const outputs: Record<string, number> = {};
  for (const [name, bytes] of Object.entries(gen.scratch)) outputs[name] = bytes / 4;
  const got = await runLaunches(gen.launches, {
    inputs: { q, ...onGpu, out, ...sinkInput },
    outputs,
    step,
  });
  const want = attention.reference(a, { q, ...caches, ...sinkInput }, step).out;
  expect(want.length).toBe(c.T * ow);
  const err = maxRelError(got.out.subarray(0, c.T * ow), want);
  expect(err).toBeLessThanOrEqual(1e-4);
  expect(got.out.subarray(c.T * ow).every((v) => v === sentinel)).toBe(true);
}

describe('attention reference', () => {
  it('visible key ranges follow causality and the window', () => {
    const step = { T: 4, pos: 10 };
    expect(visibleKeys({ causal: true, window: null }, 12, step)).toEqual([0, 13]);
    expect(visibleKeys({ causal: true, window: 3 }, 12, step)).toEqual([10, 13]);
    expect(visibleKeys({ causal: false, window: null }, 11, step)).toEqual([0, 14]);
    expect(visibleKeys({ causal: false, window: 2 }, 11, step)).toEqual([10, 13]);
    // `keys` extends bidirectional attention over cached rows after the step; causal ignores it.
    const dual = { ...step, keys: 20 };
    expect(visibleKeys({ causal: false, window: null }, 11, dual)).toEqual([0, 20]);
    expect(visibleKeys({ causal: false, window: 3 }, 11, dual)).toEqual([9, 14]);
    expect(visibleKeys({ causal: false, window: null }, 11, { ...step, keys: 3 })).toEqual([0, 14]);
    expect(visibleKeys({ causal: true, window: null }, 12, dual)).toEqual([0, 13]);
    // Block-causal: up to the end of the query's block; `keys` past it stay invisible.
    const blk = { causal: false, window: null, blockCausal: 4 };
    expect(visibleKeys(blk, 11, step)).toEqual([0, 12]);
    expect(visibleKeys(blk, 12, step)).toEqual([0, 14]);
    expect(visibleKeys(blk, 12, { ...step, keys: 40 })).toEqual([0, 16]);
    expect(visibleKeys({ ...blk, blockCausal: 1 }, 12, step)).toEqual([0, 13]);
    expect(visibleKeys({ ...blk, blockCausal: 64 }, 12, step)).toEqual([0, 14]);
  });

  it('a single visible key returns its value row; two equal scores average', () => {
    const a: AttentionAttrs = {
      op: 'attention',
      heads: 2,
      kvHeads: 1,
      headDim: 2,
      vHeadDim: 2,
      scale: 1,
      causal: true,
      window: null,
      softcap: null,
      sinks: false,
      capacity: 4,
    };
    const q = new Float32Array([1, 0, 0, 1, 0, 0, 0, 0]);
    const kcache = new Float32Array([1, 1, 1, 1, 0, 0, 0, 0]);
    const vcache = new Float32Array([2, 4, 6, 8, 0, 0, 0, 0]);
    const { out } = attention.reference(a, { q, kcache, vcache }, { T: 2, pos: 0, L: 1 });
    expect(Array.from(out)).toEqual([2, 4, 2, 4, 4, 6, 4, 6]);
    expect(() => attention.reference(a, { q, kcache, vcache }, { T: 2, pos: 3, L: 1 })).toThrow(
      /capacity/,
    );
  });

  it('softcap bounds scores: a huge score cannot take all the weight', () => {
    const a: AttentionAttrs = {
      op: 'attention',
      heads: 1,
      kvHeads: 1,
      headDim: 1,
      vHeadDim: 1,
      scale: 1,
      causal: true,
      window: null,
      softcap: 1,
      sinks: false,
      capacity: 2,
    };
    const r = attention.reference(
      a,
      {
        q: new Float32Array([0, 1000]),
        kcache: new Float32Array([1, 0]),
        vcache: new Float32Array([1, 0]),
      },
      { T: 2, pos: 0, L: 1 },
    ).out;
    // scores tanh(1000) ≈ 1 and 0: weight of key 0 is e / (e + 1).
    expect(r[1]).toBeCloseTo(Math.E / (Math.E + 1), 6);
  });

  it('a sink takes its share of the denominator and returns no value', () => {
    const a: AttentionAttrs = {
      ...attrs({ heads: 2, kvHeads: 1, hd: 1, T: 1, maxT: 1, pos: 1, capacity: 2 }),
      scale: 1,
      sinks: true,
    };
    // Two keys with scores 0 and ln 2 (values 1 and 4); head 0's sink ln 3, head 1's sink -1000.
    const r = attention.reference(
      a,
      {
        q: new Float32Array([1, 1]),
        kcache: new Float32Array([0, Math.log(2)]),
        vcache: new Float32Array([1, 4]),
        sinks: new Float32Array([Math.log(3), -1000]),
      },
      { T: 1, pos: 1, L: 1 },
    ).out;
    expect(r[0]).toBeCloseTo((1 * 1 + 2 * 4) / (1 + 2 + 3), 6);
    expect(r[1]).toBeCloseTo((1 * 1 + 2 * 4) / (1 + 2), 6);
  });

  it('cost counts visible pairs only', () => {
    const base = attrs({ heads: 2, kvHeads: 1, hd: 8, T: 4, maxT: 4, pos: 0 });
    const full = attention.cost(base, { T: 4, pos: 0, L: 1 });
    expect(full.flops).toBe(10 * 2 * (4 * 8 + 5));
    const win = attention.cost({ ...base, window: 1 }, { T: 4, pos: 0, L: 1 });
    expect(win.flops).toBe(4 * 2 * (4 * 8 + 5));
    const mla = attention.cost({ ...base, vHeadDim: 4 }, { T: 4, pos: 0, L: 1 });
    expect(mla.flops).toBe(10 * 2 * (2 * 8 + 2 * 4 + 5));
    expect(mla.bytesWritten).toBe(4 * 4 * 2 * 4);
  });

  it('a v head narrower than the q/k head: scores use hd, outputs are vd wide', () => {
    const a: AttentionAttrs = {
      ...attrs({ heads: 1, kvHeads: 1, hd: 3, T: 1, maxT: 1, pos: 1 }),
      vHeadDim: 1,
      scale: 1,
    };
    // q·k0 = 0, q·k1 = ln 3: weights 1/4 and 3/4 of v = [4, 8].
    const q = new Float32Array([Math.log(3), 0, 0]);
    const kcache = new Float32Array([0, 5, 5, 1, 0, 0, 9, 9, 9]);
    const vcache = new Float32Array([4, 8, 99]);
    const { out } = attention.reference(a, { q, kcache, vcache }, { T: 1, pos: 1, L: 1 });
    expect(out).toHaveLength(1);
    expect(out[0]).toBeCloseTo(7, 5);
  });
});

describe('attention tiles', () => {
  it('fit the baseline and the H100 limits for every head size', () => {
    const h100: DeviceCaps = {
      ...BASELINE_CAPS,
      maxInvocationsPerWorkgroup: 1024,
      maxWorkgroupSizeX: 1024,
      maxWorkgroupStorageBytes: 49152,
    };
    for (const caps of [BASELINE_CAPS, h100]) {
      for (const hd of [24, 40, 64, 80, 96, 128, 256]) {
        for (const t of [
          prefillTiles(hd, caps),
          decodeTiles(hd, 1, caps),
          decodeTiles(hd, 6, caps),
        ]) {
          expect(t.bq * t.tpr).toBeLessThanOrEqual(caps.maxInvocationsPerWorkgroup);
          expect(4 * flashFloats(hd, t)).toBeLessThanOrEqual(caps.maxWorkgroupStorageBytes);
          expect(t.tpr * t.dpt).toBeGreaterThanOrEqual(hd);
          // Split dot products: every partial sum has a thread.
          if ((t.sp ?? 1) > 1) expect(t.sp! * t.bq * t.bk).toBeLessThanOrEqual(t.bq * t.tpr);
        }
      }
      // MLA's latent rows (576 wide, every head one group) leave tiles of a few keys: their
      // scores split over threads, within the workgroup memory.
      const mla = decodeTiles(576, 128, caps);
      expect(mla.sp).toBeGreaterThanOrEqual(4);
      expect(4 * flashFloats(576, mla)).toBeLessThanOrEqual(caps.maxWorkgroupStorageBytes);
    }
    // Llama's decode shape keeps one thread per score (enough scores for every thread).
    expect(decodeTiles(64, 4, h100).sp).toBe(1);
    expect(decodeSplits(100, 8)).toBe(1);
    expect(decodeSplits(700, 8)).toBe(3);
    expect(decodeSplits(1 << 20, 8)).toBe(64);
    expect(decodeSplits(1 << 20, 1)).toBe(128);
  });
});

describe('attention prefill kernel', () => {
  const cases: Case[] = [
    { heads: 3, kvHeads: 3, hd: 24, T: 7, maxT: 9, pos: 0 },
    { heads: 8, kvHeads: 2, hd: 64, T: 33, maxT: 40, pos: 0 },
    { heads: 4, kvHeads: 1, hd: 128, T: 70, maxT: 70, pos: 0, baseline: true },
    { heads: 4, kvHeads: 1, hd: 64, T: 1, maxT: 16, pos: 5 },
    { heads: 5, kvHeads: 5, hd: 40, T: 70, maxT: 80, pos: 37 },
    { heads: 8, kvHeads: 2, hd: 64, T: 33, maxT: 33, pos: 90, qScale: 6 },
    { heads: 4, kvHeads: 2, hd: 24, T: 70, maxT: 70, pos: 30, window: 16 },
    { heads: 2, kvHeads: 1, hd: 64, T: 33, maxT: 33, pos: 3, window: 1 },
    { heads: 4, kvHeads: 4, hd: 64, T: 33, maxT: 33, pos: 11, softcap: 0.5, qScale: 8 },
    { heads: 3, kvHeads: 1, hd: 24, T: 33, maxT: 40, pos: 10, causal: false },
    { heads: 2, kvHeads: 2, hd: 40, T: 70, maxT: 70, pos: 0, causal: false, window: 9 },
    // A block recomputed against cached rows on both sides (dual cache): odd T, keys past pos + T.
    { heads: 3, kvHeads: 1, hd: 24, T: 7, maxT: 40, pos: 5, causal: false, keys: 45, capacity: 50 },
    { heads: 4, kvHeads: 2, hd: 40, T: 33, maxT: 40, pos: 0, causal: false, keys: 34 },
    {
      heads: 2,
      kvHeads: 2,
      hd: 24,
      T: 5,
      maxT: 9,
      pos: 3,
      causal: false,
      keys: 30,
      window: 4,
      capacity: 31,
    },
    { heads: 2, kvHeads: 1, hd: 24, T: 5, maxT: 9, pos: 3, causal: true, keys: 30, capacity: 31 },
    { heads: 2, kvHeads: 1, hd: 256, T: 17, maxT: 20, pos: 6 },
    { heads: 2, kvHeads: 1, hd: 256, T: 17, maxT: 20, pos: 6, baseline: true },
    { heads: 3, kvHeads: 1, hd: 96, T: 7, maxT: 8, pos: 2, softcap: 3, window: 4 },
    { heads: 6, kvHeads: 2, hd: 80, T: 33, maxT: 40, pos: 19 },
    { heads: 20, kvHeads: 1, hd: 24, T: 7, maxT: 7, pos: 4, window: 5 },
    // Sinks: awkward head sizes, T = 1, GQA, sliding window, a peaked softmax.
    { heads: 4, kvHeads: 2, hd: 24, T: 7, maxT: 9, pos: 0, sinks: true },
    { heads: 4, kvHeads: 1, hd: 64, T: 1, maxT: 16, pos: 5, sinks: true },
    { heads: 6, kvHeads: 2, hd: 40, T: 70, maxT: 80, pos: 37, sinks: true, window: 8 },
    { heads: 8, kvHeads: 2, hd: 64, T: 33, maxT: 33, pos: 90, qScale: 6, sinks: true },
    { heads: 3, kvHeads: 3, hd: 16, T: 1, maxT: 1, pos: 0, sinks: true },
    // MLA shapes: v heads narrower (DeepSeek-V3: 192/128) or wider than q/k heads, odd widths.
    { heads: 4, kvHeads: 4, hd: 24, vd: 16, T: 7, maxT: 9, pos: 0 },
    { heads: 3, kvHeads: 3, hd: 192, vd: 128, T: 33, maxT: 40, pos: 5 },
    { heads: 2, kvHeads: 1, hd: 13, vd: 7, T: 70, maxT: 70, pos: 3 },
    { heads: 3, kvHeads: 1, hd: 20, vd: 36, T: 1, maxT: 16, pos: 9, window: 6 },
    { heads: 2, kvHeads: 2, hd: 192, vd: 128, T: 17, maxT: 20, pos: 2, baseline: true },
  ];
  cases.forEach((c, i) => it(label(c), () => check(c, 100 + i)));

  it('launches ceil(T·group / BQ) row blocks per kv head', () => {
    const a = attrs({ heads: 3, kvHeads: 1, hd: 64, T: 50, maxT: 50, pos: 0 });
    const { launches, scratch } = attentionKernel(a, { caps: BASELINE_CAPS, maxT: 50 });
    const { bq } = prefillTiles(64, BASELINE_CAPS);
    expect(launches).toHaveLength(1);
    expect(launches[0].grid).toEqual([{ sym: 'T', mul: 3, div: bq }, 1, 1]);
    expect(scratch).toEqual({});
  });

  it('rejects heads that are not a multiple of kvHeads', () => {
    const a = { ...attrs({ heads: 3, kvHeads: 2, hd: 8, T: 1, maxT: 2, pos: 0 }) };
    expect(() => attentionKernel(a, { caps: BASELINE_CAPS, maxT: 2 })).toThrow(/multiple/);
  });
});

describe('attention kernel, phased mask (DiffusionGemma)', () => {
  const cases: Case[] = [
    // Encoding (keys 0): causal, with and without a window, prefill and decode kernels.
    { heads: 4, kvHeads: 2, hd: 24, T: 13, maxT: 16, pos: 3, phased: true },
    { heads: 3, kvHeads: 1, hd: 40, T: 37, maxT: 40, pos: 5, phased: true, window: 7 },
    {
      heads: 4,
      kvHeads: 2,
      hd: 64,
      T: 1,
      maxT: 1,
      pos: 300,
      capacity: 400,
      phased: true,
      window: 9,
    },
    // Denoising (keys = pos + T): every row sees [pos − window + 1, pos + T), odd widths, GQA.
    { heads: 4, kvHeads: 2, hd: 24, T: 13, maxT: 16, pos: 20, phased: true, keys: 33 },
    { heads: 2, kvHeads: 2, hd: 13, T: 9, maxT: 12, pos: 6, phased: true, window: 4, keys: 15 },
    // The window reaching past position 0, a canvas longer than the window, stale rows after.
    {
      heads: 3,
      kvHeads: 1,
      hd: 40,
      T: 37,
      maxT: 40,
      pos: 2,
      phased: true,
      window: 8,
      keys: 39,
      capacity: 45,
    },
    {
      heads: 4,
      kvHeads: 1,
      hd: 64,
      T: 33,
      maxT: 40,
      pos: 70,
      phased: true,
      window: 16,
      keys: 103,
      capacity: 110,
      qScale: 6,
    },
    {
      heads: 4,
      kvHeads: 2,
      hd: 24,
      T: 17,
      maxT: 20,
      pos: 11,
      phased: true,
      window: 5,
      keys: 28,
      kv16: true,
    },
    // A one-row canvas through the decode kernel.
    {
      heads: 4,
      kvHeads: 2,
      hd: 64,
      T: 1,
      maxT: 1,
      pos: 300,
      capacity: 400,
      phased: true,
      window: 9,
      keys: 301,
    },
  ];
  cases.forEach((c, i) => it(label(c), () => check(c, 700 + i)));

  it('encoding is the causal mask, denoising the window of the first row then every key', () => {
    const m = { causal: true, window: 3, phased: true };
    const enc = { T: 4, pos: 10 };
    expect(visibleKeys(m, 12, enc)).toEqual([10, 13]);
    expect(visibleKeys({ ...m, window: null }, 12, enc)).toEqual([0, 13]);
    const den = { ...enc, keys: 14 };
    expect(visibleKeys(m, 10, den)).toEqual([8, 14]);
    expect(visibleKeys(m, 13, den)).toEqual([8, 14]);
    expect(visibleKeys({ ...m, window: 20 }, 13, den)).toEqual([0, 14]);
    expect(visibleKeys({ ...m, window: null }, 13, den)).toEqual([0, 14]);
    const a = attrs({ heads: 2, kvHeads: 1, hd: 8, T: 2, maxT: 2, pos: 0, phased: true });
    expect(() => attention.check({ ...a, causal: false })).toThrow(/phased mask needs causal true/);
  });
});

describe('attention kernel, block-causal (BD3-LM)', () => {
  const cases: Case[] = [
    // T not a multiple of the block, a step starting mid-block, GQA, odd head widths.
    { heads: 4, kvHeads: 2, hd: 24, T: 13, maxT: 16, pos: 0, block: 4 },
    { heads: 3, kvHeads: 1, hd: 40, T: 37, maxT: 40, pos: 0, block: 16 },
    { heads: 2, kvHeads: 2, hd: 13, T: 9, maxT: 12, pos: 6, block: 4 },
    // A step over one block against cached earlier blocks, with stale rows after it.
    { heads: 4, kvHeads: 1, hd: 64, T: 8, maxT: 40, pos: 24, block: 8, keys: 40, capacity: 41 },
    // T = 1 (prefill kernel and decode kernel).
    { heads: 4, kvHeads: 2, hd: 24, T: 1, maxT: 16, pos: 5, block: 4 },
    { heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 300, capacity: 400, block: 8 },
    // Block 1 is causal; a block of at least T is bidirectional.
    { heads: 3, kvHeads: 3, hd: 24, T: 33, maxT: 40, pos: 2, block: 1 },
    { heads: 3, kvHeads: 3, hd: 24, T: 33, maxT: 40, pos: 0, block: 64 },
    { heads: 4, kvHeads: 2, hd: 24, T: 17, maxT: 20, pos: 0, block: 5, kv16: true, qScale: 6 },
  ];
  cases.forEach((c, i) => it(label(c), () => check(c, 500 + i)));

  it('block 1 equals causal and a block of at least T equals bidirectional (reference)', () => {
    const base = attrs({ heads: 2, kvHeads: 1, hd: 8, T: 9, maxT: 9, pos: 0 });
    const q = randn(9 * 16, 1);
    const kcache = randn(base.capacity * 8, 2);
    const vcache = randn(base.capacity * 8, 3);
    const step = { T: 9, pos: 0, L: 1 };
    const run = (a: AttentionAttrs) => attention.reference(a, { q, kcache, vcache }, step).out;
    expect(run({ ...base, causal: false, blockCausal: 1 })).toEqual(run(base));
    expect(run({ ...base, causal: false, blockCausal: 9 })).toEqual(
      run({ ...base, causal: false }),
    );
    expect(() => run({ ...base, blockCausal: 4 })).toThrow(/blockCausal 4 needs causal false/);
  });
});

describe('attention decode kernel (split-K)', () => {
  const cases: Case[] = [
    { heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 0, capacity: 700 },
    { heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 1, capacity: 700 },
    { heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 255, capacity: 700 },
    { heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 600, capacity: 700, qScale: 6 },
    { heads: 3, kvHeads: 3, hd: 24, T: 1, maxT: 1, pos: 513, capacity: 1100 },
    { heads: 6, kvHeads: 1, hd: 128, T: 1, maxT: 1, pos: 1099, capacity: 1100 },
    { heads: 2, kvHeads: 1, hd: 40, T: 1, maxT: 1, pos: 77, capacity: 200 },
    { heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 650, capacity: 700, window: 300 },
    { heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 650, capacity: 700, window: 2 },
    { heads: 2, kvHeads: 2, hd: 80, T: 1, maxT: 1, pos: 400, capacity: 520, softcap: 1, qScale: 8 },
    { heads: 2, kvHeads: 1, hd: 256, T: 1, maxT: 1, pos: 333, capacity: 800 },
    { heads: 4, kvHeads: 1, hd: 64, T: 1, maxT: 1, pos: 450, capacity: 700, causal: false },
    {
      heads: 4,
      kvHeads: 1,
      hd: 64,
      T: 1,
      maxT: 1,
      pos: 0,
      capacity: 700,
      causal: false,
      keys: 613,
    },
    { heads: 3, kvHeads: 3, hd: 24, T: 1, maxT: 1, pos: 17, capacity: 40, causal: false, keys: 40 },
    { heads: 6, kvHeads: 2, hd: 96, T: 1, maxT: 1, pos: 300, capacity: 1500 },
    { heads: 24, kvHeads: 1, hd: 40, T: 1, maxT: 1, pos: 290, capacity: 600, softcap: 2 },
    { heads: 2, kvHeads: 1, hd: 256, T: 1, maxT: 1, pos: 270, capacity: 300, baseline: true },
    // Sinks: folded in by the combine launch (one split and several, GQA, sliding window).
    { heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 0, capacity: 700, sinks: true },
    { heads: 6, kvHeads: 2, hd: 24, T: 1, maxT: 1, pos: 9, capacity: 20, sinks: true },
    {
      heads: 4,
      kvHeads: 2,
      hd: 64,
      T: 1,
      maxT: 1,
      pos: 650,
      capacity: 700,
      sinks: true,
      window: 8,
    },
    {
      heads: 8,
      kvHeads: 1,
      hd: 40,
      T: 1,
      maxT: 1,
      pos: 513,
      capacity: 1100,
      sinks: true,
      qScale: 6,
    },
    { heads: 4, kvHeads: 4, hd: 24, vd: 16, T: 1, maxT: 1, pos: 0, capacity: 64 },
    { heads: 3, kvHeads: 3, hd: 192, vd: 128, T: 1, maxT: 1, pos: 530, capacity: 700 },
    { heads: 2, kvHeads: 1, hd: 13, vd: 7, T: 1, maxT: 1, pos: 301, capacity: 400 },
    { heads: 4, kvHeads: 2, hd: 12, vd: 20, T: 1, maxT: 1, pos: 77, capacity: 300 },
    // One head per kv head at widths 128 and 80: a tile's scores are a quarter of the threads or
    // fewer, so each is split over threads (FlashTiles.sp).
    { heads: 2, kvHeads: 2, hd: 128, T: 1, maxT: 1, pos: 333, capacity: 400 },
    { heads: 3, kvHeads: 3, hd: 80, T: 1, maxT: 1, pos: 40, capacity: 60, window: 9 },
  ];
  cases.forEach((c, i) => it(label(c), () => check(c, 300 + i)));

  it('binds sinks to the combine launch only', () => {
    const a = attrs({ heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 0, sinks: true });
    const { launches } = attentionKernel(a, { caps: BASELINE_CAPS, maxT: 1 });
    const names = launches.map((l) => l.kernel.bindings.map((b) => b.name));
    expect(names[0]).not.toContain('sinks');
    expect(names[1]).toContain('sinks');
  });

  it('splits the cache and declares its scratch', () => {
    const a = attrs({ heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 0, capacity: 700 });
    const { launches, scratch } = attentionKernel(a, { caps: BASELINE_CAPS, maxT: 1 });
    expect(launches).toHaveLength(2);
    // Blocks hold the 2 heads of a kv head: grid (row blocks, kv heads, splits).
    expect(launches[0].grid).toEqual([1, 2, 3]);
    expect(launches[1].grid).toEqual([4, { sym: 'T' }, 1]);
    expect(scratch).toEqual({
      [DECODE_SCRATCH.ml]: 4 * 2 * 4 * 3,
      [DECODE_SCRATCH.acc]: 4 * 4 * 3 * 64,
    });
  });
});

/**
 * f16 caches: the kernel unpacks the same f16 values the reference reads, so the f32 tolerance
 * (1e-4, f32 sums against f64 ones) still holds. Heads divisible by 4 take the vec2<u32> path
 * (four halves a load), the rest the one-half path (hd 14, 6, 10, 22).
 */
describe('attention with f16 caches', () => {
  // The f16 cache changes only how K and V rows load (two halves a word; the masks, tiles and
  // splits are the f32 kernels', tested above): odd and even head widths, T = 1, GQA, the
  // baseline tiles, a window, softcap, sinks, and v heads narrower or wider than q/k. (Half
  // the f32 lists: every case compiles its own kernels, seconds each on SwiftShader.)
  const prefill: Case[] = [
    { heads: 3, kvHeads: 3, hd: 24, T: 7, maxT: 9, pos: 0 },
    { heads: 4, kvHeads: 1, hd: 128, T: 70, maxT: 70, pos: 0, baseline: true },
    { heads: 3, kvHeads: 3, hd: 16, T: 1, maxT: 1, pos: 0 },
    { heads: 6, kvHeads: 2, hd: 6, T: 33, maxT: 40, pos: 19, qScale: 6 },
    { heads: 4, kvHeads: 4, hd: 64, T: 33, maxT: 33, pos: 11, softcap: 0.5, qScale: 8 },
    { heads: 6, kvHeads: 2, hd: 40, T: 70, maxT: 80, pos: 37, sinks: true, window: 8 },
    { heads: 2, kvHeads: 1, hd: 14, vd: 10, T: 70, maxT: 70, pos: 3 },
  ];
  const decode: Case[] = [
    { heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 600, capacity: 700, qScale: 6 },
    { heads: 2, kvHeads: 1, hd: 14, T: 1, maxT: 1, pos: 77, capacity: 200 },
    { heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 650, capacity: 700, window: 2 },
    { heads: 6, kvHeads: 2, hd: 24, T: 1, maxT: 1, pos: 9, capacity: 20, sinks: true },
    { heads: 2, kvHeads: 1, hd: 256, T: 1, maxT: 1, pos: 270, capacity: 300, baseline: true },
    { heads: 3, kvHeads: 3, hd: 192, vd: 128, T: 1, maxT: 1, pos: 530, capacity: 700 },
  ];
  prefill.forEach((c, i) => it(`prefill ${label(c)}`, () => check({ ...c, kv16: true }, 500 + i)));
  decode.forEach((c, i) => it(`decode ${label(c)}`, () => check({ ...c, kv16: true }, 700 + i)));

  it('binds the caches as u32 words and names the variant', () => {
    const a = attrs({ heads: 4, kvHeads: 2, hd: 64, T: 1, maxT: 1, pos: 0, kv16: true });
    const { launches } = attentionKernel(a, { caps: BASELINE_CAPS, maxT: 1 });
    expect(launches[0].kernel.code).toContain('array<vec2<u32>>');
    expect(launches[0].kernel.name).toContain('kv16');
    const odd = attrs({ heads: 2, kvHeads: 1, hd: 14, T: 1, maxT: 4, pos: 0, kv16: true });
    expect(attentionKernel(odd, { caps: BASELINE_CAPS, maxT: 4 }).launches[0].kernel.code).toMatch(
      /array<u32>/,
    );
  });

  it('refuses odd head widths', () => {
    const a = attrs({ heads: 2, kvHeads: 1, hd: 13, vd: 8, T: 1, maxT: 2, pos: 0, kv16: true });
    expect(() => attentionKernel(a, { caps: BASELINE_CAPS, maxT: 2 })).toThrow(
      /kvType 'f16' .* even headDim, got 13/,
    );
    expect(() => attention.check({ ...a, headDim: 8, vHeadDim: 7 })).toThrow(/even vHeadDim/);
  });

  it('counts the cache bytes at two per element', () => {
    const a = attrs({ heads: 2, kvHeads: 1, hd: 8, T: 1, maxT: 1, pos: 9 });
    const step = { T: 1, pos: 9, L: 1 };
    const f32 = attention.cost(a, step).bytesRead;
    const f16 = attention.cost({ ...a, kvType: 'f16' }, step).bytesRead;
    expect(f32 - f16).toBe(2 * 10 * (8 + 8));
  });
});

describe('attention with values in the key rows (vFromK, MLA latent cache)', () => {
  it('the reference equals attention over a value cache cut from the key rows', () => {
    const a: AttentionAttrs = {
      op: 'attention',
      heads: 4,
      kvHeads: 2,
      headDim: 6,
      vHeadDim: 3,
      scale: 0.4,
      causal: true,
      window: null,
      softcap: null,
      sinks: false,
      capacity: 9,
      vFromK: 2,
    };
    const step = { T: 3, pos: 4, L: 1 };
    const q = randn(step.T * 4 * 6, 1, 2);
    const kcache = randn(9 * 2 * 6, 2, 2);
    const vcache = new Float32Array(9 * 2 * 3);
    for (let r = 0; r < 9 * 2; r++) vcache.set(kcache.subarray(r * 6 + 2, r * 6 + 5), r * 3);
    const got = attention.reference(a, { q, kcache }, step).out;
    const want = attention.reference({ ...a, vFromK: null }, { q, kcache, vcache }, step).out;
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(Object.keys(attention.inputs(a))).toEqual(['q', 'kcache']);
    expect(attention.cost(a, step).bytesRead).toBe(
      attention.cost({ ...a, vFromK: null }, step).bytesRead - 4 * 7 * 2 * 3,
    );
  });

  it('refuses value columns outside the key head', () => {
    const a = attrs({ heads: 2, kvHeads: 1, hd: 8, vd: 6, T: 1, maxT: 1, pos: 0, vk: 3 });
    expect(() => attention.check(a)).toThrow(/\[3, 9\) must lie inside the key head of 8/);
    expect(() => attention.check({ ...a, vFromK: 1, kvType: 'f16' })).toThrow(/even vFromK/);
  });

  // MLA's shape: one kv head shared by every head, value = the latent at the row's start; odd
  // widths (scalar loads), 4-aligned ones (vec4 loads), T = 1 and f16 caches.
  const cases: Case[] = [
    { heads: 3, kvHeads: 1, hd: 18, vd: 13, vk: 0, T: 7, maxT: 8, pos: 5 },
    { heads: 5, kvHeads: 1, hd: 20, vd: 12, vk: 4, T: 19, maxT: 24, pos: 0 },
    { heads: 3, kvHeads: 1, hd: 18, vd: 13, vk: 0, T: 1, maxT: 1, pos: 37 },
    { heads: 4, kvHeads: 1, hd: 72, vd: 64, vk: 0, T: 1, maxT: 1, pos: 300, capacity: 700 },
    { heads: 2, kvHeads: 2, hd: 10, vd: 5, vk: 3, T: 1, maxT: 1, pos: 12, baseline: true },
    { heads: 3, kvHeads: 1, hd: 18, vd: 14, vk: 2, T: 6, maxT: 6, pos: 3, kv16: true },
    { heads: 4, kvHeads: 1, hd: 72, vd: 64, vk: 0, T: 1, maxT: 1, pos: 40, kv16: true },
    // DeepSeek-V3's latent width (512 + 64 rope) under groups of 6 and 10: split dot products
    // over tiles of a few keys, a partial last row block, two key splits; f16 too. (Small
    // groups and contexts: SwiftShader takes seconds a case at this width.)
    { heads: 10, kvHeads: 1, hd: 576, vd: 512, vk: 0, T: 1, maxT: 1, pos: 290, capacity: 300 },
    {
      heads: 6,
      kvHeads: 1,
      hd: 576,
      vd: 512,
      vk: 0,
      T: 1,
      maxT: 1,
      pos: 150,
      capacity: 160,
      kv16: true,
      softcap: 3,
    },
  ];
  cases.forEach((c, i) => it(label(c), () => check(c, 900 + i)));

  // The wide decode kernel (attention-wide.ts: groups of 4 or more heads, 4-aligned widths, an
  // f32 cache): one key, tiles of 64 with a partial last one over several splits, G = 16, 8 and
  // 4 heads a workgroup (the baseline's 16 KiB holds 4 queries of 576), two kv heads, value
  // columns past the start of the row, a peaked softmax.
  const wide: Case[] = [
    { heads: 16, kvHeads: 1, hd: 576, vd: 512, vk: 0, T: 1, maxT: 1, pos: 0, capacity: 70 },
    { heads: 8, kvHeads: 1, hd: 576, vd: 512, vk: 0, T: 1, maxT: 1, pos: 300, capacity: 520 },
    { heads: 8, kvHeads: 1, hd: 576, vd: 512, vk: 0, T: 1, maxT: 1, pos: 90, baseline: true },
    { heads: 32, kvHeads: 2, hd: 40, vd: 24, vk: 8, T: 1, maxT: 1, pos: 130, capacity: 200 },
    { heads: 12, kvHeads: 1, hd: 20, vd: 12, vk: 4, T: 1, maxT: 1, pos: 63, capacity: 64 },
    {
      heads: 16,
      kvHeads: 1,
      hd: 64,
      vd: 64,
      vk: 0,
      T: 1,
      maxT: 1,
      pos: 1000,
      capacity: 1100,
      qScale: 6,
    },
    // f16 caches: four halves a load.
    { heads: 8, kvHeads: 1, hd: 576, vd: 512, vk: 0, T: 1, maxT: 1, pos: 70, kv16: true },
    { heads: 8, kvHeads: 2, hd: 40, vd: 24, vk: 8, T: 1, maxT: 1, pos: 77, kv16: true },
  ];
  wide.forEach((c, i) => it(`wide decode ${label(c)}`, () => check(c, 950 + i)));

  // The wide kernel in prefill (a workgroup per token and G heads, rows normalised in place):
  // a partial 64-key tile past the cached prefix, two kv heads from an empty cache with fewer
  // rows than the buffers hold, one token of a prefill-sized step at G = 4, an f16 cache.
  const widePrefill: Case[] = [
    { heads: 16, kvHeads: 1, hd: 576, vd: 512, vk: 0, T: 5, maxT: 6, pos: 70 },
    { heads: 8, kvHeads: 2, hd: 40, vd: 24, vk: 8, T: 9, maxT: 12, pos: 0 },
    { heads: 4, kvHeads: 1, hd: 72, vd: 64, vk: 0, T: 1, maxT: 3, pos: 100, baseline: true },
    { heads: 8, kvHeads: 1, hd: 576, vd: 512, vk: 0, T: 3, maxT: 4, pos: 5, kv16: true, qScale: 6 },
  ];
  widePrefill.forEach((c, i) => it(`wide prefill ${label(c)}`, () => check(c, 970 + i)));

  // Prefill with fewer rows a block than heads a kv head (wide heads): a token's row blocks
  // are in the grid's z, so 4,096 tokens of 128 heads fit the 65,535 limit of x.
  // (Softcapped, so the flash body runs rather than the wide kernel.)
  const folded: Case[] = [
    { heads: 16, kvHeads: 1, hd: 576, vd: 512, vk: 0, T: 3, maxT: 3, pos: 2, softcap: 30 },
    { heads: 16, kvHeads: 2, hd: 520, vd: 260, vk: 0, T: 2, maxT: 4, pos: 0, softcap: 30 },
  ];
  folded.forEach((c, i) => it(`prefill, row blocks in z: ${label(c)}`, () => check(c, 960 + i)));

  it("folds a token's row blocks into z where a block holds part of its heads", () => {
    const mla: Case = {
      heads: 128,
      kvHeads: 1,
      hd: 576,
      vd: 512,
      vk: 0,
      T: 4096,
      maxT: 4096,
      pos: 0,
      softcap: 30,
    };
    const l = attentionKernel(attrs(mla), { caps: BASELINE_CAPS, maxT: 4096 }).launches[0];
    const bq = Number(/_q(\d+)k/.exec(l.kernel.name)![1]);
    expect(bq).toBeLessThan(128);
    expect(l.grid).toEqual([{ sym: 'T' }, 1, 128 / bq]);
    // Narrow heads keep whole tokens in a block: x counts blocks.
    const llama = attentionKernel(
      attrs({ heads: 8, kvHeads: 2, hd: 64, T: 64, maxT: 64, pos: 0 }),
      {
        caps: BASELINE_CAPS,
        maxT: 64,
      },
    ).launches[0];
    expect(llama.grid[2]).toBe(1);
  });

  it('takes the wide kernel only where it applies', async () => {
    const gpu = await testGpu();
    const first = (c: Case, caps = gpu.caps) =>
      attentionKernel(attrs(c), { caps, maxT: c.maxT }).launches[0].kernel.name;
    const mla: Case = { heads: 128, kvHeads: 1, hd: 576, vd: 512, vk: 0, T: 1, maxT: 1, pos: 9 };
    expect(first(mla)).toMatch(/^attention_wide_.*_g(16|8|4)_/);
    expect(first(mla, BASELINE_CAPS)).toMatch(/^attention_wide_.*_g4_/);
    // Prefill too (one workgroup a token); not for softcaps, groups of 2 or 6, or values from
    // their own cache.
    expect(first({ ...mla, T: 4, maxT: 4 })).toMatch(/^attention_wide_.*_final$/);
    expect(first({ ...mla, T: 4, maxT: 4, softcap: 3 })).toMatch(/^attention_flash/);
    expect(first({ ...mla, kv16: true })).toMatch(/^attention_wide_.*_kv16_/);
    expect(first({ ...mla, softcap: 3 })).toMatch(/^attention_split/);
    expect(first({ ...mla, heads: 6 })).toMatch(/^attention_split/);
    expect(first({ ...mla, vk: undefined, vd: 576 })).toMatch(/^attention_split/);
  });

  it('binds no vcache', () => {
    const a = attrs({ heads: 3, kvHeads: 1, hd: 18, vd: 13, vk: 0, T: 1, maxT: 1, pos: 0 });
    const names = attentionKernel(a, { caps: BASELINE_CAPS, maxT: 1 }).launches[0].kernel.bindings;
    expect(names.map((b) => b.name)).not.toContain('vcache');
  });
});
