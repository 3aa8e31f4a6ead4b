/**
 * DiffusionGemma's self-conditioning on the GPU (runtime/entropy-diffusion.ts, the diffusion_gemma
 * fixture compiled for SwiftShader):
 *  - a generation at temperature > 0 (0.4 … 0.8, sampled tokens, renoising) writes no byte of
 *    the self-conditioning state from the host (every writeBuffer counted by its buffer's label),
 *    and gives the same tokens, with every step's logits within 1e-5 of the largest logit of
 *    the row, as the same model fed host-computed probabilities (the sampler handed copies of
 *    the logits, which the model cannot know as its own): f32 softmax on the GPU against f64 on
 *    the host, through one matmul and an MLP, differs at ~1e-7;
 *  - at temperature 0 (the golden's setting) no byte either;
 *  - an encoding step records none of the self-conditioning branch's launches.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { importHfFolder, type HfFolder } from '../../src/import/hf-folder.ts';
import { compileModel } from '../../codegen/compile.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { resolveGridDim } from '../../codegen/kernel-ir.ts';
import { GpuModel } from '../../runtime/model.ts';
import { entropyBoundOnSequence } from '../../runtime/entropy-diffusion.ts';
import {
  entropyBoundGenerate,
  SELF_CONDITION_PROBS,
  type BlockDiffusionModel,
  type EntropyBoundRun,
} from '../../src/ops/diffusion-entropy.ts';
import { rowErrors } from '../helpers/golden.ts';
import { testGpu } from '../helpers/gpu.ts';

const DIR = join('test', 'fixtures', 'hf', 'diffusion_gemma');
const PROMPT = [5, 17, 3, 40, 22];
const C = 8;

let hf: HfFolder;
let gm: GpuModel;
beforeAll(async () => {
  hf = await importHfFolder(DIR);
  const gpu = await testGpu();
  const compiled = compileModel(hf.model, { caps: gpu.caps, maxT: C, capacity: 32 });
  gm = await GpuModel.load(
    gpu,
    memorySource(compiled, (n) => hf.readTensorF32(n)),
  );
});
afterAll(async () => {
  gm?.destroy();
  await hf?.close();
});

const RUN: EntropyBoundRun = {
  canvasLength: C,
  genLength: 2 * C,
  maxSteps: 4,
  tMin: 0.4,
  tMax: 0.8,
  entropyBound: 0.1,
  // Never stable: every canvas takes all its steps, each but the first self-conditioned.
  stabilityThreshold: 5,
  confidenceThreshold: 0.005,
  eos: [],
  pad: null,
  seed: 11,
};

/** Bytes the host writes into the self-conditioning state while `body` runs. */
async function uploadsIntoState<T>(body: () => Promise<T>): Promise<{ out: T; bytes: number }> {
  const queue = gm.gpu.device.queue;
  const spy = vi.spyOn(queue, 'writeBuffer');
  try {
    const out = await body();
    let bytes = 0;
    for (const args of spy.mock.calls) {
      const [buffer, , data, offset, size] = args as unknown as [
        GPUBuffer,
        number,
        ArrayBuffer,
        number | undefined,
        number | undefined,
      ];
      if (buffer.label === SELF_CONDITION_PROBS) bytes += size ?? data.byteLength - (offset ?? 0);
    }
    return { out, bytes };
  } finally {
    spy.mockRestore();
  }
}

/** The sampler over `model`, every step's logits kept (copied when `copies`, as a host would). */
async function generate(model: BlockDiffusionModel, run: EntropyBoundRun, copies: boolean) {
  const steps: Float32Array[] = [];
  const tokens = await entropyBoundGenerate(
    {
      vocab: model.vocab,
      encode: (ids) => model.encode(ids),
      async denoise(canvas, sc, t) {
        const l = await model.denoise(canvas, sc, t);
        steps.push(l);
        return copies ? l.slice() : l;
      },
    },
    PROMPT,
    run,
  );
  return { tokens: Array.from(tokens), steps };
}

describe('entropy_bound self-conditioning on the GPU', () => {
  it('uploads no distribution at temperature > 0 and matches host-computed probabilities', async () => {
    const gpu = await uploadsIntoState(() =>
      generate(entropyBoundOnSequence(gm.newSequence()), RUN, false),
    );
    const host = await uploadsIntoState(() =>
      generate(entropyBoundOnSequence(gm.newSequence()), RUN, true),
    );
    const vocab = gm.vocab;
    const selfConditioned = 2 * (RUN.maxSteps - 1);
    expect(gpu.bytes).toBe(0);
    // The check counts what it should: the host path uploads each self-conditioned step's probs.
    expect(host.bytes).toBe(selfConditioned * C * vocab * 4);
    expect(gpu.out.tokens).toEqual(host.out.tokens);
    expect(gpu.out.steps.length).toBe(2 * RUN.maxSteps);
    let worst = 0;
    gpu.out.steps.forEach((l, i) => {
      worst = Math.max(worst, rowErrors(l, host.out.steps[i], vocab).rel);
    });
    expect(worst).toBeLessThanOrEqual(1e-5);
    // Self-conditioning changes the logits (the comparison is not of two unconditioned runs).
    const plain = await entropyBoundOnSequence(gm.newSequence());
    await plain.encode(Uint32Array.from(PROMPT));
    const canvas = Uint32Array.from({ length: C }, (_, i) => (i * 7) % vocab);
    const first = await plain.denoise(canvas, null, 0.6);
    const again = await plain.denoise(canvas, { logits: first, temperature: 0.6 }, 0.6);
    expect(rowErrors(again, first, vocab).rel).toBeGreaterThan(1e-3);
  });

  it('uploads none at temperature 0 either', async () => {
    const { out, bytes } = await uploadsIntoState(() =>
      generate(entropyBoundOnSequence(gm.newSequence()), { ...RUN, tMin: 0, tMax: 0 }, false),
    );
    expect(bytes).toBe(0);
    expect(out.tokens.length).toBe(2 * C);
  });

  it('records none of the self-conditioning launches in an encoding step', () => {
    const at = (keys: number) =>
      gm.manifest.phases.prefill.dispatches.filter((d) =>
        d.grid.every((g) => resolveGridDim(g, { T: C, pos: 0, L: 1, keys }) > 0),
      );
    const skipped = at(C).filter((d) => !at(0).includes(d));
    expect(skipped.map((d) => d.label)).toEqual([
      'self_condition probs',
      'self_condition soft embedding',
      expect.stringMatching(/^self_condition .*glu/),
      'self_condition.down',
    ]);
  });
});
