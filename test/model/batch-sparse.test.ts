/**
 * Batched decode (compile --batch B) of models with sparse attention that keeps per-sequence
 * state or picks per query: H2O eviction, NSA and DeepSeek's sparse-attention indexer. B = 3
 * sequences in one step equal three single-sequence runs (on the CPU interpreter) token for
 * token, logits within 1e-4 relative (test/model/batch.test.ts's bound), over several steps, and for
 * H2O well past the step where each sequence's cache is full and eviction starts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchSequence } from '../../runtime/batch.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { gpuModel } from '../helpers/compare.ts';
import { randInts } from '../helpers/numeric.ts';
import {
  aloneOnCpu,
  besideAttention,
  expectBatchMatchesAlone,
  type AloneRun,
} from '../helpers/batch.ts';

const prompts = [6, 3, 8].map((n, i) => Array.from(randInts(n, 250, 70 + i)));
const B = prompts.length;

const spec = besideAttention;

/** H2O: budget 8 (2 recent, 1 sink); the longest prompt fills it, the others by step 5. */
const h2o = spec(
  'h2o',
  'attention(heads: 4, kv_heads: 2, sink_tokens: 1, evict: h2o(budget: 8, recent: 2))',
);

/** NSA: blocks of 2, 4 picked, so past position 7 a pick is by each sequence's importances. */
const nsa = spec('nsa', 'nsa(heads: 4, kv_heads: 2, head_dim: 8, block: 2, select: 4, window: 3)');

/** DSA: MLA with a lightning indexer keeping 4 positions, so from position 4 on it chooses. */
const dsa = spec(
  'dsa',
  'mla(heads: 4, q_rank: 16, kv_rank: 16, nope_dim: 8, rope_dim: 4, v_dim: 8, index: indexer(heads: 3, dim: 8, topk: 4))',
);

describe.each([
  ['H2O eviction', h2o, 'h2o_attention', 10],
  ['NSA', nsa, 'nsa_selected', 8],
  ['the DSA indexer', dsa, 'indexer_topk', 8],
] as [string, ModelIR, string, number][])('batched decode with %s', (_, model, op, steps) => {
  let alone: AloneRun[] = [];
  beforeAll(async () => {
    alone = await aloneOnCpu(model, {}, prompts, steps);
  });

  it(`B = ${B} equals ${B} single-sequence runs over ${steps} steps`, async () => {
    const m = await gpuModel(model, { batch: B });
    const batched = m.compiled.graphs.decode.nodes.filter((n) => 'batch' in n.attrs);
    expect(new Set(batched.map((n) => n.attrs.op))).toContain(op);
    const batch = new BatchSequence(m.gm);
    const got = await batch.generate(prompts, { maxTokens: steps, logits: true });
    expectBatchMatchesAlone(got, alone.slice(0, B), steps);
    batch.destroy();
    m.gm.destroy();
  });
});
