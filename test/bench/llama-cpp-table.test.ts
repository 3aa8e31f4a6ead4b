/**
 * The llama.cpp table of bench/RESULTS.md from small fake inputs: strata's e2e rows matched to
 * llama-bench's rows by precision and test, ratios strata ÷ llama.cpp, failures shown as such;
 * and bench/report.ts run end to end on fake files in a scratch folder (it writes there only).
 */
import { describe, expect, it } from 'vitest';
import { llamaCppSection, type LlamaCppResults } from '../../bench/llama-cpp/table.ts';
import { runReport } from '../helpers/bench-report.ts';

const e2e = (precision: string, pp: number, tg: number) => ({
  model: 'llama-3.2-1b dims, random weights',
  precision,
  prefill: [
    { tokens: 512, tokensPerSecond: pp },
    { tokens: 4096, tokensPerSecond: 1 },
  ],
  decode: { tokensPerSecond: tg },
});

const LC: LlamaCppResults = {
  device: 'NVIDIA H200, 580.1',
  llamaCpp: { commit: '5b4ebc5' },
  args: '-p 512 -n 128 -fa 1 -ngl 99 -r $REPS',
  rows: [
    { backend: 'cuda', precision: 'f32', test: 'pp512', tokensPerSecond: 60000 },
    { backend: 'cuda', precision: 'f32', test: 'tg128', tokensPerSecond: 500 },
    { backend: 'vulkan', precision: 'f32', test: 'pp512', tokensPerSecond: 40000 },
    { backend: 'vulkan', precision: 'f32', test: 'tg128', tokensPerSecond: 400 },
    { backend: 'cuda', precision: 'q4', test: 'pp512', tokensPerSecond: 42000 },
    { backend: 'cuda', precision: 'q4', test: 'tg128', tokensPerSecond: 900 },
  ],
  errors: [{ backend: 'vulkan', precision: 'q4', error: 'llama-bench exit 1: oops' }],
};

describe('llama.cpp table', () => {
  it('puts strata beside CUDA and Vulkan per precision, with ratios', () => {
    const lines = llamaCppSection([e2e('f32', 30000, 250), e2e('q4', 21000, 450)], LC, 'this run');
    expect(lines[0]).toContain('llama.cpp 5b4ebc5');
    expect(lines).toContain(
      '| weights | strata pp512 | strata tg128 | llama.cpp CUDA pp512 | tg128 | Vulkan pp512 | tg128 | strata ÷ CUDA | strata ÷ Vulkan |',
    );
    expect(lines).toContain(
      '| f32 / F32 | 30000 | 250.0 | 60000 | 500 | 40000 | 400 | 0.50× / 0.50× | 0.75× / 0.63× |',
    );
    expect(lines).toContain(
      '| q4 / Q4_0 (head Q8_0) | 21000 | 450.0 | 42000 | 900 | failed | failed | 0.50× / 0.50× | — / — |',
    );
    // No strata row and no llama.cpp row: no line.
    expect(lines.some((l) => l.startsWith('| f16'))).toBe(false);
    expect(lines).toContain('llama.cpp vulkan q4 failed: llama-bench exit 1: oops');
  });

  it('bench/report.ts writes the section from the files it is given', () => {
    const { md, saved } = runReport<{ llamacpp: LlamaCppResults }>(
      e2e('f32', 30000, 250),
      'llamacpp.json',
      LC,
    );
    expect(md).toContain('## end to end vs llama.cpp (llama.cpp 5b4ebc5)');
    expect(md).toContain('| f32 / F32 | 30000 | 250.0 | 60000 | 500 | 40000 | 400 |');
    expect(saved.llamacpp.rows.length).toBe(LC.rows.length);
  });
});
