/**
 * Golden tests against flash-linear-attention (fla 0.5.2, its own model classes on the H200;
 * tools/golden/make_fla_golden.py): each fixture is imported and run twice, on WebGPU and on the
 * CPU interpreter (the op references), both compared with fla's logits under the limits in
 * test/helpers/golden.ts. Every fixture folder must be listed in MUST_PASS once its family lands;
 * folders not listed yet are reported, not skipped silently.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { compileModel } from '../../codegen/compile.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { checkGolden, readGolden, rowErrors, runGoldenGpu } from '../helpers/golden.ts';
import { testGpu } from '../helpers/gpu.ts';

const ROOT = 'test/fixtures/fla';
/** Fixtures whose golden test must run and pass; grows as families land. */
const MUST_PASS: string[] = [
  'gla',
  'gla_hybrid',
  'hgrn2',
  'retnet',
  'delta_net',
  'gated_deltanet',
  'rwkv7',
  'linear_attn',
  'linear_attn_relu',
];

const fixtures = readdirSync(ROOT).sort();
const summary: string[] = [];

describe('fla golden outputs', () => {
  it('lists only fixtures that exist', () => {
    for (const f of MUST_PASS) expect(fixtures).toContain(f);
  });

  for (const fixture of MUST_PASS) {
    for (const on of ['cpu', 'gpu'] as const) {
      it(`${fixture} (${on})`, async () => {
        const line = await checkGolden(join(ROOT, fixture), on);
        summary.push(`  ${fixture.padEnd(15)} ${on}  ${line}`);
      });
    }
  }

  // The multi-pass linear-recurrence prefill (codegen/kernels/linear-recurrence-chunks.ts) runs
  // past one of its chunks; at maxT 32 on a device of 4 KiB workgroup memory its chunk is 16, so
  // the 24-token prompt spans two chunks (one partial), with each family's fused prologue.
  // RWKV-7's dplr passes need 8 KiB for a chunk of 16 (two Gram matrices in each).
  for (const [fixture, kib] of [
    ['gated_deltanet', 4],
    ['gla', 4],
    ['retnet', 4],
    ['delta_net', 4],
    ['rwkv7', 8],
  ] as const) {
    it(`${fixture} (gpu, multi-pass prefill)`, async () => {
      const dir = join(ROOT, fixture);
      const caps = { ...(await testGpu()).caps, maxWorkgroupStorageBytes: kib * 1024 };
      const hf = await importHfFolder(dir);
      try {
        const compiled = compileModel(hf.model, { caps, maxT: 32, capacity: 64 });
        expect(compiled.kernels.some((k) => k.name.startsWith('linear_recurrence_prep_'))).toBe(
          true,
        );
        const golden = await readGolden(dir);
        const run = await runGoldenGpu(hf, golden, { caps });
        const pre = rowErrors(run.prefill, golden.prefill, hf.model.vocab);
        const dec = rowErrors(run.decode, golden.decode, hf.model.vocab);
        expect(run.tokens).toEqual(golden.tokens);
        for (const e of [pre, dec]) {
          expect(e.abs).toBeLessThanOrEqual(1e-3);
          expect(e.rel).toBeLessThanOrEqual(1e-4);
        }
        summary.push(
          `  ${fixture.padEnd(15)} gpu multi-pass  prefill abs ${pre.abs.toExponential(1)} rel ${pre.rel.toExponential(1)}`,
        );
      } finally {
        await hf.close();
      }
    });
  }

  afterAll(() => {
    const pending = fixtures.filter((f) => !MUST_PASS.includes(f));
    console.log(
      `fla golden summary:\n${summary.sort().join('\n')}` +
        (pending.length ? `\n  not yet imported: ${pending.join(', ')}` : ''),
    );
  });
});
