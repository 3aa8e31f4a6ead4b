/**
 * Issue 17's sweep tables in RESULTS (bench/sparse/table.ts): explore results are told apart by
 * content; sweeps of one context merge by design, the later file's row winning; a refused design
 * keeps its row and says why; every row names the file it comes from.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isSweep, sweepSection, type Sweep } from '../../bench/sparse/table.ts';
import { isMeasurement } from '../../src/cli/explore/measure.ts';

const load = (name: string) => JSON.parse(readFileSync(`bench/results/${name}`, 'utf8')) as unknown;

describe('sparse sweep table', () => {
  it('merges sweeps by context and design, later files winning, and keeps refusals', () => {
    const a = load('2026-12-06-1007-nvidia-h100-sparse-131072.json');
    const b = load('2026-12-06-1013-nvidia-h100-sparse-131072.json');
    expect(isSweep(a) && isSweep(b)).toBe(true);
    expect(isSweep({ rows: [] })).toBe(false);
    const md = sweepSection([
      { sweep: a as Sweep, from: 'A' },
      { sweep: b as Sweep, from: 'B' },
    ]).join('\n');
    expect(md).toContain('### decode at 128k context');
    const rows = md.split('\n').filter((l) => /^\| (dense|sinks|h2o|band|nsa|mla_\w+) /.test(l));
    // Seven forms, once each: B's dense and sinks replace A's.
    expect(rows.map((r) => r.split('|')[1]!.trim()).sort()).toEqual(
      ['band', 'dense', 'h2o', 'mla_expanded', 'mla_latent', 'nsa', 'sinks'].sort(),
    );
    const row = (form: string) => rows.find((r) => r.startsWith(`| ${form} `))!;
    expect(row('dense')).toMatch(/\| B \|$/);
    expect(row('h2o')).toMatch(/\| A \|$/);
    // The dense row is B's measurement: its mean rate, then the median step's.
    const dense = (b as Sweep).designs.find((d) => d.values.form === 'dense')!.measured![0]!;
    if (!isMeasurement(dense)) throw new Error('dense was measured in that run');
    expect(row('dense')).toContain(dense.decodeTokensPerSecond.toFixed(1));
    expect(row('mla_expanded')).toContain('refused');
    expect(md).toMatch(/- mla_expanded: this device's maxStorageBufferBindingSize is \d+/);
  });
});
