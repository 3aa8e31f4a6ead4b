/**
 * DeepSeek sparse attention (src/ops/indexer.ts): the indexer's reference against a direct
 * transcription of HF's scoring (per-head relu, weighted sum, top-k), its tie rule, and the WGSL
 * kernels against the references on odd shapes: T = 1 decode, prefill chunks after a cached
 * prefix, queries with fewer visible positions than topk, topk >= context (the list is every
 * position, and sparse attention equals dense causal attention), exact ties, GQA, MLA's vFromK and
 * f16 caches.
 *
 * Tolerances: the selected positions (u32) exactly (the random scores sit far apart next to f32
 * rounding, and tied scores are computed identically per position, so both sides see equal keys);
 * attention outputs within 1e-4 of the largest reference value (f32 against the reference's f64
 * sums, the dense attention kernels' bound).
 */
import { describe, expect, it } from 'vitest';
import {
  INDEXER_KEYS,
  indexerTopkKernel,
  sparseAttentionKernel,
} from '../../codegen/kernels/indexer.ts';
import type {
  AttentionAttrs,
  IndexerTopkAttrs,
  SparseAttentionAttrs,
} from '../../src/graph/ops.ts';
import { attention } from '../../src/ops/attention.ts';
import { indexerTopk, sparseAttention, SEL_EMPTY, topkPositions } from '../../src/ops/indexer.ts';
import { roundF16 } from '../../src/ops/math.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { runLaunches } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

function indexerAttrs(
  heads: number,
  dim: number,
  topk: number,
  capacity: number,
): IndexerTopkAttrs {
  return {
    op: 'indexer_topk',
    heads,
    dim,
    topk,
    scale: dim ** -0.5,
    weightScale: heads ** -0.5,
    capacity,
  };
}

function indexerInputs(a: IndexerTopkAttrs, T: number, seed: number) {
  return {
    q: randn(T * a.heads * a.dim, seed),
    w: randn(T * a.heads, seed + 1),
    kcache: randn(a.capacity * a.dim, seed + 2),
  };
}

async function gpuSel(
  a: IndexerTopkAttrs,
  inputs: Record<string, Float32Array>,
  T: number,
  pos: number,
) {
  const maxT = Math.max(T, 1);
  const g = indexerTopkKernel(a, { caps: BASELINE_CAPS, maxT });
  const out = await runLaunches(g.launches, {
    inputs: { ...inputs, [INDEXER_KEYS]: new Uint32Array(g.scratch[INDEXER_KEYS] / 4) },
    outputs: { sel: T * a.topk },
    step: { T, pos, L: 1 },
  });
  return new Uint32Array(out.sel.buffer);
}

describe('indexer_topk reference', () => {
  it('scores as HF: Σ_h w_h · H^-0.5 · relu(D^-0.5 · q_h·k), keeps the best topk ascending', () => {
    const a = indexerAttrs(2, 3, 2, 4);
    // Keys 0..3; one query at position 3.
    const kcache = new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1, -1, -1, -1]);
    const q = new Float32Array([2, 1, -1, 0, 3, 1]);
    const w = new Float32Array([1, -0.5]);
    const sel = indexerTopk.reference(a, { q, w, kcache }, { T: 1, pos: 3, L: 1 }).sel;
    // Per key: head 0 dots [2, 1, -1, -1], head 1 [0, 3, 1, -4]; relu, scale, weight:
    const s = [0, 1, 2, 3].map((j) => {
      const d0 = [2, 1, -1, -1][j];
      const d1 = [0, 3, 1, -4][j];
      const r = (x: number) => Math.max(0, x * 3 ** -0.5);
      return (1 * r(d0) - 0.5 * r(d1)) * 2 ** -0.5;
    });
    expect(s[0]).toBeGreaterThan(s[3]);
    expect(Array.from(sel)).toEqual(topkPositions(s, 2));
    expect(Array.from(sel)).toEqual([0, 3]);
  });

  it('breaks ties by the lower position and pads short lists', () => {
    expect(topkPositions([1, 2, 2, 2, 0], 2)).toEqual([1, 2]);
    expect(topkPositions([0, 0, 0, 0], 3)).toEqual([0, 1, 2]);
    const a = indexerAttrs(1, 2, 4, 8);
    const r = indexerTopk.reference(
      a,
      { q: new Float32Array(4), w: new Float32Array(2), kcache: new Float32Array(16) },
      { T: 2, pos: 0, L: 1 },
    );
    expect(Array.from(r.sel)).toEqual([
      0,
      SEL_EMPTY,
      SEL_EMPTY,
      SEL_EMPTY,
      0,
      1,
      SEL_EMPTY,
      SEL_EMPTY,
    ]);
  });
});

