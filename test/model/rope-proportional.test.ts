/**
 * Proportional RoPE (Gemma 4 / DiffusionGemma full layers: only the first `pairs` of the
 * rotaryDim / 2 pairs rotate) on WebGPU against the CPU interpreter, prefill and decode. Its
 * cos/sin tables come from ropeInvFreq (HF's bits, test/kernels/rope.test.ts), so the kernels
 * are the usual ones; this checks the tables reach both sides, and that they matter.
 */
import { describe, expect, it } from 'vitest';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { attention, tinyLlama } from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';
import type { RopeScaling } from '../../src/spec/model.ts';

const withScaling = (scaling: RopeScaling) =>
  tinyLlama({}, 2).layers.map((l) => ({
    ...l,
    mixer: attention({ rope: { theta: 1e6, rotaryDim: 16, scaling } }),
  }));

describe('proportional RoPE', () => {
  it('runs on WebGPU as in the interpreter, and differs from full RoPE', async () => {
    const prop = tinyLlama({ layers: withScaling({ kind: 'proportional', pairs: 2, factor: 1 }) });
    const m = await gpuModel(prop);
    const prompt = randInts(12, prop.vocab, 3);
    await expectMatchesInterpreter(m, prompt, 3, 1e-4);
    // The same weights without the scaling, on the interpreter only.
    const full = tinyLlama({ layers: withScaling({ kind: 'none' }) });
    const run = async (model: typeof prop) => {
      const g = lower(model, { phase: 'prefill', maxT: 16, capacity: 96 });
      const it = await Interpreter.create(g, m.weights);
      return it.step(prompt, 0, prompt.length, it.newState()).logits;
    };
    expect(maxRelError(await run(prop), await run(full))).toBeGreaterThan(1e-3);
  }, 300_000);
});
