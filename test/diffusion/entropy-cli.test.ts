/**
 * `strata run` on an entropy_bound model (the diffusion_gemma fixture folder, imported on the
 * fly): greedy generation from seeded random canvases equals the sampler over the CPU interpreter
 * with the same seed; flags of other samplers and non-zero temperatures are refused by name.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
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

describe('strata run on an entropy_bound model', () => {
  it('greedy generation equals the sampler over the interpreter, same seed', async () => {
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
      '--ids',
    );
    expect(r.code, r.err).toBe(0);
    const got = r.out.trim().split(/\s+/).map(Number);

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
            return logits;
          },
        },
        PROMPT,
        { ...d, genLength: 16, maxSteps: 6, tMin: 0, tMax: 0, eos: [], pad: null, seed: 4 },
      );
      expect(got).toEqual(Array.from(want));
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
  });
});
