/** bench/spread.ts: the min–max ranges and "runs disagree" lines of the RESULTS tables. */
import { describe, expect, it } from 'vitest';
import { DISAGREE, disagreement, spreadOf, withRange } from '../../bench/spread.ts';
import { runReport } from '../helpers/bench-report.ts';

describe('run spread', () => {
  it('turns per-run seconds into a throughput range', () => {
    const s = spreadOf(512, 17336, [0.025, 0.104, 0.0295])!;
    expect(s.runs).toBe(3);
    expect(s.min).toBeCloseTo(512 / 0.104, 6);
    expect(s.max).toBeCloseTo(512 / 0.025, 6);
    expect(withRange(s, 0)).toBe('17336 (4923–20480)');
  });

  it('needs two finite runs', () => {
    expect(spreadOf(512, 1, [0.1])).toBeNull();
    expect(spreadOf(512, 1, [0.1, Number.NaN, 0])).toBeNull();
  });

  it('says which runs disagree, and only those', () => {
    const wide = spreadOf(512, 17336, [0.025, 0.104])!;
    expect(disagreement('prefill 512', wide, 'tokens/s')).toBe(
      'Runs disagree on prefill 512: 4923–20480 tokens/s over 2 runs (4.2×); the table gives the median.',
    );
    const close = spreadOf(1, 1, [1, DISAGREE * 0.99])!;
    expect(disagreement('decode', close, 'tokens/s')).toBeNull();
  });

  it('bench/report.ts gives the e2e rows their ranges and says which disagree', () => {
    const e2e = {
      model: 'llama-3.2-1b dims, random weights',
      precision: 'f16',
      prefill: [
        { tokens: 512, tokensPerSecond: 17336, runs: 5, minSeconds: 0.025, maxSeconds: 0.104 },
      ],
      decode: { tokensPerSecond: 500, msPerTokenRuns: [2, 2.1, 1.9, 2, 2] },
    };
    const none = { device: 'd', llamaCpp: { commit: 'c' }, args: '', rows: [], errors: [] };
    const { md } = runReport(e2e, 'llamacpp.json', none);
    expect(md).toContain('| prefill 512 | 17336 (4923–20480) |');
    expect(md).toContain('| decode (batch 1) | 500.0 (476.2–526.3) |');
    expect(md).toContain('Runs disagree on prefill 512: 4923–20480 tokens/s over 5 runs (4.2×)');
    expect(md).not.toContain('Runs disagree on decode');
  });
});
