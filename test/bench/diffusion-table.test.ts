/**
 * The diffusion section of RESULTS.md (bench/diffusion-table.ts): each file is told apart by its
 * content, a ratio appears only where strata and PyTorch ran the same schedule, and the block
 * diffusion rows follow with their own per-forward times.
 */
import { describe, expect, it } from 'vitest';
import {
  diffusionSection,
  isDiffusionBlock,
  isDiffusionPeer,
  isDiffusionStrata,
  type DiffusionBlock,
  type DiffusionPeer,
  type DiffusionStrata,
} from '../../bench/diffusion-table.ts';

const strata: DiffusionStrata = {
  layers: 4,
  prompt: 64,
  kind: 'llada',
  genLength: 128,
  blockLength: 32,
  steps: 128,
  remasking: 'low_confidence',
  temperature: 0,
  rows: [
    { label: 'exact', pick: 'gpu', forwards: 128, seconds: 2, tokensPerSecond: 64 },
    { label: 'dual cache', pick: 'gpu', forwards: 128, seconds: 1, tokensPerSecond: 128 },
  ],
};
const peer: DiffusionPeer = {
  peer: 'PyTorch reference samplers (test)',
  model: 'test',
  device: 'dev',
  torch: '2',
  prompt: 64,
  sampler: {
    steps: 128,
    gen_length: 128,
    block_length: 32,
    temperature: 0,
    remasking: 'low_confidence',
  },
  rows: [
    {
      setting: 'exact',
      seconds_median: 8,
      seconds_min: 7,
      seconds_max: 9,
      runs: 3,
      forwards: 128,
      tokens_per_s: 16,
    },
  ],
};
const block: DiffusionBlock = {
  layers: 4,
  prompt: 64,
  block: 16,
  rows: [
    { label: 'bd3lm first-hitting', forwards: 128, seconds: 0.64, tokensPerSecond: 200 },
    { label: 'bd3lm first-hitting, GPU draw', forwards: 128, seconds: 0.32, tokensPerSecond: 400 },
  ],
};
const row = (lines: string[], label: string) => lines.find((l) => l.startsWith(`| ${label} |`));

describe('diffusion table', () => {
  it('tells the three files apart', () => {
    expect([isDiffusionStrata(strata), isDiffusionPeer(strata), isDiffusionBlock(strata)]).toEqual([
      true,
      false,
      false,
    ]);
    expect([isDiffusionStrata(peer), isDiffusionPeer(peer), isDiffusionBlock(peer)]).toEqual([
      false,
      true,
      false,
    ]);
    expect([isDiffusionStrata(block), isDiffusionPeer(block), isDiffusionBlock(block)]).toEqual([
      false,
      false,
      true,
    ]);
  });

  it('pairs rows by setting and gives strata ÷ PyTorch', () => {
    const lines = diffusionSection(strata, peer, { strata: 'this run', peer: 'p.json' });
    expect(row(lines, 'exact')).toContain('| 4.00× |');
    expect(row(lines, 'exact')).toContain('8.00 (7.00–9.00)');
    expect(row(lines, 'dual cache')).toMatch(/\| — \| — \| — \|$/);
  });

  it('gives no ratio when the schedules differ', () => {
    const other = { ...peer, sampler: { ...peer.sampler, steps: 64 } };
    const lines = diffusionSection(strata, other, { strata: 'this run', peer: 'p.json' });
    expect(lines.join('\n')).toContain('**differs** (no ratio)');
    expect(row(lines, 'exact')).not.toContain('×');
  });

  it('adds the block diffusion rows with ms a forward', () => {
    const lines = diffusionSection(
      strata,
      null,
      { strata: 'this run', peer: '' },
      { run: block, from: 'this run' },
    );
    expect(lines.join('\n')).toContain('blocks of 16');
    expect(row(lines, 'bd3lm first-hitting')).toBe(
      '| bd3lm first-hitting | 128 | 0.64 | 200.0 | 5.0 | — | — | — | — |',
    );
  });

  it("pairs the block rows with the peer's bd3lms sampler, the GPU draw's too", () => {
    const withBlock: DiffusionPeer = {
      ...peer,
      block_sampler: { block: 16, temperature: 1, nucleus_p: 0.9, ddpm_steps: 4 },
      rows: [
        ...peer.rows,
        {
          setting: 'bd3lm first-hitting',
          seconds_median: 1.28,
          seconds_min: 1.2,
          seconds_max: 1.3,
          runs: 3,
          forwards: 140,
          tokens_per_s: 100,
        },
      ],
    };
    const lines = diffusionSection(
      strata,
      withBlock,
      { strata: 'this run', peer: 'p.json' },
      { run: block, from: 'this run' },
    );
    expect(row(lines, 'bd3lm first-hitting')).toBe(
      '| bd3lm first-hitting | 128 | 0.64 | 200.0 | 5.0 | 140 | 1.28 (1.20–1.30) | 100.0 | 2.00× |',
    );
    expect(row(lines, 'bd3lm first-hitting, GPU draw')).toContain('| 4.00× |');
    // Another block size: no pairing.
    const other = { ...withBlock, block_sampler: { ...withBlock.block_sampler!, block: 32 } };
    const unpaired = diffusionSection(
      strata,
      other,
      { strata: 'this run', peer: 'p.json' },
      { run: block, from: 'this run' },
    );
    expect(row(unpaired, 'bd3lm first-hitting')).toMatch(/\| — \| — \| — \| — \|$/);
  });
});
