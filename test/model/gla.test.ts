/**
 * gla and hgrn2 in a hybrid with attention, with the options the golden fixtures leave off (kv
 * groups with a feature map, short convs, a log-gate floor, no output gate; hgrn2's convs and
 * lower bound): the graph they lower to, their feature maps' values, prefill against decode on
 * the CPU interpreter (the recurrent and conv state carried), and WebGPU against the interpreter
 * once the linear_recurrence and pointwise kernels exist.
 */
import { describe, expect, it } from 'vitest';
import type { LinearRecurrenceAttrs, PointwiseAttrs } from '../../src/graph/ops.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { expectedTensors } from '../../src/import/names.ts';
import type { GlaSpec } from '../../src/mixers/gla.ts';
import { featureMapExpr, ref } from '../../src/mixers/parts.ts';
import { columns } from '../../src/graph/blocks/common.ts';
import type { Hgrn2Spec } from '../../src/mixers/hgrn2.ts';
import { pointwise } from '../../src/ops/pointwise.ts';
import type { LayerSpec, MixerSpec, ModelIR } from '../../src/spec/model.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { attention, mlp, tinyLlama } from '../helpers/models.ts';
import { maxRelError } from '../helpers/numeric.ts';

const GLA: GlaSpec = {
  kind: 'gla',
  heads: 4,
  kvHeads: 2,
  keyHeadDim: 6,
  valueHeadDim: 10,
  featureMap: 'gelu_tanh',
  dConv: 4,
  outputGate: false,
  gateRank: 5,
  gateNormalizer: 16,
  clampMin: -0.05,
  normEps: 1e-6,
};

const HGRN2: Hgrn2Spec = {
  kind: 'hgrn2',
  heads: 4,
  keyHeadDim: 12,
  valueHeadDim: 12,
  dConv: 3,
  lowerBound: true,
  normEps: 1e-5,
};

function layer(index: number, mixer: MixerSpec): LayerSpec {
  return { index, mixerName: mixer.kind, mixer, ffnName: 'mlp', ffn: mlp({ hidden: 40 }) };
}

function hybrid(): ModelIR {
  return tinyLlama({
    layers: [
      layer(0, GLA),
      layer(1, attention()),
      layer(2, HGRN2),
      layer(3, { ...GLA, outputGate: true, featureMap: null }),
    ],
  });
}

describe('gla and hgrn2 hybrids', () => {
  it('lower to the recurrence with kv-head maps, conv and recurrent state, and their weights', () => {
    const g = lower(hybrid(), { phase: 'decode', maxT: 1, capacity: 32 });
    const shape = (name: string) =>
      g.tensors.find((t) => t.kind === 'state' && t.name === name)?.shape;
    expect(shape('gla.0')).toEqual([4, 6, 10]);
    expect(shape('conv.0.q')).toEqual([3, 24]);
    expect(shape('conv.0.k')).toEqual([3, 12]);
    expect(shape('conv.0.v')).toEqual([3, 20]);
    expect(shape('hgrn2.2')).toEqual([4, 12, 12]);
    expect(shape('conv.2.f')).toEqual([2, 48]);
    const recurrences = g.nodes
      .map((n) => n.attrs)
      .filter((a): a is LinearRecurrenceAttrs => a.op === 'linear_recurrence');
    expect(recurrences[0]).toMatchObject({
      heads: 4,
      qHeads: 4,
      kHeads: 2,
      vHeads: 2,
      gateHeads: 2,
      keyDim: 6,
      valueDim: 10,
      scale: 6 ** -0.5,
      decay: 'key',
      update: 'add',
      normalize: false,
    });
    expect(recurrences[1]).toMatchObject({ heads: 4, kHeads: 4, gateHeads: 4, keyDim: 12 });
    // GLA's convs end in SiLU, HGRN2's have no activation.
    for (const n of g.nodes) {
      if (n.attrs.op === 'conv1d') expect(n.attrs.silu, n.label).toBe(n.layer !== 2);
    }
    const gate = g.nodes.find((n) => n.label === 'l0.gla.gate')?.attrs as PointwiseAttrs;
    expect(gate.expr).toEqual({
      bin: 'max',
      a: { bin: 'div', a: { fn: 'logsigmoid', x: { in: 'gk' } }, b: { const: 16 } },
      b: { const: -0.05 },
    });
    const names = expectedTensors(hybrid()).map((t) => t.name);
    expect(names).toContain('model.layers.0.attn.g_norm.weight');
    expect(names).toContain('model.layers.3.attn.g_norm_swish_gate.weight');
    expect(names).toContain('model.layers.2.attn.lower_bound');
    expect(names).toContain('model.layers.2.attn.i_conv1d.weight');
    expect(names.filter((n) => n.includes('g_proj'))).toEqual([
      'model.layers.3.attn.g_proj.weight',
    ]);
  });

  it("computes fla's feature maps", () => {
    const xs = [-3, -0.5, 0, 0.7, 2.5];
    const run = (map: GlaSpec['featureMap'] & string) =>
      Array.from(
        pointwise.reference(
          {
            op: 'pointwise',
            width: 5,
            inputs: { x: columns(5) },
            expr: featureMapExpr(map, ref('x')),
          },
          { x: Float32Array.from(xs) },
          { T: 1, pos: 0, L: 1 },
        ).out as Float32Array,
      );
    // fla's fast_gelu_impl: x · 0.5 · (1 + tanh(0.79788456 · x · (1 + 0.044715 · x²))).
    const gelu = xs.map((x) => x * 0.5 * (1 + Math.tanh(0.79788456 * x * (1 + 0.044715 * x * x))));
    expect(maxRelError(Float32Array.from(run('gelu_tanh')), Float32Array.from(gelu))).toBeLessThan(
      1e-6,
    );
    const relu2 = xs.map((x) => Math.max(Math.fround(x), 0) ** 2);
    expect(maxRelError(Float32Array.from(run('relu2')), Float32Array.from(relu2))).toBeLessThan(
      1e-6,
    );
    expect(run('silu')[4]).toBeCloseTo(2.5 / (1 + Math.exp(-2.5)), 6);
  });

  it('give the same logits from decode steps as from a longer prefill (state carried)', async () => {
    const model = hybrid();
    const weights = randomWeights(model, 3);
    const ids = Uint32Array.from([5, 17, 200, 3, 99, 42, 7, 250, 31]);
    const T = ids.length;
    const full = await Interpreter.create(
      lower(model, { phase: 'prefill', maxT: T, capacity: 32 }),
      weights,
    );
    const part = await Interpreter.create(
      lower(model, { phase: 'prefill', maxT: 5, capacity: 32 }),
      weights,
    );
    const step = await Interpreter.create(
      lower(model, { phase: 'decode', maxT: 1, capacity: 32 }),
      weights,
    );
    const whole = full.step(ids, 0, T, full.newState()).logits;
    const state = part.newState();
    part.step(ids.subarray(0, 5), 0, 5, state);
    let last = whole.subarray(0, 0);
    for (let t = 5; t < T; t++) last = step.step(ids.subarray(t, t + 1), t, 1, state).logits;
    expect(whole.every(Number.isFinite)).toBe(true);
    expect(maxRelError(last, whole.slice(-model.vocab))).toBeLessThan(1e-5);
  });

  it('match the CPU interpreter over prefill and greedy decode on WebGPU', async () => {
    const m = await gpuModel(hybrid());
    await expectMatchesInterpreter(m, Uint32Array.from([9, 81, 4, 144, 33, 2, 77]), 5, 1e-4);
    m.gm.destroy();
  });
});
