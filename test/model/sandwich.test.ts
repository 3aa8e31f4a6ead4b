/**
 * Sandwich norms (post_norms: Gemma 2/3) on WebGPU against the CPU interpreter, fused and
 * unfused, on a Gemma-3-shaped model and on MoE and Mamba sublayers.
 */
import { describe, expect, it } from 'vitest';
import {
  expectFusedMatchesUnfused,
  expectMatchesInterpreter,
  gpuModel,
} from '../helpers/compare.ts';
import { randInts } from '../helpers/numeric.ts';
import { attention, mlp, moe, tinyLlama } from '../helpers/models.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { lower } from '../../src/graph/lower.ts';
import { layerTensors } from '../../src/import/names.ts';

const TOL = 1e-4;

/** Gemma 3 in miniature: local (windowed, base 1e4) and global (base 1e6) layers, 2 : 1. */
function tinyGemma(over: Partial<ModelIR> = {}): ModelIR {
  const rope = (theta: number) => ({ theta, rotaryDim: 16, scaling: { kind: 'none' as const } });
  const local = attention({ headDim: 16, qkNorm: true, window: 4, rope: rope(1e4), scale: 0.3 });
  const global = attention({ headDim: 16, qkNorm: true, rope: rope(1e6), scale: 0.3 });
  return tinyLlama({
    norm: { kind: 'rms', eps: 1e-6, unitOffset: true, bias: false },
    postNorms: true,
    embeddingScale: Math.fround(Math.sqrt(48)),
    layers: [local, local, global].map((mixer, index) => ({
      index,
      mixerName: index === 2 ? 'global' : 'local',
      mixer,
      ffnName: 'mlp',
      ffn: mlp({ act: 'gelu_tanh' }),
    })),
    ...over,
  });
}

describe('sandwich norms', () => {
  it('add a post-norm per sublayer with its own weights', () => {
    const model = tinyGemma();
    const norms = (m: ModelIR) =>
      lower(m, { phase: 'prefill', maxT: 4, capacity: 8 }).nodes.filter(
        (n) => n.attrs.op === 'norm' && n.attrs.width === m.dim,
      ).length;
    // Per layer: two pre-norms, plus two post-norms; one final norm.
    expect(norms(model)).toBe(3 * 4 + 1);
    expect(norms({ ...model, postNorms: false })).toBe(3 * 2 + 1);
    expect(layerTensors(model, model.layers[0]).map((t) => t.name)).toEqual(
      expect.arrayContaining([
        'model.layers.0.post_mixer_layernorm.weight',
        'model.layers.0.post_feedforward_layernorm.weight',
      ]),
    );
  });

  it('a Gemma-3-shaped model matches the interpreter through prefill and decode', async () => {
    const model = tinyGemma();
    await expectMatchesInterpreter(await gpuModel(model), randInts(3, model.vocab, 10), 8, TOL);
  });

  it('fused and unfused compilations agree', async () => {
    const model = tinyGemma({ logitSoftcap: 30 });
    const ids = Array.from(randInts(5, model.vocab, 12));
    const { fused, plain } = await expectFusedMatchesUnfused(model, ids, TOL);
    expect(fused.gm.dispatchesPerToken).toBeLessThan(plain.gm.dispatchesPerToken);
    // Each post-norm took its residual add; the pre-norms went into the matmuls they feed.
    const ops = fused.compiled.graphs.decode.nodes.map((n) => n.attrs);
    expect(ops.filter((o) => o.op === 'add')).toEqual([]);
    expect(ops.filter((o) => o.op === 'norm' && o.residual)).toHaveLength(2 * 3);
    expect(ops.filter((o) => o.op === 'norm' && !o.residual && o.width === model.dim)).toEqual([]);
  });

  it('apply to MoE and Mamba-2 sublayers too', async () => {
    const model = tinyGemma({
      layers: [
        {
          index: 0,
          mixerName: 'ssm',
          mixer: {
            kind: 'mamba2',
            heads: 6,
            headDim: 16,
            dState: 8,
            groups: 1,
            dConv: 4,
            chunk: 4,
            convBias: true,
            projBias: false,
            normGroup: 96,
            normEps: 1e-5,
            dtMin: 0,
            dtMax: null,
          },
          ffnName: 'moe',
          ffn: moe({ experts: 4, topK: 2, expert: mlp({ hidden: 24 }) }),
        },
      ],
    });
    await expectMatchesInterpreter(await gpuModel(model), randInts(4, model.vocab, 9), 4, TOL);
  });
});
