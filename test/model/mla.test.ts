/**
 * MLA models on WebGPU against the CPU interpreter, prefill and decode, in the variants the DeepSeek fixture does not cover: q_proj without a
 * q latent, rotate-half pairs, projection biases, odd widths, a v head wider than the q/k head,
 * YaRN; and the inspect report's KV bytes per token.
 */
import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/spec/load.ts';
import { report } from '../../src/cli/report.ts';
import { compileModel } from '../../codegen/compile.ts';
import { headRows, materialize } from '../../src/graph/params.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { randInts } from '../helpers/numeric.ts';

const SPEC = `model "tiny-mla" {
  vocab 70
  dim 40
  max_context 128
  norm rms(eps: 1e-5)
  mixer plain = mla(heads: 3, kv_rank: 12, nope_dim: 6, rope_dim: 4, v_dim: 14, rope_pairs: half, bias: true)
  mixer lora  = mla(heads: 5, q_rank: 18, kv_rank: 10, nope_dim: 7, rope_dim: 6, v_dim: 5,
                    rope: rope(theta: 500, scaling: yarn(factor: 4, original_max_positions: 32)))
  ffn   mlp   = swiglu(hidden: 36)
  layers [plain, lora, lora] with ffn mlp
}`;

const MODEL = parseSpec(SPEC, 'tiny-mla.strata');

describe('MLA model on WebGPU vs the CPU interpreter', () => {
  it('prefill of 19 tokens and 8 greedy decode steps match', async () => {
    const m = await gpuModel(MODEL, { maxT: 24 });
    await expectMatchesInterpreter(m, randInts(19, MODEL.vocab, 5), 8, 1e-4);
  });

  it('inspect: the expanded cache costs 4·heads·(nope + rope + v) bytes per token', () => {
    const compiled = compileModel(MODEL, { caps: BASELINE_CAPS, maxT: 8, capacity: 64 });
    const r = report(compiled);
    expect(r.kvBytesPerToken).toBe(4 * (3 * (6 + 4 + 14) + 2 * 5 * (7 + 6 + 5)));
  });
});

describe('head_rows parameters', () => {
  it('take and reorder row ranges inside each head', async () => {
    // 2 heads of 3 rows × 2 columns: rows r hold [r, r + 0.5].
    const w = Float32Array.from({ length: 12 }, (_, i) => Math.floor(i / 2) + (i % 2) / 2);
    const ranges = [
      { start: 2, count: 1 },
      { start: 0, count: 2 },
    ];
    const got = await materialize(
      {
        kind: 'head_rows',
        of: { kind: 'weight', name: 'w' },
        heads: 2,
        headRows: 3,
        ranges,
        cols: 2,
      },
      () => w,
    );
    expect(Array.from(got)).toEqual([2, 2.5, 0, 0.5, 1, 1.5, 5, 5.5, 3, 3.5, 4, 4.5]);
    const src = { heads: 2, headRows: 3, cols: 2 };
    expect(() => headRows(w, { ...src, ranges: [{ start: 2, count: 2 }] })).toThrow(
      /outside 3 rows/,
    );
    expect(() => headRows(w.subarray(1), { ...src, ranges })).toThrow(/not 2 heads/);
  });
});
