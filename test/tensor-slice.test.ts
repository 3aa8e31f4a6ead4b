/**
 * Slices of stored tensors (formats/tensor-slice.ts): the span arithmetic, the gather of a
 * non-contiguous box, reading only a box's bytes from a safetensors file (any float dtype), and
 * the import check that a box fits its stored tensor and holds its canonical one.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serializeSafetensors } from '../formats/safetensors.ts';
import { openSafetensors } from '../formats/node/safetensors-file.ts';
import {
  expertRows,
  gatherSlice,
  sliceHolds,
  sliceSpan,
  type TensorSlice,
} from '../formats/tensor-slice.ts';
import { checkTensors } from '../src/import/check.ts';

/** The box's elements by the definition: every index inside it, row-major. */
function naive(values: Float32Array, shape: number[], s: TensorSlice): number[] {
  const out: number[] = [];
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const walk = (d: number, off: number) => {
    if (d === shape.length) return void out.push(values[off]);
    for (let i = s.start[d]; i < s.start[d] + s.size[d]; i++) walk(d + 1, off + i * strides[d]);
  };
  walk(0, 0);
  return out;
}

const SHAPE = [3, 5, 7];
const VALUES = Float32Array.from({ length: 3 * 5 * 7 }, (_, i) => i * 0.5 - 20);

const BOXES: [string, TensorSlice][] = [
  ['an expert’s gate half (contiguous)', expertRows(1, 0, 2, 7)],
  ['an expert’s up half (contiguous)', expertRows(2, 2, 3, 7)],
  ['a whole expert', expertRows(0, 0, 5, 7)],
  ['columns of several experts (strided)', { start: [0, 1, 2], size: [3, 3, 4] }],
  ['one element', { start: [2, 4, 6], size: [1, 1, 1] }],
];

describe('sliceSpan and gatherSlice', () => {
  for (const [label, box] of BOXES) {
    it(label, () => {
      const span = sliceSpan('t', SHAPE, box);
      const count = box.size.reduce((a, b) => a * b, 1);
      expect(span.contiguous).toBe(span.end - span.first === count);
      const got = gatherSlice(VALUES.subarray(span.first, span.end), span.first, SHAPE, box);
      expect(Array.from(got)).toEqual(naive(VALUES, SHAPE, box));
    });
  }

  it('says which tensor a box does not fit, and how', () => {
    expect(() => sliceSpan('w.experts', SHAPE, expertRows(3, 0, 2, 7))).toThrow(
      "tensor 'w.experts' of shape [3, 5, 7]: slice start [3, 0, 0] size [1, 2, 7] runs past dimension 0 (3)",
    );
    expect(() => sliceSpan('w', SHAPE, { start: [0, 0], size: [1, 1] })).toThrow(
      /'w' of shape \[3, 5, 7\]: .* has 2\/2 dimensions, the tensor 3/,
    );
    expect(() => sliceSpan('w', SHAPE, { start: [0, 0, 0], size: [1, 0, 7] })).toThrow(
      /not a non-empty box/,
    );
  });

  it('holds a canonical shape when the extra leading sizes are 1', () => {
    expect(sliceHolds(expertRows(1, 0, 2, 7), [2, 7])).toBe(true);
    expect(sliceHolds(expertRows(1, 0, 2, 7), [7, 2])).toBe(false);
    expect(sliceHolds({ start: [0, 0, 0], size: [2, 2, 7] }, [2, 7])).toBe(false);
  });
});

