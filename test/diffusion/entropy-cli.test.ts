/**
 * `strata run` on an entropy_bound model (the diffusion_gemma fixture folder, imported on the
 * fly): greedy generation from seeded random canvases equals the sampler over the CPU interpreter
 * with the same seed; flags of other samplers and non-zero temperatures are refused by name.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { rowErrors } from '../helpers/golden.ts';
import { cli } from '../cli/run-cli.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { lower } from '../../src/graph/lower.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import {
  entropyBoundGenerate,
  SELF_CONDITION_PROBS,
  selfConditionProbs,
} from '../../src/ops/diffusion-entropy.ts';
import type { EntropyBoundSpec } from '../../src/spec/model.ts';

const DIR = join('test', 'fixtures', 'hf', 'diffusion_gemma');
const PROMPT = [5, 17, 3, 40, 22];
const tmp = mkdtempSync(join(tmpdir(), 'strata-entropy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('strata run on an entropy_bound model', () => {
  it('greedy generation and --dump-logits equal the sampler over the interpreter, same seed', async () => {
    const file = join(tmp, 'dump.safetensors');
    const r = await cli(
      'run',
      DIR,
      '--prompt-ids',
      PROMPT.join(','),
      '--temperature',
      '0',
      '--seed',
      '4',
      '--gen-length',
      '16',
      '--steps',
      '6',
      '--dump-logits',
      file,
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/canvas_logits \[\d+, \d+\]/);
    const dump = await openSafetensors(file);
    const got = Array.from(await dump.readTensorI32('decode_tokens'));
    const canvasIds = Array.from(await dump.readTensorI32('canvas_ids'));
    const canvasLogits = await dump.readTensorF32('canvas_logits');
    expect(Array.from(await dump.readTensorI32('prompt_ids'))).toEqual(PROMPT);
    await dump.close();

    const hf = await importHfFolder(DIR);
    try {
      const d = hf.model.diffusion as EntropyBoundSpec;
      const n = PROMPT.length + 16;
      const it = await Interpreter.create(
        lower(hf.model, { phase: 'prefill', maxT: n, capacity: n }),
        (name) => hf.readTensorF32(name),
      );
      const state = it.newState();
      const probs = state.get(SELF_CONDITION_PROBS) as Float32Array;
      let pos = 0;
      let first: { canvas: number[]; logits: Float32Array } | null = null;
      const want = await entropyBoundGenerate(
        {
          vocab: hf.model.vocab,
          encode: async (ids) => {
            it.step(ids, pos, 1, state);
            pos += ids.length;
          },
          denoise: async (canvas, sc) => {
            if (sc) probs.set(selfConditionProbs(sc, hf.model.vocab));
            const { logits } = it.step(canvas, pos, canvas.length, state, pos + canvas.length);
            probs.fill(0);
            first ??= { canvas: Array.from(canvas), logits: logits.slice() };
            return logits;
          },
        },
        PROMPT,
        { ...d, genLength: 16, maxSteps: 6, tMin: 0, tMax: 0, eos: [], pad: null, seed: 4 },
      );
      expect(got).toEqual(Array.from(want));
      // The dumped first denoising step: same canvas, logits within the goldens' f32 tolerance.
      const f = first as { canvas: number[]; logits: Float32Array } | null;
      expect(canvasIds).toEqual(f!.canvas);
      expect(rowErrors(canvasLogits, f!.logits, hf.model.vocab).rel).toBeLessThan(1e-4);
    } finally {
      await hf.close();
    }
  });

  it("refuses other samplers' flags and temperatures it cannot take, naming them", async () => {
    const base = ['run', DIR, '--prompt-ids', '1,2'];
    const a = await cli(...base, '--block-length', '8');
    expect(a.code).not.toBe(0);
    expect(a.err).toMatch(/--block-length: options of other diffusion samplers/);
    const b = await cli(...base, '--temperature', '0.5');
    expect(b.err).toMatch(/--temperature 0\.5: an entropy_bound model takes --temperature 0/);
    const c = await cli(...base, '--gen-length', '12');
    expect(c.err).toMatch(/--gen-length \(12\) must be a multiple of canvasLength \(8\)/);
    // --pick is entropy_bound's too (gpu: device row statistics, host: logits read back).
    const d = await cli(...base, '--pick', 'nowhere');
    expect(d.err).toMatch(/--pick must be gpu or host, got 'nowhere'/);
  });
});
