import { describe, expect, it } from 'vitest';
import { kvWriteKernel, ropeKernel } from '../../codegen/kernels/rope.ts';
import { kvWriteWidth, type KvWriteAttrs, type RopeAttrs } from '../../src/graph/ops.ts';
import { kvWrite } from '../../src/ops/attention.ts';
import { interleavePermutation, rope, ropeInvFreq, ropeTables } from '../../src/ops/rope.ts';
import type { RopeSpec } from '../../src/spec/model.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';
import { packF16 } from '../../formats/safetensors.ts';
import { roundF16 } from '../../src/ops/math.ts';
import { BASELINE_CAPS } from '../../src/target.ts';

const fr = Math.fround;

/** |a - b| within `ulps` float32 steps of b (torch's powf may differ from ours by an ulp). */
function closeF32(a: number, b: number, ulps = 2): boolean {
  return Math.abs(a - b) <= ulps * Math.abs(b) * 2 ** -23;
}

const llama31: RopeSpec = {
  theta: 500000,
  rotaryDim: 128,
  scaling: {
    kind: 'llama3',
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositions: 8192,
  },
};

const yarn4: RopeSpec = {
  theta: 10000,
  rotaryDim: 64,
  scaling: {
    kind: 'yarn',
    factor: 4,
    originalMaxPositions: 4096,
    betaFast: 32,
    betaSlow: 1,
    attentionFactor: 0.1 * Math.log(4) + 1,
    truncate: true,
  },
};

