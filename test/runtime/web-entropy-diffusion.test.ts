/**
 * A DiffusionGemma (entropy_bound) bundle through the web runtime (loadModel over HTTP in Node,
 * dawn.node; the diffusion_gemma fixture, canvases of 8): generate() runs the entropy-bound
 * sampler and gives the tokens of entropyBoundGenerate over the same bundle (what `strata run`
 * calls), with the GPU row statistics or the host's; each canvas's text arrives after the step
 * that ends it, and not before; settings the sampler does not take are refused by name.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { compileModel } from '../../codegen/compile.ts';
import { writeBundle } from '../../codegen/bundle.ts';
import { openBundle } from '../../runtime/node/bundle-node.ts';
import { GpuModel } from '../../runtime/model.ts';
import { entropyBoundOnSequence } from '../../runtime/entropy-diffusion.ts';
import { entropyBoundGenerate, entropyBoundRunOf } from '../../src/ops/diffusion-entropy.ts';
import { loadModel, type WebCanvasProgress } from '../../runtime/web.ts';
import { startServer, type Served } from '../../src/cli/serve-cmd.ts';
import { testGpu } from '../helpers/gpu.ts';

const PROMPT = [5, 17, 3, 40, 22];
const C = 8;

describe('an entropy_bound bundle in the web runtime', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'strata-webgemma-'));
  let served: Served | null = null;
  // What `strata run` gets on the same bundle, greedy, two canvases.
  let cli: number[] = [];

  beforeAll(async () => {
    const gpu = await testGpu();
    const hf = await importHfFolder(join('test', 'fixtures', 'hf', 'diffusion_gemma'));
    const dir = join(tmp, 'bundle');
    const compiled = compileModel(hf.model, { caps: gpu.caps, maxT: C, capacity: 32 });
    await writeBundle(compiled, (n) => hf.readTensorF32(n), dir);
    await hf.close();
    const gm = await GpuModel.load(gpu, await openBundle(dir));
    const d = gm.manifest.model.diffusion!;
    if (d.kind !== 'entropy_bound') throw new Error(`fixture is ${d.kind}`);
    const run = entropyBoundRunOf(d, { genLength: 2 * C, greedy: true, eos: [], seed: 0 });
    const out = await entropyBoundGenerate(entropyBoundOnSequence(gm.newSequence()), PROMPT, run);
    cli = Array.from(out);
    gm.destroy();
    served = await startServer(dir, { port: 0 });
  });
  afterAll(async () => {
    await served?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('gives the CLI sampler tokens, a canvas at a time, on either pick', async () => {
    const model = await loadModel(`${served!.url}bundle/`, { gpu: await testGpu() });
    for (const pick of ['gpu', 'host'] as const) {
      const ids: number[] = [];
      const steps: WebCanvasProgress[] = [];
      const arrivals: number[] = [];
      for await (const _ of model.generate(PROMPT, {
        maxTokens: 2 * C,
        temperature: 0,
        ignoreEos: true,
        diffusion: { pick },
        onToken: (id) => {
          ids.push(id);
          arrivals.push(steps.length);
        },
        onCanvas: (p) => steps.push({ ...p, canvas: p.canvas.slice() }),
      }));
      expect(ids).toEqual(cli);
      expect(model.lastStop).toBe('max-tokens');
      // Every step shows the prompt, the finished canvases and the current one.
      for (const s of steps) {
        expect(Array.from(s.canvas.subarray(0, PROMPT.length))).toEqual(PROMPT);
        expect(s.promptLength).toBe(PROMPT.length);
        expect([PROMPT.length + C, PROMPT.length + 2 * C]).toContain(s.canvas.length);
      }
      // A canvas's tokens arrive together, right after the step that ends it: the first step
      // showing the second canvas is the one after the first canvas's last.
      const secondStarts = steps.findIndex((s) => s.canvas.length === PROMPT.length + 2 * C);
      expect(secondStarts).toBeGreaterThan(0);
      expect(arrivals).toEqual([...Array(C).fill(secondStarts), ...Array(C).fill(steps.length)]);
      expect(steps[secondStarts - 1]!.final).toBe(PROMPT.length + C);
      expect(steps[steps.length - 1]!.final).toBe(PROMPT.length + 2 * C);
    }
    model.dispose();
  });

  it('refuses what the sampler does not take, naming it', async () => {
    const model = await loadModel(`${served!.url}bundle/`, { gpu: await testGpu() });
    await expect(model.generate(PROMPT, { maxTokens: 12 }).next()).rejects.toThrow(
      /diffusion\.genLength \(or maxTokens\).*8/,
    );
    await expect(model.generate(PROMPT, { maxTokens: 8, temperature: 0.5 }).next()).rejects.toThrow(
      /temperature 0\.5: an entropy_bound model takes temperature 0/,
    );
    await expect(
      model.generate(PROMPT, { maxTokens: 8, diffusion: { remasking: 'random' } }).next(),
    ).rejects.toThrow(
      /diffusion\.remasking: settings of another diffusion sampler.*genLength, steps, pick/,
    );
    await expect(model.generate(PROMPT, { maxTokens: 8, topK: 3 }).next()).rejects.toThrow(
      /topK: an autoregressive sampling option.*entropy_bound/,
    );
    model.dispose();
  });
});
