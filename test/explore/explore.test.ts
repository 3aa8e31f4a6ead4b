/** `strata explore` end to end on the released Jamba spec, without a GPU. */
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { exploreCommand } from '../../src/cli/explore-cmd.ts';
import { inspectCommand } from '../../src/cli/inspect-cmd.ts';
import type { ModelReport } from '../../src/cli/report.ts';
import type { Results } from '../../src/cli/explore/results.ts';
import { placements } from '../../src/cli/explore/placement.ts';
import { presetForAdapter } from '../../src/cli/explore/roofline.ts';

const JAMBA = 'specs/jamba-v0.1.strata';

/** Runs a command with stdout and stderr captured. */
async function quiet(run: () => Promise<number>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void lines.push(s));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    return { code: await run(), out: lines.join('\n') };
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
}

/**
 * Checks XML well-formedness the simple way: every tag closes in order. vega's SVG has no
 * comments, CDATA or doctype, so tags and self-closing tags are all there is.
 */
function wellFormed(svg: string): boolean {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([A-Za-z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m;
    if (self) continue;
    if (close) {
      if (stack.pop() !== name) return false;
    } else stack.push(name!);
  }
  return stack.length === 0;
}

describe('strata explore on Jamba', () => {
  let dir: string;
  let results: Results;
  beforeAll(async () => {
    dir = join(mkdtempSync(join(tmpdir(), 'explore-')), 'out');
    const r = await quiet(() => exploreCommand.run([JAMBA, '--vary', 'ratio=1,3,7,15', '-o', dir]));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ratio-15/);
    results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
  }, 120_000);

  it('writes HTML, CSV, JSON and one spec per design', () => {
    expect(readdirSync(dir).sort()).toEqual([
      'designs',
      'plots',
      'report.html',
      'results.csv',
      'results.json',
      'table.txt',
    ]);
    expect(readdirSync(join(dir, 'designs')).sort()).toEqual(
      ['ratio-1', 'ratio-15', 'ratio-3', 'ratio-7'].map((n) => `${n}.strata`),
    );
    expect(results.designs.map((d) => d.layers)).toEqual([8, 16, 32, 64]);
    const csv = readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n');
    expect(csv).toHaveLength(5);
    expect(csv[0]).toMatch(/^design,ratio,layers,precision/);
  });

  it("gives each design the figures 'strata inspect --json' gives its written spec", async () => {
    for (const d of results.designs) {
      const r = await quiet(() =>
        inspectCommand.run([
          join(dir, d.spec),
          '--target',
          'nominal',
          '--json',
          '--precision',
          'f32',
          '--kv',
          'f32',
        ]),
      );
      const rep = JSON.parse(r.out) as ModelReport;
      const f = d.figures[0]!;
      expect(f.parameters).toBe(rep.parameters);
      expect(f.activeParameters).toBe(rep.activeParameters);
      expect(f.parameterBytes).toBe(rep.parameterBytes);
      expect(f.kvBytesPerToken).toBe(rep.kvBytesPerToken);
      expect(f.recurrentStateBytes).toBe(rep.recurrentStateBytes);
      expect(f.prefill.flops).toBe(rep.prefill.flops);
      expect(f.prefill.bytes).toBe(rep.prefill.bytesRead + rep.prefill.bytesWritten);
      expect(f.prefill.dispatches).toBe(rep.prefill.dispatches);
      expect(f.decode.flops).toBe(rep.decode.flops);
      expect(f.decode.bytes).toBe(rep.decode.bytesRead + rep.decode.bytesWritten);
      expect(f.decode.dispatches).toBe(rep.dispatchesPerDecodeToken);
    }
  }, 120_000);

  it('keeps the released numbers at ratio 7 (51.57B parameters, attention at 4, 12, 20, 28)', () => {
    const d = results.designs.find((x) => x.values.ratio === '7')!;
    expect(d.figures[0]!.parameters).toBe(51_570_323_328);
    const attn = d.pattern.flatMap((p, i) => (p.kind === 'attention' ? [i] : []));
    expect(attn).toEqual([4, 12, 20, 28]);
  });

  it('derives memory and budgets from weights, KV and state', () => {
    const f = results.designs[0]!.figures[0]!;
    expect(f.memoryAt[4096]).toBe(
      f.parameterBytes + f.kvBytesPerToken * 4096 + f.recurrentStateBytes,
    );
    const budget = 80 * 2 ** 30;
    const max = f.maxContext['80GiB']!;
    expect(f.parameterBytes + f.recurrentStateBytes + f.kvBytesPerToken * max).toBeLessThanOrEqual(
      budget,
    );
    expect(
      f.parameterBytes + f.recurrentStateBytes + f.kvBytesPerToken * (max + 1),
    ).toBeGreaterThan(budget);
    expect(f.maxContext['4GiB']).toBe(0);
  });

  it('writes an HTML report of four well-formed SVG plots with their marks', () => {
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    const svgs = [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
    expect(svgs).toHaveLength(4);
    for (const s of svgs) expect(wellFormed(s)).toBe(true);
    const [pareto, memory, cost, pattern] = svgs as [string, string, string, string];
    expect(pareto).toMatch(/mark-symbol/);
    expect(pareto).toMatch(/mark-line/);
    expect(memory).toMatch(/mark-line/);
    expect(cost).toMatch(/mark-line/);
    expect(pattern).toMatch(/mark-rect/);
    // The same four plots as files of their own.
    const files = readdirSync(join(dir, 'plots')).sort();
    expect(files).toHaveLength(4);
    for (const f of files) expect(svgs).toContain(readFileSync(join(dir, 'plots', f), 'utf8'));
    expect(html).not.toMatch(/<script/);
  });
});

describe('strata explore errors', () => {
  const fresh = () => join(mkdtempSync(join(tmpdir(), 'explore-e-')), 'out');

  it('names an unknown --vary parameter with a suggestion', async () => {
    await expect(exploreCommand.run([JAMBA, '--vary', 'ratoi=1,3', '-o', fresh()])).rejects.toThrow(
      "--vary: unknown parameter 'ratoi', did you mean 'ratio'? (the spec's parameters: ratio, attn_at)",
    );
  });

  it('takes a roofline preset by name and names the presets for an unknown one', async () => {
    const d = fresh();
    const r = await quiet(() =>
      exploreCommand.run([JAMBA, '--vary', 'ratio=3', '--device', 'h100', '-o', d]),
    );
    expect(r.code).toBe(0);
    const rf = (JSON.parse(readFileSync(join(d, 'results.json'), 'utf8')) as Results).roofline;
    expect([rf.name, rf.bandwidth, rf.flops, rf.dispatch]).toEqual([
      'h100',
      3.06e12,
      28.6e12,
      7e-6,
    ]);
    expect(rf.source).toMatch(/as strata measured it/);
    await expect(
      exploreCommand.run([JAMBA, '--vary', 'ratio=3', '--device', 'h300', '-o', fresh()]),
    ).rejects.toThrow("--device must be one of h200, h100, laptop, got 'h300'");
  });

  it("picks the preset of the adapter's GPU, by name", () => {
    const h100 = { device: 'nvidia-h100-80gb-hbm3', description: 'NVIDIA: 580.159.04' };
    expect(presetForAdapter(h100)).toBe('h100');
    expect(presetForAdapter({ device: '', description: 'NVIDIA H200' })).toBe('h200');
    expect(presetForAdapter({ device: '', description: 'SwiftShader driver 5.0.0' })).toBeNull();
  });

  it('refuses a value that is no number, name, string or list', async () => {
    await expect(exploreCommand.run([JAMBA, '--vary', 'ratio=1 2', '-o', fresh()])).rejects.toThrow(
      "--vary ratio: bad value '1 2'",
    );
  });

  it('says which designs are the same model: a varied let that reaches no layer', async () => {
    // attn_at depends on ratio, but the layers take `keep`: ratio changes nothing here.
    const d = fresh();
    mkdirSync(d, { recursive: true });
    const spec = join(d, '..', 'unused-let.strata');
    writeFileSync(
      spec,
      readFileSync(JAMBA, 'utf8').replace(
        'layers 4 x [ratio mamba : 1 attention at attn_at] with ffn [mlp, moe]',
        'let keep = [4, 12]\n  layers 32 x mamba with ffn [mlp, moe]\n  override layers keep { mixer: attention }',
      ),
    );
    const errors: string[] = [];
    const err = vi.spyOn(console, 'error').mockImplementation((s: string) => void errors.push(s));
    try {
      const r = await quiet(() =>
        exploreCommand.run([
          spec,
          '--vary',
          'ratio=3,7',
          '--vary',
          'keep=[4, 12],[8, 24]',
          '-o',
          d,
          '--force',
        ]),
      );
      expect(r.code).toBe(0);
    } finally {
      err.mockRestore();
    }
    expect(errors.filter((e) => e.includes('the same model'))).toEqual([
      'designs ratio-3_keep-4.12 and ratio-7_keep-4.12 are the same model (ratio=3 vs ratio=7)',
      'designs ratio-3_keep-8.24 and ratio-7_keep-8.24 are the same model (ratio=3 vs ratio=7)',
    ]);
    // Both rows stay, as asked for.
    const results = JSON.parse(readFileSync(join(d, 'results.json'), 'utf8')) as Results;
    expect(results.designs).toHaveLength(4);
  }, 60_000);

  it('refuses to write into a folder with files unless --force', async () => {
    const d = fresh();
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'notes.txt'), 'mine');
    await expect(exploreCommand.run([JAMBA, '--vary', 'ratio=3', '-o', d])).rejects.toThrow(
      /the folder exists and is not empty \(1 entries\); pass --force/,
    );
    const r = await quiet(() =>
      exploreCommand.run([JAMBA, '--vary', 'ratio=3', '-o', d, '--force']),
    );
    expect(r.code).toBe(0);
    expect(existsSync(join(d, 'notes.txt'))).toBe(true);
  }, 60_000);
});

