/**
 * Shared blocks (Zamba2) on WebGPU against the CPU interpreter: odd sizes, adapters on every
 * projection, two blocks alternating, chunked prefill then decode; and their graph: one KV cache
 * per use, the shared weights bound by every use.
 */
import { describe, expect, it } from 'vitest';
import { memorySource } from '../../codegen/bundle.ts';
import { compileModel } from '../../src/compile.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { GpuModel } from '../../runtime/model.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

// dim 40: the shared attention reads 80 columns, 5 heads of 16; nothing is a multiple of a tile.
const model = parseSpec(
  `model "tiny-zamba" {
  vocab 97
  dim 40
  max_context 64
  norm rms(eps: 1e-5)
  mixer ssm = mamba2(heads: 5, head_dim: 16, d_state: 12, chunk: 8, dt_min: 0.001)
  shared a = transformer(attention: attention(heads: 5, scale: 0.35), ffn: geglu(hidden: 56),
                         adapter_rank: 3, attention_adapters: true, ffn_adapters: true)
  shared b = transformer(attention: attention(heads: 5, kv_heads: 5, rope: none), ffn: swiglu(hidden: 24))
  layers 5 x ssm
  override layers [1, 4] { shared: a }
  override layer 2 { shared: b }
}`,
  'tiny-zamba.strata',
);

describe('shared blocks on WebGPU vs the CPU interpreter', () => {
  it('keep one KV cache per use and bind the same shared weights at every use', () => {
    const g = lower(model, { phase: 'decode', maxT: 1, capacity: 64 });
    const states = g.tensors.filter((t) => t.kind === 'state').map((t) => t.name);
    for (const i of [1, 2, 4])
      expect(states).toEqual(expect.arrayContaining([`cache.k.${i}`, `cache.v.${i}`]));
    expect(states.filter((n) => n.startsWith('cache.'))).toHaveLength(6);
    const q = g.tensors.find((t) => t.name === 'model.shared.a.self_attn.q_proj.weight')!;
    const users = g.nodes.filter((n) => Object.values(n.inputs).includes(q.id));
    expect(users.map((n) => n.layer)).toEqual([1, 4]);
  });

  it('prefill in chunks, then decode, match the interpreter', async () => {
    const gpu = await testGpu();
    const compiled = compileModel(model, { caps: gpu.caps, maxT: 16, capacity: 64 });
    const weights = randomWeights(model, 5);
    const gm = await GpuModel.load(gpu, memorySource(compiled, weights));
    const prefill = await Interpreter.create(compiled.graphs.prefill, weights);
    const decode = await Interpreter.create(compiled.graphs.decode, weights);
    const state = prefill.newState();
    const prompt = randInts(21, model.vocab, 8);
    prefill.step(prompt.slice(0, 16), 0, 16, state);
    const cpu = prefill.step(prompt.slice(16), 16, 5, state);
    const seq = gm.newSequence();
    const g = await seq.forward(Array.from(prompt));
    expect(maxRelError(g.logits.slice(-5 * model.vocab), cpu.logits)).toBeLessThan(1e-4);
    expect(g.token).toBe(cpu.token);
    let tok = cpu.token;
    for (let i = 0; i < 6; i++) {
      const c = decode.step(Uint32Array.of(tok), 21 + i, 1, state);
      const r = await seq.next([tok], { seed: 0, draw: 0, temperature: 0, topK: 0, topP: 1 }, true);
      expect(maxRelError(r.logits!, c.logits)).toBeLessThan(1e-4);
      expect(r.token).toBe(c.token);
      tok = c.token;
    }
  });
});
