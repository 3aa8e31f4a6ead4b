/** The per-token cost of a diffusion schedule (strata inspect) against the cost model's steps. */
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import { autoregressiveCost, diffusionScheduleCost } from '../../src/cli/diffusion-cost.ts';
import { graphCost } from '../../src/cli/report.ts';
import type { DiffusionRun } from '../../src/ops/diffusion.ts';
import { loadSpec } from '../../src/spec/load.ts';
import type { DiffusionSpec } from '../../src/spec/model.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { cli } from '../cli/run-cli.ts';

const SPEC = 'specs/tiny-llada.strata';

describe('diffusion schedule cost', () => {
  const model = loadSpec(SPEC);
  const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 32, capacity: 32 });
  const run: DiffusionRun = { ...(model.diffusion as DiffusionSpec), seed: 0 };
  const P = 6;
  const n = P + run.genLength;

  it('is steps full forwards without a cache, fewer rows with one', () => {
    const exact = diffusionScheduleCost(c.graphs.prefill, P, run);
    expect(exact.forwards).toBe(run.steps);
    expect(exact.rows).toBe(run.steps * n);
    expect(exact.total.flops).toBeCloseTo(run.steps * graphCost(c.graphs.prefill, n, 0).flops, 0);
    const prefix = diffusionScheduleCost(c.graphs.prefill, P, { ...run, cache: 'prefix' });
    const dual = diffusionScheduleCost(c.graphs.prefill, P, { ...run, cache: 'dual' });
    // 2 blocks of 8, 4 steps each: one full step, then [start, n) or the block.
    expect(prefix.rows).toBe(2 * n + 3 * (n - P) + 3 * (n - P - 8));
    expect(dual.rows).toBe(2 * n + 6 * 8);
    expect(dual.total.flops).toBeLessThan(prefix.total.flops);
    expect(prefix.total.flops).toBeLessThan(exact.total.flops);
  });

  it('compares with prefill then one decode step a token', () => {
    const ar = autoregressiveCost(c.graphs.prefill, c.graphs.decode, P, 3);
    const want =
      graphCost(c.graphs.prefill, P, 0).flops +
      graphCost(c.graphs.decode, 1, P).flops +
      graphCost(c.graphs.decode, 1, P + 1).flops;
    expect(ar.flops).toBeCloseTo(want, 0);
  });

  it('strata inspect prints both, and refuses a bad schedule in the flag', async () => {
    const r = await cli('inspect', SPEC, '--prompt-length', '6', '--cache', 'dual');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /schedule: gen length 16 in 2 blocks of 8, 8 steps, cache dual, prompt 6: 8 forwards over 92 rows; [\d.]+ [kMG]FLOP, read [\d.]+ [KMG]iB per generated token/,
    );
    expect(r.out).toMatch(/autoregressive, same weights: .* \(the schedule: [\d.]+x the FLOPs/);
    expect((await cli('inspect', SPEC, '--block-length', '5')).err).toMatch(
      /--block-length \(5\) must divide --gen-length \(16\)/,
    );
    expect((await cli('inspect', SPEC, '--threshold', '2')).err).toMatch(
      /--threshold must lie in \(0, 1\]/,
    );
  });
});
