/**
 * H2O eviction end to end: a decode of a few hundred tokens with budget 32 (evicting at every step
 * past the budget, after a prompt longer than the budget) matches the CPU interpreter running the
 * op's reference of the same rule, the kept positions agree exactly, and the runtime's state
 * buffers keep their size; a budget that covers the context equals the dense model; compile-time
 * limits are errors naming the setting.
 *
 * Tolerance: logits within 1e-4 relative to the largest (f32 kernels against the f64-accumulating
 * reference through two layers, as the other whole-model tests). With f16 caches both sides store
 * the same halves but for the rare value at a rounding boundary (test/model/kv-f16.test.ts), so
 * the bound stays.
 */
import { describe, expect, it } from 'vitest';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import { compileModel } from '../../codegen/compile.ts';
import { report } from '../../src/cli/report.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { expectMatchesInterpreter, gpuModel, teacherForcedWorst } from '../helpers/compare.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

const spec = (attn: string) =>
  parseSpec(
    `model "tiny-h2o" {
  vocab 64
  dim 32
  max_context 4096
  norm rms(eps: 1e-5)
  tie_embeddings true
  mixer attn = ${attn}
  ffn mlp = swiglu(hidden: 48)
  layers 2 x attn with ffn mlp
}`,
    'tiny-h2o.strata',
  );

const BUDGET = 32;
const h2o = spec(
  `attention(heads: 4, kv_heads: 2, sink_tokens: 2, evict: h2o(budget: ${BUDGET}, recent: 8))`,
);

/** A fixed token stream (teacher forcing keeps both sides on the same tokens). */
const tokens = (n: number) => randInts(n, 64, 4242);