describe('readTensorSliceF32', () => {
  let dir = '';
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads boxes of F32, F16 and BF16 tensors, contiguous or not', async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-slice-'));
    const path = join(dir, 'm.safetensors');
    // Values exact in f16 and bf16 (multiples of 0.5 below 64).
    const data = Float32Array.from(VALUES, (v) => v / 4);
    await writeFile(
      path,
      new Uint8Array(
        serializeSafetensors({
          a: { dtype: 'F32', shape: SHAPE, data },
          b: { dtype: 'F16', shape: SHAPE, data },
          c: { dtype: 'BF16', shape: SHAPE, data },
        }),
      ),
    );
    const src = await openSafetensors(path);
    try {
      for (const name of ['a', 'b', 'c']) {
        for (const [, box] of BOXES) {
          const got = await src.readTensorSliceF32(name, box);
          expect(Array.from(got), `${name} ${JSON.stringify(box)}`).toEqual(
            naive(data, SHAPE, box),
          );
        }
      }
      await expect(src.readTensorSliceF32('a', expertRows(0, 4, 2, 7))).rejects.toThrow(
        "tensor 'a' of shape [3, 5, 7]: slice start [0, 4, 0] size [1, 2, 7] runs past dimension 1 (5)",
      );
    } finally {
      await src.close();
    }
  });
});

describe('checkTensors with slices', () => {
  const expected = [{ name: 'experts.1.gate', shape: [2, 7] }];
  const map = { 'experts.1.gate': 'fused' };
  const stored = { 'experts.1.gate': [3, 5, 7] };
  const available = [{ name: 'fused', shape: [3, 5, 7], dtype: 'F32' }];

  it('accepts a box that fits and holds the canonical tensor', () => {
    const slices = { 'experts.1.gate': expertRows(1, 0, 2, 7) };
    expect(() =>
      checkTensors(expected, map, available, 'ckpt', undefined, stored, slices),
    ).not.toThrow();
  });

  it('names both tensors when the box does not fit or does not hold it', () => {
    expect(() =>
      checkTensors(expected, map, available, 'ckpt', undefined, stored, {
        'experts.1.gate': expertRows(1, 4, 2, 7),
      }),
    ).toThrow(
      /tensor 'fused' of shape \[3, 5, 7\]: .* runs past dimension 1 \(5\) \(strata 'experts.1.gate'\)/,
    );
    expect(() =>
      checkTensors(expected, map, available, 'ckpt', undefined, stored, {
        'experts.1.gate': expertRows(1, 0, 3, 7),
      }),
    ).toThrow(
      "slice size [1, 3, 7] of tensor 'fused' does not hold strata 'experts.1.gate' [2, 7]",
    );
  });
  it('checks what a de-interleaved, transposed slice yields (gpt_oss experts)', () => {
    // Expert 1's odd columns of a stored [3, 2, 14] ([experts, in, 2·out]) are [2, 7], → [7, 2].
    const fused = [{ name: 'fused', shape: [3, 2, 14], dtype: 'BF16' }];
    const slice = { start: [1, 0, 0], size: [1, 2, 14], columns: { offset: 1, stride: 2 } };
    const check = (shape: number[], transpose: boolean) => () =>
      checkTensors(
        [{ name: 'experts.1.up', shape }],
        { 'experts.1.up': 'fused' },
        fused,
        'ckpt',
        undefined,
        { 'experts.1.up': [3, 2, 14] },
        { 'experts.1.up': { ...slice, transpose } },
      );
    expect(check([7, 2], true)).not.toThrow();
    expect(check([2, 7], false)).not.toThrow();
    expect(check([2, 7], true)).toThrow(
      "slice size [1, 2, 14] columns 1::2 transposed of tensor 'fused' does not hold strata 'experts.1.up' [2, 7]",
    );
    expect(() =>
      checkTensors(
        [{ name: 'experts.1.up', shape: [7, 2] }],
        { 'experts.1.up': 'fused' },
        fused,
        'ckpt',
        undefined,
        { 'experts.1.up': [3, 2, 14] },
        { 'experts.1.up': { ...slice, columns: { offset: 0, stride: 4 }, transpose: true } },
      ),
    ).toThrow(
      /tensor 'fused': slice size \[1, 2, 14\]: 14 columns do not split into stride 4 \(strata 'experts.1.up'\)/,
    );
  });
});
