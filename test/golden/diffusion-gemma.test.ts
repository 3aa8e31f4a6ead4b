/**
 * DiffusionGemma golden (test/fixtures/hf/diffusion_gemma, tools/golden/make_golden.py; made on
 * the CPU with torch 2.13 and transformers 5.18, f32, eager attention), checked against transformers
 * twice:
 *  - the config and checkpoint reader (every text tensor found with its shape), through a plain
 *    CPU forward built on it (test/helpers/diffusion-gemma-ref.ts): one denoising step's logits
 *    on a canvas after the encoded prompt, and the same step self-conditioned, within the HF
 *    golden tolerance (max |Δ| ≤ 1e-3, per-row max |Δ| / max |logit| ≤ 1e-4);
 *  - the entropy-bound sampler over that forward: the whole temperature-0 generation, token
 *    for token, with the reference's starting canvases;
 *  - strata's own pipeline: importHfFolder's ModelIR (phased attention, the Gemma 4 MoE, the
 *    entropy_bound diffusion setting with self-conditioning) lowered and run on the CPU
 *    interpreter and compiled for WebGPU (runtime/entropy-diffusion.ts): the same step, plain and
 *    self-conditioned, and the whole temperature-0 generation with every step's logits, within
 *    the same tolerance (f32 on both sides).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import {
  checkLayerScalars,
  readDiffusionGemmaConfig,
  resolveDiffusionGemmaWeights,
} from '../../src/import/hf-diffusion-gemma.ts';
import { entropyBoundGenerate, type SelfCondition } from '../../src/ops/diffusion-entropy.ts';
import { DiffusionGemmaRef, goldenRun } from '../helpers/diffusion-gemma-ref.ts';
import { rowErrors } from '../helpers/golden.ts';
import { importHfFolder, type HfFolder } from '../../src/import/hf-folder.ts';
import { lower } from '../../src/graph/lower.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import {
  SELF_CONDITION_PROBS,
  selfConditionProbs,
  type BlockDiffusionModel,
} from '../../src/ops/diffusion-entropy.ts';
import { compileModel } from '../../codegen/compile.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { GpuModel } from '../../runtime/model.ts';
import { entropyBoundOnSequence } from '../../runtime/entropy-diffusion.ts';
import { testGpu } from '../helpers/gpu.ts';

const DIR = join('test', 'fixtures', 'hf', 'diffusion_gemma');

async function load() {
  const config = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as object;
  const text = readDiffusionGemmaConfig(config, DIR);
  const ckpt = await openSafetensors(join(DIR, 'model.safetensors'));
  const shapes = new Map(ckpt.listTensors().map((e) => [e.name, e.shape]));
  const map = resolveDiffusionGemmaWeights(text, shapes);
  await checkLayerScalars(text, async (n) =>
    ckpt.has(n) ? (await ckpt.readTensorF32(n))[0] : null,
  );
  const weights = new Map<string, Float32Array>();
  for (const [canonical, stored] of Object.entries(map))
    weights.set(canonical, await ckpt.readTensorF32(stored));
  await ckpt.close();
  const g = await openSafetensors(join(DIR, 'golden.safetensors'));
  const golden = {
    meta: JSON.parse(g.metadata.golden as string) as Record<string, string>,
    prompt: await g.readTensorI32('prompt_ids'),
    canvas: await g.readTensorI32('canvas_ids'),
    logits: await g.readTensorF32('canvas_logits'),
    logitsSc: await g.readTensorF32('canvas_logits_sc'),
    tokens: Array.from(await g.readTensorI32('decode_tokens')),
    starts: await g.readTensorI32('block_starts'),
    stepLogits: await g.readTensorF32('step_logits'),
  };
  await g.close();
  const ref = new DiffusionGemmaRef(text, (n) => {
    const w = weights.get(n);
    if (!w) throw new Error(`no tensor ${n}`);
    return w;
  });
  return { config, text, ref, golden };
}

function expectClose(got: Float32Array, want: Float32Array, vocab: number) {
  const e = rowErrors(got, want, vocab);
  expect(e.abs, `max |Δlogit| ${e.abs}`).toBeLessThanOrEqual(1e-3);
  expect(e.rel, `max row-relative |Δ| ${e.rel}`).toBeLessThanOrEqual(1e-4);
  return e;
}

describe('diffusion_gemma golden (CPU reference forward over the importer)', () => {
  it('reads the fixture: metadata says where it was made', async () => {
    const { text, golden } = await load();
    expect(golden.meta.device).toMatch(/^CPU/);
    expect(golden.meta.torch).toMatch(/^2\.13/);
    expect(golden.meta.transformers).toBe('5.18.0');
    expect(
      text.layers.map((l) => [l.type, l.headDim, l.kvHeads, l.valueFromKey, l.window]),
    ).toEqual([
      ['sliding_attention', 16, 1, false, 8],
      ['full_attention', 32, 1, true, null],
    ]);
    expect(text.layers[1].rope).toEqual({
      theta: 1e6,
      rotaryDim: 32,
      scaling: { kind: 'proportional', pairs: 4, factor: 1 },
    });
  });

  it('one denoising step on a canvas, plain and self-conditioned', async () => {
    const { ref, golden, text } = await load();
    await ref.encode(Uint32Array.from(golden.prompt));
    const canvas = Uint32Array.from(golden.canvas);
    const first = await ref.denoise(canvas, null);
    const e1 = expectClose(first, golden.logits, text.vocab);
    const sc = await ref.denoise(canvas, { logits: golden.logits, temperature: 1 });
    const e2 = expectClose(sc, golden.logitsSc, text.vocab);
    console.log(
      `diffusion_gemma one step: max |Δ| ${e1.abs.toExponential(2)} (rel ${e1.rel.toExponential(2)}), self-conditioned ${e2.abs.toExponential(2)} (rel ${e2.rel.toExponential(2)})`,
    );
  });

  it('generates the reference tokens at temperature 0, every step within tolerance', async () => {
    const { ref, golden, text } = await load();
    const C = text.canvasLength;
    // Every denoising step's logits against the reference's: the second canvas's steps read the
    // cache after the first canvas was encoded (the sliding layer then sees only its last rows).
    const steps: Float32Array[] = [];
    const model = {
      vocab: ref.vocab,
      encode: (ids: Uint32Array) => ref.encode(ids),
      denoise: async (canvas: Uint32Array, sc: SelfCondition | null) => {
        const l = await ref.denoise(canvas, sc);
        steps.push(l);
        return l;
      },
    };
    const tokens = await entropyBoundGenerate(
      model,
      golden.prompt,
      { ...goldenRun(golden.meta, C), tMin: 0, tMax: 0 },
      { starts: (b) => Uint32Array.from(golden.starts.subarray(b * C, (b + 1) * C)) },
    );
    expect(Array.from(tokens)).toEqual(golden.tokens);
    const n = C * text.vocab;
    expect(steps.length * n).toBe(golden.stepLogits.length);
    let worst = 0;
    steps.forEach((l, i) => {
      worst = Math.max(
        worst,
        expectClose(l, golden.stepLogits.subarray(i * n, (i + 1) * n), text.vocab).abs,
      );
    });
    console.log(
      `diffusion_gemma generation: ${steps.length} steps, max |Δ| ${worst.toExponential(2)}`,
    );
  });
});

/**
 * strata's own pipeline on the same fixture: importHfFolder's ModelIR (phased attention, the MoE
 * with branch norms, self-conditioning) lowered and run on the CPU interpreter (the op
 * references) and compiled for WebGPU (SwiftShader), each as the sampler's BlockDiffusionModel.
 */
