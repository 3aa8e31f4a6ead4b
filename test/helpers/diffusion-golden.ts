/**
 * Golden fixtures of masked-diffusion models (tools/golden/make_diffusion_golden.py: LLaDA and
 * Dream from their reference modeling files): read the golden, and run a fixture's one-step
 * canvas logits and whole generation on the CPU interpreter or on WebGPU, with the sampler
 * settings the reference ran, given as `strata run` flags over the imported spec's defaults.
 */
import { join } from 'node:path';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import type { HfFolder } from '../../src/import/hf-folder.ts';
import { compileModel } from '../../codegen/compile.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { GpuModel } from '../../runtime/model.ts';
import { diffusionGenerateGpu, type DiffusionPick } from '../../runtime/diffusion.ts';
import { lower } from '../../src/graph/lower.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { diffusionGenerate, DREAM_ALGS, type DiffusionRun } from '../../src/ops/diffusion.ts';
import { diffusionRunOptions } from '../../src/cli/diffusion-run.ts';
import { testGpu } from './gpu.ts';

/** Fixture folders under test/fixtures/hf that hold a diffusion golden (not prefill/decode). */
export const DIFFUSION_FIXTURES: readonly string[] = ['llada', 'Dream'];

/**
 * Every diffusion golden: the two released types' layouts, and test/fixtures/diffusion's models
 * that cover the rest of an importer's options (llada_options: Gemma norms, scales, tied head,
 * q/k/v biases, GELU, one KV head, padded embeddings).
 */
export const DIFFUSION_GOLDENS: readonly string[] = [
  ...DIFFUSION_FIXTURES.map((t) => `test/fixtures/hf/${t}`),
  'test/fixtures/diffusion/llada_options',
];

export interface DiffusionGolden {
  prompt: number[];
  /** [prompt + gen length, vocab]: one forward over the prompt and the masks. */
  canvasLogits: Float32Array;
  /** The reference's generation at temperature 0. */
  tokens: number[];
  /** The canvas given to each of the reference's forwards. */
  stepCanvas: number[][];
  /** The `golden` metadata (sampler settings as a JSON string, versions, note). */
  meta: Record<string, string>;
  /** Dream: the generation with each other deterministic alg (topk_margin, entropy). */
  more: Record<string, number[]>;
}

export async function readDiffusionGolden(dir: string): Promise<DiffusionGolden> {
  const g = await openSafetensors(join(dir, 'golden.safetensors'));
  try {
    const prompt = Array.from(await g.readTensorI32('prompt_ids'));
    const flat = Array.from(await g.readTensorI32('step_canvas'));
    const n = prompt.length + (await g.readTensorI32('decode_tokens')).length;
    const stepCanvas: number[][] = [];
    for (let i = 0; i < flat.length; i += n) stepCanvas.push(flat.slice(i, i + n));
    const more: Record<string, number[]> = {};
    for (const t of g.listTensors()) {
      if (t.name.startsWith('decode_tokens.'))
        more[t.name.slice('decode_tokens.'.length)] = Array.from(await g.readTensorI32(t.name));
    }
    return {
      more,
      prompt,
      canvasLogits: await g.readTensorF32('canvas_logits'),
      tokens: Array.from(await g.readTensorI32('decode_tokens')),
      stepCanvas,
      meta: JSON.parse(String(g.metadata.golden)) as Record<string, string>,
    };
  } finally {
    await g.close();
  }
}

/**
 * The reference's sampler settings as `strata run` flags (LLaDA's generate() arguments, or
 * Dream's generation config), read over the imported spec's defaults by the CLI's own parser.
 */
