/**
 * StreamingLLM attention (sink tokens + rolling window over ring KV caches): the ring reference
 * equals dense attention under the same mask; the attention, kv_write and ropeKv-matmul kernels
 * match their references on the ring's row rule (odd shapes, T = 1, prefill chunks across the
 * wrap, window 1, no sinks).
 */
import { describe, expect, it } from 'vitest';
import { attentionKernel } from '../../codegen/kernels/attention.ts';
import { kvWriteKernel } from '../../codegen/kernels/rope.ts';
import { cacheRow, type AttentionAttrs, type KvWriteAttrs } from '../../src/graph/ops.ts';
import { attention, kvWrite, visibleRanges } from '../../src/ops/attention.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';
import { packF16 } from '../../formats/safetensors.ts';
import { roundF16 } from '../../src/ops/math.ts';
import { attentionAttrs } from '../helpers/attention.ts';

interface Ring {
  heads: number;
  kvHeads: number;
  hd: number;
  window: number;
  sink: number;
  /** Largest step (the ring keeps maxT − 1 rows of slack). */
  maxT: number;
  softcap?: number | null;
  sinks?: boolean;
  /** f16 caches (kvType 'f16'). */
  kv16?: boolean;
}

function ringRows(c: Ring): number {
  return c.sink + c.window + c.maxT - 1;
}

function attnAttrs(c: Ring, ring: boolean, capacity: number): AttentionAttrs {
  return attentionAttrs(c, {
    window: c.window,
    softcap: c.softcap ?? null,
    sinks: c.sinks ?? false,
    capacity: ring ? ringRows(c) : capacity,
    sinkTokens: c.sink,
    ...(ring ? { ring: { sink: c.sink } } : {}),
    ...(c.kv16 ? { kvType: 'f16' as const } : {}),
  });
}

describe('streaming attention reference', () => {
  it('sees the sinks and the window, merged where they touch', () => {
    const a = { causal: true, window: 3, sinkTokens: 2 };
    const step = { T: 1, pos: 0 };
    expect(visibleRanges(a, 10, { ...step, pos: 10 })).toEqual([
      [0, 2],
      [8, 11],
    ]);
    expect(visibleRanges(a, 4, { ...step, pos: 4 })).toEqual([[0, 5]]);
    expect(visibleRanges(a, 0, step)).toEqual([[0, 1]]);
    expect(visibleRanges({ ...a, sinkTokens: 0 }, 10, { ...step, pos: 10 })).toEqual([[8, 11]]);
  });

  it('the ring row rule keeps the sinks and wraps the rest', () => {
    const ring = { sink: 4 };
    expect([0, 3, 4, 9, 10, 11, 16].map((j) => cacheRow(ring, 10, j))).toEqual([
      0, 3, 4, 9, 4, 5, 4,
    ]);
    expect([0, 5, 7].map((j) => cacheRow({ sink: 0 }, 3, j))).toEqual([0, 2, 1]);
  });

  it('a ring too small for its window and step, or sinks without a window, is an error', () => {
    const c: Ring = { heads: 1, kvHeads: 1, hd: 2, window: 4, sink: 2, maxT: 3 };
    const a = attnAttrs(c, true, 0);
    const q = new Float32Array(8);
    const kv = new Float32Array(2 * a.capacity);
    expect(() =>
      attention.reference(a, { q, kcache: kv, vcache: kv }, { T: 4, pos: 9, L: 1 }),
    ).toThrow(/ring cache of 8 rows cannot hold sink_tokens 2 \+ window 4 \+ 3 more rows/);
    expect(() => attention.check({ ...a, window: null })).toThrow(
      /need causal attention with a window/,
    );
  });

  // Chunked writes of a long sequence into a ring cache and into a dense one; after every step
  // the ring's attention equals dense attention with the same mask.
  const cases: (Ring & { steps: number[] })[] = [
    {
      heads: 4,
      kvHeads: 2,
      hd: 6,
      window: 5,
      sink: 3,
      maxT: 4,
      steps: [4, 1, 3, 4, 1, 1, 2, 4, 4, 1],
    },
    { heads: 3, kvHeads: 1, hd: 5, window: 1, sink: 0, maxT: 2, steps: [2, 1, 2, 2, 1, 1, 2] },
    { heads: 2, kvHeads: 2, hd: 4, window: 3, sink: 5, maxT: 1, steps: Array(15).fill(1) },
  ];
  for (const c of cases) {
    it(`ring equals dense: window ${c.window}, ${c.sink} sinks, steps ${c.steps.join(',')}`, () => {
      const total = c.steps.reduce((a, b) => a + b, 0);
      const kvw = c.kvHeads * c.hd;
      const ring = attnAttrs(c, true, 0);
      const dense = attnAttrs(c, false, total);
      const w = (a: AttentionAttrs): KvWriteAttrs => ({
        op: 'kv_write',
        width: kvw,
        capacity: a.capacity,
        columns: null,
        ...(a.ring ? { ring: a.ring } : {}),
      });
      const caches = (a: AttentionAttrs): { k: Float32Array; v: Float32Array } => ({
        k: new Float32Array(a.capacity * kvw),
        v: new Float32Array(a.capacity * kvw),
      });
      const rc = caches(ring);
      const dc = caches(dense);
      let pos = 0;
      for (const [i, T] of c.steps.entries()) {
        const step = { T, pos, L: 1 };
        const k = randn(T * kvw, 100 + i);
        const v = randn(T * kvw, 200 + i);
        const q = randn(T * c.heads * c.hd, 300 + i, 2);
        for (const [a, cc] of [
          [ring, rc],
          [dense, dc],
        ] as const) {
          cc.k = kvWrite.reference(w(a), { x: k, cache: cc.k }, step).cache as Float32Array;
          cc.v = kvWrite.reference(w(a), { x: v, cache: cc.v }, step).cache as Float32Array;
        }
        const got = attention.reference(ring, { q, kcache: rc.k, vcache: rc.v }, step).out;
        const want = attention.reference(dense, { q, kcache: dc.k, vcache: dc.v }, step).out;
        expect(Array.from(got)).toEqual(Array.from(want));
        pos += T;
      }
    });
  }
});

