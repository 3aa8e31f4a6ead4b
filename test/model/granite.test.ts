/**
 * Granite's multipliers through the whole pipeline (specs/granite-tiny-hybrid.strata: Mamba-2 +
 * attention, MoE with a shared MLP, embedding_scale, residual_scale, logit_scale): WebGPU against
 * the CPU interpreter, fused against unfused, and the scales folded into existing ops.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseSpec } from '../../src/spec/load.ts';
import {
  expectFusedMatchesUnfused,
  expectMatchesInterpreter,
  gpuModel,
} from '../helpers/compare.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

const TOL = 1e-4;
const MODEL = parseSpec(
  readFileSync('specs/granite-tiny-hybrid.strata', 'utf8'),
  'granite-tiny-hybrid.strata',
);

describe('a Granite-shaped hybrid with residual and logit multipliers', () => {
  it('prefill and 8 greedy decode steps match the interpreter', async () => {
    await expectMatchesInterpreter(await gpuModel(MODEL), randInts(13, MODEL.vocab, 3), 8, TOL);
  });

  it('folds the multipliers into matmul epilogues and the MoE combine; unfused agrees', async () => {
    const ids = Array.from(randInts(21, MODEL.vocab, 9));
    const { fused, plain } = await expectFusedMatchesUnfused(MODEL, ids, TOL, { maxT: 32 });
    for (const phase of ['prefill', 'decode'] as const) {
      const nodes = fused.compiled.graphs[phase].nodes.map((n) => n.attrs);
      // Every mixer's residual add went into its output projection, scale included.
      expect(nodes.filter((a) => a.op === 'add')).toEqual([]);
      const scaled = nodes.filter((a) => a.op === 'matmul' && a.residual);
      expect(scaled.length).toBe(MODEL.layers.length);
      for (const a of scaled) expect(a).toMatchObject({ scale: 0.22 });
      // Decode folds the combine into the down projection (src/passes/fuse-moe.ts).
      const combines = nodes.flatMap((a): Array<{ scale: number; residual: boolean }> =>
        a.op === 'moe_combine' ? [a] : a.op === 'moe_matmul' && a.combine ? [a.combine] : [],
      );
      expect(combines.length).toBe(MODEL.layers.length);
      for (const a of combines) expect(a).toMatchObject({ scale: 0.22, residual: true });
      const head = nodes.filter((a) => a.op === 'matmul' && a.rows === 'L');
      expect(head).toMatchObject([{ scale: 0.125 }]);
    }
    const plainAdds = plain.compiled.graphs.prefill.nodes.filter((n) => n.attrs.op === 'add');
    expect(plainAdds.map((n) => n.attrs)).toEqual(
      Array(4 + 2).fill({ op: 'add', width: 64, scale: 0.22 }),
    );
  });

  it('logit_scale multiplies the logits; residual_scale changes the model', async () => {
    const ids = Array.from(randInts(7, MODEL.vocab, 5));
    const base = await (await gpuModel(MODEL)).gm.newSequence().forward(ids);
    const unscaled = await (
      await gpuModel({ ...MODEL, logitScale: 1 })
    ).gm
      .newSequence()
      .forward(ids);
    expect(
      maxRelError(
        base.logits,
        unscaled.logits.map((v) => v * 0.125),
      ),
    ).toBeLessThan(TOL);
    const noResidualScale = await (
      await gpuModel({ ...MODEL, residualScale: 1 })
    ).gm
      .newSequence()
      .forward(ids);
    expect(maxRelError(base.logits, noResidualScale.logits)).toBeGreaterThan(1e-2);
  });
});