describe('ropeTables', () => {
  it('default inv_freq is theta^(-2i/d) and angles are f32(inv_freq * p)', () => {
    const spec: RopeSpec = { theta: 10000, rotaryDim: 8, scaling: { kind: 'none' } };
    const { invFreq } = ropeInvFreq(spec);
    expect(Array.from(invFreq)).toEqual([1, fr(0.1), fr(0.01), fr(0.001)]);
    const { cos, sin } = ropeTables(spec, 5);
    expect(cos[0]).toBe(1);
    expect(sin[0]).toBe(0);
    expect(cos[3 * 4 + 1]).toBe(fr(Math.cos(fr(fr(0.1) * 3))));
    expect(sin[4 * 4 + 0]).toBe(fr(Math.sin(4)));
  });

  it('proportional rotates the first pairs at θ^(−2i/D) / factor, the rest not (HF bits)', () => {
    // transformers 5.18 _compute_proportional_rope_parameters: head_dim 40, theta 1e6,
    // partial_rotary_factor 0.25 (int(0.25 · 40 // 2) = 5 pairs), factor 2, as f32 bit patterns.
    const hf = [1056964608, 1048595918, 1040227276, 1031858681, 1023490134];
    const { invFreq, attentionFactor } = ropeInvFreq({
      theta: 1e6,
      rotaryDim: 40,
      scaling: { kind: 'proportional', pairs: 5, factor: 2 },
    });
    expect(attentionFactor).toBe(1);
    expect(Array.from(new Uint32Array(invFreq.buffer))).toEqual([
      ...hf,
      ...new Array<number>(15).fill(0),
    ]);
    // Frequency 0: cos 1, sin 0 at every position, so those pairs pass through.
    const { cos, sin } = ropeTables(
      { theta: 1e6, rotaryDim: 40, scaling: { kind: 'proportional', pairs: 5, factor: 2 } },
      4,
    );
    expect(cos[3 * 20 + 5]).toBe(1);
    expect(sin[3 * 20 + 19]).toBe(0);
  });

  it('linear scaling divides inv_freq by the factor', () => {
    const base = ropeInvFreq({ theta: 10000, rotaryDim: 16, scaling: { kind: 'none' } }).invFreq;
    const lin = ropeInvFreq({
      theta: 10000,
      rotaryDim: 16,
      scaling: { kind: 'linear', factor: 4 },
    }).invFreq;
    for (let i = 0; i < 8; i++) expect(lin[i]).toBe(fr(base[i] / 4));
  });

  it('llama3 keeps high frequencies, divides low ones, blends the band (Llama 3.1 values)', () => {
    const { invFreq, attentionFactor } = ropeInvFreq(llama31);
    const base = ropeInvFreq({ ...llama31, scaling: { kind: 'none' } }).invFreq;
    expect(attentionFactor).toBe(1);
    // wavelen < 2048: unchanged.
    for (const i of [0, 20, 28]) expect(invFreq[i]).toBe(base[i]);
    // wavelen > 8192: divided by 8.
    for (const i of [35, 40, 63]) expect(invFreq[i]).toBe(fr(base[i] / 8));
    // Values from transformers' float32 formula (numpy float32 replay of _compute_llama3_parameters).
    const hf: Record<number, number> = {
      29: 0.0021665706299245358,
      30: 0.0013718936825171113,
      32: 0.0005248460220173001,
      34: 0.0001785077911335975,
      45: 1.2297638932068367e-5,
      63: 3.068925877869333e-7,
    };
    for (const [i, v] of Object.entries(hf)) expect(closeF32(invFreq[+i], v)).toBe(true);
    // By hand for i = 32: wavelen 4442.88, smooth = (8192/wavelen - 1)/3 = 0.28129.
    const inv32 = base[32];
    const smooth = (8192 / ((2 * Math.PI) / inv32) - 1) / 3;
    expect(invFreq[32]).toBeCloseTo(((1 - smooth) * inv32) / 8 + smooth * inv32, 9);
    const { cos, sin } = ropeTables(llama31, 12346);
    expect(closeF32(cos[12345 * 64 + 45], 0.988498330116272, 4)).toBe(true);
    expect(closeF32(sin[12345 * 64 + 45], 0.15123187005519867, 4)).toBe(true);
  });

  it('yarn ramps between extrapolation and interpolation and scales cos/sin', () => {
    const { invFreq, attentionFactor } = ropeInvFreq(yarn4);
    const base = ropeInvFreq({ ...yarn4, scaling: { kind: 'none' } }).invFreq;
    expect(attentionFactor).toBeCloseTo(1.1386294361, 9);
    // Correction range for beta 32/1 at 4096 positions: dims [10, 23].
    for (const i of [0, 5, 10]) expect(invFreq[i]).toBe(base[i]);
    for (const i of [23, 31]) expect(closeF32(invFreq[i], base[i] / 4)).toBe(true);
    const hf: Record<number, number> = {
      11: 0.0397367849946022,
      16: 0.006538461893796921,
      22: 0.0005471628974191844,
      31: 3.333803761051968e-5,
    };
    for (const [i, v] of Object.entries(hf)) expect(closeF32(invFreq[+i], v)).toBe(true);
    // Ramp at i = 16 is 6/13: inv = base/4 * 6/13 + base * 7/13.
    expect(closeF32(invFreq[16], ((base[16] / 4) * 6) / 13 + (base[16] * 7) / 13, 8)).toBe(true);
    const { cos, sin } = ropeTables(yarn4, 1001);
    expect(cos[0]).toBe(fr(attentionFactor));
    expect(sin[0]).toBe(0);
    expect(closeF32(cos[1000 * 32 + 3], 0.8537063002586365, 4)).toBe(true);
    expect(closeF32(sin[1000 * 32 + 3], 0.753433883190155, 4)).toBe(true);
    expect(closeF32(cos[1000 * 32 + 16], 1.101730465888977, 4)).toBe(true);
    expect(closeF32(sin[1000 * 32 + 16], 0.28751856088638306, 4)).toBe(true);
  });

  it('yarn without truncation (GPT-OSS) ramps between the fractional correction dims', () => {
    const scaling = { ...yarn4.scaling, truncate: false } as RopeSpec['scaling'];
    const { invFreq } = ropeInvFreq({ ...yarn4, scaling });
    const base = ropeInvFreq({ ...yarn4, scaling: { kind: 'none' } }).invFreq;
    // Correction dims d(r) = 64 ln(4096 / (2π r)) / (2 ln 10000): about 10.47 (r 32) and 22.51 (r 1).
    const dim = (r: number) => (64 * Math.log(4096 / (r * 2 * Math.PI))) / (2 * Math.log(10000));
    const [low, high] = [dim(32), dim(1)];
    expect(low).toBeCloseTo(10.47, 2);
    for (const i of [0, 10]) expect(invFreq[i]).toBe(base[i]);
    for (const i of [23, 31]) expect(closeF32(invFreq[i], base[i] / 4)).toBe(true);
    for (const i of [11, 16, 22]) {
      const ramp = (i - low) / (high - low);
      const want = (base[i] / 4) * ramp + base[i] * (1 - ramp);
      expect(closeF32(invFreq[i], want, 8)).toBe(true);
    }
    // Truncated, dim 10 is still at the start of the ramp; untruncated, dim 11 is past it.
    expect(invFreq[11]).not.toBe(ropeInvFreq(yarn4).invFreq[11]);
  });

  it('rejects an odd rotary dimension', () => {
    expect(() => ropeTables({ theta: 1e4, rotaryDim: 7, scaling: { kind: 'none' } }, 4)).toThrow(
      /even/,
    );
  });
});

