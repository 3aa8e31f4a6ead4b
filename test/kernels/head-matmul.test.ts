/** head_matmul: the reference against per-head products, and the kernel against the reference. */
import { describe, expect, it } from 'vitest';
import { headMatmulKernel, TILED_MIN_T } from '../../codegen/kernels/head-matmul.ts';
import type { HeadMatmulAttrs } from '../../src/graph/ops.ts';
import { headMatmul } from '../../src/ops/head-matmul.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';
import { packF16 } from '../../formats/safetensors.ts';

const SENTINEL = -4242.5;

describe('head_matmul reference', () => {
  it('multiplies each head by its own weight, in both layouts', () => {
    // 2 heads, K 2, N 1: head 0's weight [1, 2], head 1's [3, 4].
    const x = Float32Array.of(1, 1, 1, -1);
    const step = { T: 1, pos: 0, L: 1 };
    const a: HeadMatmulAttrs = { op: 'head_matmul', heads: 2, N: 1, K: 2, wLayout: 'nk' };
    const out = headMatmul.reference(a, { x, w: Float32Array.of(1, 2, 3, 4) }, step).out;
    expect(Array.from(out)).toEqual([3, -1]);
    // 'kn': head h's weight stored [K, N]; N 2: head 0 [[1, 2], [3, 4]] gives x·W = [4, 6].
    const kn: HeadMatmulAttrs = { ...a, N: 2, wLayout: 'kn' };
    const w = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    expect(Array.from(headMatmul.reference(kn, { x, w }, step).out)).toEqual([4, 6, -2, -2]);
    expect(headMatmul.inputs(kn).w.shape).toEqual([4, 2]);
  });

  it('refuses a weight of the wrong size and bad attributes', () => {
    const a: HeadMatmulAttrs = { op: 'head_matmul', heads: 2, N: 3, K: 2, wLayout: 'nk' };
    const step = { T: 1, pos: 0, L: 1 };
    expect(() =>
      headMatmul.reference(a, { x: new Float32Array(4), w: new Float32Array(11) }, step),
    ).toThrow(/w has 11 elements, not heads·N·K = 12/);
    expect(() => headMatmul.check({ ...a, K: 0 })).toThrow(/K must be a positive integer/);
  });

  it('costs 2·T·heads·N·K FLOPs and reads the weight once', () => {
    const a: HeadMatmulAttrs = { op: 'head_matmul', heads: 128, N: 512, K: 128, wLayout: 'kn' };
    const c = headMatmul.cost(a, { T: 1, pos: 0, L: 1 });
    expect(c.flops).toBe(2 * 128 * 512 * 128);
    expect(c.bytesRead).toBe(4 * (128 * 128 + 128 * 512 * 128));
  });
});

describe('head_matmul kernel', () => {
  // T = 1 (decode), rows fewer than the buffers hold, widths no multiple of any tile, one head.
  const cases = [
    { heads: 3, N: 12, K: 6, T: 1, maxT: 1 },
    { heads: 5, N: 10, K: 7, T: 19, maxT: 24 },
    { heads: 1, N: 1, K: 1, T: 3, maxT: 3 },
    { heads: 4, N: 64, K: 33, T: 1, maxT: 1 },
    { heads: 2, N: 300, K: 5, T: 9, maxT: 16 },
    // The tiled kernel (maxT ≥ TILED_MIN_T): token, column and depth tiles crossed with partial
    // last tiles, one token of a prefill-sized buffer, a tile exactly filled.
    { heads: 3, N: 70, K: 37, T: 67, maxT: 70 },
    { heads: 2, N: 64, K: 16, T: 64, maxT: 64 },
    { heads: 4, N: 9, K: 40, T: 1, maxT: 20 },
  ];
  const variants = [
    { wLayout: 'nk', wType: 'f32' },
    { wLayout: 'kn', wType: 'f32' },
    // f16 weights (--precision f16): the reference rounds them as the kernel unpacks them.
    { wLayout: 'nk', wType: 'f16' },
    { wLayout: 'kn', wType: 'f16' },
  ] as const;
  for (const v of variants) {
    cases.forEach((c, i) => {
      it(`${v.wLayout} ${v.wType}: ${c.heads} heads, N ${c.N}, K ${c.K}, T ${c.T} of ${c.maxT}`, async () => {
        const { caps } = await testGpu();
        const a: HeadMatmulAttrs = { op: 'head_matmul', ...c, ...v };
        const x = randn(c.maxT * c.heads * c.K, 10 + i, 2);
        const w = randn(c.heads * c.N * c.K, 20 + i, 1);
        const step = { T: c.T, pos: 0, L: 1 };
        const want = headMatmul.reference(a, { x, w }, step).out;
        const out = new Float32Array(c.maxT * c.heads * c.N).fill(SENTINEL);
        const { launches } = headMatmulKernel(a, { caps, maxT: c.maxT });
        expect(launches[0].kernel.name.includes('tiled')).toBe(c.maxT >= TILED_MIN_T);
        const wGpu = v.wType === 'f16' ? packF16(w) : w;
        const got = await runLaunches(launches, { inputs: { x, w: wGpu, out }, step });
        const n = c.T * c.heads * c.N;
        expect(maxRelError(got.out.subarray(0, n), want)).toBeLessThan(1e-5);
        expect(got.out.subarray(n).every((v) => v === SENTINEL)).toBe(true);
      });
    });
  }
});