describe('indexer_topk kernel', () => {
  const cases: {
    name: string;
    heads: number;
    dim: number;
    topk: number;
    cap: number;
    T: number;
    pos: number;
  }[] = [
    {
      name: 'prefill from 0 (early queries see fewer than topk)',
      heads: 3,
      dim: 5,
      topk: 4,
      cap: 21,
      T: 13,
      pos: 0,
    },
    { name: 'decode T = 1', heads: 4, dim: 7, topk: 5, cap: 40, T: 1, pos: 37 },
    { name: 'chunk after a cached prefix', heads: 2, dim: 9, topk: 6, cap: 150, T: 3, pos: 141 },
    { name: 'topk >= context: every position', heads: 3, dim: 4, topk: 32, cap: 20, T: 5, pos: 14 },
    { name: 'topk 1', heads: 1, dim: 3, topk: 1, cap: 70, T: 2, pos: 66 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const a = indexerAttrs(c.heads, c.dim, c.topk, c.cap);
      const inputs = indexerInputs(a, c.T, 11 + c.T);
      const step = { T: c.T, pos: c.pos, L: 1 };
      const want = indexerTopk.reference(a, inputs, step).sel;
      expect(Array.from(await gpuSel(a, inputs, c.T, c.pos))).toEqual(Array.from(want));
    });
  }

  it('refuses a score scratch larger than a storage binding, naming the options', () => {
    expect(() =>
      indexerTopkKernel(indexerAttrs(64, 128, 2048, 163840), { caps: BASELINE_CAPS, maxT: 2048 }),
    ).toThrow(
      /maxT 2048 x capacity 163840 .* exceeds the device's storage binding limit .*--max-t/,
    );
  });

  it('f16 index keys (--kv f16): read as the halves kv_write stored', async () => {
    const a: IndexerTopkAttrs = { ...indexerAttrs(3, 6, 4, 25), kvType: 'f16' };
    const inputs = indexerInputs(a, 3, 41);
    inputs.kcache = inputs.kcache.map(roundF16);
    const step = { T: 3, pos: 20, L: 1 };
    const want = indexerTopk.reference(a, inputs, step).sel;
    const g = indexerTopkKernel(a, { caps: BASELINE_CAPS, maxT: 3 });
    const out = await runLaunches(g.launches, {
      inputs: {
        ...inputs,
        kcache: packF16(inputs.kcache),
        [INDEXER_KEYS]: new Uint32Array(g.scratch[INDEXER_KEYS] / 4),
      },
      outputs: { sel: 3 * a.topk },
      step,
    });
    expect(Array.from(new Uint32Array(out.sel.buffer))).toEqual(Array.from(want));
    expect(() => indexerTopk.check({ ...a, dim: 5 })).toThrow(/needs an even dim, got 5/);
  });

  it('exact ties at the boundary go to the lower positions, as in the reference', async () => {
    // Keys repeat with period 3, so positions 3 apart score exactly alike; zero weights for one
    // query make every score 0 (all tied).
    const a = indexerAttrs(2, 4, 5, 30);
    const base = randn(3 * a.dim, 5);
    const kcache = new Float32Array(a.capacity * a.dim);
    for (let j = 0; j < a.capacity; j++)
      kcache.set(base.subarray((j % 3) * a.dim, ((j % 3) + 1) * a.dim), j * a.dim);
    const q = randn(2 * a.heads * a.dim, 6);
    const w = new Float32Array([0.7, 0.4, 0, 0]);
    const inputs = { q, w, kcache };
    const step = { T: 2, pos: 27, L: 1 };
    const want = indexerTopk.reference(a, inputs, step).sel;
    const got = await gpuSel(a, inputs, 2, 27);
    expect(Array.from(got)).toEqual(Array.from(want));
    // The all-zero query takes the first five positions.
    expect(Array.from(want.subarray(5))).toEqual([0, 1, 2, 3, 4]);
  });
});

function sparseAttrs(c: {
  heads: number;
  kvHeads: number;
  hd: number;
  vd: number;
  topk: number;
  cap: number;
  vFromK?: number;
  kv16?: boolean;
}): SparseAttentionAttrs {
  return {
    op: 'sparse_attention',
    heads: c.heads,
    kvHeads: c.kvHeads,
    headDim: c.hd,
    vHeadDim: c.vd,
    scale: c.hd ** -0.5,
    topk: c.topk,
    capacity: c.cap,
    ...(c.vFromK === undefined ? {} : { vFromK: c.vFromK }),
    ...(c.kv16 ? { kvType: 'f16' as const } : {}),
  };
}

/** f16 caches as the kernel reads them: pairs of halves in u32 words. */
function packF16(x: Float32Array): Uint32Array {
  const u = new Uint32Array(x.length / 2);
  const h = new Uint16Array(u.buffer);
  const f = new Float32Array(1);
  const b = new Uint32Array(f.buffer);
  for (let i = 0; i < x.length; i++) {
    f[0] = x[i];
    const bits = b[0];
    const sign = (bits >>> 16) & 0x8000;
    const e = ((bits >>> 23) & 0xff) - 127 + 15;
    // Inputs are rounded to f16 (roundF16) and normal, so the mantissa truncates exactly.
    h[i] = e <= 0 ? sign : sign | (e << 10) | ((bits >>> 13) & 0x3ff);
  }
  return u;
}

