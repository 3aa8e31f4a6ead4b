import { describe, expect, it } from 'vitest';
import { normKernel } from '../../codegen/kernels/norm.ts';
import type { L2Norm, NormAttrs } from '../../src/graph/ops.ts';
import { norm } from '../../src/ops/norm.ts';
import type { NormSpec } from '../../src/spec/model.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

const rms: NormSpec = { kind: 'rms', eps: 1e-6, unitOffset: false, bias: false };
const gemmaRms: NormSpec = { kind: 'rms', eps: 1e-6, unitOffset: true, bias: false };
const layerBias: NormSpec = { kind: 'layer', eps: 1e-5, unitOffset: false, bias: true };
const layerNoBias: NormSpec = { kind: 'layer', eps: 1e-5, unitOffset: false, bias: false };
const l2: L2Norm = { kind: 'l2', eps: 1e-6 };

interface Case {
  name: string;
  spec: NormSpec | L2Norm;
  width: number;
  group: number;
  T: number;
  maxT: number;
  /** Add a residual row to the normed one (fused sandwich post-norm). */
  residual?: boolean;
  /** GroupNorm's weight and bias per column ([width]) instead of per group element. */
  perChannel?: boolean;
  /** Normalise in a denoising step only (DiffusionGemma's input norm); `keys` > 0 denoises. */
  phased?: boolean;
  keys?: number;
}

const cases: Case[] = [
  {
    name: 'l2 per key head: 3 heads of 33, T = 37',
    spec: l2,
    width: 99,
    group: 33,
    T: 37,
    maxT: 40,
  },
  { name: 'l2 decode: 2 heads of 128', spec: l2, width: 256, group: 128, T: 1, maxT: 1 },
  {
    name: 'l2, width 8192 (re-read path), T = 3',
    spec: l2,
    width: 8192,
    group: 8192,
    T: 3,
    maxT: 4,
  },
  { name: 'rms, T = 1 decode, width 1000', spec: rms, width: 1000, group: 1000, T: 1, maxT: 1 },
  {
    name: 'layer+bias, odd width 257, T = 37',
    spec: layerBias,
    width: 257,
    group: 257,
    T: 37,
    maxT: 40,
  },
  {
    name: 'gemma rms, width 8192 (re-read path), T = 3',
    spec: gemmaRms,
    width: 8192,
    group: 8192,
    T: 3,
    maxT: 4,
  },
  { name: 'qk-norm: 12 heads of 64, T = 19', spec: rms, width: 768, group: 64, T: 19, maxT: 32 },
  {
    name: 'layer no bias, groups of 3, T = 64',
    spec: layerNoBias,
    width: 27,
    group: 3,
    T: 64,
    maxT: 64,
  },
  { name: 'rms, group 1, width 7, T = 5', spec: rms, width: 7, group: 1, T: 5, maxT: 9 },
  {
    name: 'layer+bias qk-norm 5 x 33, long T = 300',
    spec: layerBias,
    width: 165,
    group: 33,
    T: 300,
    maxT: 300,
  },
  { name: 'rms decode, width 4099', spec: gemmaRms, width: 4099, group: 4099, T: 1, maxT: 1 },
  {
    name: 'gemma rms + residual, decode, odd width 1153',
    spec: gemmaRms,
    width: 1153,
    group: 1153,
    T: 1,
    maxT: 1,
    residual: true,
  },
  {
    name: 'layer+bias + residual, width 257, T = 37',
    spec: layerBias,
    width: 257,
    group: 257,
    T: 37,
    maxT: 40,
    residual: true,
  },
  {
    name: 'gemma rms + residual, width 8192 (re-read path), T = 5',
    spec: gemmaRms,
    width: 8192,
    group: 8192,
    T: 5,
    maxT: 8,
    residual: true,
  },
  {
    name: 'rms + residual, groups of 33, long T = 300',
    spec: rms,
    width: 165,
    group: 33,
    T: 300,
    maxT: 300,
    residual: true,
  },
  {
    name: 'GroupNorm per channel (RWKV-7 g_norm), 4 heads of 16, T = 24',
    spec: layerBias,
    width: 64,
    group: 16,
    T: 24,
    maxT: 32,
    perChannel: true,
  },
  {
    name: 'GroupNorm per channel, decode, 3 groups of 100',
    spec: layerBias,
    width: 300,
    group: 100,
    T: 1,
    maxT: 1,
    perChannel: true,
  },
  {
    name: 'phased rms, encoding step (x·w only), odd width 257, T = 37',
    spec: rms,
    width: 257,
    group: 257,
    T: 37,
    maxT: 40,
    phased: true,
  },
  {
    name: 'phased rms, denoising step, width 8192 (re-read path), T = 3',
    spec: rms,
    width: 8192,
    group: 8192,
    T: 3,
    maxT: 4,
    phased: true,
    keys: 9,
  },
  {
    name: 'phased gemma rms, denoising decode step, width 1153',
    spec: gemmaRms,
    width: 1153,
    group: 1153,
    T: 1,
    maxT: 1,
    phased: true,
    keys: 1,
  },
];

