/**
 * The operator's view of an MoE model: `strata run --stats` prints each MoE layer's expert load
 * read back from the GPU, and `strata inspect` reports total and active parameters and the
 * per-token FLOPs of the active experts only.
 */
import { describe, expect, it } from 'vitest';
import { cli } from './run-cli.ts';

describe('strata on an MoE spec', () => {
  it('run --stats prints the expert load of every MoE layer', async () => {
    const r = await cli(
      'run',
      'specs/tiny-moe.strata',
      '--prompt-ids',
      '5,17,3,200,9',
      '--max-tokens',
      '4',
      '--ids',
      '--stats',
      '--max-t',
      '8',
      '--capacity',
      '32',
    );
    expect(r.code).toBe(0);
    const lines = r.out.split('\n').filter((l) => /^\s+layer\s+\d+:/.test(l));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /layer {3}1: 8 experts, \d+ routed, max\/mean \d+\.\d\d: \[(\d+ ){7}\d+\]/,
    );
    // Every token that went through the model was routed to top_k experts in each layer (2, 2
    // and 3): at least the 5 prompt tokens and 3 generated ones fed back.
    const routed = lines.map((l) => Number(/(\d+) routed/.exec(l)![1]));
    const tokens = routed[0]! / 2;
    expect(tokens).toBeGreaterThanOrEqual(8);
    expect(routed).toEqual([2 * tokens, 2 * tokens, 3 * tokens]);
    for (const l of lines) {
      const counts = /\[(.*)\]/.exec(l)![1]!.split(' ').map(Number);
      const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
      const shown = Number(/max\/mean (\S+):/.exec(l)![1]);
      expect(shown).toBeCloseTo(Math.max(...counts) / mean, 2);
    }
  });

  it('inspect reports active parameters and FLOPs per token', async () => {
    const r = await cli('inspect', 'specs/tiny-moe.strata', '--target', 'baseline', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as {
      parameters: number;
      activeParameters: number;
      flopsPerToken: number;
      ffn: { layer: number; kind: string; experts: number | null; flopsPerToken: number }[];
    };
    expect(j.activeParameters).toBeLessThan(j.parameters);
    expect(j.ffn.map((f) => f.kind)).toEqual(['mlp', 'moe', 'moe', 'moe']);
    expect(j.flopsPerToken).toBeGreaterThan(j.ffn.reduce((n, f) => n + f.flopsPerToken, 0));
    const text = await cli('inspect', 'specs/tiny-moe.strata', '--target', 'baseline');
    expect(text.out).toMatch(/active parameters per token: 193K/);
    // Layers with the same MoE settings share a line.
    expect(text.out).toMatch(/moe layers 1, 2: 8 experts, top 2: \d+\.\d+ kFLOP per token each/);
    expect(text.out).toMatch(/moe layer 3: 8 experts, top 3: \d+\.\d+ kFLOP per token\n/);
  });
});