type Golden = Awaited<ReturnType<typeof load>>['golden'];

/** The interpreter as the sampler's model: one prefill graph, its state the sequence's. */
async function interpreterModel(hf: HfFolder, maxT: number, capacity: number) {
  const it = await Interpreter.create(
    lower(hf.model, { phase: 'prefill', maxT, capacity }),
    (name) => hf.readTensorF32(name),
  );
  const state = it.newState();
  const probs = state.get(SELF_CONDITION_PROBS) as Float32Array;
  const vocab = hf.model.vocab;
  let pos = 0;
  const model: BlockDiffusionModel = {
    vocab,
    async encode(ids) {
      for (let s = 0; s < ids.length; s += maxT) {
        const chunk = ids.subarray(s, s + maxT);
        it.step(chunk, pos, 1, state);
        pos += chunk.length;
      }
    },
    async denoise(canvas, sc) {
      if (sc) probs.set(selfConditionProbs(sc, vocab));
      const C = canvas.length;
      const { logits } = it.step(canvas, pos, C, state, pos + C);
      probs.fill(0);
      return logits;
    },
  };
  return model;
}

/** One step on a canvas after the prompt, plain and self-conditioned; then the generation. */
async function checkModel(model: BlockDiffusionModel, golden: Golden, C: number, vocab: number) {
  await model.encode(Uint32Array.from(golden.prompt));
  const canvas = Uint32Array.from(golden.canvas);
  const e1 = expectClose(await model.denoise(canvas, null, 1), golden.logits, vocab);
  const e2 = expectClose(
    await model.denoise(canvas, { logits: golden.logits, temperature: 1 }, 1),
    golden.logitsSc,
    vocab,
  );
  return { e1, e2 };
}

