/**
 * Block-sparse and global-token attention end to end: a tiny llama whose layers use a strided
 * block-sparse layout and global tokens beside a window matches the CPU interpreter over a
 * prompt longer than several blocks and a run of decode steps; the global+window layer keeps
 * the ring cache of the streaming path, the block-sparse one every row; a bidirectional model
 * (global queries, a two-sided band) matches too; exporters refuse the masks; capacity limits
 * are errors naming the setting.
 *
 * Tolerance: logits within 1e-4 relative to the largest, as the other whole-model tests (f32
 * kernels against the f64-accumulating reference through two layers).
 */
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import { report } from '../../src/cli/report.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { exportHfConfig } from '../../src/export/hf-config.ts';
import { exportMegatron } from '../../src/export/megatron.ts';
import { ExportError } from '../../src/export/hf-common.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { randInts } from '../helpers/numeric.ts';
import { attention as attentionMixer, type AttentionSpec } from '../../src/mixers/attention.ts';

const spec = (a: string, b: string) =>
  parseSpec(
    `model "tiny-sparse" {
  vocab 64
  dim 32
  max_context 4096
  norm rms(eps: 1e-5)
  tie_embeddings true
  mixer a = ${a}
  mixer b = ${b}
  ffn mlp = swiglu(hidden: 48)
  layers 1 x [1 a : 1 b] with ffn mlp
}`,
    'tiny-sparse.strata',
  );

const model = spec(
  'attention(heads: 4, kv_heads: 2, pattern: block_sparse(block: 8, layout: strided(local: 1, stride: 3, global: 1)))',
  'attention(heads: 4, kv_heads: 2, window: 12, global: 3)',
);