describe('attention placements', () => {
  const o = { n: 32, k: 4, cap: 64, seed: 0 };
  it('spaces evenly as Jamba does, and packs front, back and middle', () => {
    expect(placements('even', o)[0]!.indices).toEqual([4, 12, 20, 28]);
    expect(placements('front', o)[0]!.indices).toEqual([0, 1, 2, 3]);
    expect(placements('back', o)[0]!.indices).toEqual([28, 29, 30, 31]);
    expect(placements('middle', o)[0]!.indices).toEqual([14, 15, 16, 17]);
    expect(placements('indices:9,1,5', { ...o, k: 3 })[0]!.indices).toEqual([1, 5, 9]);
  });

  it('enumerates every placement up to the cap and samples the same ones per seed beyond it', () => {
    expect(placements('all', { n: 6, k: 2, cap: 64, seed: 0 })).toHaveLength(15);
    const a = placements('all', o);
    expect(a).toHaveLength(64);
    expect(new Set(a.map((p) => p.label)).size).toBe(64);
    expect(placements('all', o)).toEqual(a);
    expect(placements('all', { ...o, seed: 1 })).not.toEqual(a);
  });

  it('an unknown strategy names the flag and the choices', () => {
    expect(() => placements('evenly', o)).toThrow(
      "--placement must be one of even, front, back, middle, indices:I,J,..., all, got 'evenly'",
    );
  });
});
