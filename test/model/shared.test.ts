/**
 * Shared blocks (Zamba2) on WebGPU against the CPU interpreter: odd sizes, adapters on every
 * projection, two blocks alternating, chunked prefill then decode; and their graph: one KV cache
 * per use, the shared weights bound by every use.
 */
import { describe, expect, it } from 'vitest';
import { lower } from '../../src/graph/lower.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { randInts } from '../helpers/numeric.ts';

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
    const m = await gpuModel(model, { maxT: 16, capacity: 64 }, 5);
    await expectMatchesInterpreter(m, randInts(21, model.vocab, 8), 6, 1e-4, 16);
  });
});