describe('norm kernel vs reference', () => {
  for (const [ci, c] of cases.entries()) {
    it(c.name, async () => {
      const { caps } = await testGpu();
      const a: NormAttrs = {
        op: 'norm',
        norm: c.spec,
        width: c.width,
        group: c.group,
        residual: c.residual ?? false,
        ...(c.perChannel ? { perChannel: true } : {}),
        ...(c.phased ? { phased: true } : {}),
      };
      const { launches } = normKernel(a, { caps, maxT: c.maxT });
      // Offset rows so that LayerNorm's centring matters.
      const x = randn(c.maxT * c.width, 100 + ci, 3).map((v, i) => v + ((i % 5) - 2));
      const params = c.perChannel ? c.width : c.group;
      const w = randn(params, 200 + ci, 1);
      const b = randn(params, 300 + ci, 0.5);
      const sentinel = 12345;
      const out = new Float32Array(c.maxT * c.width).fill(sentinel);
      const inputs: Record<string, Float32Array> = { x, w, out };
      if (c.spec.kind === 'layer' && c.spec.bias) inputs.b = b;
      // Residual rows larger than the normed ones, so a missing add shows.
      if (c.residual) inputs.residual = randn(c.maxT * c.width, 400 + ci, 20);
      const step = { T: c.T, pos: 0, L: 1, ...(c.keys ? { keys: c.keys } : {}) };
      const got = await runLaunches(launches, { inputs, step });
      const want = norm.reference(a, inputs, step).out;
      const n = c.T * c.width;
      expect(maxRelError(got.out.subarray(0, n), want)).toBeLessThanOrEqual(1e-4);
      // Rows beyond T are not written.
      expect(got.out.subarray(n).every((v) => v === sentinel)).toBe(true);
    });
  }

  it('a phased norm normalises in denoising steps only', () => {
    const a: NormAttrs = {
      op: 'norm',
      norm: rms,
      width: 2,
      group: 2,
      residual: false,
      phased: true,
    };
    const inputs = { x: new Float32Array([3, 4]), w: new Float32Array([1, 2]) };
    expect(Array.from(norm.reference(a, inputs, { T: 1, pos: 0, L: 1 }).out)).toEqual([3, 8]);
    const d = norm.reference(a, inputs, { T: 1, pos: 0, L: 1, keys: 1 }).out;
    expect(d[0]).toBeCloseTo(3 / Math.sqrt(12.5), 5);
    expect(() => norm.check({ ...a, norm: layerBias })).toThrow(/phased norm is a plain rms/);
  });

  it('reference normalises each group separately', () => {
    const a: NormAttrs = { op: 'norm', norm: rms, width: 4, group: 2, residual: false };
    const x = Float32Array.of(3, 4, 1, 1);
    const out = norm.reference(a, { x, w: Float32Array.of(1, 2) }, { T: 1, pos: 0, L: 1 }).out;
    const r1 = Math.sqrt(12.5 + 1e-6);
    const r2 = Math.sqrt(1 + 1e-6);
    const want = [3 / r1, 8 / r1, 1 / r2, 2 / r2];
    for (let i = 0; i < 4; i++) expect(out[i]).toBeCloseTo(want[i], 6);
  });

  it('l2 divides by the root of the plain sum of squares and binds no weight', async () => {
    const a: NormAttrs = { op: 'norm', norm: l2, width: 4, group: 2, residual: false };
    const out = norm.reference(a, { x: Float32Array.of(3, 4, 1, 1) }, { T: 1, pos: 0, L: 1 }).out;
    const want = [3 / Math.sqrt(25 + 1e-6), 4 / Math.sqrt(25 + 1e-6), 1 / Math.sqrt(2 + 1e-6)];
    for (let i = 0; i < 3; i++) expect(out[i]).toBeCloseTo(want[i], 7);
    const { caps } = await testGpu();
    const names = normKernel(a, { caps, maxT: 1 }).launches[0].kernel.bindings.map((b) => b.name);
    expect(names).toEqual(['step', 'x', 'out']);
  });

  it('reference with residual is the residual plus the plain norm', () => {
    const step = { T: 2, pos: 0, L: 1 };
    const plain: NormAttrs = { op: 'norm', norm: rms, width: 3, group: 3, residual: false };
    const x = Float32Array.of(1, -2, 3, 0.5, 0.25, -4);
    const w = Float32Array.of(0.5, 1, 2);
    const residual = Float32Array.of(10, 20, 30, -1, -2, -3);
    const normed = norm.reference(plain, { x, w }, step).out;
    const fused = norm.reference({ ...plain, residual: true }, { x, w, residual }, step).out;
    for (let i = 0; i < 6; i++) expect(fused[i]).toBe(Math.fround(residual[i] + normed[i]));
  });

  it('reference GroupNorm reads the weight and bias of each column', () => {
    const a: NormAttrs = {
      op: 'norm',
      norm: layerBias,
      width: 4,
      group: 2,
      residual: false,
      perChannel: true,
    };
    const x = Float32Array.of(1, 3, 5, 5);
    const w = Float32Array.of(1, 2, 3, 4);
    const b = Float32Array.of(0, 0, 10, 20);
    const out = norm.reference(a, { x, w, b }, { T: 1, pos: 0, L: 1 }).out;
    const inv = 1 / Math.sqrt(1 + 1e-5);
    const want = [-inv, 2 * inv, 10, 20];
    for (let i = 0; i < 4; i++) expect(out[i]).toBeCloseTo(want[i], 6);
  });

  it('rejects a width that is not a multiple of the group', async () => {
    const { caps } = await testGpu();
    const a: NormAttrs = { op: 'norm', norm: rms, width: 10, group: 4, residual: false };
    expect(() => normKernel(a, { caps, maxT: 1 })).toThrow(/multiple/);
  });
});
