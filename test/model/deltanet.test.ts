/**
 * Qwen3-Next-style hybrids (gated DeltaNet + gated attention, zero-centred norms): the state the
 * graphs carry, and a whole model on WebGPU against the CPU interpreter (prefill, then decode
 * steps that carry the recurrent and conv state). The recurrence-prologue fusion: one decode
 * dispatch for the recurrence, its l2 norms, β and decay, with the same outputs as unfused.
 */
import { describe, expect, it } from 'vitest';
import { BASELINE_CAPS } from '../../src/target.ts';
import { compileModel } from '../../codegen/compile.ts';
import type { LayerSpec, MixerSpec, ModelIR } from '../../src/spec/model.ts';
import {
  expectFusedMatchesUnfused,
  expectMatchesInterpreter,
  gpuModel,
} from '../helpers/compare.ts';
import { attention, GATED_DELTANET, mlp, tinyLlama } from '../helpers/models.ts';
import { randInts } from '../helpers/numeric.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { Graph } from '../../src/graph/ir.ts';
import { fuseRecurrencePrologue } from '../../src/passes/fuse.ts';

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
    layers: [
      layer(0, GATED_DELTANET),
      layer(1, gated),
      layer(2, { ...GATED_DELTANET, keyHeads: 3 }),
    ],
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

  it('fold the l2 norms, beta and decay into the recurrence: one decode dispatch, 8 bindings', () => {
    const prologue = (g: Graph, layer: number) =>
      g.nodes.filter(
        (n) =>
          n.layer === layer &&
          (n.attrs.op === 'linear_recurrence' ||
            n.attrs.op === 'pointwise' ||
            (n.attrs.op === 'norm' && n.attrs.norm.kind === 'l2')),
      );
    const fused = compileModel(hybrid(), { caps: BASELINE_CAPS, capacity: 64 });
    const plain = compileModel(hybrid(), { caps: BASELINE_CAPS, capacity: 64, fuse: false });
    for (const layer of [0, 2]) {
      expect(prologue(plain.graphs.decode, layer).map((n) => n.attrs.op)).toEqual([
        'norm',
        'norm',
        'pointwise',
        'pointwise',
        'linear_recurrence',
      ]);
      const [rec] = prologue(fused.graphs.decode, layer);
      expect(prologue(fused.graphs.decode, layer)).toHaveLength(1);
      expect(rec.label).toContain('(l2 q, l2 k, beta, g fused)');
      const dispatches = fused.phases.decode.dispatches.filter((d) => d.label === rec.label);
      expect(dispatches).toHaveLength(1);
      expect(Object.keys(dispatches[0].bind)).toHaveLength(8);
    }
  });

  it('leave a fold out where it would take more storage buffers than the device has', () => {
    const plain = compileModel(hybrid(), { caps: BASELINE_CAPS, capacity: 64, fuse: false });
    const caps = { ...BASELINE_CAPS, maxStorageBuffersPerStage: 7 };
    const g = fuseRecurrencePrologue(plain.graphs.decode, { caps });
    const labels = g.nodes
      .filter((n) => n.layer === 0 && n.attrs.op !== 'matmul')
      .map((n) => n.label);
    // beta (one more binding, b|a, for the beta it drops) fits in 7; g (aLog, dtBias) does not.
    expect(labels).toContain('l0.deltanet gated delta rule (l2 q, l2 k, beta fused)');
    expect(labels).toContain('l0.deltanet decay');
  });

  it('give the same outputs fused and unfused, in the interpreter and on WebGPU', async () => {
    const model = hybrid();
    const weights = randomWeights(model, 5);
    const ids = randInts(9, 256, 4);
    // The unfused graphs, and the same with only the recurrence-prologue fusion applied.
    const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 16, capacity: 64, fuse: false });
    const outputs = async (fold: boolean) => {
      const graph = (g: Graph) => (fold ? fuseRecurrencePrologue(g, { caps: BASELINE_CAPS }) : g);
      const pre = await Interpreter.create(graph(c.graphs.prefill), weights);
      const dec = await Interpreter.create(graph(c.graphs.decode), weights);
      const state = pre.newState();
      const first = pre.step(ids, 0, ids.length, state);
      const next = dec.step(Uint32Array.of(first.token), ids.length, 1, state);
      return [first.logits, next.logits];
    };
    // The fused reference evaluates the folded ops with their own references: the same numbers.
    expect(await outputs(true)).toEqual(await outputs(false));
    const { fused, plain } = await expectFusedMatchesUnfused(model, [...ids], 1e-5);
    plain.gm.destroy();
    await expectMatchesInterpreter(fused, ids, 4, 1e-4);
    fused.gm.destroy();
  });
});
