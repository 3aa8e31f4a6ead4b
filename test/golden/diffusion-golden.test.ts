/**
 * Masked-diffusion golden tests (LLaDA, Dream): each fixture (tools/golden/make_diffusion_golden.py,
 * the reference modeling files on the CPU in f32) is imported from its config.json and
 * safetensors, and
 *  - its one-step logits over the prompt + masks canvas match the reference's within the HF
 *    golden tolerance (max |Δ| ≤ 1e-3, per-row max |Δ| / max |logit| ≤ 1e-4: f32 on both sides),
 *    on the CPU interpreter and on WebGPU;
 *  - its whole generation at temperature 0 equals the reference sampler's tokens (LLaDA's
 *    generate(), Dream's diffusion_generate with maskgit_plus), with the same canvas at every
 *    step on the CPU, and on WebGPU with the pick on the host and in the pick kernel.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { rowErrors } from '../helpers/golden.ts';
import {
  DIFFUSION_FIXTURES,
  goldenRun,
  readDiffusionGolden,
  runDiffusionCpu,
  runDiffusionGpu,
} from '../helpers/diffusion-golden.ts';

const ROOT = 'test/fixtures/hf';
const summary: string[] = [];

describe('masked-diffusion golden outputs', () => {
  for (const type of DIFFUSION_FIXTURES) {
    for (const on of ['cpu', 'gpu'] as const) {
      it(`${type} on ${on === 'cpu' ? 'the CPU interpreter' : 'WebGPU'}`, async () => {
        const dir = join(ROOT, type);
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
            expect(e.abs).toBeLessThanOrEqual(1e-3);
            expect(e.rel).toBeLessThanOrEqual(1e-4);
            summary.push(
              `${type} cpu: abs ${e.abs.toExponential(1)} rel ${e.rel.toExponential(1)}`,
            );
          } else {
            const r = await runDiffusionGpu(hf, golden, run, ['host', 'gpu']);
            const e = rowErrors(r.canvasLogits, golden.canvasLogits, vocab);
            expect(r.tokens.host).toEqual(golden.tokens);
            expect(r.tokens.gpu).toEqual(golden.tokens);
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
