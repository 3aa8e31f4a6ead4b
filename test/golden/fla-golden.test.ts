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
import { checkGolden } from '../helpers/golden.ts';

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

  afterAll(() => {
    const pending = fixtures.filter((f) => !MUST_PASS.includes(f));
    console.log(
      `fla golden summary:\n${summary.sort().join('\n')}` +
        (pending.length ? `\n  not yet imported: ${pending.join(', ')}` : ''),
    );
  });
});
