/**
 * Falcon-H1-style models (parallel attention + Mamba-2, muP multipliers folded into the
 * weights): WebGPU against the CPU interpreter, and the folded multipliers against their
 * definition on the interpreter.
 */
import { describe, expect, it } from 'vitest';
import { BASELINE_CAPS } from '../../src/target.ts';
import { compileModel } from '../../codegen/compile.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { LayerSpec, ModelIR, ParallelSpec } from '../../src/spec/model.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { attention, mamba2, mlp, tinyLlama } from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

const SSM = mamba2({ projScales: [0.9, 1.1, 0.8, 1.2, 1.3] });

function hybrid(over: Partial<ParallelSpec> = {}): ParallelSpec {
  return {
    kind: 'parallel',
    attn: attention({ heads: 4, kvHeads: 2, headDim: 10, qkvBias: true, outBias: true }),
    ssm: SSM,
    attnInScale: 1.2,
    attnOutScale: 0.7,
    ssmInScale: 1.1,
    ssmOutScale: 0.6,
    ...over,
  };
}

function falconLike(mixers: ParallelSpec[], over: Partial<ModelIR> = {}): ModelIR {
  const layers = mixers.map((mixer, index): LayerSpec => ({
    index,
    mixerName: `hybrid${index}`,
    mixer,
    ffnName: 'mlp',
    ffn: mlp({ hidden: 52, bias: true, gateScale: 1.5, downScale: 0.5 }),
  }));
  return tinyLlama({ dim: 40, embeddingScale: 2, logitScale: 0.5, layers, ...over });
}

describe('a Falcon-H1-style model on WebGPU vs the CPU interpreter', () => {
  it('matches with the gated norm either side of the gate, without it, and a tied, scaled head', async () => {
    const model = falconLike([
      hybrid(),
      hybrid({ ssm: { ...SSM, gateNorm: false } }),
      hybrid({ ssm: { ...SSM, normBeforeGate: true } }),
    ]);
    const m = await gpuModel(model);
    await expectMatchesInterpreter(m, randInts(13, model.vocab, 5), 4, 1e-4);
    m.gm.destroy();
  });
});

describe('multipliers folded into weights', () => {
  const prompt = randInts(7, 260, 9);
  async function logits(model: ModelIR): Promise<Float32Array> {
    const compiled = compileModel(model, { caps: BASELINE_CAPS, maxT: 8, capacity: 16 });
    const cpu = await Interpreter.create(compiled.graphs.prefill, randomWeights(model, 3));
    return cpu.step(prompt, 0, prompt.length, cpu.newState()).logits;
  }

  it('logit_scale multiplies the logits, tied embeddings or not', async () => {
    for (const tieEmbeddings of [true, false]) {
      const base = falconLike([hybrid()], { tieEmbeddings, logitScale: 1 });
      const one = await logits(base);
      const scaled = await logits({ ...base, logitScale: 0.25 });
      expect(
        maxRelError(
          scaled,
          one.map((v) => v * 0.25),
        ),
      ).toBeLessThan(1e-6);
    }
  });

  it('an attention branch scaled to nothing leaves its input scale without effect', async () => {
    // attnOutScale 1e-30: the attention branch adds nothing, so its input scale, which only
    // reaches q, k and v, cannot change the logits.
    const a = await logits(falconLike([hybrid({ attnOutScale: 1e-30 })]));
    const b = await logits(falconLike([hybrid({ attnOutScale: 1e-30, attnInScale: 3 })]));
    expect(maxRelError(a, b)).toBeLessThan(1e-6);
  });
});
