/**
 * The trained demo model (examples/demo-model, made by tools/demo-model/train.py on the H200)
 * against transformers' Jamba classes on the same F16 weights: golden.safetensors holds the
 * prompt's logits and 8 greedy decode steps computed in f32 from those weights, so the
 * tolerances are the f32 golden suite's (test/helpers/golden.ts): per-row max |Δ| / max|logit|
 * ≤ 1e-4, tokens identical. Also: its tokenizer turns the golden prompt's text into the same ids.
 */
import { describe, expect, it } from 'vitest';
import { checkGolden, readGolden } from '../helpers/golden.ts';
import { readTokenizerFiles } from '../../src/import/tokenizer-files.ts';
import { hfTokenizer } from '../../runtime/tokenizer.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';

const MODEL = 'examples/demo-model';
const GOLDEN = 'test/fixtures/demo-model';

describe('trained demo model', () => {
  it('matches transformers on WebGPU', async () => {
    console.log(`demo model vs transformers: ${await checkGolden(MODEL, 'gpu', GOLDEN)}`);
  });

  it("its tokenizer encodes the golden prompt's text to the golden ids", async () => {
    const g = await openSafetensors(`${GOLDEN}/golden.safetensors`);
    const meta = JSON.parse(String(g.metadata.golden)) as { prompt_text: string };
    await g.close();
    const files = await readTokenizerFiles(MODEL);
    const tok = hfTokenizer(files!, MODEL);
    expect(tok.encode(meta.prompt_text)).toEqual((await readGolden(GOLDEN)).prompt);
  });
});
