/**
 * Fast-dLLM on the LLaDA sampler: the threshold's commit rule, the prefix and dual caches (a
 * span of the canvas recomputed against cached K/V), each run on the GPU against the CPU
 * interpreter doing the same spans, step by step; equality with the exact sampler where theory
 * says so (threshold 1; one step per block; a one-layer model, whose K/V depend on each row's
 * own token only). Agreement rates with the exact sampler elsewhere are a property of the model,
 * measured by bench/diffusion-agreement.ts, not asserted here.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  commitCount,
  diffusionGenerate,
  fastIssues,
  guidedForward,
  type CanvasForward,
  type DiffusionCache,
  type DiffusionRun,
  type StepCommit,
} from '../../src/ops/diffusion.ts';
import { diffusionGenerateGpu, dualCacheIssue } from '../../runtime/diffusion.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import type { Sequence } from '../../runtime/model.ts';
import { gpuModel, type LoadedModel } from '../helpers/compare.ts';
import { tinyBidirectional } from '../helpers/models.ts';
import { maxRelError } from '../helpers/numeric.ts';

const MASK = 259;
const prompt = [5, 17, 200, 3, 42];

function settings(o: Partial<DiffusionRun>): DiffusionRun {
  return {
    genLength: 8,
    blockLength: 4,
    steps: 8,
    remasking: 'low_confidence',
    temperature: 0,
    cfgScale: 0,
    maskId: MASK,
    seed: 11,
    ...o,
  };
}

/** The interpreter's forward of a canvas span: K/V rows outside it stay from the last full step. */
async function cpuSpans(m: LoadedModel): Promise<CanvasForward> {
  const pre = await Interpreter.create(m.compiled.graphs.prefill, m.weights);
  const state = pre.newState();
  return async (canvas, span) => {
    const ids = canvas.subarray(span.from, span.to);
    return pre.step(ids, span.from, ids.length, state, canvas.length).logits;
  };
}

/** Both samplers' commits; the GPU's must equal the CPU's, step by step. */
async function both(m: LoadedModel, run: DiffusionRun): Promise<StepCommit[]> {
  const cpu: StepCommit[] = [];
  const gpu: StepCommit[] = [];
  const forward = await cpuSpans(m);
  const cpuOut = await diffusionGenerate(forward, prompt, m.gm.vocab, run, (c) => {
    cpu.push(c);
  });
  const gpuOut = await diffusionGenerateGpu(m.gm.newSequence(), prompt, run, (c) => {
    gpu.push(c);
  });
  expect(gpu).toEqual(cpu);
  expect([...gpuOut]).toEqual([...cpuOut]);
  return gpu;
}

function tokensOf(commits: StepCommit[]): number[] {
  const out: number[] = [];
  for (const c of commits) c.positions.forEach((p, i) => (out[p - prompt.length] = c.tokens[i]));
  return out;
}

describe('threshold and cache settings', () => {
  it('commit the schedule, raised to every candidate above the threshold, at least one', () => {
    expect(commitCount([0.9, 0.8, 0.2], 1, null)).toBe(1);
    expect(commitCount([1, 1, 0.2], 1, 1)).toBe(1);
    expect(commitCount([0.9, 0.8, 0.2], 1, 0.5)).toBe(2);
    expect(commitCount([0.9, 0.8, 0.2], 3, 0.5)).toBe(3);
    expect(commitCount([0.4, 0.3], 0, 0.5)).toBe(1);
    expect(commitCount([0.9, 0.8], 5, 0.1)).toBe(2);
    expect(commitCount([], 1, 0.5)).toBe(0);
  });

  it('guidance combines the forward with the prompt masked, as un + (s + 1)(cond - un)', async () => {
    const seen: number[][] = [];
    // Logits of one vocab entry per row: the row's token.
    const forward: CanvasForward = async (canvas) => {
      seen.push([...canvas]);
      return Float32Array.from(canvas);
    };
    const g = guidedForward(forward, 2, 9, 0.5);
    const out = await g(Uint32Array.of(4, 6, 9, 1), { from: 0, to: 4 });
    expect(seen).toEqual([
      [4, 6, 9, 1],
      [9, 9, 9, 1],
    ]);
    expect([...out]).toEqual([9 + 1.5 * (4 - 9), 9 + 1.5 * (6 - 9), 9, 1]);
    await expect(g(Uint32Array.of(4, 6, 9, 1), { from: 2, to: 4 })).rejects.toThrow(
      /full forwards only/,
    );
  });

  it('refuse a threshold outside (0, 1] and an unknown cache, naming the field', () => {
    const msg = (r: Partial<DiffusionRun>) => fastIssues(r).map((i) => i.message((f) => `--${f}`));
    expect(msg({ threshold: 0 })).toEqual([
      '--threshold must lie in (0, 1] (a confidence; 1 = the exact schedule), got 0',
    ]);
    expect(msg({ threshold: 1.5 })[0]).toMatch(/--threshold must lie in \(0, 1\]/);
    expect(msg({ threshold: NaN })[0]).toMatch(/got NaN/);
    expect(msg({ cache: 'both' as DiffusionCache })).toEqual([
      '--cache must be one of none, prefix, dual, got both',
    ]);
    expect(msg({ threshold: 1, cache: 'dual' })).toEqual([]);
  });
});