describe('rope reference', () => {
  it("'half' and 'interleaved' agree after interleavePermutation, and q·k is unchanged", () => {
    const heads = 3;
    const hd = 24;
    const rd = 16;
    const T = 5;
    const pos = 9;
    const { cos, sin } = ropeTables({ theta: 10000, rotaryDim: rd, scaling: { kind: 'none' } }, 32);
    const perm = interleavePermutation(hd, rd);
    expect(Array.from(perm.slice(0, 6))).toEqual([0, 8, 1, 9, 2, 10]);
    expect(Array.from(perm.slice(16))).toEqual([16, 17, 18, 19, 20, 21, 22, 23]);
    const x = randn(T * heads * hd, 1);
    const xp = new Float32Array(x.length);
    for (let r = 0; r < T * heads; r++) {
      for (let d = 0; d < hd; d++) xp[r * hd + d] = x[r * hd + perm[d]];
    }
    const layout = { op: 'rope' as const, heads, headDim: hd, rotaryDim: rd, capacity: 32 };
    const step = { T, pos, L: 1 };
    const half = rope.reference({ ...layout, pairs: 'half' }, { x, cos, sin }, step).out;
    const inter = rope.reference(
      { ...layout, pairs: 'interleaved' },
      { x: xp, cos, sin },
      step,
    ).out;
    for (let r = 0; r < T * heads; r++) {
      for (let d = 0; d < hd; d++) expect(inter[r * hd + d]).toBe(half[r * hd + perm[d]]);
    }
    // Pass-through dims beyond rd are untouched.
    for (let d = rd; d < hd; d++) expect(half[d]).toBe(x[d]);
    // Rotation preserves the norm of each pair.
    const n0 = x[0] * x[0] + x[8] * x[8];
    const n1 = half[0] * half[0] + half[8] * half[8];
    expect(n1).toBeCloseTo(n0, 5);
  });
});

describe('rope kernel', () => {
  const cases: Array<{
    heads: number;
    hd: number;
    rd: number;
    T: number;
    maxT: number;
    pos: number;
  }> = [
    { heads: 1, hd: 8, rd: 8, T: 1, maxT: 1, pos: 0 },
    { heads: 3, hd: 24, rd: 16, T: 7, maxT: 9, pos: 5 },
    { heads: 4, hd: 64, rd: 64, T: 70, maxT: 80, pos: 0 },
    { heads: 5, hd: 40, rd: 10, T: 33, maxT: 33, pos: 17 },
    { heads: 2, hd: 128, rd: 96, T: 1, maxT: 1, pos: 211 },
    { heads: 7, hd: 80, rd: 80, T: 13, maxT: 16, pos: 3 },
  ];
  for (const pairs of ['half', 'interleaved'] as const) {
    for (const c of cases) {
      it(`${pairs} heads=${c.heads} hd=${c.hd} rd=${c.rd} T=${c.T} pos=${c.pos}`, async () => {
        const { caps } = await testGpu();
        const a: RopeAttrs = {
          op: 'rope',
          heads: c.heads,
          headDim: c.hd,
          rotaryDim: c.rd,
          pairs,
          capacity: 256,
        };
        const spec: RopeSpec = { theta: 10000, rotaryDim: c.rd, scaling: { kind: 'none' } };
        const { cos, sin } = ropeTables(spec, 256);
        const width = c.heads * c.hd;
        const x = randn(c.maxT * width, c.T * 31 + c.hd);
        const sentinel = 1234.5;
        const out0 = new Float32Array(c.maxT * width).fill(sentinel);
        const step = { T: c.T, pos: c.pos, L: 1 };
        const gen = ropeKernel(a, { caps, maxT: c.maxT });
        const got = await runLaunches(gen.launches, { inputs: { x, cos, sin, out: out0 }, step });
        const want = rope.reference(a, { x, cos, sin }, step).out;
        expect(maxRelError(got.out.subarray(0, c.T * width), want)).toBeLessThanOrEqual(1e-6);
        expect(got.out.subarray(c.T * width).every((v) => v === sentinel)).toBe(true);
      });
    }
  }
});