describe('streaming attention kernels', () => {
  interface KCase extends Ring {
    T: number;
    pos: number;
    /** Sink tokens over a cache with a row per position (no ring: capacity ≤ the ring's rows). */
    dense?: boolean;
  }
  const kcases: KCase[] = [
    // Decode (T = 1) past the wrap, GQA, odd head width.
    { heads: 4, kvHeads: 2, hd: 7, window: 9, sink: 4, maxT: 1, T: 1, pos: 57 },
    // Decode before the wrap and inside the sinks.
    { heads: 2, kvHeads: 1, hd: 5, window: 6, sink: 3, maxT: 1, T: 1, pos: 2 },
    // A prefill chunk crossing the wrap, vectorised heads, learned sinks and softcap too.
    { heads: 4, kvHeads: 4, hd: 8, window: 11, sink: 4, maxT: 8, T: 8, pos: 13, sinks: true },
    { heads: 6, kvHeads: 2, hd: 12, window: 7, sink: 2, maxT: 16, T: 13, pos: 40, softcap: 5 },
    // Window 1, no sinks: every query sees itself only.
    { heads: 3, kvHeads: 3, hd: 3, window: 1, sink: 0, maxT: 5, T: 5, pos: 31 },
    { heads: 2, kvHeads: 1, hd: 4, window: 1, sink: 0, maxT: 1, T: 1, pos: 100 },
    // f16 caches: scalar loads (odd pairs) and vec4 loads.
    { heads: 2, kvHeads: 1, hd: 6, window: 5, sink: 2, maxT: 4, T: 3, pos: 22, kv16: true },
    { heads: 4, kvHeads: 2, hd: 8, window: 9, sink: 1, maxT: 1, T: 1, pos: 77, kv16: true },
    // Sink tokens without a ring.
    { heads: 2, kvHeads: 1, hd: 4, window: 6, sink: 3, maxT: 5, T: 5, pos: 20, dense: true },
    // A long window over many decode splits.
    { heads: 8, kvHeads: 2, hd: 16, window: 700, sink: 4, maxT: 1, T: 1, pos: 5003 },
  ];
  for (const c of kcases) {
    it(`attention: H=${c.heads}/${c.kvHeads} hd=${c.hd} W=${c.window} S=${c.sink} T=${c.T} pos=${c.pos}${c.kv16 ? ' kv f16' : ''}${c.dense ? ' no ring' : ''}`, async () => {
      const gpu = await testGpu();
      const a = attnAttrs(c, !c.dense, c.pos + c.T);
      const kvw = c.kvHeads * c.hd;
      const ow = c.heads * c.hd;
      const q = randn(c.maxT * c.heads * c.hd, 1, 2);
      // An f16 cache holds f16 values: the reference reads them rounded, the kernel packed.
      const kv = (v: Float32Array) => (c.kv16 ? v.map(roundF16) : v);
      const kcache = kv(randn(a.capacity * kvw, 2, 2));
      const vcache = kv(randn(a.capacity * kvw, 3));
      const onGpu = c.kv16
        ? { kcache: packF16(kcache), vcache: packF16(vcache) }
        : { kcache, vcache };
      const sinks: Record<string, Float32Array> = a.sinks ? { sinks: randn(c.heads, 4, 3) } : {};
      const step = { T: c.T, pos: c.pos, L: 1 };
      const gen = attentionKernel(a, { caps: gpu.caps, maxT: c.maxT });
      const outputs: Record<string, number> = {};
      for (const [name, bytes] of Object.entries(gen.scratch)) outputs[name] = bytes / 4;
      const got = await runLaunches(gen.launches, {
        inputs: { q, ...onGpu, out: new Float32Array(c.maxT * ow), ...sinks },
        outputs,
        step,
      });
      const want = attention.reference(a, { q, kcache, vcache, ...sinks }, step).out;
      expect(maxRelError(got.out.subarray(0, c.T * ow), want)).toBeLessThanOrEqual(1e-4);
    });
  }

  const wcases = [
    { width: 6, rows: 9, sink: 2, T: 5, pos: 11 },
    { width: 13, rows: 5, sink: 0, T: 1, pos: 1234 },
    { width: 8, rows: 12, sink: 4, T: 8, pos: 1 },
  ];
  for (const c of wcases) {
    it(`kv_write into a ring: width ${c.width}, ${c.rows} rows, ${c.sink} sinks, T=${c.T} pos=${c.pos}`, async () => {
      const a: KvWriteAttrs = {
        op: 'kv_write',
        width: c.width,
        capacity: c.rows,
        columns: null,
        ring: { sink: c.sink },
      };
      const x = randn(c.T * c.width, 5);
      const cache = randn(c.rows * c.width, 6);
      const step = { T: c.T, pos: c.pos, L: 1 };
      const gen = kvWriteKernel(a, { caps: (await testGpu()).caps, maxT: c.T });
      const got = await runLaunches(gen.launches, {
        inputs: { x, cache: Float32Array.from(cache) },
        outputs: {},
        step,
      });
      const want = kvWrite.reference(a, { x, cache: Float32Array.from(cache) }, step).cache;
      expect(Array.from(got.cache)).toEqual(Array.from(want as Float32Array));
    });
  }
});
