/**
 * Masked-diffusion golden tests (LLaDA, Dream): each fixture (tools/golden/make_diffusion_golden.py,
 * the reference modeling files on the CPU in f32) is imported from its config.json and
 * safetensors, and
 *  - its one-step logits over the prompt + masks canvas match the reference's within the HF
 *    golden tolerance (max |Δ| ≤ 1e-3, per-row max |Δ| / max |logit| ≤ 1e-4: f32 on both sides),
 *    on the CPU interpreter and on WebGPU;
 *  - its whole generation at temperature 0 equals the reference sampler's tokens (LLaDA's
 *    generate(); Dream's diffusion_generate with maskgit_plus, and with topk_margin and
 *    entropy), with the same canvas at every step on the CPU (maskgit_plus), and on WebGPU with
 *    the pick on the host and in the pick kernel;
 *  - with noise (temperature, random remasking: strata's seeded draws, not torch.rand), the
 *    WebGPU picks agree with the CPU sampler.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { basename } from 'node:path';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { rowErrors } from '../helpers/golden.ts';
import type { DiffusionRun } from '../../src/ops/diffusion.ts';
import {
  DIFFUSION_GOLDENS,
  goldenRun,
  readDiffusionGolden,
  runDiffusionCpu,
  runDiffusionGpu,
} from '../helpers/diffusion-golden.ts';

const summary: string[] = [];

describe('masked-diffusion golden outputs', () => {
  for (const dir of DIFFUSION_GOLDENS) {
    const type = basename(dir);
    for (const on of ['cpu', 'gpu'] as const) {
      it(`${type} on ${on === 'cpu' ? 'the CPU interpreter' : 'WebGPU'}`, async () => {
        const hf = await importHfFolder(dir);
        try {
          const golden = await readDiffusionGolden(dir);
          const run = goldenRun(hf, golden);
          const vocab = hf.model.vocab;
          if (on === 'cpu') {
            const r = await runDiffusionCpu(hf, golden, run);
            const e = rowErrors(r.canvasLogits, golden.canvasLogits, vocab);
            expect(r.stepCanvas).toEqual(golden.stepCanvas);
            expect(r.tokens).toEqual(golden.tokens);
            for (const [alg, tokens] of Object.entries(golden.more)) {
              const other = await runDiffusionCpu(hf, golden, goldenRun(hf, golden, alg));
              expect(other.tokens, `alg ${alg}`).toEqual(tokens);
            }
            expect(e.abs).toBeLessThanOrEqual(1e-3);
            expect(e.rel).toBeLessThanOrEqual(1e-4);
            summary.push(
              `${type} cpu: abs ${e.abs.toExponential(1)} rel ${e.rel.toExponential(1)}`,
            );
          } else {
            // Beyond the reference (whose noise is torch.rand): with noise, both picks, host and
            // GPU, still agree with the CPU sampler, shifted rows and their noise included.
            const noisy: DiffusionRun[] = [
              { ...run, temperature: 0.8, seed: 5 },
              { ...run, temperature: 1, remasking: 'random', seed: 9 },
            ];
            // Dream's other algs, each with both picks.
            const algs = Object.entries(golden.more);
            const others = algs.map(([alg]) => goldenRun(hf, golden, alg));
            const r = await runDiffusionGpu(
              hf,
              golden,
              run,
              ['host', 'gpu'],
              [...noisy, ...others],
            );
            for (const [j, [alg, tokens]] of algs.entries()) {
              expect(r.tokens[`${noisy.length + j + 1}:host`], `alg ${alg}`).toEqual(tokens);
              expect(r.tokens[`${noisy.length + j + 1}:gpu`], `alg ${alg}`).toEqual(tokens);
            }
            const e = rowErrors(r.canvasLogits, golden.canvasLogits, vocab);
            expect(r.tokens.host).toEqual(golden.tokens);
            expect(r.tokens.gpu).toEqual(golden.tokens);
            for (const [i, n] of noisy.entries()) {
              const cpu = (await runDiffusionCpu(hf, golden, n)).tokens;
              expect(r.tokens[`${i + 1}:host`], `noisy run ${i}`).toEqual(cpu);
              expect(r.tokens[`${i + 1}:gpu`], `noisy run ${i}`).toEqual(cpu);
            }
            expect(e.abs).toBeLessThanOrEqual(1e-3);
            expect(e.rel).toBeLessThanOrEqual(1e-4);
            summary.push(
              `${type} gpu: abs ${e.abs.toExponential(1)} rel ${e.rel.toExponential(1)}`,
            );
          }
        } finally {
          await hf.close();
        }
      });
    }
  }

  afterAll(() => console.log(`diffusion golden summary:\n  ${summary.join('\n  ')}`));
});
