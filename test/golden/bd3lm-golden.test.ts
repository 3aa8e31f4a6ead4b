/**
 * BD3-LM golden tests: each fixture (tools/golden/make_bd3lm_golden.py: kuleshov-group/bd3lms's
 * modeling_bd3lm.py and diffusion.py sampler, on the CPU in f32) is imported from its
 * config.json and safetensors (adaLN folded into the weights), and
 *  - one forward over prompt + masks (sample mode: the block-causal mask) matches the reference's
 *    logits within the HF golden tolerance (max |Δ| ≤ 1e-3, per-row max |Δ| / max |logit| ≤
 *    1e-4: f32 on both sides), on the CPU interpreter and on WebGPU;
 *  - the whole generation from BOS at temperature 0 equals the reference sampler's tokens
 *    (_semi_ar_sampler with argmax draws and strata's first-hitting position noise; see the
 *    script), first_hitting and ddpm with one step a block, on the CPU (the canvas recomputed
 *    from scratch every step) and on WebGPU (the exact KV cache of committed blocks).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { importHfFolder, type HfFolder } from '../../src/import/hf-folder.ts';
import { lower } from '../../src/graph/lower.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { compileModel } from '../../codegen/compile.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { GpuModel } from '../../runtime/model.ts';
import { blockDiffusionGenerateGpu } from '../../runtime/block-diffusion.ts';
import {
  blockDiffusionSample,
  type BlockDiffusionRun,
  type BlockForward,
} from '../../src/ops/block-diffusion.ts';
import { rowErrors } from '../helpers/golden.ts';
import { testGpu } from '../helpers/gpu.ts';

const FIXTURES = ['test/fixtures/diffusion/bd3lm', 'test/fixtures/diffusion/bd3lm_no_adaln'];

interface Bd3lmGolden {
  prompt: number[];
  canvasLogits: Float32Array;
  genPrompt: number[];
  /** Sampler name → the reference's tokens after BOS. */
  tokens: Record<'first_hitting' | 'ddpm', number[]>;
  settings: { block_size: number; noise_seed: number; mask_id: number };
}

async function readGolden(dir: string): Promise<Bd3lmGolden> {
  const g = await openSafetensors(join(dir, 'golden.safetensors'));
  try {
    const meta = JSON.parse(String(g.metadata.golden)) as {
      sampler_settings: Bd3lmGolden['settings'];
    };
    return {
      prompt: Array.from(await g.readTensorI32('prompt_ids')),
      canvasLogits: await g.readTensorF32('canvas_logits'),
      genPrompt: Array.from(await g.readTensorI32('gen_prompt')),
      tokens: {
        first_hitting: Array.from(await g.readTensorI32('decode_tokens')),
        ddpm: Array.from(await g.readTensorI32('decode_tokens.ddpm1')),
      },
      settings: meta.sampler_settings,
    };
  } finally {
    await g.close();
  }
}

/** The reference's runs: blocks of block_size, first hitting in block_size steps or ddpm in 1. */
function runs(hf: HfFolder, g: Bd3lmGolden): Record<'first_hitting' | 'ddpm', BlockDiffusionRun> {
  const d = hf.model.diffusion;
  if (d?.kind !== 'bd3lm') throw new Error('the import is not a bd3lm diffusion model');
  expect(d.maskId).toBe(g.settings.mask_id);
  expect(d.blockLength).toBe(g.settings.block_size);
  const base = {
    genLength: g.tokens.first_hitting.length,
    blockLength: g.settings.block_size,
    temperature: 0,
    nucleusP: 1,
    maskId: d.maskId,
    seed: g.settings.noise_seed,
  };
  return {
    first_hitting: { ...base, sampler: 'first_hitting', steps: g.settings.block_size },
    ddpm: { ...base, sampler: 'ddpm', steps: 1 },
  };
}

const summary: string[] = [];

describe('BD3-LM golden outputs', () => {
  for (const dir of FIXTURES) {
    const name = dir.split('/').pop()!;
    it(`${name} on the CPU interpreter`, async () => {
      const hf = await importHfFolder(dir);
      try {
        const g = await readGolden(dir);
        const n = g.prompt.length + 16;
        const pre = await Interpreter.create(
          lower(hf.model, { phase: 'prefill', maxT: n, capacity: n }),
          (t) => hf.readTensorF32(t),
        );
        const V = hf.model.vocab;
        const canvas = Uint32Array.from([
          ...g.prompt,
          ...Array<number>(g.canvasLogits.length / V - g.prompt.length).fill(V - 1),
        ]);
        const logits = pre.step(canvas, 0, canvas.length, pre.newState()).logits;
        const e = rowErrors(logits, g.canvasLogits, V);
        expect(e.abs).toBeLessThanOrEqual(1e-3);
        expect(e.rel).toBeLessThanOrEqual(1e-4);
        summary.push(`${name} cpu: abs ${e.abs.toExponential(1)} rel ${e.rel.toExponential(1)}`);
        // The reference recomputes the whole canvas at every step (kv_cache off): so does this.
        const fromScratch: BlockForward = async (c, _span, rows) => {
          const all = pre.step(c, 0, c.length, pre.newState()).logits;
          const out = new Float32Array(rows.length * V);
          rows.forEach((p, k) => out.set(all.subarray(p * V, (p + 1) * V), k * V));
          return out;
        };
        for (const [sampler, run] of Object.entries(runs(hf, g))) {
          const out = await blockDiffusionSample(fromScratch, g.genPrompt, V, run);
          expect(Array.from(out.slice(1)), sampler).toEqual(
            g.tokens[sampler as keyof Bd3lmGolden['tokens']],
          );
        }
      } finally {
        await hf.close();
      }
    });

    it(`${name} on WebGPU`, async () => {
      const hf = await importHfFolder(dir);
      const gpu = await testGpu();
      try {
        const g = await readGolden(dir);
        const V = hf.model.vocab;
        const compiled = compileModel(hf.model, { caps: gpu.caps, maxT: 16, capacity: 32 });
        const gm = await GpuModel.load(
          gpu,
          memorySource(compiled, (t) => hf.readTensorF32(t)),
        );
        try {
          const seq = gm.newSequence();
          const rows = g.canvasLogits.length / V;
          const canvas = [...g.prompt, ...Array<number>(rows - g.prompt.length).fill(V - 1)];
          const e = rowErrors((await seq.forward(canvas)).logits, g.canvasLogits, V);
          seq.destroy();
          expect(e.abs).toBeLessThanOrEqual(1e-3);
          expect(e.rel).toBeLessThanOrEqual(1e-4);
          summary.push(`${name} gpu: abs ${e.abs.toExponential(1)} rel ${e.rel.toExponential(1)}`);
          for (const [sampler, run] of Object.entries(runs(hf, g))) {
            const s = gm.newSequence();
            const out = await blockDiffusionGenerateGpu(s, g.genPrompt, run);
            s.destroy();
            expect(Array.from(out.slice(1)), sampler).toEqual(
              g.tokens[sampler as keyof Bd3lmGolden['tokens']],
            );
          }
        } finally {
          gm.destroy();
        }
      } finally {
        await hf.close();
      }
    });
  }

  afterAll(() => console.log(`bd3lm golden summary:\n  ${summary.join('\n  ')}`));
});
