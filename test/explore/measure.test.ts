/**
 * `strata explore --measure` on a tiny hybrid, on whatever WebGPU adapter the machine has
 * (SwiftShader in CI): every design gets a measurement beside its estimate, and a rerun takes
 * them from DIR/measure-cache/ instead of timing again. No timing is asserted, only that the
 * figures are there, finite and positive.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { exploreCommand } from '../../src/cli/explore-cmd.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { compileModel } from '../../codegen/compile.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { GpuModel } from '../../runtime/model.ts';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import { testGpu } from '../helpers/gpu.ts';
import type { DesignResult, Results } from '../../src/cli/explore/results.ts';
import { isMeasurement, type Measurement } from '../../src/cli/explore/measure.ts';

/** A design's first measurement, which these tests expect to have been taken. */
function measuredOf(d: DesignResult): Measurement {
  const m = d.measured![0]!;
  if (!isMeasurement(m)) throw new Error(`${d.name} was not measured: ${m.refused}`);
  return m;
}

const SPEC = `model "tiny-ratio" {
  vocab 64
  dim 32
  max_context 256
  norm rms(eps: 1e-6)
  mixer mamba = mamba1(d_state: 4)
  mixer attn = attention(heads: 2, rope: none)
  ffn mlp = swiglu(hidden: 64)
  let ratio = 1
  layers 1 x [ratio mamba : 1 attn] with ffn mlp
}
`;

async function explore(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
  const w = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err.push(String(s));
    return true;
  });
  try {
    return { code: await exploreCommand.run(args), out: out.join('\n'), err: err.join('') };
  } finally {
    log.mockRestore();
    w.mockRestore();
  }
}

