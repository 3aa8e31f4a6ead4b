/**
 * Qwen3-Next-style hybrids (gated DeltaNet + gated attention, zero-centred norms): the state the
 * graphs carry, and a whole model on WebGPU against the CPU interpreter (prefill, then decode
 * steps that carry the recurrent and conv state).
 */
import { describe, expect, it } from 'vitest';
import { BASELINE_CAPS } from '../../src/target.ts';
import { compileModel } from '../../codegen/compile.ts';
import type { GatedDeltaNetSpec, LayerSpec, MixerSpec, ModelIR } from '../../src/spec/model.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { attention, mlp, tinyLlama } from '../helpers/models.ts';
import { randInts } from '../helpers/numeric.ts';

const DELTANET: GatedDeltaNetSpec = {
  kind: 'gated_deltanet',
  keyHeads: 2,
  valueHeads: 6,
  keyHeadDim: 12,
  valueHeadDim: 10,
  dConv: 4,
  normEps: 1e-6,
};

function layer(index: number, mixer: MixerSpec): LayerSpec {
  return { index, mixerName: mixer.kind, mixer, ffnName: 'mlp', ffn: mlp({ hidden: 80 }) };
}

function hybrid(): ModelIR {
  const gated = attention({
    qkNorm: true,
    outputGate: true,
    rope: { theta: 10000, rotaryDim: 4, scaling: { kind: 'none' } },
  });
  return tinyLlama({
    dim: 48,
    norm: { kind: 'rms', eps: 1e-6, unitOffset: true, bias: false },
    layers: [layer(0, DELTANET), layer(1, gated), layer(2, { ...DELTANET, keyHeads: 3 })],
  });
}

describe('gated DeltaNet hybrids', () => {
  it('carry conv state per q/k/v part and a [valueHeads, dk, dv] recurrent state', () => {
    const { graphs } = compileModel(hybrid(), { caps: BASELINE_CAPS, capacity: 64 });
    const state = graphs.decode.tensors.filter((t) => t.kind === 'state');
    const shape = (name: string) => state.find((t) => t.name === name)?.shape;
    expect(shape('delta.0')).toEqual([6, 12, 10]);
    expect(shape('conv.0.q')).toEqual([3, 24]);
    expect(shape('conv.0.v')).toEqual([3, 60]);
    expect(shape('conv.2.k')).toEqual([3, 36]);
    expect(shape('cache.k.1')).toBeDefined();
  });

  it('match the CPU interpreter over prefill and greedy decode on WebGPU', async () => {
    const m = await gpuModel(hybrid());
    await expectMatchesInterpreter(m, randInts(13, 256, 3), 6, 1e-4);
    m.gm.destroy();
  });
});
