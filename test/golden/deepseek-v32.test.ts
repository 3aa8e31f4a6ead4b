/**
 * DeepSeek-V3.2 (HF deepseek_v32: MLA plus DeepSeek sparse attention) against transformers on the
 * CPU interpreter (the op references over the unfused graphs); hf-golden.test.ts runs the same
 * fixture on WebGPU. The fixture keeps index_topk 4 of a 24-token prompt plus 8 decode steps, so
 * from position 4 on every query's attention hinges on its indexer's choice; its script checked
 * that no choice sits within 1.3e-3 (relative) of a tie (tools/golden/make_golden.py,
 * index_margins), so rounding cannot flip one. Same bounds as every HF golden (f32).
 */
import { describe, expect, it } from 'vitest';
import { checkGolden, readGolden, rowErrors, runGoldenCpu } from '../helpers/golden.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';

const DIR = 'test/fixtures/hf/deepseek_v32';

describe('deepseek_v32 golden', () => {
  it('imports as MLA with an indexer on every layer', async () => {
    const hf = await importHfFolder(DIR);
    try {
      for (const l of hf.model.layers) {
        expect(l.mixer?.kind).toBe('mla');
        if (l.mixer?.kind !== 'mla') continue;
        expect(l.mixer.index).toEqual({ kind: 'indexer', heads: 8, dim: 16, topk: 4 });
      }
      expect(hf.model.layers.map((l) => l.ffn?.kind)).toEqual(['mlp', 'moe']);
    } finally {
      await hf.close();
    }
  });

  it('matches transformers on the CPU interpreter', async () => {
    console.log(`deepseek_v32 cpu: ${await checkGolden(DIR, 'cpu')}`);
  });

  it('misses it by far with dense attention: the selection is what the golden tests', async () => {
    const hf = await importHfFolder(DIR);
    try {
      for (const l of hf.model.layers) if (l.mixer?.kind === 'mla') l.mixer.index = null;
      const golden = await readGolden(DIR);
      const run = await runGoldenCpu(hf, golden);
      expect(rowErrors(run.prefill, golden.prefill, hf.model.vocab).abs).toBeGreaterThan(0.1);
    } finally {
      await hf.close();
    }
  });
});
