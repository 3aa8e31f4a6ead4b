/**
 * The LLaDA sampler: its schedule against the reference's get_num_transfer_tokens, and the GPU
 * run (bidirectional forwards on WebGPU) against the CPU reference (the interpreter's forwards),
 * step by step, for both remasking modes at temperature 0 and above.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  diffusionGenerate,
  noiseBits,
  transferCounts,
  type DiffusionRun,
  type StepCommit,
} from '../../src/ops/diffusion.ts';
import { diffusionGenerateGpu } from '../../runtime/diffusion.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { gpuModel, type LoadedModel } from '../helpers/compare.ts';
import { tinyBidirectional } from '../helpers/models.ts';
import { maxRelError } from '../helpers/numeric.ts';

const MASK = 259;

describe('schedule and noise', () => {
  it('splits a block evenly, the first steps taking the remainder', () => {
    expect(transferCounts(10, 4)).toEqual([3, 3, 2, 2]);
    expect(transferCounts(3, 5)).toEqual([1, 1, 1, 0, 0]);
    expect(transferCounts(8, 8)).toEqual(Array(8).fill(1));
  });

  it('draws noise as a pure function of (seed, step, position, id)', () => {
    expect(noiseBits(1, 2, 3, 4)).toBe(noiseBits(1, 2, 3, 4));
    const all = new Set([
      noiseBits(1, 2, 3, 4),
      noiseBits(2, 2, 3, 4),
      noiseBits(1, 3, 3, 4),
      noiseBits(1, 2, 4, 4),
      noiseBits(1, 2, 3, 5),
    ]);
    expect(all.size).toBe(5);
  });
});

describe('LLaDA sampler on the GPU', () => {
  const model = tinyBidirectional(2);
  let m: LoadedModel;
  let cpuForward: (canvas: Uint32Array) => Promise<Float32Array>;
  const prompt = [5, 17, 200, 3, 42];
  beforeAll(async () => {
    m = await gpuModel(model, { maxT: 16, capacity: 16 });
    const prefill = await Interpreter.create(m.compiled.graphs.prefill, m.weights);
    cpuForward = async (canvas) =>
      prefill.step(canvas, 0, canvas.length, prefill.newState()).logits;
  });

  it('runs bidirectional attention: the last position changes the first row', async () => {
    const seq = m.gm.newSequence();
    const a = Uint32Array.from([...prompt, MASK, MASK]);
    const b = Uint32Array.from([...prompt, MASK, 7]);
    const la = (await seq.forward(a)).logits.slice(0, model.vocab);
    seq.reset();
    const lb = (await seq.forward(b)).logits.slice(0, model.vocab);
    expect(maxRelError(la, lb)).toBeGreaterThan(1e-4);
    expect(maxRelError(la, (await cpuForward(a)).slice(0, model.vocab))).toBeLessThan(1e-4);
  });

  const settings: [DiffusionRun['remasking'], number][] = [
    ['low_confidence', 0],
    ['low_confidence', 0.8],
    ['random', 0],
    ['random', 1],
  ];
  for (const [remasking, temperature] of settings) {
    it(`commits the reference's tokens at every step (${remasking}, temperature ${temperature})`, async () => {
      const run: DiffusionRun = {
        genLength: 8,
        blockLength: 4,
        steps: 6,
        remasking,
        temperature,
        cfgScale: 0,
        maskId: MASK,
        seed: 11,
      };
      const cpu: StepCommit[] = [];
      const gpu: StepCommit[] = [];
      const cpuOut = await diffusionGenerate(cpuForward, prompt, model.vocab, run, (c) => {
        cpu.push(c);
      });
      const seq = m.gm.newSequence();
      const gpuOut = await diffusionGenerateGpu(seq, prompt, run, (c) => {
        gpu.push(c);
      });
      expect(gpu).toEqual(cpu);
      expect([...gpuOut]).toEqual([...cpuOut]);
      // 3 steps per block over 4 masks: 2, 1, 1 commits; the prompt is kept, no mask is left.
      expect(gpu.map((c) => c.positions.length)).toEqual([2, 1, 1, 2, 1, 1]);
      expect([...gpuOut.slice(0, prompt.length)]).toEqual(prompt);
      expect(gpuOut.includes(MASK)).toBe(false);
      // Block 0 fills only its own positions before block 1 starts.
      for (const c of gpu.slice(0, 3))
        for (const p of c.positions) expect(p).toBeLessThan(prompt.length + 4);
    });
  }

  it('refuses a canvas longer than one prefill chunk', async () => {
    const run: DiffusionRun = {
      genLength: 16,
      blockLength: 16,
      steps: 16,
      remasking: 'low_confidence',
      temperature: 0,
      cfgScale: 0,
      maskId: MASK,
      seed: 0,
    };
    await expect(diffusionGenerateGpu(m.gm.newSequence(), prompt, run)).rejects.toThrow(
      /canvas of 5 prompt \+ 16 generated tokens \(21\) does not fit/,
    );
  });
});
