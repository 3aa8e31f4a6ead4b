import { describe, expect, it } from 'vitest';
import { embedKernel } from '../../codegen/kernels/embedding.ts';
import type { EmbedAttrs } from '../../src/graph/ops.ts';
import { embed } from '../../src/ops/embedding.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randInts, randn } from '../helpers/numeric.ts';
import { encodeWeight } from '../../src/ops/weight-storage.ts';
import type { WeightType } from '../../src/graph/dtype.ts';
import { words } from '../helpers/weights.ts';

interface Case {
  name: string;
  vocab: number;
  dim: number;
  scale: number;
  rowStart: number;
  rows: number;
  T: number;
  maxT: number;
}

const cases: Case[] = [
  {
    name: 'decode, dim 64 (vec4)',
    vocab: 100,
    dim: 64,
    scale: 1,
    rowStart: 0,
    rows: 100,
    T: 1,
    maxT: 1,
  },
  {
    name: 'odd dim 33, gemma scale',
    vocab: 50,
    dim: 33,
    scale: Math.sqrt(33),
    rowStart: 0,
    rows: 50,
    T: 17,
    maxT: 20,
  },
  {
    name: 'long T = 300, dim 12',
    vocab: 1000,
    dim: 12,
    scale: 1,
    rowStart: 0,
    rows: 1000,
    T: 300,
    maxT: 320,
  },
  {
    name: 'split table, rows [20, 35), dim 7',
    vocab: 50,
    dim: 7,
    scale: 2,
    rowStart: 20,
    rows: 15,
    T: 40,
    maxT: 48,
  },
  {
    name: 'split table, first part, dim 1024',
    vocab: 60,
    dim: 1024,
    scale: 1,
    rowStart: 0,
    rows: 31,
    T: 9,
    maxT: 9,
  },
  {
    name: 'split table, last part, T = 1',
    vocab: 60,
    dim: 255,
    scale: 1.5,
    rowStart: 31,
    rows: 29,
    T: 1,
    maxT: 1,
  },
];

/** Stored tables: f16 at any width, q8 and q4 on rows of whole blocks of 32. */
const storedCases: Array<[WeightType, Case]> = [
  ['f16', cases[1]],
  ['f16', cases[3]],
  ['f16', cases[4]],
  ['q8', cases[0]],
  ['q8', { ...cases[4], name: 'split table, dim 1024, T = 9', rowStart: 29 }],
  ['q4', cases[0]],
  ['q4', { ...cases[2], dim: 96, name: 'long T = 300, dim 96' }],
  ['q4', { ...cases[5], dim: 160, name: 'split table, last part, dim 160, T = 1' }],
];

describe('embed kernel vs reference', () => {
  for (const [ci, [tableType, c]] of [
    ...cases.map((c) => ['f32', c] as const),
    ...storedCases,
  ].entries()) {
    it(`${c.name}${tableType === 'f32' ? '' : `, ${tableType} table`}`, async () => {
      const { caps } = await testGpu();
      const a: EmbedAttrs = {
        op: 'embed',
        vocab: c.vocab,
        dim: c.dim,
        scale: c.scale,
        rowStart: c.rowStart,
        rows: c.rows,
        tableType,
      };
      const { launches } = embedKernel(a, { caps, maxT: c.maxT });
      const ids = randInts(c.maxT, c.vocab, 500 + ci);
      const table = randn(c.rows * c.dim, 600 + ci, 2);
      // Prior contents of out: the split case must keep them for ids it does not own.
      const out = randn(c.maxT * c.dim, 700 + ci, 9);
      const split = c.rowStart > 0 || c.rows < c.vocab;
      if (split) {
        // Make sure both an owned and (when T > 1) a foreign id occur.
        ids[0] = c.rowStart + (ids[0] % c.rows);
        if (c.T > 1) ids[1] = c.rowStart > 0 ? 0 : c.vocab - 1;
      }
      const step = { T: c.T, pos: 0, L: 1 };
      const stored = words(encodeWeight(tableType, table, c.dim));
      const got = await runLaunches(launches, {
        inputs: { ids, table: stored, out: out.slice() },
        step,
      });
      const want = embed.reference(a, split ? { ids, table, out } : { ids, table }, step)
        .out as Float32Array;
      const n = c.T * c.dim;
      // The stored values are exact in f32, so a table read as f16, q8 or q4 unscaled must give
      // the reference's numbers exactly; a scale differs only by its own f32 rounding (2^-24).
      if (tableType === 'f32') {
        expect(maxRelError(got.out.subarray(0, n), want)).toBeLessThanOrEqual(1e-4);
      } else if (c.scale !== 1) {
        expect(maxRelError(got.out.subarray(0, n), want)).toBeLessThanOrEqual(1e-6);
      } else {
        expect(Array.from(got.out.subarray(0, n))).toEqual(Array.from(want));
      }
      expect(Array.from(got.out.subarray(n))).toEqual(Array.from(out.subarray(n)));
    });
  }

  it('reference keeps rows of foreign ids and scales owned ones', () => {
    const a: EmbedAttrs = {
      op: 'embed',
      vocab: 4,
      dim: 2,
      scale: 3,
      rowStart: 2,
      rows: 2,
      tableType: 'f32',
    };
    const table = Float32Array.of(1, 2, 5, 6);
    const ids = Uint32Array.of(0, 3, 2);
    const out = Float32Array.of(-1, -1, -2, -2, -3, -3);
    const got = embed.reference(a, { ids, table, out }, { T: 3, pos: 0, L: 1 }).out;
    expect(Array.from(got)).toEqual([-1, -1, 15, 18, 3, 6]);
  });

  it('reference rejects ids outside the vocab', () => {
    const a: EmbedAttrs = {
      op: 'embed',
      vocab: 4,
      dim: 1,
      scale: 1,
      rowStart: 0,
      rows: 4,
      tableType: 'f32',
    };
    const run = () =>
      embed.reference(
        a,
        { ids: Uint32Array.of(4), table: new Float32Array(4) },
        { T: 1, pos: 0, L: 1 },
      );
    expect(run).toThrow(/outside the vocab/);
  });
});
