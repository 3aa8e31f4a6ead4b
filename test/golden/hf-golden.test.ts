/**
 * HuggingFace golden tests: each fixture folder (made by tools/golden/make_golden.py
 * with transformers on float32) is imported, compiled, run on WebGPU and compared:
 * max |Δlogit| ≤ 1e-3, per-row max |Δ| / max|logit| ≤ 1e-4, greedy tokens identical.
 * Every fixture must pass; a summary table prints each type's errors. The types are also
 * listed explicitly, so a fixture cannot go missing unnoticed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { compileModel } from '../../codegen/compile.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { GpuModel } from '../../runtime/model.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import { testGpu } from '../helpers/gpu.ts';

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
  'qwen3_next',
];

const types = readdirSync(ROOT).sort();
const summary: { type: string; status: string; detail: string }[] = [];

function rowErrors(
  got: Float32Array,
  want: Float32Array,
  vocab: number,
): { abs: number; rel: number } {
  let abs = 0;
  let rel = 0;
  for (let r = 0; r < want.length / vocab; r++) {
    let maxRef = 0;
    let maxDiff = 0;
    for (let j = r * vocab; j < (r + 1) * vocab; j++) {
      maxRef = Math.max(maxRef, Math.abs(want[j]));
      maxDiff = Math.max(maxDiff, Math.abs(got[j] - want[j]));
    }
    abs = Math.max(abs, maxDiff);
    rel = Math.max(rel, maxDiff / maxRef);
  }
  return { abs, rel };
}

describe('HuggingFace golden outputs', () => {
  it('has fixtures for every type that must pass', () => {
    for (const t of MUST_PASS) expect(types).toContain(t);
  });

  for (const type of types) {
    it(type, async () => {
      const dir = join(ROOT, type);
      const hf = await importHfFolder(dir);
      const golden = await openSafetensors(join(dir, 'golden.safetensors'));
      const prompt = Array.from(await golden.readTensorI32('prompt_ids'));
      const prefillRef = await golden.readTensorF32('prefill_logits');
      const tokensRef = Array.from(await golden.readTensorI32('decode_tokens'));
      const decodeRef = await golden.readTensorF32('decode_logits');
      await golden.close();

      const gpu = await testGpu();
      const compiled = compileModel(hf.model, { caps: gpu.caps, maxT: 32, capacity: 64 });
      const gm = await GpuModel.load(
        gpu,
        memorySource(compiled, (n) => hf.readTensorF32(n)),
      );
      await hf.close();
      const vocab = hf.model.vocab;
      const seq = gm.newSequence();
      const first = await seq.forward(prompt);
      const pre = rowErrors(first.logits, prefillRef, vocab);
      const tokens: number[] = [];
      const decodeLogits = new Float32Array(tokensRef.length * vocab);
      let token = first.token;
      for (let i = 0; i < tokensRef.length; i++) {
        tokens.push(token);
        const r = await seq.next([token], GREEDY, true);
        decodeLogits.set(r.logits!, i * vocab);
        token = r.token;
      }
      gm.destroy();
      const dec = rowErrors(decodeLogits, decodeRef, vocab);
      summary.push({
        type,
        status: 'checked',
        detail: `prefill abs ${pre.abs.toExponential(1)} rel ${pre.rel.toExponential(1)}; decode abs ${dec.abs.toExponential(1)} rel ${dec.rel.toExponential(1)}`,
      });
      expect(tokens).toEqual(tokensRef);
      expect(pre.abs).toBeLessThanOrEqual(1e-3);
      expect(pre.rel).toBeLessThanOrEqual(1e-4);
      expect(dec.abs).toBeLessThanOrEqual(1e-3);
      expect(dec.rel).toBeLessThanOrEqual(1e-4);
    });
  }

  afterAll(() => {
    const checked = summary.filter((s) => s.status === 'checked').length;
    const lines = summary
      .sort((a, b) => a.type.localeCompare(b.type))
      .map((s) => `  ${s.type.padEnd(17)} ${s.status.padEnd(12)} ${s.detail}`);
    console.log(
      `HF golden summary: ${checked} of ${types.length} types compared with transformers\n${lines.join('\n')}`,
    );
  });
});
