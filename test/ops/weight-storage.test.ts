/**
 * The stored weight layouts (src/graph/dtype.ts) and their CPU encoder (src/ops/weight-storage.ts):
 * what the kernels' one reader (codegen/kernels/weight-load.ts) is tested against through the
 * matmul and embedding kernel tests.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeWeight, encodeWeight, roundWeight } from '../../src/ops/weight-storage.ts';
import { dtypeBytes, quantScaleOffset } from '../../src/graph/dtype.ts';
import { roundF16 } from '../../src/ops/math.ts';
import { f16BitsToNumber } from '../../formats/safetensors.ts';
import { randn } from '../helpers/numeric.ts';

const scalesOf = (t: 'q8' | 'q4', bytes: Uint8Array, n: number) =>
  Array.from(
    new Uint16Array(bytes.buffer, bytes.byteOffset + quantScaleOffset(t, n), n / 32),
    (h) => f16BitsToNumber(h),
  );

describe('stored weight types', () => {
  it('sizes: f16 two bytes, q8 one byte plus an f16 per 32, q4 half a byte plus an f16 per 32', () => {
    expect(dtypeBytes('f32', 96)).toBe(384);
    expect(dtypeBytes('f16', 96)).toBe(192);
    expect(dtypeBytes('f16', 3)).toBe(8); // padded to whole words
    expect(dtypeBytes('q8', 96)).toBe(96 + 8); // 3 scales = 6 bytes, padded to 8
    expect(dtypeBytes('q4', 64)).toBe(32 + 4);
  });

  it('f32 is stored as is and f16 as the nearest half', () => {
    const x = randn(64, 1, 3);
    expect(Array.from(decodeWeight('f32', encodeWeight('f32', x, 8), 64))).toEqual(Array.from(x));
    expect(Array.from(roundWeight('f16', x, 8))).toEqual(Array.from(x, roundF16));
  });

  it('q8: the block maximum is ±127 scales, and every value within half a scale', () => {
    const x = randn(32 * 5, 2, 1);
    const bytes = encodeWeight('q8', x, 64 + 96);
    const d = scalesOf('q8', bytes, x.length);
    const y = decodeWeight('q8', bytes, x.length);
    for (let b = 0; b < 5; b++) {
      const block = Array.from(x.subarray(32 * b, 32 * b + 32));
      const amax = Math.max(...block.map(Math.abs));
      expect(d[b]).toBe(roundF16(amax / 127));
      for (let j = 0; j < 32; j++) {
        const i = 32 * b + j;
        expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(
          d[b] / 2 + 1e-7 + Math.abs(x[i]) * 2 ** -10,
        );
        expect(Math.abs((bytes[i] << 24) >> 24)).toBeLessThanOrEqual(127);
      }
    }
  });

  it('q4: the extreme element is exactly −8 scales; codes 0…15, low nibble first', () => {
    const x = new Float32Array(32).map((_, i) => (i - 10) / 4); // extreme 21/4 at i = 31
    const bytes = encodeWeight('q4', x, 32);
    const d = scalesOf('q4', bytes, 32)[0];
    expect(d).toBe(roundF16(5.25 / -8));
    const y = decodeWeight('q4', bytes, 32);
    expect(y[31]).toBe(-8 * d);
    expect(bytes[15] >> 4).toBe(0); // element 31: high nibble of byte 15, code 0
    for (let i = 0; i < 32; i++)
      expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(Math.abs(d) / 2 + 1e-6);
  });

  it('an all-zero block has scale 0 and decodes to zeros', () => {
    for (const t of ['q8', 'q4'] as const) {
      expect(Array.from(roundWeight(t, new Float32Array(32), 32))).toEqual(new Array(32).fill(0));
    }
  });

  it('re-encoding decoded q8 and q4 gives back the same bytes (a Q8_0 / Q4_0 tensor converts losslessly)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -1e4, max: 1e4, noNaN: true, noDefaultInfinity: true }), {
          minLength: 64,
          maxLength: 64,
        }),
        fc.constantFrom('q8' as const, 'q4' as const),
        (values, t) => {
          const once = encodeWeight(t, Float32Array.from(values), 32);
          const again = encodeWeight(t, decodeWeight(t, once, 64), 32);
          expect(Array.from(again)).toEqual(Array.from(once));
        },
      ),
      { numRuns: 300, seed: 12 },
    );
  });

  it('refuses what a type cannot hold, naming the element', () => {
    const big = new Float32Array(32).fill(1);
    big[5] = 70000;
    expect(() => encodeWeight('f16', big, 32)).toThrow(/element 5 = 70000 is beyond the f16 range/);
    const nan = new Float32Array(32);
    nan[7] = NaN;
    // A NaN would become every element's scale in a block; f32 and f16 keep it for the runtime's
    // non-finite scan to name.
    for (const t of ['q8', 'q4'] as const)
      expect(() => encodeWeight(t, nan, 32)).toThrow(/element 7 is NaN/);
    expect(Number.isNaN(roundWeight('f16', nan, 32)[7])).toBe(true);
    expect(() => encodeWeight('q4', new Float32Array(48), 48)).toThrow(
      /rows of 48 are not whole blocks of 32/,
    );
  });
});

describe('q8 keeps blocks a power-of-two scale holds exactly', () => {
  it('MXFP4 blocks (e2m1 values × 2^e) come back unchanged; others keep the absmax rule', () => {
    const e2m1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
    const rnd = randn(32 * 200, 9, 1);
    const x = new Float32Array(32 * 200);
    for (let b = 0; b < 200; b++) {
      // Scales whose lowest step, 2^(e−1), is an f16 (MXFP4's exponent range reaches beyond).
      const scale = 2 ** ((b % 30) - 20);
      for (let j = 0; j < 32; j++) {
        const r = rnd[32 * b + j];
        const m = e2m1[Math.floor(Math.abs(r) * 5) % 8];
        x[32 * b + j] = (r < 0 ? -m : m) * scale;
      }
    }
    expect(Array.from(roundWeight('q8', x, 32))).toEqual(Array.from(x, (v) => v + 0)); // −0 → +0
    // A random block is not on such a grid: the absmax scale as before.
    const y = randn(32, 10, 1);
    const amax = Math.max(...Array.from(y, Math.abs));
    const bytes = encodeWeight('q8', y, 32);
    expect(scalesOf('q8', bytes, 32)[0]).toBe(roundF16(amax / 127));
  });

  it('rounding is reused for the same memory and redone when a weight changes in place', () => {
    const whole = randn(32 * 4, 11, 1);
    const part = whole.subarray(32, 96);
    const first = roundWeight('q4', part, 32);
    // A fresh view of the same memory (as the interpreter makes each step) hits the memo.
    expect(roundWeight('q4', whole.subarray(32, 96), 32)).toBe(first);
    // Another type, or other columns of the same memory, is its own entry.
    expect(roundWeight('q8', part, 32)).not.toBe(first);
    whole[40] = 7;
    const again = roundWeight('q4', whole.subarray(32, 96), 32);
    expect(again).not.toBe(first);
    expect(Array.from(again)).toEqual(
      Array.from(decodeWeight('q4', encodeWeight('q4', whole.subarray(32, 96), 32), 64)),
    );
  });
});
