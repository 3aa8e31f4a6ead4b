/**
 * The runtime's profiling hooks (runtime/dispatch-profile.ts profilePhase drives them with GPU
 * timestamps): with a per-dispatch profiler every dispatch of the step gets a pass of its own,
 * each run is read once, and the result is the median of the runs. A fake profiler stands in
 * for the timestamps, so the figures are known; the step itself still runs on WebGPU.
 * (test/explore/measure.test.ts runs profilePhase on real timestamps.)
 */
import { describe, expect, it } from 'vitest';
import type { PassProfiler } from '../../runtime/model.ts';
import { dispatchRole } from '../../runtime/dispatch-profile.ts';
import { gpuModel } from '../helpers/compare.ts';
import { randInts } from '../helpers/numeric.ts';
import { tinyLlama } from '../helpers/models.ts';

/** Counts the passes it is asked to time; read() returns the given figures in turn. */
function fakeProfiler(reads: number[]) {
  const passes: (number | undefined)[] = [];
  let n = 0;
  const p: PassProfiler = {
    perDispatch: true,
    passDescriptor: (i?: number) => (passes.push(i), {}),
    resolve: () => {},
    read: async () => reads[n++ % reads.length],
  };
  return { p, passes, reads: () => n };
}

describe('profiling a step', () => {
  it('names a dispatch by its role in the layer, without the layer or the precision', () => {
    expect(dispatchRole('l12.mlp.down+residual [q4]')).toBe('mlp.down+residual');
    expect(dispatchRole('l3.mamba dt+scan (fused)')).toBe('mamba dt+scan (fused)');
    expect(dispatchRole('lm_head (norm fused)')).toBe('lm_head (norm fused)');
  });

  it('profilePrefill: each dispatch in its own pass, from an empty cache every run, the median', async () => {
    const model = tinyLlama();
    const { gm } = await gpuModel(model, { maxT: 16 });
    const dispatches = gm.manifest.phases.prefill.dispatches.length;
    const seq = gm.newSequence();
    const ids = Array.from(randInts(13, model.vocab, 5));
    const fake = fakeProfiler([3, 1, 2, 9, 4]);
    expect(await seq.profilePrefill(ids, 5, fake.p)).toBe(3);
    expect(fake.reads()).toBe(5);
    expect(fake.passes).toEqual(
      Array.from({ length: 5 }, () => Array.from({ length: dispatches }, (_, i) => i)).flat(),
    );
    // Reset before each run: the sequence holds one prompt, not five.
    expect(seq.pos).toBe(13);
    // The profiled prefill computed the same token as a plain one.
    const plain = await gm
      .newSequence()
      .next(ids, { seed: 0, draw: 0, temperature: 0, topK: 0, topP: 1 });
    seq.reset();
    expect(
      (await seq.next(ids, { seed: 0, draw: 0, temperature: 0, topK: 0, topP: 1 })).token,
    ).toBe(plain.token);
  });

  it('profilePrefill refuses what is not one prefill chunk, naming the limit', async () => {
    const model = tinyLlama();
    const { gm } = await gpuModel(model, { maxT: 8 });
    const seq = gm.newSequence();
    const fake = fakeProfiler([1]);
    await expect(seq.profilePrefill([1], 1, fake.p)).rejects.toThrow(
      /one prefill chunk of 2\.\.8 tokens, got 1/,
    );
    await expect(seq.profilePrefill(Array(9).fill(1), 1, fake.p)).rejects.toThrow(/got 9/);
  });

  it('profileDecode: one pass per dispatch per step, the median of the steps', async () => {
    const model = tinyLlama();
    const { gm } = await gpuModel(model);
    const dispatches = gm.manifest.phases.decode.dispatches.length;
    const seq = gm.newSequence();
    const { token } = await seq.next([1, 2, 3], {
      seed: 0,
      draw: 0,
      temperature: 0,
      topK: 0,
      topP: 1,
    });
    const fake = fakeProfiler([5, 7, 6]);
    expect(await seq.profileDecode(token, 3, fake.p)).toBe(6);
    expect(fake.passes.length).toBe(3 * dispatches);
    expect(seq.pos).toBe(6);
  });
});
