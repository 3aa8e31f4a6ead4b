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
 *  - an encoding step records none of the self-conditioning branch's launches;
 *  - the device row statistics (denoiseRows, the entropy_rows kernel): a step reads back
 *    C × 28 bytes (ENTROPY_ROW_WORDS a row) and no logits, counted both at the runtime's read
 *    API (GpuModel.readback, every byte it resolves) and at the staging buffers it maps, and
 *    the tokens equal the host path's at t = 0 and t > 0 (no row needed recomputing here;
 *    test/diffusion/entropy-rows-check.test.ts covers those that do); a row's logits can be
 *    read for recomputing until the model's next step, and no later.
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
import { ENTROPY_ROW_WORDS } from '../../src/ops/entropy-rows.ts';
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

/**
 * Bytes read back from the device while `body` runs: what GpuModel.readback resolved (the
 * runtime's read API), call by call, and the sizes of the mappable staging buffers created (every
 * readBuffer makes one, so a read that bypassed readback would show here).
 */
async function readsBack<T>(body: () => Promise<T>) {
  const original = gm.readback.bind(gm);
  const reads: number[] = [];
  const spy = vi.spyOn(gm, 'readback').mockImplementation(async (step, p) => {
    const v: unknown = await original(step, p);
    reads.push(v instanceof ArrayBuffer ? v.byteLength : 0);
    return v as never;
  });
  const device = gm.gpu.device;
  const create = vi.spyOn(device, 'createBuffer');
  try {
    const out = await body();
    const staged = create.mock.calls
      .map(([d]) => d)
      .filter((d) => (d.usage & GPUBufferUsage.MAP_READ) !== 0)
      .map((d) => d.size);
    return { out, reads, staged };
  } finally {
    spy.mockRestore();
    create.mockRestore();
  }
}

/** The sampler over the GPU model itself (its denoiseRows), steps counted. */
async function generateRows(run: EntropyBoundRun, deviceRows: boolean) {
  let steps = 0;
  let recomputed = 0;
  const tokens = await entropyBoundGenerate(entropyBoundOnSequence(gm.newSequence()), PROMPT, run, {
    deviceRows,
    onStep: (s) => {
      steps++;
      recomputed += s.recomputed;
    },
  });
  return { tokens: Array.from(tokens), steps, recomputed };
}

describe('entropy_bound row statistics on the GPU', () => {
  for (const t of [0, 'sampled'] as const) {
    it(`reads ${ENTROPY_ROW_WORDS} words a row per step, not the logits (t ${t === 0 ? '= 0' : '> 0'})`, async () => {
      const run = t === 0 ? { ...RUN, tMin: 0, tMax: 0 } : RUN;
      const dev = await readsBack(() => generateRows(run, true));
      const host = await readsBack(() => generateRows(run, false));
      const vocab = gm.vocab;
      expect(dev.out.tokens).toEqual(host.out.tokens);
      expect(dev.out.steps).toBe(host.out.steps);
      const steps = dev.out.steps;
      // One read a denoising step, of C rows' words, and one row of logits for each row the
      // sampler had to recompute (none here); encoding steps read nothing.
      expect(dev.out.recomputed).toBe(0);
      expect(dev.reads).toEqual(new Array<number>(steps).fill(C * ENTROPY_ROW_WORDS * 4));
      expect(dev.staged).toEqual(dev.reads);
      // The host path reads each step's logits (and the forward's sampled token).
      const logitBytes = host.reads.filter((b) => b === C * vocab * 4);
      expect(logitBytes.length).toBe(steps);
      console.log(
        `entropy_bound rows (t ${t}): ${steps} steps, ${dev.reads.reduce((a, b) => a + b, 0)} bytes read back on the device path, ${host.reads.reduce((a, b) => a + b, 0)} on the host path`,
      );
    });
  }

  it('frees the buffers it made (statistics, Step uniforms) with its sequence', async () => {
    const seq = gm.newSequence();
    // Every buffer the model creates, and whether something destroyed it.
    const device = gm.gpu.device;
    const create = device.createBuffer.bind(device);
    const made: Array<{ label: string; freed: boolean }> = [];
    device.createBuffer = (d: GPUBufferDescriptor) => {
      const b = create(d);
      const rec = { label: d.label ?? '', freed: false };
      made.push(rec);
      const destroy = b.destroy.bind(b);
      b.destroy = () => {
        rec.freed = true;
        destroy();
      };
      return b;
    };
    try {
      entropyBoundOnSequence(seq);
    } finally {
      device.createBuffer = create;
    }
    expect(made.map((m) => m.label)).toContain('entropy_rows.stats');
    seq.destroy();
    expect(made.filter((m) => !m.freed)).toEqual([]);
  });

  it('refuses a self-condition whose logits stayed on another model', async () => {
    const a = entropyBoundOnSequence(gm.newSequence());
    const b = entropyBoundOnSequence(gm.newSequence());
    await a.encode(Uint32Array.from(PROMPT));
    await b.encode(Uint32Array.from(PROMPT));
    const canvas = Uint32Array.from({ length: C }, (_, i) => (i * 5) % gm.vocab);
    const rows = await a.denoiseRows!(canvas, null, 0.5, { seed: 1, draw: 0 }, false);
    expect(rows.logits).toBeNull();
    // Its own model takes it back (no upload); another cannot compute it.
    await a.denoiseRows!(canvas, rows.self, 0.5, { seed: 1, draw: 1 }, false);
    await expect(
      b.denoiseRows!(canvas, rows.self, 0.5, { seed: 1, draw: 1 }, false),
    ).rejects.toThrow(/stayed on the device/);
  });

  it('reads one row of logits for a row to recompute, and only before the next step', async () => {
    const a = entropyBoundOnSequence(gm.newSequence());
    await a.encode(Uint32Array.from(PROMPT));
    const canvas = Uint32Array.from({ length: C }, (_, i) => (i * 3) % gm.vocab);
    const rows = await a.denoiseRows!(canvas, null, 0.7, { seed: 1, draw: 0 }, true);
    const vocab = gm.vocab;
    const row = await rows.check!.rowLogits(5);
    expect(Array.from(row)).toEqual(Array.from(rows.logits!.subarray(5 * vocab, 6 * vocab)));
    await expect(rows.check!.rowLogits(C)).rejects.toThrow(/rows 0\.\.7/);
    await a.denoiseRows!(canvas, rows.self, 0.7, { seed: 1, draw: 1 }, false);
    await expect(rows.check!.rowLogits(5)).rejects.toThrow(/another step/);
  });

  it('reads the logits back when asked, equal to denoise()', async () => {
    const a = entropyBoundOnSequence(gm.newSequence());
    await a.encode(Uint32Array.from(PROMPT));
    const canvas = Uint32Array.from({ length: C }, (_, i) => (i * 3) % gm.vocab);
    const rows = await a.denoiseRows!(canvas, null, 0, { seed: 1, draw: 0 }, true);
    const plain = await a.denoise(canvas, null, 0);
    expect(Array.from(rows.logits!)).toEqual(Array.from(plain));
  });
});

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
