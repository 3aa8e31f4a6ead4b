/**
 * The decode GEMV with G load units per thread and loop step (GemvShape.G; the grouped weight
 * reader codegen/kernels/weight-load.ts weightGroupBinding) against the reference, for G = 2,
 * 4 and 8 and every weight type, on awkward shapes: N = 1, N odd and a multiple of no
 * workgroup's rows, K of one q block (32) and of 33 blocks, gated, with every x path the GEMV has (norm prologues,
 * grouped and gated, x maps per split, x rounded to f16) and every epilogue whose indexing
 * differs (ropeKv pairs, the conv state). Tolerance: check's 1e-4 relative, as for G = 1: the
 * dequantised weights (scale · code, and f16 → f32) are exact in f32, so only the summation
 * order differs (q: Σ x·code then · scale, not Σ x·(scale·code)).
 */
import { describe, expect, it } from 'vitest';
import type { MatmulAttrs, MoeMatmulAttrs } from '../../src/graph/ops.ts';
import type { WeightType } from '../../src/graph/dtype.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { matmulKernel } from '../../codegen/kernels/matmul.ts';
import {
  gemvLaunch,
  gemvShape,
  warpFloor,
  type GemvShape,
} from '../../codegen/kernels/matmul/gemv.ts';
import { gemvShape as moeGemvShape } from '../../codegen/kernels/moe-gemv.ts';
import {
  check,
  DECODE_STEPS,
  mixOf,
  LAYER,
  matrixCaps,
  mm,
  RMS,
  ropeCase,
} from '../helpers/matmul.ts';

// G = 1 is the GEMV every other matmul test runs (its kernels are those from before G existed).
const GROUPS = [2, 4, 8];
const TYPES: WeightType[] = ['f32', 'f16', 'q8', 'q4'];

/**
 * Cases for weight type w, each with the thread shape it runs under (TPC, C): rows per
 * workgroup 16 or 64 (SwiftShader's 256 threads), so N = 67 and 33 leave partial workgroups.
 */
function cases(w: WeightType): Array<[string, MatmulAttrs, Omit<GemvShape, 'G'>]> {
  const W = { wType: w } as const;
  const maps = [0, 1, 1].map((s) => mixOf(64, 2, s));
  const out: Array<[string, MatmulAttrs, Omit<GemvShape, 'G'>]> = [
    ['N = 1, K = 32 (one block)', mm(1, 32, { ...W, bias: true }), { TPC: 32, C: 2 }],
    [
      'N = 67, K = 96, bias + residual',
      mm(67, 96, { ...W, bias: true, residual: true }),
      { TPC: 64, C: 4 },
    ],
    ['N = 33, K = 1056 (33 blocks)', mm(33, 1056, W), { TPC: 32, C: 2 }],
    [
      'rms + gated silu + bias + residual',
      mm(67, 96, { ...W, prologue: RMS, gated: true, act: 'silu', bias: true, residual: true }),
      { TPC: 32, C: 2 },
    ],
    [
      // Prologue groups of 12 units: a step of 8 units straddles two; the gate at an odd offset.
      'grouped rms (48) + gate inside a wider row',
      mm(33, 96, {
        ...W,
        prologue: RMS,
        prologueGroup: 48,
        prologueGroupWeight: true,
        prologueGate: true,
        prologueGateCols: { cols: 131, offset: 5 },
        residual: true,
      }),
      { TPC: 32, C: 2 },
    ],
    [
      'per-split x maps, splits straddling row pairs',
      mm(67, 64, { ...W, splits: [5, 60, 2], xMap: maps[0], splitXMaps: maps }),
      { TPC: 32, C: 2 },
    ],
    [
      'rms + ropeKv',
      ropeCase(3, 1, 8, 6, 64, { ...W, bias: true, prologue: RMS }),
      { TPC: 64, C: 4 },
    ],
    [
      'mamba in_proj: split x|z, rms, conv epilogue',
      mm(67, 96, {
        ...W,
        splits: [34, 33],
        prologue: RMS,
        conv: { channels: 34, kernel: 4, bias: true, silu: true },
      }),
      { TPC: 32, C: 2 },
    ],
  ];
  if (w === 'f16')
    out.push([
      'layer norm, x rounded to f16',
      mm(67, 96, { ...W, xType: 'f16', prologue: LAYER, bias: true }),
      { TPC: 32, C: 2 },
    ]);
  // Rows of K % 4 !== 0 (f32 and f16 only): units of one element, 130 of them.
  if (w === 'f32' || w === 'f16')
    out.push([
      'K = 130 (scalar units), gated',
      mm(67, 130, { ...W, gated: true, act: 'silu' }),
      { TPC: 32, C: 2 },
    ]);
  return out;
}

