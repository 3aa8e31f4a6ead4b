/**
 * Block diffusion (BD3-LM): the cached GPU sampler (each block against the exact K/V of the
 * committed blocks) against a CPU reference that recomputes the whole canvas from scratch with
 * the block-causal mask at every step, commit for commit; block length 1 as greedy left-to-right
 * decoding; the draws; the settings' errors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  blockDiffusionSample,
  blockScheduleIssues,
  drawToken,
  samplerBlocks,
  stayProbability,
  type BlockDiffusionRun,
  type BlockForward,
  type BlockStepCommit,
} from '../../src/ops/block-diffusion.ts';
import { blockDiffusionGenerateGpu } from '../../runtime/block-diffusion.ts';
import { gumbel } from '../../src/ops/diffusion.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { compileModel } from '../../codegen/compile.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import type { LoadedModel as _L } from '../helpers/compare.ts';
import { gpuModel, type LoadedModel } from '../helpers/compare.ts';
import { attention, tinyBidirectional, tinyLlama } from '../helpers/models.ts';

const MASK = 259;

const blockModel = (block: number) => tinyBidirectional(2, { blockCausal: block });

function settings(o: Partial<BlockDiffusionRun>): BlockDiffusionRun {
  return {
    genLength: 10,
    blockLength: 4,
    steps: 4,
    sampler: 'first_hitting',
    temperature: 0,
    nucleusP: 1,
    maskId: MASK,
    seed: 3,
    ...o,
  };
}

/** The reference: the whole canvas from position 0 at every step, the wanted rows returned. */
async function fromScratch(model: ModelIR, weights: _L['weights']): Promise<BlockForward> {
  const g = compileModel(model, { caps: BASELINE_CAPS, maxT: 64, capacity: 64 }).graphs.prefill;
  const pre = await Interpreter.create(g, weights);
  const V = model.vocab;
  return async (canvas, _span, rows) => {
    const all = pre.step(canvas, 0, canvas.length, pre.newState()).logits;
    const out = new Float32Array(rows.length * V);
    rows.forEach((p, k) => out.set(all.subarray(p * V, (p + 1) * V), k * V));
    return out;
  };
}

