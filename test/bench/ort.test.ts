/**
 * The ONNX Runtime peer's pieces that run without PyTorch or a GPU: the HF checkpoint it exports
 * from must hold exactly strata's model and weights (read back through strata's HF importer, every
 * tensor bit for bit, on a tiny llama and a small Llama-3-shaped one with llama3 RoPE scaling),
 * and the RESULTS.md table, including bench/report.ts given ort.json without llamacpp.json.
 * (The export and onnxruntime itself are checked by bench/ort/check-cpu.sh, which needs torch.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { checkHfCheckpoint, writeHfCheckpoint } from '../../bench/ort/hf-checkpoint.ts';
import { isOrtResults, ortSection, type OrtResults } from '../../bench/ort/table.ts';
import { runReport } from '../helpers/bench-report.ts';

/** Llama 3.2's shape in small: head_dim 32, GQA 4:2, llama3 RoPE scaling, tied embeddings. */
export const SMALL_LLAMA3 = `model "small-llama3" {
  vocab 512
  dim 128
  max_context 1024
  norm rms(eps: 1e-5)
  tie_embeddings true
  mixer attn = attention(heads: 4, kv_heads: 2, head_dim: 32,
    rope: rope(theta: 500000, scaling: llama3(factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_positions: 64)))
  ffn mlp = swiglu(hidden: 256)
  layers 2 x attn with ffn mlp
}
`;

const dir = mkdtempSync(join(tmpdir(), 'strata-ort-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('HF checkpoint for the ONNX export', () => {
  for (const [name, model] of [
    ['tiny-llama', loadSpec('specs/tiny-llama.strata')],
    ['small-llama3', parseSpec(SMALL_LLAMA3, 'small-llama3.strata')],
  ] as const) {
    it(`${name}: reads back as the same model, every tensor bit for bit`, async () => {
      const weights = randomWeights(model, 0);
      const out = join(dir, name);
      const { configType, bytes } = await writeHfCheckpoint(model, weights, out);
      expect(configType).toBe('llama');
      const n = expectedTensors(model).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
      expect(bytes).toBeGreaterThan(4 * n);
      await checkHfCheckpoint(
        model,
        weights,
        out,
        expectedTensors(model).map((t) => t.name),
      );
    });
  }

  it('a different seed is caught by the check', async () => {
    const model = loadSpec('specs/tiny-llama.strata');
    const out = join(dir, 'seed');
    await writeHfCheckpoint(model, randomWeights(model, 0), out);
    await expect(
      checkHfCheckpoint(model, randomWeights(model, 1), out, ['model.norm.weight']),
    ).rejects.toThrow(/model\.norm\.weight\[0\] reads/);
  });
});

const e2e = (precision: string, pp: number, tg: number) => ({
  precision,
  prefill: [{ tokens: 512, tokensPerSecond: pp }],
  decode: { tokensPerSecond: tg },
});
const spread = (median: number) => ({ median, min: median - 1, max: median + 1, runs: [] });
const ORT: OrtResults = {
  peer: 'onnxruntime-webgpu',
  device: 'NVIDIA H200, 580.1',
  export: 'torch 2.11, transformers 5.17',
  precisions: {
    f32: {
      precision: 'f32',
      ep: 'webgpu',
      onnxruntime: '1.31.1',
      check: { reference: 'PyTorch f32', tolerance: 1e-3, worstRelative: 2.5e-6 },
      correct: true,
      prefill: { tokens: 512, tokensPerSecond: spread(10000) },
      decode: { tokens: 128, tokensPerSecond: spread(100), msPerToken: 10 },
    },
    f16: { precision: 'f16', ep: 'webgpu', error: 'Program Gather requires f16' },
  },
};

describe('ONNX Runtime table', () => {
  it('puts strata beside ORT per precision, with spreads, checks, ratios and failures', () => {
    expect(isOrtResults(ORT)).toBe(true);
    expect(isOrtResults({ rows: [] })).toBe(false);
    const lines = ortSection([e2e('f32', 30000, 250), e2e('f16', 40000, 400)], ORT, 'this run');
    expect(lines[0]).toContain('onnxruntime-node 1.31.1');
    expect(lines).toContain(
      '| f32 | 30000 | 250.0 | 10000 (9999–10001) | 100.0 (99.0–101.0) | 2.5e-6 | 3.00× / 2.50× |',
    );
    expect(lines).toContain('| f16 | 40000 | 400.0 | failed | failed | — | — / — |');
    expect(lines).toContain('ONNX Runtime f16 failed: Program Gather requires f16');
  });

  it('bench/report.ts writes the section from ort.json alone', () => {
    const { md, saved } = runReport<{ ort: OrtResults }>(e2e('f32', 30000, 250), 'ort.json', ORT);
    expect(md).toContain('## end to end vs ONNX Runtime WebGPU (onnxruntime-node 1.31.1)');
    expect(md).not.toContain('vs llama.cpp');
    expect(saved.ort.precisions.f32!.prefill!.tokensPerSecond.median).toBe(10000);
  });
});
