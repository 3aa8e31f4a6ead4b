/**
 * RWKV-7 in a hybrid model (attention, rwkv7, attention, rwkv7 with rwkv7_cmix FFNs): where
 * v_first and pre_norm go, the state each layer keeps, and the graph computing the same logits
 * lowered and fused, in one prefill and split into a prefill and decode steps.
 */
import { describe, expect, it } from 'vitest';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { runPasses } from '../../src/passes/pipeline.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { rwkv7Hybrid } from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

describe('rwkv7 in a hybrid model', () => {
  const model = rwkv7Hybrid();

  it('puts pre_norm and v_first in the first rwkv7 layer, v_lora in the later ones', () => {
    const names = new Set(expectedTensors(model).map((t) => t.name));
    expect(names.has('model.layers.1.pre_norm.weight')).toBe(true);
    expect(names.has('model.layers.3.pre_norm.weight')).toBe(false);
    expect(names.has('model.layers.1.attn.v_lora.lora.0.weight')).toBe(false);
    expect(names.has('model.layers.3.attn.v_lora.lora.0.weight')).toBe(true);
    expect(names.has('model.layers.3.mlp.x_k')).toBe(true);
    // Keys are heads·head_dim = 48 wide, values heads·value_head_dim = 24.
    const shape = (n: string) => expectedTensors(model).find((t) => t.name === n)?.shape;
    expect(shape('model.layers.3.attn.k_proj.weight')).toEqual([48, 48]);
    expect(shape('model.layers.3.attn.g_norm.weight')).toEqual([24]);
    expect(shape('model.layers.3.attn.o_proj.weight')).toEqual([48, 24]);
  });

  it('keeps two token-shift rows and the recurrence per rwkv7 layer', () => {
    const g = lower(model, { phase: 'decode', maxT: 1, capacity: 32 });
    const shapes = Object.fromEntries(
      g.tensors.filter((t) => t.kind === 'state').map((t) => [t.name, t.shape]),
    );
    for (const i of [1, 3]) {
      expect(shapes[`rwkv7.shift.${i}`]).toEqual([1, 48]);
      expect(shapes[`rwkv7.${i}`]).toEqual([3, 16, 8]);
      expect(shapes[`shift.ffn.${i}`]).toEqual([1, 48]);
    }
    // v_first is an activation of the step, not state.
    expect(g.tensors.some((t) => t.name.includes('v_first'))).toBe(false);
  });

  it('computes the same logits lowered and fused, whole or split into decode steps', async () => {
    const weights = randomWeights(model, 7);
    const ids = randInts(9, 260, 3);
    const run = async (fuse: boolean, split: number) => {
      const graph = (phase: 'prefill' | 'decode') => {
        const g = lower(model, { phase, maxT: 16, capacity: 32 });
        return fuse ? runPasses(g, { caps: BASELINE_CAPS, fuse: true }).graph : g;
      };
      const prefill = await Interpreter.create(graph('prefill'), weights);
      const decode = await Interpreter.create(graph('decode'), weights);
      const state = prefill.newState();
      prefill.step(ids.slice(0, split), 0, split, state);
      let last: Float32Array = new Float32Array();
      for (let p = split; p < ids.length; p++) {
        last = decode.step(ids.slice(p, p + 1), p, 1, state).logits;
      }
      return last;
    };
    const whole = async (fuse: boolean) => {
      const g = lower(model, { phase: 'prefill', maxT: 16, capacity: 32 });
      const it = await Interpreter.create(
        fuse ? runPasses(g, { caps: BASELINE_CAPS, fuse: true }).graph : g,
        weights,
      );
      // Logits of the last position, as a decode step gives them.
      const all = it.step(ids, 0, ids.length, it.newState()).logits;
      return all.subarray(all.length - model.vocab);
    };
    const want = await whole(false);
    expect(maxRelError(await whole(true), want)).toBeLessThan(1e-5);
    expect(maxRelError(await run(false, 5), want)).toBeLessThan(1e-5);
    expect(maxRelError(await run(true, 5), want)).toBeLessThan(1e-5);
  });
});