describe('kv_write kernel', () => {
  const cases = [
    { width: 64, capacity: 16, T: 1, pos: 0 },
    { width: 24, capacity: 50, T: 7, pos: 5 },
    { width: 320, capacity: 100, T: 70, pos: 29 },
    { width: 40, capacity: 40, T: 33, pos: 7 },
    { width: 1000, capacity: 9, T: 1, pos: 8 },
    // MLA keys: per-head k_nope at an offset, and one k_pe broadcast to every head.
    {
      width: 96,
      capacity: 20,
      T: 7,
      pos: 3,
      columns: { heads: 4, cols: 16, offset: 8, broadcast: false },
    },
    {
      width: 96,
      capacity: 20,
      T: 7,
      pos: 3,
      columns: { heads: 4, cols: 8, offset: 0, broadcast: true },
    },
    {
      width: 55,
      capacity: 80,
      T: 70,
      pos: 1,
      columns: { heads: 5, cols: 3, offset: 7, broadcast: true },
    },
    {
      width: 39,
      capacity: 9,
      T: 1,
      pos: 8,
      columns: { heads: 3, cols: 13, offset: 0, broadcast: false },
    },
  ];
  for (const c of cases) {
    const cols = c.columns;
    const where = cols
      ? ` heads=${cols.heads} cols=${cols.cols}@${cols.offset}${cols.broadcast ? ' broadcast' : ''}`
      : '';
    it(`width=${c.width} capacity=${c.capacity} T=${c.T} pos=${c.pos}${where}`, async () => {
      const { caps } = await testGpu();
      const a: KvWriteAttrs = {
        op: 'kv_write',
        width: c.width,
        capacity: c.capacity,
        columns: cols ?? null,
      };
      const xw = kvWriteWidth(a);
      const written = cols ? cols.heads * cols.cols : c.width;
      const x = randn((c.T + 2) * xw, c.width + c.T);
      const cache = randn(c.capacity * c.width, 7 + c.pos);
      const step = { T: c.T, pos: c.pos, L: 1 };
      const gen = kvWriteKernel(a, { caps, maxT: c.T + 2 });
      const got = await runLaunches(gen.launches, { inputs: { x, cache }, step });
      const want = kvWrite.reference(a, { x, cache: cache.slice() }, step).cache;
      expect(Array.from(got.cache)).toEqual(Array.from(want));
      expect(kvWrite.cost(a, step).bytesWritten).toBe(4 * c.T * written);
      // Columns outside the written ranges, and rows outside the step, keep their values.
      const changed = Array.from(want).filter((v, i) => v !== cache[i]).length;
      expect(changed).toBe(c.T * written);
    });
  }

  it('places x per head and broadcasts one head to all', () => {
    const columns = { heads: 2, cols: 1, offset: 2, broadcast: false };
    const a: KvWriteAttrs = { op: 'kv_write', width: 6, capacity: 1, columns };
    const step = { T: 1, pos: 0, L: 1 };
    const got = kvWrite.reference(
      a,
      { x: new Float32Array([7, 8]), cache: new Float32Array(6) },
      step,
    );
    expect(Array.from(got.cache)).toEqual([0, 0, 7, 0, 0, 8]);
    const b = { ...a, columns: { ...columns, offset: 0, broadcast: true } };
    const got2 = kvWrite.reference(
      b,
      { x: new Float32Array([5]), cache: new Float32Array(6) },
      step,
    );
    expect(Array.from(got2.cache)).toEqual([5, 0, 0, 5, 0, 0]);
    const bad = { ...a, columns: { ...columns, cols: 2 } };
    expect(() =>
      kvWrite.reference(bad, { x: new Float32Array(4), cache: new Float32Array(6) }, step),
    ).toThrow(/do not fit/);
  });
});