describe('strata explore --measure', () => {
  it('times each design beside its estimate, and a rerun reads the cache', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'explore-measure-'));
    const spec = join(dir, 'tiny.strata');
    writeFileSync(spec, SPEC);
    const out = join(dir, 'out');
    const args = [spec, '--vary', 'ratio=1,3', '-o', out, '--measure'];
    const opts = ['--context', '40', '--max-t', '8', '--steps', '3', '--capacity', '64'];
    const first = await explore([...args, ...opts]);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/meas pre\s+est\/meas\s+meas dec@40\s+est\/meas/);
    const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    expect(r.designs).toHaveLength(2);
    for (const d of r.designs) {
      expect(d.measured).toHaveLength(1);
      const m = measuredOf(d);
      expect(m).toMatchObject({ precision: 'f32', prefillTokens: 8, context: 40, decodeSteps: 3 });
      expect(m.prefillTokensPerSecond).toBeGreaterThan(0);
      expect(Number.isFinite(m.decodeTokensPerSecond) && m.decodeTokensPerSecond > 0).toBe(true);
      // The steps' spread: three steps, so the median is one of them.
      const { median, min, max } = m.decodeStepMs;
      expect(min > 0 && min <= median && median <= max).toBe(true);
      // The measured build's dispatches, at the adapter's storage-buffer budget (the estimate's
      // is WebGPU's 8); no fusion of this model depends on it.
      expect(m.storageBuffers).toBeGreaterThanOrEqual(8);
      expect(m.decodeDispatches).toBe(d.figures[0]!.decode.dispatches);
      // SwiftShader has timestamp queries: every decode dispatch lands in one role.
      const p = m.decodeProfile!;
      expect(p.roles.reduce((n, x) => n + x.dispatches, 0)).toBe(m.decodeDispatches);
      expect(p.roles.reduce((n, x) => n + x.ms, 0)).toBeCloseTo(p.dispatchSumMs, 6);
      expect(p.roles.map((x) => x.role)).toContain('attn attention');
    }
    expect(first.err.match(/decode GPU time: \d+% /g)).toHaveLength(2);
    // SwiftShader has no preset of its own, and the run says whose estimates it shows.
    expect(first.err).toMatch(
      /no roofline preset matches this adapter \(.+\): the estimates are h200's/,
    );
    // The report draws the profiles: one stacked bar per design, by role.
    const bars = readFileSync(join(out, 'plots', 'decode-profile.svg'), 'utf8');
    expect(bars).toMatch(/^<svg/);
    // The largest role over all designs has its own colour (escaped as SVG text).
    const byRole = new Map<string, number>();
    for (const d of r.designs)
      for (const x of measuredOf(d).decodeProfile!.roles)
        byRole.set(x.role, (byRole.get(x.role) ?? 0) + x.ms);
    const largest = [...byRole.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    expect(bars).toContain(largest.replace(/&/g, '&amp;').replace(/</g, '&lt;'));
    expect(bars).toContain('GPU ms per token');
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain(
      '<figure id="decode-profile">',
    );
    const csv = readFileSync(join(out, 'results.csv'), 'utf8');
    expect(csv).toMatch(/decode_tokens_per_s_measured/);
    expect(csv).toMatch(/decode_dispatches_measured,storage_buffers_measured/);
    expect(readdirSync(join(out, 'measure-cache'))).toHaveLength(2);
    // The rerun measures nothing: both come from the cache, with the same figures.
    const again = await explore([...args, ...opts, '--force']);
    expect(again.code).toBe(0);
    expect(again.err.match(/\(cached\)/g)).toHaveLength(2);
    const r2 = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    expect(r2.designs.map((d) => d.measured)).toEqual(r.designs.map((d) => d.measured));
  }, 300_000);

  it('--fill zeros times decode at the context over zeroed caches, and says so', async () => {
    // H2O fills its cache one token at a time (its 32k fill outlasted a 10-minute H100 call), so its decode at a long
    // context is timed from a jump to that position; the step does the same work.
    const dir = mkdtempSync(join(tmpdir(), 'explore-measure-'));
    const spec = join(dir, 'h2o.strata');
    writeFileSync(
      spec,
      SPEC.replace(
        'attention(heads: 2, rope: none)',
        'attention(heads: 2, rope: none, sink_tokens: 1, evict: h2o(budget: 8, recent: 2))',
      ),
    );
    const out = join(dir, 'out');
    const opts = ['--context', '200', '--max-t', '8', '--steps', '2', '--capacity', '64'];
    const run = await explore([
      spec,
      '--vary',
      'ratio=1',
      '-o',
      out,
      '--measure',
      ...opts,
      '--fill',
      'zeros',
    ]);
    expect(run.code).toBe(0);
    expect(run.err).toMatch(/decode at 200 \(zeroed cache\) [\d.]+ tok\/s/);
    expect(run.out).toMatch(
      /meas dec@200: timed over zeroed caches at that position \(--fill zeros\)/,
    );
    const m = measuredOf(
      (JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results).designs[0]!,
    );
    expect(m).toMatchObject({ fill: 'zeros', context: 200, decodeSteps: 2 });
    expect(m.decodeTokensPerSecond).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'results.csv'), 'utf8')).toMatch(/decode_fill_measured/);
    await expect(
      explore([spec, '--vary', 'ratio=1', '-o', join(dir, 'p'), '--measure', '--fill', 'ones']),
    ).rejects.toThrow(/--fill must be one of prefill, zeros, got 'ones'/);
    await expect(
      explore([spec, '--vary', 'ratio=1', '-o', join(dir, 'q'), '--fill', 'zeros']),
    ).rejects.toThrow(/--fill goes with --measure/);
  }, 300_000);

  it('a design the adapter cannot hold is a row that says why, and the sweep goes on', async () => {
    // At 70k tokens a layer of 8 heads of 512 has a K cache of 70k · 8 · 512 · 4 bytes = 1.15 GB, past
    // SwiftShader's 1 GiB buffers and bindings (the H100's binding is 2 GiB: MLA's expanded cache
    // at 128k met it).
    const dir = mkdtempSync(join(tmpdir(), 'explore-measure-'));
    const spec = join(dir, 'big.strata');
    writeFileSync(
      spec,
      `model "big-head" {
  vocab 64
  dim 32
  max_context 70100
  norm rms(eps: 1e-6)
  mixer small = attention(heads: 2, rope: none)
  mixer big = attention(heads: 8, head_dim: 512, rope: none)
  ffn mlp = swiglu(hidden: 64)
  let a = small
  layers 1 x a with ffn mlp
}
`,
    );
    const out = join(dir, 'out');
    const opts = ['--context', '70000', '--max-t', '8', '--steps', '2', '--fill', 'zeros'];
    const run = await explore([spec, '--vary', 'a=big,small', '-o', out, '--measure', ...opts]);
    expect(run.code).toBe(0);
    expect(run.err).toMatch(/a=big f32: not measured: this device's max\w+ is \d+, but state/);
    const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    const [big, small] = r.designs;
    expect(big!.measured![0]).toMatchObject({
      precision: 'f32',
      refused: expect.stringMatching(/state 'cache\.k\.0'.*needs \d+/),
    });
    expect(measuredOf(small!).decodeTokensPerSecond).toBeGreaterThan(0);
    expect(run.out).toMatch(/a-big\s.*\srefused\s+-$/m);
    expect(run.out).toMatch(/a-big f32 not measured: this device's max\w+ is \d+, but state/);
    expect(readFileSync(join(out, 'results.csv'), 'utf8')).toMatch(/measure_refused/);
  }, 300_000);

  it('Sequence.skipForTiming jumps a new sequence only, within its capacity', async () => {
    const gpu = await testGpu();
    const model = parseSpec(SPEC, 'tiny.strata');
    const c = compileModel(model, { caps: gpu.caps, maxT: 4, capacity: 32 });
    const gm = await GpuModel.load(gpu, memorySource(c, randomWeights(model, 0)));
    try {
      const seq = gm.newSequence();
      seq.skipForTiming(30);
      await seq.next([5], GREEDY);
      // The step ran at position 30: one more token fills the cache, a second does not fit.
      expect(seq.pos).toBe(31);
      await seq.next([6], GREEDY);
      await expect(seq.next([7], GREEDY)).rejects.toThrow(/capacity 32/);
      expect(() => seq.skipForTiming(3)).toThrow(
        /needs a new sequence \(this one is at position 32\)/,
      );
      expect(() => gm.newSequence().skipForTiming(33)).toThrow(/capacity 32/);
      expect(() => gm.newSequence().skipForTiming(1.5)).toThrow(/an integer of at least 0/);
    } finally {
      gm.destroy();
    }
  });

  it('refuses a context the model cannot hold, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'explore-measure-'));
    const spec = join(dir, 'tiny.strata');
    writeFileSync(spec, SPEC);
    await expect(
      explore([spec, '--vary', 'ratio=1', '-o', join(dir, 'o'), '--measure', '--context', '300']),
    ).rejects.toThrow(
      /context 300 plus 32 decode steps and 5 profiled ones exceeds the model's max_context 256/,
    );
    await expect(
      explore([spec, '--vary', 'ratio=1', '-o', join(dir, 'p'), '--steps', '3']),
    ).rejects.toThrow(/--steps goes with --measure/);
  });
});
