/**
 * q8 and q4 matmuls (the decode GEMV and the prefill FMA tiles, which dequantise through the one
 * weight reader) against the reference, which computes with the same dequantised weights
 * (src/ops/weight-storage.ts roundWeight). Each dequantised weight is scale · code, exact in f32,
 * so only the summation order differs and the 1e-4 relative tolerance of f32 holds. The
 * quantisation error itself is a model-level question (test/model/precision.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { BASELINE_CAPS } from '../../src/target.ts';
import { matmulKernel } from '../../codegen/kernels/matmul.ts';
import type { MatmulAttrs } from '../../src/graph/ops.ts';
import { check, LAYER, matrixCaps, mm, PATHS, RMS, ropeCase } from '../helpers/matmul.ts';
import { matmul } from '../../src/ops/matmul.ts';

/** Odd N, and K of one block, several blocks, and enough blocks for many units per thread. */
const SHAPES: ReadonlyArray<[number, number]> = [
  [1, 32],
  [67, 96],
  [129, 160],
  [250, 32],
  [33, 1056],
];

for (const wType of ['q8', 'q4'] as const) {
  const W = { wType } as const;
  const VARIANTS: Array<[string, Partial<MatmulAttrs>]> = [
    [`${wType} weights`, W],
    [`${wType}: bias + gelu`, { ...W, bias: true, act: 'gelu' }],
    [
      `${wType}: rms + gated silu + bias + residual`,
      { ...W, prologue: RMS, gated: true, act: 'silu', bias: true, residual: true },
    ],
    [`${wType}: layer norm + scale`, { ...W, prologue: LAYER, scale: 0.5 }],
    [`${wType}: rows L + strided`, { ...W, rows: 'L', outStride: 300, outOffset: 7 }],
  ];
  describe(`${wType} matmuls`, () => {
    for (const [path, maxT, steps] of PATHS) {
      describe(path, () => {
        for (const [vi, [label, over]] of VARIANTS.entries()) {
          it(label, async () => {
            const run = { caps: await matrixCaps(), maxT, steps };
            for (const [si, [N, K]] of SHAPES.entries()) {
              await check(mm(N, K, over), run, 400_000 + 1000 * vi + 10 * si);
            }
          });
        }
        it(`${wType}: rms + ropeKv`, async () => {
          const run = { caps: await matrixCaps(), maxT, steps };
          await check(
            ropeCase(2, 1, 32, 32, 64, { ...W, bias: true, prologue: RMS }),
            run,
            430_000,
          );
        });
      });
    }

    it('refuses rows that are not whole blocks, naming the row length', () => {
      expect(() => matmulKernel(mm(8, 48, W), { caps: BASELINE_CAPS, maxT: 1 })).toThrow(
        new RegExp(`wType ${wType} needs rows of whole blocks of 32, and a row has 48 elements`),
      );
    });

    it('counts the weight at its stored bytes', () => {
      const a = mm(64, 64, W);
      const perElem = wType === 'q8' ? 1 + 2 / 32 : 0.5 + 2 / 32;
      const read = matmul.cost(a, { T: 1, pos: 0, L: 1 }).bytesRead;
      expect(read).toBe(64 * 64 * perElem + 4 * 64);
    });
  });
}
