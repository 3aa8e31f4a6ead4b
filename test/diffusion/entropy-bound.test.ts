/**
 * DiffusionGemma's entropy-bound block sampler (src/ops/diffusion-entropy.ts) against the
 * reference generate() of transformers 5.18, without the model: the golden fixture
 * (test/fixtures/hf/diffusion_gemma, tools/golden/make_golden.py) recorded every call generate
 * made (the encoder's ids, each decoder call's canvas and raw logits, whether it was
 * self-conditioned). A replay model checks each call the sampler makes against the recording and
 * answers with the recorded logits, so the sampler's control flow (the temperature schedule,
 * acceptance, the stable-and-confident stop, the block loop, what gets encoded and committed)
 * must be the reference's exactly for the tokens to match.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import {
  acceptByEntropy,
  entropyBoundGenerate,
  entropyBoundIssues,
  rowEntropy,
  selfConditionProbs,
  type BlockDiffusionModel,
  type EntropyBoundRun,
} from '../../src/ops/diffusion-entropy.ts';
import { goldenRun } from '../helpers/diffusion-gemma-ref.ts';

const DIR = join('test', 'fixtures', 'hf', 'diffusion_gemma');

interface Recording {
  meta: Record<string, string>;
  prompt: number[];
  canvasLogits: Float32Array;
  acceptMask: number[];
  tokens: number[];
  starts: Int32Array;
  blockSteps: number[];
  stepCanvases: Int32Array;
  stepLogits: Float32Array;
  stepSc: number[];
}

async function recording(): Promise<Recording> {
  const g = await openSafetensors(join(DIR, 'golden.safetensors'));
  const i32 = (n: string) => g.readTensorI32(n);
  const rec: Recording = {
    meta: JSON.parse(g.metadata.golden as string) as Record<string, string>,
    prompt: Array.from(await i32('prompt_ids')),
    canvasLogits: await g.readTensorF32('canvas_logits'),
    acceptMask: Array.from(await i32('accept_mask')),
    tokens: Array.from(await i32('decode_tokens')),
    starts: await i32('block_starts'),
    blockSteps: Array.from(await i32('block_steps')),
    stepCanvases: await i32('step_canvases'),
    stepLogits: await g.readTensorF32('step_logits'),
    stepSc: Array.from(await i32('step_self_conditioned')),
  };
  await g.close();
  return rec;
}

const VOCAB = 64;
const C = 8;

/** A model that replays the recording, checking every call against it. */
function replay(rec: Recording) {
  const encoded: number[][] = [];
  let step = 0;
  const model: BlockDiffusionModel = {
    vocab: VOCAB,
    encode: async (ids) => {
      encoded.push(Array.from(ids));
    },
    denoise: async (canvas, sc) => {
      expect(step, 'more decoder calls than the reference made').toBeLessThan(rec.stepSc.length);
      expect(Array.from(canvas), `canvas of decoder call ${step}`).toEqual(
        Array.from(rec.stepCanvases.subarray(step * C, (step + 1) * C)),
      );
      expect(sc !== null ? 1 : 0, `self-conditioning at decoder call ${step}`).toBe(
        rec.stepSc[step],
      );
      const logits = rec.stepLogits.slice(step * C * VOCAB, (step + 1) * C * VOCAB);
      step++;
      return logits;
    },
  };
  return { model, encoded, calls: () => step };
}

