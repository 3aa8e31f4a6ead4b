/**
 * DeepSeek sparse attention in a DSL model (mla(index: indexer(...)), src/ops/indexer.ts): WebGPU
 * against the CPU interpreter over a prefill longer than topk and decode steps (fused graphs and
 * kernels against the op references), the latent and expanded MLA caches agreeing on the interpreter under the same
 * selection with the prefill in chunks (later chunks' indexer reads the index keys earlier chunks
 * cached), topk no smaller than the context equal to dense MLA, f16 latent caches, the checks, and
 * the inspect report's KV bytes (the index key cache counts). Tolerances: 1e-4 GPU vs interpreter
 * and 1e-5 between cache forms, as test/model/mla.test.ts (f32 sums in different orders); random
 * weights put no selection within reach of that rounding (a flipped choice would move logits by
 * far more, test/golden/deepseek-v32.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/spec/load.ts';
import { layerStates } from '../../src/cli/report.ts';
import { lower } from '../../src/graph/lower.ts';
import type { MlaCache } from '../../src/mixers/mla.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { WeightProvider } from '../../src/graph/params.ts';
import { chunkedThenDecode, expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { maxRelErrorSteps, randInts } from '../helpers/numeric.ts';

const SPEC = `model "tiny-dsa" {
  vocab 70
  dim 40
  max_context 128
  norm rms(eps: 1e-5)
  mixer dsa = mla(heads: 3, q_rank: 18, kv_rank: 10, nope_dim: 6, rope_dim: 4, v_dim: 7,
                  index: indexer(heads: 5, dim: 6, topk: 5))
  mixer wide = mla(heads: 2, q_rank: 12, kv_rank: 8, nope_dim: 5, rope_dim: 6, v_dim: 9,
                   rope: rope(theta: 500), index: indexer(heads: 3, dim: 10, topk: 7))
  ffn   mlp = swiglu(hidden: 36)
  layers [dsa, wide, dsa] with ffn mlp
}`;

const MODEL = parseSpec(SPEC, 'tiny-dsa.strata');

function mapMla(
  model: ModelIR,
  f: (m: Extract<ModelIR['layers'][number]['mixer'], { kind: 'mla' }>) => object,
): ModelIR {
  return {
    ...model,
    layers: model.layers.map((l) =>
      l.mixer?.kind === 'mla' ? { ...l, mixer: { ...l.mixer, ...f(l.mixer) } } : l,
    ),
  } as ModelIR;
}

const withCache = (model: ModelIR, cache: MlaCache) => mapMla(model, () => ({ cache }));

/** chunkedThenDecode on the lowered graphs, the prefill's sized to the chunk. */
async function interpretSteps(
  model: ModelIR,
  weights: WeightProvider,
  ids: Uint32Array,
  chunk: number,
  steps: number,
): Promise<Float32Array[]> {
  const prefill = await Interpreter.create(
    lower(model, { phase: 'prefill', maxT: chunk, capacity: 64 }),
    weights,
  );
  const decode = await Interpreter.create(
    lower(model, { phase: 'decode', maxT: 1, capacity: 64 }),
    weights,
  );
  return chunkedThenDecode(prefill, decode, ids, chunk, steps);
}

describe('DeepSeek sparse attention model', () => {
  it('WebGPU matches the interpreter: a 19-token prefill (topk 5 and 7) and 6 decode steps', async () => {
    const m = await gpuModel(MODEL, { maxT: 24 });
    const ops = new Set(m.compiled.graphs.decode.nodes.map((n) => n.attrs.op));
    expect(ops.has('indexer_topk') && ops.has('sparse_attention')).toBe(true);
    expect(ops.has('attention')).toBe(false);
    await expectMatchesInterpreter(m, randInts(19, MODEL.vocab, 5), 6, 1e-4);
  });

  // The expanded form's lowering: the interpreter test below; its kernel path (a v cache):
  // test/kernels/indexer.test.ts.

  it('f16 caches (latent and index keys) match', async () => {
    const m = await gpuModel(MODEL, { maxT: 12, kv: 'f16' });
    await expectMatchesInterpreter(m, randInts(11, MODEL.vocab, 7), 3, 1e-4);
  });

  it('latent and expanded caches agree on the interpreter, the prefill in chunks of 4', async () => {
    const ids = randInts(13, MODEL.vocab, 8);
    const weights = randomWeights(MODEL, 7);
    const a = await interpretSteps(MODEL, weights, ids, 4, 4);
    const b = await interpretSteps(withCache(MODEL, 'expanded'), weights, ids, 13, 4);
    expect(maxRelErrorSteps(a, b)).toBeLessThan(1e-5);
  });

  it('topk no smaller than the context is dense MLA; a small topk is not', async () => {
    const ids = randInts(13, MODEL.vocab, 9);
    const weights = randomWeights(MODEL, 3);
    const dense = await interpretSteps(
      mapMla(MODEL, () => ({ index: null })),
      weights,
      ids,
      13,
      3,
    );
    const wide = mapMla(MODEL, (m) => ({ index: m.index && { ...m.index, topk: 64 } }));
    expect(maxRelErrorSteps(await interpretSteps(wide, weights, ids, 13, 3), dense)).toBeLessThan(
      1e-6,
    );
    expect(
      maxRelErrorSteps(await interpretSteps(MODEL, weights, ids, 13, 3), dense),
    ).toBeGreaterThan(1e-3);
  });

  it('inspect: the index key cache adds 4 · dim bytes per token and layer (2 · dim in f16)', () => {
    const decode = lower(MODEL, { phase: 'decode', maxT: 1, capacity: 64 });
    const kv = layerStates({ model: MODEL, graphs: { decode, prefill: decode } }).map(
      (l) => l.kvBytesPerToken,
    );
    expect(kv).toEqual([4 * (10 + 4) + 4 * 6, 4 * (8 + 6) + 4 * 10, 4 * (10 + 4) + 4 * 6]);
    const half = lower(MODEL, { phase: 'decode', maxT: 1, capacity: 64, kv: 'f16' });
    const kv16 = layerStates({ model: MODEL, graphs: { decode: half, prefill: half } }).map(
      (l) => l.kvBytesPerToken,
    );
    expect(kv16).toEqual(kv.map((n) => n / 2));
  });

  it('checks name the setting and the limit', () => {
    expect(() => parseSpec(SPEC.replace('heads: 3, q_rank: 18,', 'heads: 3,'), 'x.strata')).toThrow(
      /index needs q_rank/,
    );
    expect(() => parseSpec(SPEC.replace('dim: 6, topk: 5', 'dim: 2, topk: 5'), 'x.strata')).toThrow(
      /index dim \(2\) must be at least rope_dim \(4\)/,
    );
    const odd = parseSpec(SPEC.replace('dim: 6, topk: 5', 'dim: 5, topk: 5'), 'odd.strata');
    expect(() => lower(odd, { phase: 'decode', maxT: 1, capacity: 64, kv: 'f16' })).toThrow(
      /mla layer 0: .*--kv f16.* even indexer dim, got 5; use --kv f32/,
    );
  });
});
