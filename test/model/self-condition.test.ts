/**
 * DiffusionGemma's denoiser input (src/graph/blocks/self-condition.ts) beyond the golden: the
 * transposed parameter source it reads the embedding table through, and that an encoding step
 * (Step keys 0) sees exactly the plain embedding: its logits equal those of the same layers
 * without the self-conditioning path, whatever the probabilities state holds (the branch is
 * denoising-only: skipped, its outputs NaN in the interpreter, and the phased add ignores them).
 */
import { describe, expect, it } from 'vitest';
import { materialize } from '../../src/graph/params.ts';
import { lower } from '../../src/graph/lower.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { resolve } from '../spec/helpers.ts';
import { SELF_CONDITION_PROBS } from '../../src/ops/diffusion-entropy.ts';

const SPEC = `
mixer attn = attention(heads: 2, kv_heads: 1, head_dim: 16, qk_norm: true, phased: true, window: 4, scale: 1, value_norm: true)
ffn moe = moe(experts: 4, top_k: 2, expert: geglu(hidden: 8), router: softmax(input_scale: true, expert_scale: true), shared: geglu(hidden: 16), branch_norms: true)
post_norms true
layers 2 x attn with ffn moe`;

describe('self-conditioning input', () => {
  it('a transposed source is the [cols, rows] transpose', async () => {
    const w = Float32Array.from({ length: 6 }, (_, i) => i);
    const t = await materialize(
      { kind: 'transposed', of: { kind: 'weight', name: 'w' }, rows: 2, cols: 3 },
      () => w,
    );
    expect(Array.from(t)).toEqual([0, 3, 1, 4, 2, 5]);
    await expect(
      materialize(
        { kind: 'transposed', of: { kind: 'weight', name: 'w' }, rows: 4, cols: 2 },
        () => w,
      ),
    ).rejects.toThrow(/6 elements are not 4 × 2/);
  });

  it('an encoding step sees the plain embedding', async () => {
    const plain = resolve(SPEC);
    const sc = resolve(
      `${SPEC}\ndiffusion entropy_bound(canvas_length: 4, self_condition: geglu(hidden: 16))`,
    );
    const weights = randomWeights(sc, 7);
    const ids = Uint32Array.from([5, 9, 2, 200, 17, 3]);
    const run = async (m: typeof plain) => {
      const it = await Interpreter.create(
        lower(m, { phase: 'prefill', maxT: 8, capacity: 16 }),
        weights,
      );
      const state = it.newState();
      // Not zeros: an encoding step must not read the state at all.
      state.get(SELF_CONDITION_PROBS)?.fill(0.25);
      return it.step(ids, 0, ids.length, state).logits;
    };
    const [a, b] = [await run(plain), await run(sc)];
    expect(b).toEqual(a);
    // A denoising step of the same ids (keys > 0) does not: its input is normed.
    const it = await Interpreter.create(
      lower(sc, { phase: 'prefill', maxT: 8, capacity: 16 }),
      weights,
    );
    const d = it.step(ids, 0, ids.length, it.newState(), ids.length).logits;
    expect(d).not.toEqual(a);
  });
});