export function goldenRun(hf: HfFolder, golden: DiffusionGolden, alg?: string): DiffusionRun {
  const s = JSON.parse(golden.meta.sampler_settings) as Record<string, unknown>;
  if (alg !== undefined) s.alg = alg;
  const d = hf.model.diffusion;
  if (!d || d.kind === 'bd3lm') throw new Error('the imported model has no llada/dream section');
  const flags: Record<string, string> =
    d.kind === 'dream'
      ? {
          'gen-length': String(s.max_new_tokens),
          steps: String(s.steps),
          remasking: DREAM_ALGS[String(s.alg)] ?? `(Dream alg ${String(s.alg)})`,
        }
      : {
          'gen-length': String(s.gen_length),
          'block-length': String(s.block_length),
          steps: String(s.steps),
          remasking: String(s.remasking),
          'cfg-scale': String(s.cfg_scale),
        };
  flags.temperature = String(s.temperature);
  if (d.kind === 'entropy_bound') throw new Error('not a masked-diffusion golden');
  const run = diffusionRunOptions(flags, d, 0);
  const mask = d.kind === 'dream' ? s.mask_token_id : s.mask_id;
  if (run.maskId !== mask) throw new Error(`imported mask id ${run.maskId}, reference ${mask}`);
  if (d.kind === 'dream' && run.eps !== s.eps)
    throw new Error(`Dream golden ran eps ${String(s.eps)}; strata: eps ${run.eps}`);
  return run;
}

export interface DiffusionResult {
  canvasLogits: Float32Array;
  tokens: number[];
  /** The canvas each forward of the generation was given (full forwards only). */
  stepCanvas: number[][];
}

/** The canvas logits and the generation on the CPU interpreter (the op references). */
export async function runDiffusionCpu(
  hf: HfFolder,
  golden: DiffusionGolden,
  run: DiffusionRun,
): Promise<DiffusionResult> {
  const n = golden.prompt.length + run.genLength;
  const prefill = await Interpreter.create(
    lower(hf.model, { phase: 'prefill', maxT: n, capacity: n }),
    (name) => hf.readTensorF32(name),
  );
  const stepCanvas: number[][] = [];
  const forward = async (canvas: Uint32Array): Promise<Float32Array> => {
    stepCanvas.push(Array.from(canvas));
    return prefill.step(canvas, 0, canvas.length, prefill.newState()).logits;
  };
  const canvas = Uint32Array.from([
    ...golden.prompt,
    ...Array<number>(run.genLength).fill(run.maskId),
  ]);
  const canvasLogits = await forward(canvas);
  stepCanvas.length = 0;
  const out = await diffusionGenerate(forward, golden.prompt, hf.model.vocab, run);
  return { canvasLogits, tokens: Array.from(out.slice(golden.prompt.length)), stepCanvas };
}

/** The same on WebGPU, the pick on the host or in the pick kernel. */
export async function runDiffusionGpu(
  hf: HfFolder,
  golden: DiffusionGolden,
  run: DiffusionRun,
  picks: readonly DiffusionPick[],
  /** Further settings to generate with, each with every pick: tokens under `${i}:${pick}`. */
  more: readonly DiffusionRun[] = [],
): Promise<{ canvasLogits: Float32Array; tokens: Record<string, number[]> }> {
  const gpu = await testGpu();
  const n = golden.prompt.length + run.genLength;
  const compiled = compileModel(hf.model, { caps: gpu.caps, maxT: n, capacity: n });
  const gm = await GpuModel.load(
    gpu,
    memorySource(compiled, (name) => hf.readTensorF32(name)),
  );
  try {
    const seq = gm.newSequence();
    const canvas = [...golden.prompt, ...Array<number>(run.genLength).fill(run.maskId)];
    const canvasLogits = (await seq.forward(canvas)).logits;
    const tokens: Record<string, number[]> = {};
    for (const [i, r] of [run, ...more].entries()) {
      for (const pick of picks) {
        const out = await diffusionGenerateGpu(gm.newSequence(), golden.prompt, r, undefined, pick);
        tokens[i === 0 ? pick : `${i}:${pick}`] = Array.from(out.slice(golden.prompt.length));
      }
    }
    return { canvasLogits, tokens };
  } finally {
    gm.destroy();
  }
}