describe('h2o eviction end to end', () => {
  for (const [kv, steps] of [
    ['f32', 300],
    ['f16', 100],
  ] as const) {
    it(`a prompt past the budget and ${steps} decode steps match the reference rule (kv ${kv})`, async () => {
      const maxT = 16;
      const prompt = 40;
      const batch = 50;
      const capacity = prompt + steps + 1;
      const m = await gpuModel(h2o, { maxT, capacity, kv });
      const kvCols = 2 * 8;
      const kvBytes = kv === 'f16' ? 2 : 4;
      for (const s of m.compiled.state) {
        // k/v rows, and the rows state: position and score per kv head.
        expect(s.shape).toEqual(s.name.startsWith('cache.') ? [BUDGET, kvCols] : [BUDGET, 4]);
      }
      const prefill = await Interpreter.create(m.compiled.graphs.prefill, m.weights);
      const decode = await Interpreter.create(m.compiled.graphs.decode, m.weights);
      const state = prefill.newState();
      const ids = tokens(prompt + steps);
      const seq = m.gm.newSequence();
      const sizes = seq.stateSizes();
      expect(Object.fromEntries(sizes)).toEqual({
        'cache.k.0': BUDGET * kvCols * kvBytes,
        'cache.v.0': BUDGET * kvCols * kvBytes,
        'h2o.rows.0': BUDGET * 2 * 2 * 4,
        'cache.k.1': BUDGET * kvCols * kvBytes,
        'cache.v.1': BUDGET * kvCols * kvBytes,
        'h2o.rows.1': BUDGET * 2 * 2 * 4,
      });
      // Prefill in chunks of maxT on both sides: 16 + 16 + 8 tokens, the last evicting.
      const cpu = { prefill, decode, state };
      const worst = await teacherForcedWorst(seq, cpu, ids, prompt, maxT, batch);
      expect(worst).toBeLessThan(1e-4);
      // The same tokens kept, in the same rows, in both layers; scores within f32 rounding.
      for (const layer of [0, 1]) {
        const gpuRows = new Uint32Array(await seq.readState(`h2o.rows.${layer}`));
        const cpuRows = state.get(`h2o.rows.${layer}`) as Uint32Array;
        const slots = gpuRows.filter((_, i) => i % 2 === 0);
        expect(Array.from(slots)).toEqual(Array.from(cpuRows.filter((_, i) => i % 2 === 0)));
        // Evicted all along: positions run up to the last token, sinks 0 and 1 stay.
        expect(Math.max(...slots)).toBe(prompt + steps - 1);
        expect([...slots].filter((p) => p < 2).sort()).toEqual([0, 0, 1, 1]);
        const scores = (w: Uint32Array) =>
          new Float32Array(w.buffer, w.byteOffset, w.length).filter((_, i) => i % 2 === 1);
        expect(maxRelError(scores(gpuRows), scores(cpuRows))).toBeLessThan(1e-5);
      }
      expect(seq.stateSizes()).toEqual(sizes);
    }, 600_000);
  }

  it('a budget covering the context equals the dense model', async () => {
    const capacity = 48;
    const covering = spec(
      `attention(heads: 4, kv_heads: 2, evict: h2o(budget: ${capacity}, recent: 8))`,
    );
    const dense = spec('attention(heads: 4, kv_heads: 2)');
    const m = await gpuModel(covering, { maxT: 16, capacity });
    const weights = randomWeights(dense, 7);
    const ref = (phase: 'prefill' | 'decode') =>
      Interpreter.create(lower(dense, { phase, maxT: 16, capacity }), weights);
    const prefill = await ref('prefill');
    const decode = await ref('decode');
    const state = prefill.newState();
    const ids = tokens(capacity);
    const seq = m.gm.newSequence();
    const g = await seq.forward(ids.subarray(0, 13));
    const c = prefill.step(ids.subarray(0, 13), 0, 13, state).logits;
    expect(maxRelError(g.logits.slice(-c.length), c)).toBeLessThan(1e-4);
    for (let pos = 13; pos < capacity; pos++) {
      const want = decode.step(ids.subarray(pos, pos + 1), pos, 1, state).logits;
      const got = await seq.next(ids.subarray(pos, pos + 1), GREEDY, true);
      expect(maxRelError(got.logits!, want)).toBeLessThan(1e-4);
    }
  }, 600_000);

  it('shared blocks (Zamba2) and parallel branches (Falcon-H1) evict per use, as plain layers do', async () => {
    const evict = 'evict: h2o(budget: 8, recent: 2)';
    const model = parseSpec(
      `model "tiny-h2o-shared" {
  vocab 61
  dim 24
  max_context 64
  norm rms(eps: 1e-5)
  mixer attn = attention(heads: 4, kv_heads: 2, sink_tokens: 1, ${evict})
  mixer par = parallel(attn: attention(heads: 2, ${evict}), ssm: mamba2(heads: 2, head_dim: 12, d_state: 8, chunk: 8))
  shared s = transformer(attention: attention(heads: 3, head_dim: 8, ${evict}), ffn: swiglu(hidden: 20))
  mixer conv = shortconv(l_cache: 3)
  ffn mlp = swiglu(hidden: 20)
  layers [conv, par, attn, conv] with ffn mlp
  override layers [0, 3] { shared: s }
}`,
      'tiny-h2o-shared.strata',
    );
    const m = await gpuModel(model, { maxT: 16, capacity: 64 }, 3);
    const states = m.compiled.state.map((t) => t.name);
    for (const i of [0, 1, 2, 3]) expect(states).toContain(`h2o.rows.${i}`);
    // A 21-token prompt in chunks of 16 (past the budget of 8), then 4 decode steps.
    await expectMatchesInterpreter(m, randInts(21, model.vocab, 9), 4, 1e-4, 16);
  }, 600_000);

  it('a limit only the compile knows is an error naming the setting', () => {
    const opts = { caps: BASELINE_CAPS, maxT: 16 };
    expect(() => compileModel(h2o, { ...opts, capacity: 20 })).toThrow(
      /layer 0: attention evict h2o: budget 32 exceeds the KV capacity 20 \(compile with --capacity 32 or more/,
    );
  });

  it('inspect: KV memory stops at the budget', () => {
    const r = report(compileModel(h2o, { caps: BASELINE_CAPS, maxT: 16, capacity: 4096 }));
    // k and v rows of two kv heads of 8 (f32), and each kv head's u32 position and f32 score.
    const perToken = 2 * 16 * 4 + 2 * 2 * 4;
    expect(r.layers.map((l) => [l.kvBytesPerToken, l.kvRows, l.stateBytes])).toEqual([
      [perToken, BUDGET, 0],
      [perToken, BUDGET, 0],
    ]);
    expect(r.recurrentStateBytes).toBe(0);
    expect(r.kvBytesByContext).toEqual([
      { context: 1024, bytes: 2 * BUDGET * perToken },
      { context: 4096, bytes: 2 * BUDGET * perToken },
    ]);
  });
});