describe('the decode GEMV with G load units per step against the reference', () => {
  for (const [ti, w] of TYPES.entries()) {
    it(`${w} weights, G = ${GROUPS.join(', ')}`, async () => {
      const caps = await matrixCaps();
      let ran = 0;
      for (const [ci, [label, a, s]] of cases(w).entries()) {
        for (const G of GROUPS) {
          // K = 130 has 130 units: only G = 2 divides them.
          if ((a.K % 4 === 0 ? a.K / 4 : a.K) % G !== 0) continue;
          const launch = gemvLaunch(a, caps, { ...s, G });
          expect(launch.kernel.name, label).toMatch(new RegExp(`x\\d+u${G}_`));
          const steps = a.conv ? [...DECODE_STEPS, { T: 1, pos: 0, L: 1 }] : DECODE_STEPS;
          await check(a, { caps, maxT: 1, steps }, 97_000 + 1000 * ti + 10 * ci + G, [launch]);
          ran++;
        }
      }
      expect(ran).toBeGreaterThanOrEqual(3 * 8);
    });
  }
});

describe('GEMV load-unit groups: reads and rule', () => {
  it('reads 16 bytes per load where the group fills them, and words otherwise', () => {
    const code = (w: WeightType, G: number) =>
      gemvLaunch(mm(8, 64, { wType: w }), BASELINE_CAPS, { TPC: 32, C: 2, G }).kernel.code;
    const wDecl = /var<storage, read> b_w: array<([^>]*>?)>/;
    expect(code('q4', 8).match(wDecl)?.[1]).toBe('vec4<u32>');
    expect(code('q4', 4).match(wDecl)?.[1]).toBe('u32');
    expect(code('q8', 4).match(wDecl)?.[1]).toBe('vec4<u32>');
    expect(code('q8', 2).match(wDecl)?.[1]).toBe('u32');
    expect(code('f16', 2).match(wDecl)?.[1]).toBe('vec4<u32>');
    expect(code('f16', 1).match(wDecl)?.[1]).toBe('vec2<u32>');
    // The block's scale is read once per group, not once per unit.
    expect(code('q4', 8).match(/unpack2x16float\(b_w\[/g)?.length).toBe(1);
  });

  it('refuses a G that is not 1, 2, 4 or 8 or does not divide the row, naming both', () => {
    const a = mm(8, 130);
    expect(() => gemvLaunch(a, BASELINE_CAPS, { TPC: 32, C: 2, G: 4 })).toThrow(
      /G = 4 load units per step must be 1, 2, 4 or 8 and divide the row's 130 units \(K = 130\)/,
    );
    expect(() => gemvLaunch(mm(8, 64), BASELINE_CAPS, { TPC: 32, C: 2, G: 3 })).toThrow(/G = 3/);
  });

  it("the rule's G divides the row's units, and the default kernel is the rule's", () => {
    for (const w of TYPES) {
      for (const K of w === 'q8' || w === 'q4' ? [32, 96, 2048] : [3, 130, 96, 2048]) {
        const a = mm(67, K, { wType: w });
        const { G } = gemvShape(a, BASELINE_CAPS);
        expect((K % 4 === 0 ? K / 4 : K) % G).toBe(0);
        expect(matmulKernel(a, { caps: BASELINE_CAPS, maxT: 1 }).launches[0].kernel.name).toBe(
          gemvLaunch(a, BASELINE_CAPS).kernel.name,
        );
      }
    }
    // A rule line of G = 8: rows of 130 scalar units take G = 2, of 96 elements (24 units) 8.
    const line = { G: 8, maxTPC: 64, C: 4 };
    expect(gemvShape(mm(67, 130), BASELINE_CAPS, line)).toEqual({ TPC: 32, C: 4, G: 2 });
    expect(gemvShape(mm(67, 96, { wType: 'q4' }), BASELINE_CAPS, line).G).toBe(8);
    expect(gemvShape(mm(67, 8192, { wType: 'q4' }), BASELINE_CAPS, line).TPC).toBe(64);
  });

  it('gives a short row a warp of 32 lanes, or the subgroup of a device whose subgroup is narrower', () => {
    const caps = (subgroupMaxSize: number) => ({ ...BASELINE_CAPS, subgroupMaxSize });
    // K = 256: 64 load units, 8 a lane at 8 lanes.
    const short = mm(1, 256);
    for (const s of [0, 32, 64]) expect(gemvShape(short, caps(s)).TPC).toBe(32);
    expect(gemvShape(short, caps(4)).TPC).toBe(8);
    expect(gemvShape(mm(1, 64), caps(4)).TPC).toBe(4);
    // Long rows take their lanes from the row alone.
    expect(gemvShape(mm(1, 2048), caps(4)).TPC).toBe(64);
    expect(gemvShape(mm(1, 2048), caps(32)).TPC).toBe(64);
    // The MoE expert GEMVs follow the same floor (at most a warp a column).
    const expert = { K: 256 } as MoeMatmulAttrs;
    expect(moeGemvShape(expert, 256, warpFloor(caps(32)))).toEqual({ WG: 256, TPC: 32, CPW: 8 });
    expect(moeGemvShape(expert, 256, warpFloor(caps(4)))).toEqual({ WG: 256, TPC: 8, CPW: 32 });
    expect(moeGemvShape({ K: 4096 } as MoeMatmulAttrs, 256, 4).TPC).toBe(32);
  });
});