describe('sparse_attention kernel', () => {
  const cases = [
    {
      name: 'MLA-like: one kv head, values from the key row (vFromK)',
      heads: 4,
      kvHeads: 1,
      hd: 10,
      vd: 6,
      vFromK: 0,
      topk: 4,
      cap: 17,
      T: 12,
      pos: 0,
    },
    {
      name: 'GQA with a v cache, decode T = 1',
      heads: 6,
      kvHeads: 2,
      hd: 8,
      vd: 5,
      topk: 7,
      cap: 33,
      T: 1,
      pos: 30,
    },
    {
      name: 'f16 caches',
      heads: 2,
      kvHeads: 2,
      hd: 6,
      vd: 4,
      topk: 3,
      cap: 20,
      T: 4,
      pos: 9,
      kv16: true,
    },
    {
      name: 'topk larger than the workgroup',
      heads: 1,
      kvHeads: 1,
      hd: 3,
      vd: 3,
      topk: 100,
      cap: 130,
      T: 2,
      pos: 120,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const a = sparseAttrs(c);
      const ia = indexerAttrs(2, 5, c.topk, c.cap);
      const step = { T: c.T, pos: c.pos, L: 1 };
      const sel = indexerTopk.reference(ia, indexerInputs(ia, c.T, 3), step).sel;
      const kvw = a.kvHeads * a.headDim;
      let kcache = randn(c.cap * kvw, 21);
      let vcache = c.vFromK === undefined ? randn(c.cap * a.kvHeads * a.vHeadDim, 22) : null;
      if (c.kv16) {
        kcache = kcache.map(roundF16);
        vcache = vcache && vcache.map(roundF16);
      }
      const q = randn(c.T * a.heads * a.headDim, 23);
      const ref = sparseAttention.reference(
        a,
        { q, kcache, ...(vcache ? { vcache } : {}), sel },
        step,
      ).out as Float32Array;
      const g = sparseAttentionKernel(a, { caps: BASELINE_CAPS, maxT: c.T });
      const pack = (x: Float32Array) => (c.kv16 ? packF16(x) : x);
      const out = await runLaunches(g.launches, {
        inputs: { q, kcache: pack(kcache), ...(vcache ? { vcache: pack(vcache) } : {}), sel },
        outputs: { out: c.T * a.heads * a.vHeadDim },
        step,
      });
      expect(maxRelError(out.out, ref)).toBeLessThan(1e-4);
    });
  }

  it('with topk >= context equals dense causal attention (reference exactly, kernel within 1e-4)', async () => {
    const c = { heads: 3, kvHeads: 1, hd: 12, vd: 8, vFromK: 2, topk: 16, cap: 16 };
    const a = sparseAttrs(c);
    const T = 5;
    const step = { T, pos: 11, L: 1 };
    const ia = indexerAttrs(2, 3, c.topk, c.cap);
    const sel = indexerTopk.reference(ia, indexerInputs(ia, T, 8), step).sel;
    const q = randn(T * a.heads * a.headDim, 31);
    const kcache = randn(c.cap * a.headDim, 32);
    const dense: AttentionAttrs = {
      op: 'attention',
      heads: 3,
      kvHeads: 1,
      headDim: 12,
      vHeadDim: 8,
      scale: a.scale,
      causal: true,
      window: null,
      softcap: null,
      sinks: false,
      capacity: c.cap,
      vFromK: 2,
    };
    const want = attention.reference(dense, { q, kcache }, step).out;
    const ref = sparseAttention.reference(a, { q, kcache, sel }, step).out;
    expect(Array.from(ref)).toEqual(Array.from(want));
    const g = sparseAttentionKernel(a, { caps: BASELINE_CAPS, maxT: T });
    const out = await runLaunches(g.launches, {
      inputs: { q, kcache, sel },
      outputs: { out: T * a.heads * a.vHeadDim },
      step,
    });
    expect(maxRelError(out.out, want as Float32Array)).toBeLessThan(1e-4);
  });

  it('rejects a list naming a position after the query, and a topk past the kernel limit', () => {
    const a = sparseAttrs({ heads: 1, kvHeads: 1, hd: 2, vd: 2, topk: 2, cap: 4 });
    const bad = {
      q: new Float32Array(2),
      kcache: new Float32Array(8),
      vcache: new Float32Array(8),
      sel: new Uint32Array([0, 3]),
    };
    expect(() => sparseAttention.reference(a, bad, { T: 1, pos: 1, L: 1 })).toThrow(
      /sel\[0, 1\] = 3 lies after/,
    );
    expect(() =>
      sparseAttentionKernel(
        sparseAttrs({ heads: 1, kvHeads: 1, hd: 2, vd: 2, topk: 5000, cap: 8000 }),
        {
          caps: BASELINE_CAPS,
          maxT: 1,
        },
      ),
    ).toThrow(/topk 5000 exceeds/);
  });
});
