/**
 * The decode GEMV with one x map per split (MatmulAttrs.splitXMaps, made by the
 * rwkv7-projections fusion): every split reads x + (prev − x)·μ_s with its own μ range of one
 * concatenated parameter, against the reference, on splits that straddle the GEMV's row pairs and
 * workgroups (odd widths, K both vec4 and not).
 */
import { describe, expect, it } from 'vitest';
import type { MatmulAttrs } from '../../src/graph/ops.ts';
import { matmul } from '../../src/ops/matmul.ts';
import { matmulKernel } from '../../codegen/kernels/matmul.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { check, DECODE_STEPS, mixOf, matrixCaps, mm } from '../helpers/matmul.ts';

/** Splits `splits`, split i mixing with μ part `member[i]` (several splits may share one). */
function splitMixed(K: number, splits: number[], member: number[]): MatmulAttrs {
  const parts = Math.max(...member) + 1;
  const maps = member.map((s) => mixOf(K, parts, s));
  const N = splits.reduce((a, b) => a + b, 0);
  return mm(N, K, { splits, xMap: maps[0], splitXMaps: maps });
}

describe('matmul with per-split x maps against the reference (decode GEMV)', () => {
  const cases: Array<[string, number, number[], number[]]> = [
    [
      'rwkv7 later layer: r, k, v, v_lora.down (v and its lora share μ)',
      48,
      [48, 48, 30, 3],
      [0, 1, 2, 2],
    ],
    ['lora downs of odd ranks, K not a multiple of 4', 45, [5, 7, 9], [0, 1, 2]],
    ['one-column splits and a wide one', 129, [1, 1, 67, 1], [0, 1, 2, 3]],
  ];
  for (const [ci, [label, K, splits, member]] of cases.entries()) {
    it(label, async () => {
      const run = { caps: await matrixCaps(), maxT: 1, steps: DECODE_STEPS };
      await check(splitMixed(K, splits, member), run, 91_000 + 100 * ci);
    });
  }
});

describe('per-split x map attributes', () => {
  it('refuses maps that do not match the splits or xMap', () => {
    const a = splitMixed(12, [3, 4], [0, 1]);
    expect(() => matmul.check(a)).not.toThrow();
    expect(() => matmul.check({ ...a, splitXMaps: a.splitXMaps!.slice(0, 1) })).toThrow(
      /one map per split/,
    );
    expect(() => matmul.check({ ...a, xMap: a.splitXMaps![1] })).toThrow(/must be xMap/);
    const wider = mixOf(12, 3, 1);
    expect(() => matmul.check({ ...a, splitXMaps: [a.xMap!, wider] })).toThrow(/kind and width/);
  });
  it('is a decode GEMV feature: prefill schedules refuse it by name', () => {
    const a = splitMixed(12, [3, 4], [0, 1]);
    expect(() => matmulKernel(a, { caps: BASELINE_CAPS, maxT: 8 })).toThrow(/splitXMaps/);
    const k = matmulKernel(a, { caps: BASELINE_CAPS, maxT: 1 }).launches[0].kernel;
    expect(k.name).toMatch(/_xmaps_/);
    expect(k.bindings.map((b) => b.name)).toEqual([
      'step',
      'x',
      'p_prev',
      'p_mu',
      'w',
      'out',
      'out1',
    ]);
  });
});
