/**
 * Dream's sampler options: its transfer counts (against torch 2.13's values for Dream's
 * diffusion_generate rule, f32 linspace and all), logits shifted right by one, and the
 * `diffusion dream(...)` / `shift_logits` spec forms. The whole sampler is checked against the
 * reference in test/golden/diffusion-golden.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { DiffusionSpec } from '../../src/spec/model.ts';
import {
  diffusionGenerate,
  dreamCount,
  linspaceF32,
  type DiffusionRun,
} from '../../src/ops/diffusion.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { printSpec } from '../../src/spec/print.ts';
import { parseDataSpec } from '../../src/spec/load-data.ts';

/** Dream's counts over a whole generation: m masks, each step's count from those left. */
function dreamCounts(m: number, steps: number, eps: number): number[] {
  const out: number[] = [];
  let left = m;
  for (let i = 0; i < steps; i++) {
    const k = dreamCount(left, i, steps, eps);
    out.push(k);
    left -= k;
  }
  return out;
}

describe("Dream's transfer counts", () => {
  it('are torch.linspace in f32', () => {
    // torch.linspace(1, 1e-3, 7).tolist()
    expect(linspaceF32(1, 1e-3, 7)).toEqual([
      1.0, 0.8335000276565552, 0.6669999957084656, 0.5005000233650208, 0.33399999141693115,
      0.16750000417232513, 0.0010000000474974513,
    ]);
  });

  it("match diffusion_generate's int(m · (1 − s/t)), the last step taking the rest", () => {
    // Computed with torch 2.13 as Dream's generation_utils.py does (tensor(m) / 1 in f32).
    expect(dreamCounts(16, 6, 1e-3)).toEqual([2, 2, 2, 3, 3, 4]);
    expect(dreamCounts(100, 7, 1e-3)).toEqual([14, 14, 14, 14, 14, 14, 16]);
    expect(dreamCounts(37, 5, 0.01)).toEqual([7, 7, 7, 7, 9]);
    expect(dreamCounts(256, 64, 1e-3)).toEqual([3, ...Array<number>(62).fill(4), 5]);
    // steps = gen length (strata's default): f32 rounding makes the first step commit nothing
    // (128 · (1 − 0.99219…) = 0.9990) and the last two.
    expect(dreamCounts(128, 128, 1e-3)).toEqual([0, ...Array<number>(126).fill(1), 2]);
    const c512 = dreamCounts(512, 512, 1e-3);
    expect([c512[0], c512[511], c512.filter((k) => k === 1).length]).toEqual([0, 2, 510]);
  });
});

describe('shifted logits', () => {
  // A forward whose row r prefers token 10 + r: with the shift, position p gets 10 + (p − 1).
  const vocab = 32;
  const forward = async (canvas: Uint32Array) => {
    const out = new Float32Array(canvas.length * vocab);
    for (let r = 0; r < canvas.length; r++) out[r * vocab + 10 + r] = 5;
    return out;
  };
  const run: DiffusionRun = {
    genLength: 4,
    blockLength: 4,
    steps: 2,
    remasking: 'low_confidence',
    temperature: 0,
    cfgScale: 0,
    maskId: 31,
    seed: 0,
  };

  it('reads position p from row p − 1', async () => {
    const plain = await diffusionGenerate(forward, [1, 2], vocab, run);
    const shifted = await diffusionGenerate(forward, [1, 2], vocab, { ...run, shiftLogits: true });
    expect(Array.from(plain.slice(2))).toEqual([12, 13, 14, 15]);
    expect(Array.from(shifted.slice(2))).toEqual([11, 12, 13, 14]);
  });

  it('refuses a cache, whose steps do not recompute the row before the block', async () => {
    await expect(
      diffusionGenerate(forward, [1, 2], vocab, { ...run, shiftLogits: true, cache: 'prefix' }),
    ).rejects.toThrow(/cache prefix with shifted logits/);
  });
});

const spec = (diffusion: string) => `model "tiny-dream" {
  vocab 64
  dim 32
  max_context 128
  norm rms(eps: 1e-6)
  diffusion ${diffusion}
  mixer attn = attention(heads: 4, kv_heads: 2, qkv_bias: true, causal: false)
  ffn mlp = swiglu(hidden: 64)
  layers 2 x attn
}
`;

describe('diffusion dream(...) and shift_logits', () => {
  it("resolves with Dream's defaults and prints back to the same model", () => {
    const m = parseSpec(spec('dream(mask_id: 63, gen_length: 16, steps: 6)'), 'm.strata');
    expect(m.diffusion).toEqual({
      kind: 'dream',
      maskId: 63,
      genLength: 16,
      blockLength: 16,
      steps: 6,
      // alg entropy, as Dream's model cards sample.
      remasking: 'entropy',
      temperature: 0,
      cfgScale: 0,
      shiftLogits: true,
      eps: 1e-3,
    });
    const printed = printSpec(m);
    expect(printed).toMatch(/diffusion dream\(mask_id: 63, gen_length: 16, steps: 6/);
    expect(parseSpec(printed, 'p.strata')).toEqual(m);
    expect(parseDataSpec(JSON.stringify(m), 'm.json', 'json')).toEqual(m);
  });

  it("names Dream's algs and keeps them through printing", () => {
    for (const [alg, remasking] of [
      ['maskgit_plus', 'low_confidence'],
      ['topk_margin', 'margin'],
      ['entropy', 'entropy'],
    ]) {
      const m = parseSpec(spec(`dream(mask_id: 63, alg: ${alg})`), 'm.strata');
      expect((m.diffusion as DiffusionSpec).remasking).toBe(remasking);
      expect(parseSpec(printSpec(m), 'p.strata')).toEqual(m);
    }
    expect(() => parseSpec(spec('dream(mask_id: 63, alg: origin)'), 'm.strata')).toThrow(
      /m\.strata:6:\d+: .*alg/,
    );
  });

  it('takes shift_logits on either kind', () => {
    const off = parseSpec(spec('dream(mask_id: 63, shift_logits: false)'), 'm.strata');
    expect((off.diffusion as DiffusionSpec).shiftLogits).toBeUndefined();
    expect(parseSpec(printSpec(off), 'p.strata')).toEqual(off);
    const llada = parseSpec(spec('llada(mask_id: 63, shift_logits: true)'), 'm.strata');
    expect(llada.diffusion).toMatchObject({ kind: 'llada', shiftLogits: true });
    expect(parseSpec(printSpec(llada), 'p.strata')).toEqual(llada);
  });

  it('refuses an eps outside (0, 1) and a block on Dream, naming the field', () => {
    expect(() => parseSpec(spec('dream(mask_id: 63, eps: 1.5)'), 'm.strata')).toThrow(
      /m\.strata:6:\d+: .*eps must lie in \(0, 1\)/,
    );
    const m = parseSpec(spec('dream(mask_id: 63, gen_length: 16)'), 'm.strata');
    const bad = { ...m, diffusion: { ...m.diffusion!, blockLength: 8 } };
    expect(() => parseDataSpec(JSON.stringify(bad), 'm.json', 'json')).toThrow(
      /blockLength must equal genLength/,
    );
  });
});