describe('Fast-dLLM sampler on the GPU (two layers)', () => {
  let m: LoadedModel;
  let exact: Map<string, number[]>;
  beforeAll(async () => {
    // Untied (see below), and logits scaled up so that confidences spread over (0, 1) as a
    // trained model's do, rather than sitting near 1 / vocab.
    const model = tinyBidirectional(2, {}, { tieEmbeddings: false, logitScale: 12 });
    m = await gpuModel(model, { maxT: 16, capacity: 16 });
    exact = new Map();
  });
  /** The GPU sampler's tokens (the CPU comparison is the other tests' job). */
  const gpuTokens = async (run: DiffusionRun): Promise<number[]> => {
    const commits: StepCommit[] = [];
    await diffusionGenerateGpu(m.gm.newSequence(), prompt, run, (c) => {
      commits.push(c);
    });
    return tokensOf(commits);
  };
  const exactTokens = async (run: DiffusionRun): Promise<number[]> => {
    const base = { ...run, threshold: null, cache: 'none' as const };
    const key = JSON.stringify(base);
    if (!exact.has(key)) exact.set(key, await gpuTokens(base));
    return exact.get(key)!;
  };

  it('a dual-cache span right after a full step gives the full step rows', async () => {
    const seq = m.gm.newSequence();
    const canvas = Uint32Array.from([...prompt, 7, MASK, MASK, 9, MASK, MASK, MASK, 1]);
    const full = (await seq.forward(canvas)).logits;
    const V = m.gm.vocab;
    // A span of one token runs through the decode phase's (split-K) attention.
    seq.rewind(10);
    const one = (await seq.forward(canvas.subarray(10, 11), undefined, { keys: 13 })).logits;
    expect(maxRelError(one, full.subarray(10 * V, 11 * V))).toBeLessThan(1e-5);
    seq.rewind(6);
    const span = (await seq.forward(canvas.subarray(6, 9), undefined, { keys: 13 })).logits;
    expect(maxRelError(span, full.subarray(6 * V, 9 * V))).toBeLessThan(1e-5);
    // Without the keys the rows after the span are unseen: the rows differ.
    seq.rewind(6);
    const blind = (await seq.forward(canvas.subarray(6, 9))).logits;
    expect(maxRelError(blind, full.subarray(6 * V, 9 * V))).toBeGreaterThan(1e-3);
    expect(() => seq.rewind(10)).toThrow(/rewind\(10\): the sequence is at position 9/);
    expect(dualCacheIssue(seq)).toBeNull();
    seq.reset();
    await expect(seq.forward([1, 2], undefined, { keys: 13 })).rejects.toThrow(
      /keys 13.*only cache rows/,
    );
  });

  it('refuses the dual cache on a bundle whose attention kernels predate it', async () => {
    // The same model, seen with kernels that bound bidirectional keys at pos + T.
    const stale = Object.create(m.gm, { kernelCode: { value: () => 'let n = step.pos + T;' } });
    const seq = { model: stale, capacity: 16 } as unknown as Sequence;
    expect(dualCacheIssue(seq)).toMatch(
      /\(attention_\w*_full\w*, .*\) predate the dual cache.*recompile/,
    );
    await expect(diffusionGenerateGpu(seq, prompt, settings({ cache: 'dual' }))).rejects.toThrow(
      /^--cache dual: the bundle's attention kernels/,
    );
  });

  it('classifier-free guidance: the GPU commits what the CPU reference does', async () => {
    const commits = await both(m, settings({ cfgScale: 1.5, temperature: 0.5, seed: 8 }));
    expect(commits.length).toBe(8);
    await expect(
      diffusionGenerateGpu(m.gm.newSequence(), prompt, settings({ cfgScale: 1, cache: 'dual' })),
    ).rejects.toThrow(/cache dual with cfg_scale 1: classifier-free guidance runs full forwards/);
    await expect(
      diffusionGenerateGpu(m.gm.newSequence(), prompt, settings({ cfgScale: 1 }), undefined, 'gpu'),
    ).rejects.toThrow(/--pick gpu with cfg_scale 1/);
  });

  it('threshold 1 is the exact sampler', async () => {
    for (const o of [{}, { temperature: 0.7, remasking: 'random' as const, steps: 4 }]) {
      const run = settings({ ...o, threshold: 1 });
      expect(tokensOf(await both(m, run))).toEqual(await exactTokens(run));
    }
  });

  it('one step per block: the caches are exact (every step is a full forward)', async () => {
    for (const cache of ['prefix', 'dual'] as const) {
      const run = settings({ steps: 2, cache });
      const commits = await both(m, run);
      expect(commits.every((c) => c.span.from === 0)).toBe(true);
      expect(tokensOf(commits)).toEqual(await exactTokens(run));
    }
  });

  it('a threshold commits several tokens a step and skips the steps left', async () => {
    const commits = await both(m, settings({ threshold: 0.5, steps: 8 }));
    expect(commits.length).toBeLessThan(8);
    expect(commits.some((c) => c.positions.length > 1)).toBe(true);
  });

  it('cached steps recompute their span only, as the CPU reference does', async () => {
    const P = prompt.length;
    const prefix = await both(m, settings({ cache: 'prefix', temperature: 0.5, seed: 3 }));
    expect(prefix.map((c) => c.span)).toEqual([
      ...[0, 1, 2, 3].map((i) => (i === 0 ? { from: 0, to: P + 8 } : { from: P, to: P + 8 })),
      ...[0, 1, 2, 3].map((i) => (i === 0 ? { from: 0, to: P + 8 } : { from: P + 4, to: P + 8 })),
    ]);
    const dual = await both(m, settings({ cache: 'dual', threshold: 0.7 }));
    for (const c of dual) if (c.span.from > 0) expect(c.span.to - c.span.from).toBe(4);
  });

  it('the GPU pick commits what the host pick does, with no logits read back', async () => {
    // Temperature 0: same tokens by construction, confidences within f32 error; above 0, a near
    // tie of noisy scores could differ (f32 logs), which this seed does not meet.
    for (const o of [
      { cache: 'dual' as const, threshold: 0.5 },
      { cache: 'prefix' as const, temperature: 0.8, seed: 4 },
      { remasking: 'random' as const, temperature: 1, blockLength: 2 },
    ]) {
      const run = settings(o);
      const host: StepCommit[] = [];
      const gpu: StepCommit[] = [];
      const seq = m.gm.newSequence();
      await diffusionGenerateGpu(seq, prompt, run, (c) => void host.push(c));
      await diffusionGenerateGpu(
        seq,
        prompt,
        run,
        (c, _, logits) => {
          expect(logits).toBeNull();
          gpu.push(c);
        },
        'gpu',
      );
      expect(gpu).toEqual(host);
    }
  });
});

describe('Fast-dLLM sampler on the GPU (one layer: cached K/V are exact)', () => {
  let m: LoadedModel;
  beforeAll(async () => {
    // Untied: with a tied head a one-layer model predicts its input, the mask id itself, which
    // stays a mask, and a cached step (its block only) then sees fewer candidates than a full one.
    m = await gpuModel(tinyBidirectional(1, {}, { tieEmbeddings: false }), {
      maxT: 16,
      capacity: 16,
    });
  });
  for (const cache of ['prefix', 'dual'] as const) {
    it(`${cache} cache gives the exact sampler's tokens`, async () => {
      for (const o of [
        { blockLength: 8 },
        { blockLength: 4, temperature: 0.9, seed: 5 },
        { blockLength: 2, remasking: 'random' as const },
      ]) {
        const run = settings(o);
        const want = tokensOf(await both(m, { ...run, cache: 'none' }));
        expect(want.includes(MASK)).toBe(false);
        expect(tokensOf(await both(m, { ...run, cache }))).toEqual(want);
      }
    });
  }
});