/**
 * f16 caches: one thread writes each word (an element pair), rounded to nearest even exactly as
 * the reference rounds, so the whole buffer must equal the packed reference bit for bit: the
 * written rows and columns, and every half around them (the other columns of a row, other rows).
 */
describe('kv_write kernel into an f16 cache', () => {
  const cases = [
    { width: 64, capacity: 16, T: 1, pos: 0 },
    { width: 2, capacity: 3, T: 1, pos: 2 },
    { width: 24, capacity: 50, T: 7, pos: 5 },
    { width: 320, capacity: 100, T: 70, pos: 29 },
    { width: 1000, capacity: 9, T: 1, pos: 8 },
    {
      width: 96,
      capacity: 20,
      T: 7,
      pos: 3,
      columns: { heads: 4, cols: 16, offset: 8, broadcast: false },
    },
    {
      width: 96,
      capacity: 20,
      T: 7,
      pos: 3,
      columns: { heads: 4, cols: 8, offset: 0, broadcast: true },
    },
    {
      width: 60,
      capacity: 80,
      T: 70,
      pos: 1,
      columns: { heads: 5, cols: 2, offset: 6, broadcast: true },
    },
    {
      width: 42,
      capacity: 9,
      T: 1,
      pos: 8,
      columns: { heads: 3, cols: 14, offset: 0, broadcast: false },
    },
  ];
  for (const c of cases) {
    const cols = c.columns;
    const where = cols
      ? ` heads=${cols.heads} cols=${cols.cols}@${cols.offset}${cols.broadcast ? ' broadcast' : ''}`
      : '';
    it(`width=${c.width} capacity=${c.capacity} T=${c.T} pos=${c.pos}${where}`, async () => {
      const { caps } = await testGpu();
      const a: KvWriteAttrs = {
        op: 'kv_write',
        width: c.width,
        capacity: c.capacity,
        columns: cols ?? null,
        kvType: 'f16',
      };
      const xw = kvWriteWidth(a);
      const written = cols ? cols.heads * cols.cols : c.width;
      // Values spread over many binades, so ties, subnormals and large values all occur.
      const x = randn((c.T + 2) * xw, c.width + c.T, 3).map((v, i) => v * 2 ** ((i % 29) - 20));
      const cache = randn(c.capacity * c.width, 7 + c.pos).map(roundF16);
      const step = { T: c.T, pos: c.pos, L: 1 };
      const gen = kvWriteKernel(a, { caps, maxT: c.T + 2 });
      const got = await runLaunches(gen.launches, { inputs: { x, cache: packF16(cache) }, step });
      const want = kvWrite.reference(a, { x, cache: cache.slice() }, step).cache;
      expect(Array.from(new Uint32Array(got.cache.buffer))).toEqual(Array.from(packF16(want)));
      expect(kvWrite.cost(a, step).bytesWritten).toBe(2 * c.T * written);
      const changed = Array.from(want).filter((v, i) => v !== cache[i]).length;
      expect(changed).toBeGreaterThan(0.9 * c.T * written);
      expect(want.every((v) => v === roundF16(v))).toBe(true);
    });
  }

  it('refuses odd widths, column counts and offsets', () => {
    const caps = BASELINE_CAPS;
    const base: KvWriteAttrs = {
      op: 'kv_write',
      width: 24,
      capacity: 4,
      columns: null,
      kvType: 'f16',
    };
    expect(() => kvWriteKernel({ ...base, width: 25 }, { caps, maxT: 1 })).toThrow(
      /kv_write: kvType 'f16' .* even width, got 25/,
    );
    const columns = { heads: 4, cols: 2, offset: 0, broadcast: false };
    expect(() =>
      kvWriteKernel({ ...base, columns: { ...columns, cols: 3 } }, { caps, maxT: 1 }),
    ).toThrow(/even column count, got 3/);
    expect(() =>
      kvWriteKernel({ ...base, columns: { ...columns, offset: 1 } }, { caps, maxT: 1 }),
    ).toThrow(/even column offset, got 1/);
    expect(() =>
      kvWriteKernel({ ...base, width: 36, columns: { ...columns, heads: 4 } }, { caps, maxT: 1 }),
    ).toThrow(/even head width, got 9/);
    expect(() => kvWriteKernel({ ...base, columns }, { caps, maxT: 1 })).not.toThrow();
  });
});
