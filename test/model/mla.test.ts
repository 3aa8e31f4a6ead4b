/**
 * MLA models on WebGPU against the CPU interpreter, prefill and decode, in the variants the DeepSeek fixture does not cover: q_proj without a
 * q latent, rotate-half pairs, projection biases, odd widths, a v head wider than the q/k head,
 * YaRN; both cache forms (the latent cache with absorbed projections, the default, and the
 * expanded one), which must agree; f16 latent caches; and the inspect report's KV bytes per token.
 */
import { describe, expect, it } from 'vitest';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import { layerStates, report } from '../../src/cli/report.ts';
import { lower } from '../../src/graph/lower.ts';
import type { MlaCache } from '../../src/mixers/mla.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { WeightProvider } from '../../src/graph/params.ts';
import { compileModel } from '../../codegen/compile.ts';
import { headRows, materialize } from '../../src/graph/params.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { chunkedThenDecode, expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { maxRelErrorSteps, randInts } from '../helpers/numeric.ts';

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

/** The model with every MLA layer's cache in the given form. */
function withCache(model: ModelIR, cache: MlaCache): ModelIR {
  return {
    ...model,
    layers: model.layers.map((l) =>
      l.mixer?.kind === 'mla' ? { ...l, mixer: { ...l.mixer, cache } } : l,
    ),
  };
}

describe('MLA model on WebGPU vs the CPU interpreter', () => {
  it('prefill of 19 tokens and 8 greedy decode steps match', async () => {
    const m = await gpuModel(MODEL, { maxT: 24 });
    await expectMatchesInterpreter(m, randInts(19, MODEL.vocab, 5), 8, 1e-4);
  });

  it('the expanded cache form matches too', async () => {
    const m = await gpuModel(withCache(MODEL, 'expanded'), { maxT: 12 });
    await expectMatchesInterpreter(m, randInts(11, MODEL.vocab, 5), 3, 1e-4);
  });

  // f16 latent caches on the GPU: test/model/kv-f16.test.ts.

  it('q4 weights: the absorbed kv_b_proj slices are stored f16, and the model matches', async () => {
    const m = await gpuModel(MODEL, { maxT: 12, precision: 'q4' });
    const heads = m.compiled.graphs.decode.nodes.filter((n) => n.attrs.op === 'head_matmul');
    expect(heads.map((n) => n.attrs.op === 'head_matmul' && n.attrs.wType)).toEqual(
      Array(6).fill('f16'),
    );
    await expectMatchesInterpreter(m, randInts(11, MODEL.vocab, 9), 3, 1e-4);
  });
  it('f16 caches refuse an odd kv_rank, naming the option', () => {
    const odd = parseSpec(SPEC.replace('kv_rank: 12', 'kv_rank: 11'), 'odd.strata');
    expect(() => lower(odd, { phase: 'decode', maxT: 8, capacity: 64, kv: 'f16' })).toThrow(
      /--kv f16.*even kv_rank and rope_dim, got 11 and 4/,
    );
  });

  it('inspect: the latent cache costs 4·(kv_rank + rope) bytes per token, the expanded one 4·heads·(nope + rope + v)', () => {
    const latent = report(compileModel(MODEL, { caps: BASELINE_CAPS, maxT: 8, capacity: 64 }));
    expect(latent.kvBytesPerToken).toBe(4 * (12 + 4) + 2 * 4 * (10 + 6));
    const expanded = report(
      compileModel(withCache(MODEL, 'expanded'), { caps: BASELINE_CAPS, maxT: 8, capacity: 64 }),
    );
    expect(expanded.kvBytesPerToken).toBe(4 * (3 * (6 + 4 + 14) + 2 * 5 * (7 + 6 + 5)));
  });
});

/** chunkedThenDecode on the compiled (pass-optimised) graphs. */
async function interpretSteps(
  model: ModelIR,
  weights: WeightProvider,
  ids: Uint32Array,
  chunk: number,
  steps: number,
): Promise<Float32Array[]> {
  const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 16, capacity: 64 });
  const prefill = await Interpreter.create(c.graphs.prefill, weights);
  const decode = await Interpreter.create(c.graphs.decode, weights);
  return chunkedThenDecode(prefill, decode, ids, chunk, steps);
}

describe('latent and expanded caches on the CPU interpreter', () => {
  it('give the same logits, a prefill in chunks (the latent one) then decode', async () => {
    const ids = randInts(11, MODEL.vocab, 8);
    const weights = randomWeights(MODEL, 7);
    // Chunks of 4: later chunks attend to the latents earlier ones cached.
    const a = await interpretSteps(MODEL, weights, ids, 4, 4);
    const b = await interpretSteps(withCache(MODEL, 'expanded'), weights, ids, 11, 4);
    expect(a).toHaveLength(5);
    expect(maxRelErrorSteps(a, b)).toBeLessThan(1e-5);
  });
});

describe('DeepSeek-V3 (specs/deepseek-v3.strata) KV bytes per token', () => {
  const v3 = loadSpec('specs/deepseek-v3.strata');
  // The report reads the decode graph only; lowering it alone skips compiling 61 layers' kernels.
  const perLayer = (model: ModelIR, kv: 'f32' | 'f16' = 'f32') => {
    const decode = lower(model, { phase: 'decode', maxT: 1, capacity: 64, kv });
    return layerStates({ model, graphs: { decode, prefill: decode } }).map(
      (l) => l.kvBytesPerToken,
    );
  };

  it('drop by the MLA ratio, 576 against 40,960 values per layer', () => {
    const latent = perLayer(v3);
    expect(latent).toHaveLength(61);
    expect(new Set(latent)).toEqual(new Set([4 * 576]));
    expect(new Set(perLayer(withCache(v3, 'expanded')))).toEqual(new Set([4 * 40960]));
    // Two bytes a value under --kv f16.
    expect(new Set(perLayer(v3, 'f16'))).toEqual(new Set([2 * 576]));
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
