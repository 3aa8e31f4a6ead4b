/**
 * HuggingFace golden tests: each fixture folder (made by tools/golden/make_golden.py
 * with transformers on float32) is imported, compiled, run on WebGPU and compared
 * (test/helpers/golden.ts): max |Δlogit| ≤ 1e-3, per-row max |Δ| / max|logit| ≤ 1e-4, greedy
 * tokens identical. Every fixture must pass; a summary table prints each type's errors. The
 * types are also listed explicitly, so a fixture cannot go missing unnoticed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkGolden } from '../helpers/golden.ts';
import { DIFFUSION_FIXTURES } from '../helpers/diffusion-golden.ts';

const ROOT = 'test/fixtures/hf';
/** Types whose golden test must run and pass today; grows as families land. */
const MUST_PASS = [
  'llama',
  'mistral',
  'qwen3',
  'mamba',
  'mamba2',
  'bamba',
  'lfm2',
  'nemotron_h',
  'mixtral',
  'qwen3_moe',
  'jamba',
  'gpt_oss',
  'gemma3_text',
  'zamba2',
  'falcon_h1',
  'granitemoehybrid',
  'deepseek_v3',
  'deepseek_v32',
  'qwen3_next',
];

/**
 * Fixtures with their own test (a different golden layout): the canvas goldens of
 * diffusion-golden.test.ts, and diffusion-gemma.test.ts.
 */
const OWN_TEST = new Set([...DIFFUSION_FIXTURES, 'diffusion_gemma']);

const types = readdirSync(ROOT)
  .filter((t) => !OWN_TEST.has(t))
  .sort();
const summary: { type: string; detail: string }[] = [];

describe('HuggingFace golden outputs', () => {
  it('has fixtures for every type that must pass', () => {
    for (const t of MUST_PASS) expect(types).toContain(t);
  });

  for (const type of types) {
    it(type, async () => {
      summary.push({ type, detail: await checkGolden(join(ROOT, type), 'gpu') });
    });
  }

  afterAll(() => {
    const lines = summary
      .sort((a, b) => a.type.localeCompare(b.type))
      .map((s) => `  ${s.type.padEnd(17)} ${s.detail}`);
    console.log(
      `HF golden summary: ${summary.length} of ${types.length} types compared with transformers\n${lines.join('\n')}`,
    );
  });
});