describe('block-sparse and global-token attention end to end', () => {
  it('a 45-token prompt and 10 decode steps match the interpreter', async () => {
    const m = await gpuModel(model, { maxT: 16, capacity: 80 });
    const sizes = Object.fromEntries(m.gm.newSequence().stateSizes());
    // Layer 0 (block-sparse) keeps a row per position; layer 1 the ring of 3 + 12 + 16 - 1.
    expect(sizes['cache.k.0']).toBe(80 * 16 * 4);
    expect(sizes['cache.k.1']).toBe(30 * 16 * 4);
    await expectMatchesInterpreter(m, randInts(45, 64, 77), 10, 1e-4, 16);
  });

  it('bidirectional: global queries and a bidirectional band match the interpreter', async () => {
    const bi = spec(
      'attention(heads: 4, kv_heads: 2, causal: false, pattern: block_sparse(block: 4, layout: local(blocks: 2)))',
      'attention(heads: 4, kv_heads: 2, causal: false, window: 5, global: 2)',
    );
    const m = await gpuModel(bi, { maxT: 16, capacity: 32 });
    await expectMatchesInterpreter(m, randInts(13, 64, 78), 0, 1e-4);
  });

  it('inspect: the ring bounds the global+window layer, the block-sparse layer keeps all KV', () => {
    const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 16, capacity: 4096 });
    const r = report(c);
    expect(r.layers.map((l) => l.kvRows)).toEqual([null, 30]);
    // Blocks of 8 at 4096: the diagonal, one global and every third block of 512 blocks.
    const d = r.layers[0].attentionDensity!;
    expect(d).toBeGreaterThan(0.33);
    expect(d).toBeLessThan(0.34);
    expect(r.layers[1].attentionDensity).toBeUndefined();
  });

  it('BigBird (local + global + random blocks): a 45-token prompt and 10 decode steps match', async () => {
    const bb = spec(
      'attention(heads: 4, kv_heads: 2, pattern: block_sparse(block: 4, layout: local(blocks: 1, global: 1), random: random(r: 2, seed: 9)))',
      'attention(heads: 4, kv_heads: 2, pattern: block_sparse(block: 3, layout: local(blocks: 2), random: random(r: 3, seed: 1)))',
    );
    const m = await gpuModel(bb, { maxT: 16, capacity: 80 });
    await expectMatchesInterpreter(m, randInts(45, 64, 79), 10, 1e-4, 16);
  });

  it('BigBird bidirectional: random blocks on both sides match the interpreter', async () => {
    const bi = spec(
      'attention(heads: 4, kv_heads: 2, causal: false, pattern: block_sparse(block: 4, layout: local(blocks: 1, global: 1), random: random(r: 2, seed: 4)))',
      'attention(heads: 4, kv_heads: 2, causal: false)',
    );
    const m = await gpuModel(bi, { maxT: 32, capacity: 32 });
    await expectMatchesInterpreter(m, randInts(29, 64, 80), 0, 1e-4);
  });

  it('inspect: random blocks add r blocks to the density and the model table', () => {
    const bb = (random: string) =>
      spec(
        `attention(heads: 4, kv_heads: 2, pattern: block_sparse(block: 64, layout: local(blocks: 3, global: 2)${random}))`,
        'attention(heads: 4, kv_heads: 2)',
      );
    const at = (m: ReturnType<typeof spec>) =>
      report(compileModel(m, { caps: BASELINE_CAPS, maxT: 16, capacity: 4096 })).layers[0]
        .attentionDensity!;
    // Decode at the end of 4096 tokens = 64 blocks: band 3 + global 2 (+ random 3).
    expect(at(bb(''))).toBeCloseTo(5 / 64, 3);
    expect(at(bb(', random: random(r: 3, seed: 5)'))).toBeCloseTo(8 / 64, 3);
  });

  it('BigBird per-head draws: a 45-token prompt and 10 decode steps match (GQA, heads differ)', async () => {
    const ph = spec(
      'attention(heads: 4, kv_heads: 2, pattern: block_sparse(block: 4, layout: local(blocks: 1, global: 1), random: random(r: 2, seed: 9, per_head: true)))',
      'attention(heads: 4, kv_heads: 1, causal: false, pattern: block_sparse(block: 3, layout: local(blocks: 1), random: random(r: 2, seed: 2, per_head: true)))',
    );
    const m = await gpuModel(ph, { maxT: 16, capacity: 80 });
    await expectMatchesInterpreter(m, randInts(45, 64, 81), 10, 1e-4, 16);
  });

  it('inspect: per-head draws keep the density and name the draw in the model table', () => {
    const bb = (random: string) =>
      spec(
        `attention(heads: 4, kv_heads: 2, pattern: block_sparse(block: 64, layout: local(blocks: 3, global: 2), random: ${random}))`,
        'attention(heads: 4, kv_heads: 2)',
      );
    const rep = (m: ReturnType<typeof spec>) =>
      report(compileModel(m, { caps: BASELINE_CAPS, maxT: 16, capacity: 4096 }));
    // As many random blocks on every head (the draw never collides with band or globals).
    const ph = bb('random(r: 3, seed: 5, per_head: true)');
    expect(rep(ph).layers[0].attentionDensity).toBeCloseTo(8 / 64, 3);
    expect(attentionMixer.dims(ph.layers[0].mixer as AttentionSpec)).toContain(
      '3 random (seed 5, per head)',
    );
  });

  it('exporters refuse the sparse masks rather than drop them', () => {
    expect(() => exportHfConfig(model, 'llama')).toThrow(ExportError);
    expect(() => exportHfConfig(model, 'llama')).toThrow(/pattern|global/);
    expect(() => exportMegatron(model)).toThrow(/sparse attention|window/);
  });

  it('a layout reaching beyond the capacity is an error naming the setting and the limit', () => {
    const wide = spec(
      'attention(heads: 4, pattern: block_sparse(block: 32, layout: local(blocks: 1, global: 3)))',
      'attention(heads: 4)',
    );
    expect(() => compileModel(wide, { caps: BASELINE_CAPS, maxT: 16, capacity: 64 })).toThrow(
      /layer 0: attention pattern block_sparse: global 3 blocks of 32 \(96 positions\) reach beyond the KV capacity 64 \(--capacity\); give at most 2/,
    );
  });
});