describe('block-diffusion draws', () => {
  it('lays blocks at multiples of the block length, the first completing the prompt', () => {
    expect(samplerBlocks(5, 15, 4)).toEqual([
      { from: 4, to: 8 },
      { from: 8, to: 12 },
      { from: 12, to: 15 },
    ]);
    expect(samplerBlocks(0, 8, 4)).toEqual([
      { from: 0, to: 4 },
      { from: 4, to: 8 },
    ]);
  });

  it("keeps a mask with bd3lms's s/t, and commits what is left at a block's last step", () => {
    // S = 4: t = 1, 2/3, 1/3, 0 and s = t − 1/4.
    expect(stayProbability(0, 4)).toBeCloseTo(0.75);
    expect(stayProbability(1, 4)).toBeCloseTo((2 / 3 - 1 / 4) / (2 / 3));
    expect(stayProbability(2, 4)).toBeCloseTo((1 / 3 - 1 / 4) / (1 / 3));
    expect(stayProbability(3, 4)).toBe(0);
    expect(stayProbability(0, 1)).toBe(0);
  });

  it('never draws the mask id; the nucleus keeps the top tokens up to mass p', () => {
    // Probabilities ∝ e^l: token 2 (the mask) would win; then 0 (0.57), 1 (0.21), 3 (0.21).
    const logits = [2, 1, 9, 1];
    const o = { seed: 1, step: 0, position: 0, temperature: 0, nucleusP: 1, maskId: 2 };
    expect(drawToken(logits, 0, 4, o)).toBe(0);
    // p = 0.5 keeps only the first token whatever the noise.
    for (let s = 0; s < 20; s++)
      expect(drawToken(logits, 0, 4, { ...o, seed: s, temperature: 1, nucleusP: 0.5 })).toBe(0);
    const seen = new Set<number>();
    for (let s = 0; s < 200; s++)
      seen.add(drawToken(logits, 0, 4, { ...o, seed: s, temperature: 1 }));
    expect([...seen].sort()).toEqual([0, 1, 3]);
    expect(() => drawToken([0, NaN], 0, 2, { ...o, maskId: 9 })).toThrow(/logit 1 .* is NaN/);
  });

  it('draws what the plain rule draws: ids sorted by probability, then Gumbel argmax (ties too)', () => {
    // The rule as bd3lms's _nucleus_sample states it, with a comparator sort of the ids; drawToken
    // finds the same nucleus from a sort of the values (fast at a 126k vocab).
    const plain = (l: number[], o: Parameters<typeof drawToken>[3]): number => {
      const ids = l.map((_, v) => v).filter((v) => v !== o.maskId);
      const top = Math.max(...ids.map((v) => l[v]));
      const p = l.map((x) => Math.exp(x / o.temperature - top / o.temperature));
      const sum = ids.reduce((a, v) => a + p[v], 0);
      const sorted = ids.slice().sort((a, b) => p[b] - p[a] || a - b);
      let cum = 0;
      let k = 0;
      while (k < sorted.length) {
        cum += p[sorted[k]] / sum;
        if (k > 0 && cum > o.nucleusP) break;
        k++;
      }
      let pick = -1;
      let score = -Infinity;
      for (const v of sorted.slice(0, k)) {
        const z = l[v] / o.temperature + gumbel(o.seed, o.step, o.position, v);
        if (z > score || (z === score && v < pick)) [pick, score] = [v, z];
      }
      return pick;
    };
    fc.assert(
      fc.property(
        // Logits from a few values, so equal probabilities straddle the nucleus edge often.
        fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 2, maxLength: 40 }),
        fc.nat(),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.constantFrom(0.5, 1, 2),
        fc.nat({ max: 1000 }),
        (l, mask, nucleusP, temperature, seed) => {
          const o = { seed, step: 3, position: 7, temperature, nucleusP, maskId: mask % l.length };
          expect(drawToken(l, 0, l.length, o)).toBe(plain(l, o));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('block-diffusion sampler: cached GPU run = recompute-everything reference', () => {
  const model = blockModel(4);
  let m: LoadedModel;
  let ref: BlockForward;
  beforeAll(async () => {
    // maxT 8 < the first forward of a 10-token prompt ([0, 12)): it is split at a block boundary.
    m = await gpuModel(model, { maxT: 8, capacity: 32 });
    ref = await fromScratch(model, m.weights);
  });

  const cases: [string, Partial<BlockDiffusionRun>, number[]][] = [
    ['first hitting, temperature 0', {}, [5, 17, 200, 3, 42]],
    ['first hitting, temperature 0.9, nucleus 0.9', { temperature: 0.9, nucleusP: 0.9 }, [5, 17]],
    ['ddpm over 3 steps, temperature 1', { sampler: 'ddpm', steps: 3, temperature: 1 }, [9]],
    ['ddpm in one step, block 8', { sampler: 'ddpm', steps: 1, blockLength: 8 }, [5, 17, 200]],
    [
      'first hitting, a 10-token prompt (first forward split)',
      { temperature: 1, genLength: 7 },
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    ],
  ];
  for (const [name, over, prompt] of cases) {
    it(name, async () => {
      const run = settings(over);
      const cpu: BlockStepCommit[] = [];
      const gpu: BlockStepCommit[] = [];
      const want = await blockDiffusionSample(ref, prompt, model.vocab, run, (c) => {
        cpu.push(c);
      });
      const got = await blockDiffusionGenerateGpu(m.gm.newSequence(), prompt, run, (c) => {
        gpu.push(c);
      });
      expect(gpu).toEqual(cpu);
      expect([...got]).toEqual([...want]);
      // Drawn on the device (codegen/kernels/block-draw.ts): the same steps and tokens, and no
      // logits come back.
      const drawn: BlockStepCommit[] = [];
      const onDevice = await blockDiffusionGenerateGpu(
        m.gm.newSequence(),
        prompt,
        run,
        (c, _canvas, logits) => {
          drawn.push(c);
          expect(logits).toBeNull();
        },
        'gpu',
      );
      expect(drawn).toEqual(cpu);
      expect([...onDevice]).toEqual([...want]);
      expect([...got.slice(0, prompt.length)]).toEqual(prompt);
      expect(got.includes(MASK)).toBe(false);
      if (run.sampler === 'first_hitting') {
        // One token a step, every step a forward.
        expect(gpu.every((c) => c.positions.length === 1 && c.forward)).toBe(true);
        expect(gpu.length).toBe(run.genLength);
      }
      // Blocks are filled in order: a step never commits past its block.
      for (const c of gpu)
        for (const p of c.positions) {
          expect(p).toBeGreaterThanOrEqual(c.span.from);
          expect(p).toBeLessThan(c.span.to);
        }
    });
  }

  it("writes each committed block's final K/V once, in the next block's first forward", async () => {
    const seq = m.gm.newSequence();
    const writes: { from: number; ids: number[] }[] = [];
    const inner = seq.forwardOnDevice.bind(seq);
    seq.forwardOnDevice = (ids, then, opts) => {
      writes.push({ from: seq.pos, ids: Array.from(ids) });
      return inner(ids, then, opts);
    };
    const prompt = [5, 17, 200, 3, 42];
    const out = await blockDiffusionGenerateGpu(seq, prompt, settings({ genLength: 10 }));
    // Blocks [4, 8), [8, 12), [12, 15): 3 + 4 + 3 steps, one forward each.
    expect(writes.length).toBe(10);
    const final = (from: number, to: number) =>
      writes.filter((w) =>
        Array.from({ length: to - from }, (_, k) => from + k).every(
          (p) => p >= w.from && p < w.from + w.ids.length && w.ids[p - w.from] === out[p],
        ),
      ).length;
    // The prompt's whole block [0, 4) once (the first forward), the blocks after it once each,
    // in the next block's first forward; the last block's final K/V are never needed.
    expect(final(0, 4)).toBe(1);
    expect(final(4, 8)).toBe(1);
    expect(final(8, 12)).toBe(1);
    expect(final(12, 15)).toBe(0);
    expect(writes.map((w) => [w.from, w.ids.length])).toEqual([
      [0, 8],
      [4, 4],
      [4, 4],
      [4, 8],
      [8, 4],
      [8, 4],
      [8, 4],
      [8, 7],
      [12, 3],
      [12, 3],
    ]);
  });

  it('the first step of a block sees the committed blocks: a different prompt changes it', async () => {
    const run = settings({ genLength: 4 });
    const a = await blockDiffusionGenerateGpu(m.gm.newSequence(), [5, 17, 200, 3], run);
    const b = await blockDiffusionGenerateGpu(m.gm.newSequence(), [6, 17, 200, 3], run);
    expect([...a.slice(4)]).not.toEqual([...b.slice(4)]);
  });
});

describe('block length 1', () => {
  it('is greedy left-to-right decoding: position p predicted from its own mask row, seeing 0..p', async () => {
    // Block-causal with block 1 is the causal mask; at temperature 0 the sampler commits, for
    // each p in turn, argmax (mask excluded) of the logits of row p of a causal forward over
    // the committed prefix followed by one mask. No shift: row p predicts position p itself.
    const model = blockModel(1);
    const m = await gpuModel(model, { maxT: 8, capacity: 32 });
    const causal = tinyLlama({}, 2);
    causal.layers = causal.layers.map((l) => ({ ...l, mixer: attention({ causal: true }) }));
    const g = compileModel(causal, { caps: BASELINE_CAPS, maxT: 32, capacity: 32 });
    const pre = await Interpreter.create(g.graphs.prefill, m.weights);
    const prompt = [5, 17, 200];
    const canvas = [...prompt];
    for (let p = prompt.length; p < prompt.length + 6; p++) {
      const ids = Uint32Array.from([...canvas, MASK]);
      const logits = pre.step(ids, 0, ids.length, pre.newState()).logits;
      const row = logits.subarray(p * model.vocab, (p + 1) * model.vocab);
      let best = -1;
      for (let v = 0; v < model.vocab; v++)
        if (v !== MASK && (best < 0 || row[v] > row[best])) best = v;
      canvas.push(best);
    }
    const run = settings({ genLength: 6, blockLength: 1, steps: 1 });
    const got = await blockDiffusionGenerateGpu(m.gm.newSequence(), prompt, run);
    expect([...got]).toEqual(canvas);
  });
});

describe('block-diffusion settings', () => {
  const msg = (o: Partial<BlockDiffusionRun>, B: number | null = 4) =>
    blockScheduleIssues(settings(o), B).map((i) => i.message((f) => `--${f}`));
  it('names the setting and the allowed range', () => {
    expect(msg({})).toEqual([]);
    expect(msg({ steps: 0 })[0]).toMatch(/--steps must be an integer of at least 1, got 0/);
    expect(msg({ genLength: 2.5 })[0]).toMatch(/--genLength must be an integer/);
    expect(msg({ blockLength: 6 })[0]).toMatch(
      /--blockLength \(6\) must be a multiple of the model's attention block 4 .*allowed: 4, 8/,
    );
    expect(msg({ steps: 3 })[0]).toMatch(
      /--steps \(3\) is below --blockLength \(4\): the first-hitting sampler .*allowed: at least 4/,
    );
    expect(msg({ steps: 1, sampler: 'ddpm' })).toEqual([]);
    expect(msg({ nucleusP: 0 })[0]).toMatch(/--nucleusP must lie in \(0, 1\]/);
    expect(msg({ temperature: -1 })[0]).toMatch(/--temperature must be a number of at least 0/);
  });

  it('the GPU run refuses a block length that is not a multiple of the attention block', async () => {
    const m = await gpuModel(blockModel(4), { maxT: 8, capacity: 32 });
    await expect(
      blockDiffusionGenerateGpu(m.gm.newSequence(), [1], settings({ blockLength: 2, steps: 2 })),
    ).rejects.toThrow(/block length 2 must be a multiple of the model's attention block 4/);
    await expect(
      blockDiffusionGenerateGpu(m.gm.newSequence(), [1], settings({ genLength: 40 })),
    ).rejects.toThrow(/\(41\) does not fit in the KV cache of 32 rows/);
  });
});
