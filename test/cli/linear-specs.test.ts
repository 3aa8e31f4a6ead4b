/**
 * The linear-attention specs of issue 11 (each checked against its released config by the
 * family's spec test) compile, and `strata inspect` reports each layer's recurrent state: the
 * recurrence's heads × key × value floats, plus what else the mixer carries (RWKV-7's two
 * token-shift rows of the mixer and channel mix), and the KV bytes of the hybrid's attention.
 */
import { describe, expect, it } from 'vitest';
import { cli } from './run-cli.ts';

interface LayerRow {
  layer: number;
  mixer: string;
  kvBytesPerToken: number;
  stateBytes: number;
}

async function inspect(spec: string): Promise<{ layers: LayerRow[]; recurrentStateBytes: number }> {
  const r = await cli('inspect', spec, '--json', '--target', 'baseline');
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out);
}

const F32 = 4;

describe('linear-attention specs under strata inspect', () => {
  it('gla-1.3b-hybrid: 4 heads of 256 × 512 per gla layer, KV for every 4th layer', async () => {
    const { layers, recurrentStateBytes } = await inspect('specs/gla-1.3b-hybrid.strata');
    expect(layers).toHaveLength(24);
    for (const l of layers) {
      const attn = l.layer % 4 === 3;
      expect(l.mixer).toBe(attn ? 'attention' : 'gla');
      expect(l.stateBytes).toBe(attn ? 0 : 4 * 256 * 512 * F32);
      // 16 heads of 128 by default, so 16 KV heads of k and v each.
      expect(l.kvBytesPerToken).toBe(attn ? 2 * 16 * 128 * F32 : 0);
    }
    expect(recurrentStateBytes).toBe(18 * 4 * 256 * 512 * F32);
  });

  it('retnet-1.3b: 8 heads of 256 × 512 in every layer', async () => {
    const { layers } = await inspect('specs/retnet-1.3b.strata');
    expect(layers).toHaveLength(24);
    for (const l of layers) expect(l.stateBytes).toBe(8 * 256 * 512 * F32);
  });

  it('rwkv7-1.5b-world: 32 heads of 64 × 64 plus the two token-shift rows', async () => {
    const { layers } = await inspect('specs/rwkv7-1.5b-world.strata');
    expect(layers).toHaveLength(24);
    for (const l of layers) expect(l.stateBytes).toBe((32 * 64 * 64 + 2 * 2048) * F32);
  });
});
