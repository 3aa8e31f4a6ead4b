/**
 * Batched decode (src/ops/batch.ts) of the sparse-attention ops that keep per-sequence state or
 * choose per query: H2O eviction (each sequence its own cache rows, positions and scores), NSA
 * (each sequence its own compressed blocks and block picks) and the DSA indexer (each sequence's
 * top-k over its own key cache). Each batched kernel runs B = 3 sequences step after step,
 * against the batched reference (the single-sequence reference per row on that row's slices),
 * with the sequences' states diverging (different tokens every step) and, for H2O, far past the
 * point where eviction starts.
 *
 * Tolerances: outputs within 1e-4 of the largest reference value (f32 kernels against the
 * f64-accumulating references, the single-sequence kernel tests' bound); H2O scores within 1e-5
 * and its kept positions exactly (a different eviction would show there first); block picks and
 * top-k lists exactly.
 */
import { describe, expect, it } from 'vitest';
import { h2oAttentionKernel, H2O_PROB } from '../../codegen/kernels/h2o.ts';
import type { H2oAttentionAttrs } from '../../src/graph/ops.ts';
import { batchedDefinition } from '../../src/ops/batch.ts';
import { h2oAttention } from '../../src/ops/h2o.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { runLaunches } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

const B = 3;

interface HState {
  kcache: Float32Array;
  vcache: Float32Array;
  rows: Uint32Array;
}

/** Positions and scores of an H2O rows state, apart. */
function split(rows: Uint32Array) {
  const f = new Float32Array(rows.buffer.slice(0), rows.byteOffset, rows.length);
  return {
    pos: Array.from(rows).filter((_, i) => i % 2 === 0),
    score: Float32Array.from(f.filter((_, i) => i % 2 === 1)),
  };
}

describe('batched H2O attention kernel', () => {
  const cases: (Omit<H2oAttentionAttrs, 'op' | 'scale' | 'softcap'> & { softcap?: number })[] = [
    { heads: 4, kvHeads: 2, headDim: 8, budget: 6, recent: 2, sinkTokens: 1, batch: B },
    { heads: 3, kvHeads: 1, headDim: 6, budget: 5, recent: 1, sinkTokens: 0, batch: B, softcap: 5 },
    {
      heads: 2,
      kvHeads: 2,
      headDim: 8,
      budget: 7,
      recent: 3,
      sinkTokens: 2,
      batch: B,
      kvType: 'f16',
    },
  ];
  for (const [ci, c] of cases.entries()) {
    it(`B = ${B} sequences for 14 steps (eviction from step ${c.budget}): ${JSON.stringify(c)}`, async () => {
      const a: H2oAttentionAttrs = {
        op: 'h2o_attention',
        scale: 1 / Math.sqrt(c.headDim),
        ...c,
        softcap: c.softcap ?? null,
      };
      const def = batchedDefinition(h2oAttention);
      const kvw = a.kvHeads * a.headDim;
      const f16 = a.kvType === 'f16';
      // f16 caches are bound as u32 words of two halves (the kernel's form); the reference holds
      // the f32 values those halves round to. Both start at zero.
      let ref: HState = {
        kcache: new Float32Array(B * a.budget * kvw),
        vcache: new Float32Array(B * a.budget * kvw),
        rows: new Uint32Array(B * a.budget * 2 * a.kvHeads),
      };
      let dev: HState = {
        kcache: new Float32Array(f16 ? (B * a.budget * kvw) / 2 : B * a.budget * kvw),
        vcache: new Float32Array(f16 ? (B * a.budget * kvw) / 2 : B * a.budget * kvw),
        rows: new Uint32Array(B * a.budget * 2 * a.kvHeads),
      };
      const gen = h2oAttentionKernel(a, { caps: BASELINE_CAPS, maxT: B });
      for (let pos = 0; pos < 14; pos++) {
        const s = 100 * ci + 3 * pos;
        const inputs = {
          q: randn(B * a.heads * a.headDim, s, 2),
          k: randn(B * kvw, s + 1, 2),
          v: randn(B * kvw, s + 2),
        };
        const step = { T: B, pos, L: 1 };
        const want = def.reference(
          a,
          {
            ...inputs,
            kcache: ref.kcache.slice(),
            vcache: ref.vcache.slice(),
            rows: ref.rows.slice(),
          },
          step,
        );
        const got = await runLaunches(gen.launches, {
          inputs: {
            ...inputs,
            kcache: f16 ? new Uint32Array(dev.kcache.buffer) : dev.kcache,
            vcache: f16 ? new Uint32Array(dev.vcache.buffer) : dev.vcache,
            rows: dev.rows,
            out: new Float32Array(B * a.heads * a.headDim),
          },
          outputs: { [H2O_PROB]: gen.scratch[H2O_PROB] / 4 },
          step,
        });
        expect(
          maxRelError(got.out as Float32Array, want.out as Float32Array),
          `step ${pos}`,
        ).toBeLessThanOrEqual(1e-4);
        const g = split(new Uint32Array((got.rows as Uint32Array | Float32Array).buffer));
        const w = split(want.rows as Uint32Array);
        expect(g.pos, `kept positions at step ${pos}`).toEqual(w.pos);
        for (let i = 0; i < w.score.length; i++)
          expect(Math.abs(g.score[i] - w.score[i])).toBeLessThan(1e-5);
        ref = {
          kcache: want.kcache as Float32Array,
          vcache: want.vcache as Float32Array,
          rows: want.rows as Uint32Array,
        };
        dev = {
          kcache: new Float32Array((got.kcache as Float32Array | Uint32Array).buffer),
          vcache: new Float32Array((got.vcache as Float32Array | Uint32Array).buffer),
          rows: new Uint32Array((got.rows as Uint32Array | Float32Array).buffer),
        };
      }
      // Eviction ran and the sequences kept different tokens (their scores differ).
      const kept = (s: number) =>
        split(ref.rows.subarray(s * a.budget * 2 * a.kvHeads, (s + 1) * a.budget * 2 * a.kvHeads));
      expect(Math.max(...kept(0).pos)).toBe(13);
      expect(Array.from(kept(0).score)).not.toEqual(Array.from(kept(1).score));
    });
  }
});
