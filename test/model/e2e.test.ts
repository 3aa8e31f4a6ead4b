/**
 * Whole-model tests on WebGPU against the CPU interpreter (the same graph run
 * with the op references). Tolerance: max relative error 1e-4 on logits (f32
 * kernels vs f64-accumulating references over a few layers).
 */
import { describe, expect, it } from 'vitest';
import { Interpreter } from '../../src/graph/interpret.ts';
import { testGpu } from '../helpers/gpu.ts';
import {
  expectFusedMatchesUnfused,
  expectMatchesInterpreter,
  gpuModel,
} from '../helpers/compare.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';
import { attention, mlp, tinyLlama } from '../helpers/models.ts';

const TOL = 1e-4;

function rows(a: Float32Array, vocab: number, r: number): Float32Array {
  return a.slice(r * vocab, (r + 1) * vocab);
}

describe('tiny GQA llama on WebGPU vs the CPU interpreter', () => {
  it('prefill logits and 32 greedy decode steps match', async () => {
    const model = tinyLlama();
    await expectMatchesInterpreter(await gpuModel(model), randInts(13, model.vocab, 3), 32, TOL);
  });

  it('pipelined generate() yields the same tokens as step-by-step next(), greedy and sampled', async () => {
    const model = tinyLlama();
    const { gm } = await gpuModel(model, { maxT: 8 });
    const prompt = Array.from(randInts(11, model.vocab, 21));
    for (const sampling of [
      { seed: 0, draw: 0, temperature: 0, topK: 0, topP: 1 },
      { seed: 9, draw: 0, temperature: 0.9, topK: 20, topP: 0.95 },
    ]) {
      const a = gm.newSequence();
      const streamed: number[] = [];
      for await (const t of a.generate(prompt, { maxTokens: 12, ...sampling })) streamed.push(t);
      // Every yielded token has been consumed: the sequence continues after the last one.
      expect(a.pos).toBe(prompt.length + 12);
      const b = gm.newSequence();
      const stepped: number[] = [];
      let input: number[] = prompt;
      for (let i = 0; i < 12; i++) {
        const r = await b.next(input, sampling);
        stepped.push(r.token);
        input = [r.token];
      }
      expect(streamed).toEqual(stepped);
    }
  });

  it('prefill(T) then decode equals prefill(T+1) at the last position', async () => {
    const model = tinyLlama();
    const { gm } = await gpuModel(model);
    const ids = Array.from(randInts(12, model.vocab, 11));
    const a = gm.newSequence();
    await a.forward(ids.slice(0, 11));
    const step = await a.forward(ids.slice(11));
    const b = gm.newSequence();
    const full = await b.forward(ids);
    expect(maxRelError(step.logits, rows(full.logits, model.vocab, 11))).toBeLessThan(TOL);
  });

  it('chunked prefill (prompt longer than maxT) equals one chunk', async () => {
    const model = tinyLlama();
    const ids = Array.from(randInts(37, model.vocab, 5));
    const small = await gpuModel(model, { maxT: 8 });
    const big = await gpuModel(model, { maxT: 40 });
    const a = await small.gm.newSequence().forward(ids);
    const b = await big.gm.newSequence().forward(ids);
    expect(maxRelError(a.logits, b.logits)).toBeLessThan(TOL);
  });

  it('fused and unfused compilations agree, and fusion cuts decode dispatches', async () => {
    const model = tinyLlama();
    const ids = Array.from(randInts(9, model.vocab, 9));
    const { fused, plain } = await expectFusedMatchesUnfused(model, ids, TOL);
    expect(fused.gm.dispatchesPerToken).toBeLessThan(plain.gm.dispatchesPerToken);
  });

  it('weights over the storage-binding limit are split and give the same logits', async () => {
    const model = tinyLlama({ tieEmbeddings: false }, 2);
    const gpu = await testGpu();
    // 260 × 48 f32 = 49,920 bytes: a 16 KiB limit splits embedding and LM head into 4 chunks each.
    const caps = { ...gpu.caps, maxStorageBindingBytes: 16 * 1024 };
    const split = await gpuModel(model, { caps });
    const whole = await gpuModel(model);
    expect(
      split.compiled.params.filter((p) => p.name.includes('#rows')).length,
    ).toBeGreaterThanOrEqual(8);
    const ids = Array.from(randInts(10, model.vocab, 2));
    const a = await split.gm.newSequence().forward(ids);
    const b = await whole.gm.newSequence().forward(ids);
    expect(maxRelError(a.logits, b.logits)).toBeLessThan(TOL);
    // The split graph runs on the CPU interpreter too (each embedding part writes its rows of
    // one output, which starts as zeros there).
    await expectMatchesInterpreter(split, Uint32Array.from(ids), 2, TOL);
  });

  it('covers qk-norm, biases, partial rotary, sliding window, LayerNorm, ungated GELU and softcap', async () => {
    const hd = 20;
    const model = tinyLlama({
      norm: { kind: 'layer', eps: 1e-5, unitOffset: false, bias: true },
      tieEmbeddings: false,
      logitSoftcap: 30,
      logitScale: 1,
      embeddingScale: 2,
      layers: [
        {
          index: 0,
          mixerName: 'a',
          mixer: attention({
            headDim: hd,
            heads: 3,
            kvHeads: 1,
            qkNorm: true,
            rope: { theta: 500, rotaryDim: 10, scaling: { kind: 'none' } },
          }),
          ffnName: 'm',
          ffn: mlp({ gated: false, act: 'gelu', bias: true, hidden: 50 }),
        },
        {
          index: 1,
          mixerName: 'b',
          mixer: attention({
            headDim: hd,
            heads: 3,
            kvHeads: 3,
            qkvBias: true,
            outBias: true,
            window: 5,
            rope: { theta: 1000, rotaryDim: 12, scaling: { kind: 'linear', factor: 2 } },
          }),
          ffnName: 'n',
          ffn: mlp({ act: 'gelu_tanh', hidden: 40 }),
        },
        {
          index: 2,
          mixerName: 'c',
          mixer: attention({ headDim: hd, heads: 2, kvHeads: 2, rope: null }),
          ffnName: 'o',
          ffn: mlp({ gated: false, act: 'relu2', hidden: 33 }),
        },
      ],
    });
    const { compiled, weights, gm } = await gpuModel(model);
    const prefill = await Interpreter.create(compiled.graphs.prefill, weights);
    const state = prefill.newState();
    const ids = randInts(14, model.vocab, 8);
    const cpu = prefill.step(ids, 0, ids.length, state);
    const g = await gm.newSequence().forward(ids);
    expect(maxRelError(g.logits, cpu.logits)).toBeLessThan(TOL);
  });
});