describe('entropy-bound block sampler (DiffusionGemma) against the reference generate()', () => {
  it('accepts the tokens the reference accepts (one step at temperature 0.25)', async () => {
    const rec = await recording();
    const acc = JSON.parse(rec.meta.accept) as { temperature: number; entropy_bound: number };
    const entropy = Array.from({ length: C }, (_, p) =>
      rowEntropy(rec.canvasLogits, p, VOCAB, acc.temperature),
    );
    const accepted = acceptByEntropy(entropy, acc.entropy_bound).map((a) => (a ? 1 : 0));
    expect(accepted).toEqual(rec.acceptMask);
    // Neither all nor none: the rule is exercised.
    expect(accepted).toContain(0);
    expect(accepted).toContain(1);
  });

  for (const tMax of ['golden', 0] as const) {
    it(`replays generate's calls and tokens (t_max ${tMax === 'golden' ? '1e-6, as the reference' : '0, the greedy limit'})`, async () => {
      const rec = await recording();
      const run = goldenRun(rec.meta, C);
      if (tMax === 0) run.tMax = 0;
      const r = replay(rec);
      const perBlock: number[] = [];
      const tokens = await entropyBoundGenerate(r.model, rec.prompt, run, {
        starts: (b) => Uint32Array.from(rec.starts.subarray(b * C, (b + 1) * C)),
        onStep: (s) => {
          perBlock[s.block] = (perBlock[s.block] ?? 0) + 1;
          expect(s.accepted.every((a) => a)).toBe(true);
        },
      });
      expect(Array.from(tokens)).toEqual(rec.tokens);
      expect(r.calls()).toBe(rec.stepSc.length);
      expect(perBlock).toEqual(rec.blockSteps);
      expect(r.encoded).toEqual([rec.prompt, rec.tokens.slice(0, C)]);
    });
  }

  it('stops after a canvas holding an eos id and pads after it', async () => {
    const rec = await recording();
    const eos = rec.tokens[2];
    const r = replay(rec);
    const tokens = await entropyBoundGenerate(
      r.model,
      rec.prompt,
      { ...goldenRun(rec.meta, C), eos: [eos], pad: 0 },
      { starts: (b) => Uint32Array.from(rec.starts.subarray(b * C, (b + 1) * C)) },
    );
    const first = rec.tokens.indexOf(eos);
    expect(Array.from(tokens)).toEqual([
      ...rec.tokens.slice(0, first + 1),
      ...new Array<number>(C - first - 1).fill(0),
    ]);
    expect(r.encoded).toHaveLength(1);
  });

  it('self-conditions on softmax(logits / t), one-hot at t = 0', () => {
    const logits = Float32Array.from([0, 1, 3, 3, 2, 0]);
    const hot = selfConditionProbs({ logits, temperature: 0 }, 3);
    expect(Array.from(hot)).toEqual([0, 0, 1, 1, 0, 0]);
    const soft = selfConditionProbs({ logits, temperature: 2 }, 3);
    const z = 1 + Math.exp(0.5) + Math.exp(1.5);
    expect(soft[2]).toBeCloseTo(Math.exp(1.5) / z, 6);
  });

  it('names the setting a bad run breaks', () => {
    const base: EntropyBoundRun = {
      canvasLength: 8,
      genLength: 16,
      maxSteps: 4,
      tMin: 0.4,
      tMax: 0.8,
      entropyBound: 0.1,
      stabilityThreshold: 1,
      confidenceThreshold: 0.005,
      eos: [],
      pad: null,
      seed: 1,
    };
    const first = (r: Partial<EntropyBoundRun>) =>
      entropyBoundIssues({ ...base, ...r }, 64).map((i) => i.message((f) => `--${f}`))[0];
    expect(entropyBoundIssues(base, 64)).toEqual([]);
    expect(first({ genLength: 12 })).toMatch(
      /--genLength \(12\) must be a multiple of --canvasLength/,
    );
    expect(first({ tMax: 0.2 })).toMatch(/--tMax must be a number of at least --tMin \(0.4\)/);
    expect(first({ entropyBound: 0 })).toMatch(/--entropyBound must be a number above 0/);
    expect(first({ maxSteps: 0 })).toMatch(/--maxSteps must be an integer of at least 1/);
    expect(first({ eos: [64] })).toMatch(/--eos: 64 is not a token of the vocab \(64\)/);
  });

  it('samples at temperature > 0 deterministically from the seed', async () => {
    const rec = await recording();
    const model: BlockDiffusionModel = {
      vocab: VOCAB,
      encode: async () => {},
      denoise: async () => rec.canvasLogits.slice(),
    };
    const run = { ...goldenRun(rec.meta, C), tMin: 0.4, tMax: 0.8, maxSteps: 3, seed: 7 };
    const a = await entropyBoundGenerate(model, rec.prompt, run);
    const b = await entropyBoundGenerate(model, rec.prompt, run);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(a).toHaveLength(16);
  });
});