async function generate(make: () => Promise<BlockDiffusionModel>, golden: Golden, C: number) {
  const model = await make();
  const steps: Float32Array[] = [];
  const tokens = await entropyBoundGenerate(
    {
      vocab: model.vocab,
      encode: (ids) => model.encode(ids),
      denoise: async (canvas, sc, t) => {
        const l = await model.denoise(canvas, sc, t);
        steps.push(l);
        return l;
      },
    },
    golden.prompt,
    { ...goldenRun(golden.meta, C), tMin: 0, tMax: 0 },
    { starts: (b) => Uint32Array.from(golden.starts.subarray(b * C, (b + 1) * C)) },
  );
  return { tokens: Array.from(tokens), steps };
}

function expectSteps(steps: Float32Array[], golden: Golden, C: number, vocab: number): number {
  const n = C * vocab;
  expect(steps.length * n).toBe(golden.stepLogits.length);
  let worst = 0;
  steps.forEach((l, i) => {
    worst = Math.max(
      worst,
      expectClose(l, golden.stepLogits.subarray(i * n, (i + 1) * n), vocab).rel,
    );
  });
  return worst;
}

describe('diffusion_gemma golden (strata: import, lower, interpreter and WebGPU)', () => {
  it('imports the folder as an entropy_bound model with phased attention and the Gemma 4 MoE', async () => {
    const hf = await importHfFolder(DIR);
    try {
      const m = hf.model;
      expect(m.diffusion?.kind).toBe('entropy_bound');
      expect(m.layers.every((l) => l.mixer?.kind === 'attention' && l.mixer.phased)).toBe(true);
      const f = m.layers[0].ffn;
      expect(
        f?.kind === 'moe' && f.branchNorms && f.router.inputScale && f.router.expertScale,
      ).toBe(true);
    } finally {
      await hf.close();
    }
  });

  for (const on of ['cpu', 'gpu'] as const) {
    it(`one step and the whole generation on ${on === 'cpu' ? 'the CPU interpreter' : 'WebGPU'}`, async () => {
      const { golden, text } = await load();
      const hf = await importHfFolder(DIR);
      const C = text.canvasLength;
      const vocab = text.vocab;
      const genLength = JSON.parse(golden.meta.generate).max_new_tokens as number;
      const maxT = Math.max(C, golden.prompt.length);
      const capacity = golden.prompt.length + genLength;
      let gm: GpuModel | null = null;
      try {
        let make: () => Promise<BlockDiffusionModel>;
        if (on === 'cpu') make = () => interpreterModel(hf, maxT, capacity);
        else {
          const gpu = await testGpu();
          const compiled = compileModel(hf.model, { caps: gpu.caps, maxT, capacity });
          gm = await GpuModel.load(
            gpu,
            memorySource(compiled, (n) => hf.readTensorF32(n)),
          );
          const g = gm;
          make = async () => entropyBoundOnSequence(g.newSequence());
        }
        const { e1, e2 } = await checkModel(await make(), golden, C, vocab);
        const { tokens, steps } = await generate(make, golden, C);
        expect(tokens).toEqual(golden.tokens);
        if (on === 'gpu') {
          // The device path: each step's row statistics from the entropy_rows kernel, no logits
          // read back (exact at t = 0, so the same tokens).
          const model = await make();
          expect(model.denoiseRows).toBeDefined();
          const onDevice = await entropyBoundGenerate(
            model,
            golden.prompt,
            { ...goldenRun(golden.meta, C), tMin: 0, tMax: 0 },
            { starts: (b) => Uint32Array.from(golden.starts.subarray(b * C, (b + 1) * C)) },
          );
          expect(Array.from(onDevice)).toEqual(golden.tokens);
        }
        const worst = expectSteps(steps, golden, C, vocab);
        console.log(
          `diffusion_gemma strata ${on}: one step rel ${e1.rel.toExponential(2)}, self-conditioned rel ${e2.rel.toExponential(2)}; generation ${steps.length} steps, worst rel ${worst.toExponential(2)}`,
        );
      } finally {
        gm?.destroy();
        await hf.close();
      }
    });
  }
});
