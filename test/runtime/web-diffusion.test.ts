/**
 * Diffusion bundles through the web runtime (loadModel over HTTP in Node, dawn.node): generate()
 * runs the bundle's own sampler, not left-to-right decoding. A BD3-LM bundle (specs/tiny-bd3lm)
 * gives the tokens of blockDiffusionGenerateGpu on the same bundle (what `strata run` calls),
 * onCanvas sees every step with the canvas line `run` prints, the text streams a block at a time
 * as blocks settle, and a break or an abort stops the sampler. A LLaDA bundle gives
 * diffusionGenerateGpu's tokens. Settings of the other sampler, or AR-only options, are refused.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../../src/spec/load.ts';
import { compileModel } from '../../codegen/compile.ts';
import { writeBundle } from '../../codegen/bundle.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { openBundle } from '../../runtime/node/bundle-node.ts';
import { GpuModel } from '../../runtime/model.ts';
import { blockDiffusionGenerateGpu } from '../../runtime/block-diffusion.ts';
import { diffusionGenerateGpu } from '../../runtime/diffusion.ts';
import { canvasView } from '../../runtime/canvas-view.ts';
import { byteTokenizer } from '../../runtime/tokenizer.ts';
import { loadModel, type WebCanvasProgress } from '../../runtime/web.ts';
import { startServer, type Served } from '../../src/cli/serve-cmd.ts';
import { testGpu } from '../helpers/gpu.ts';

const PROMPT = [72, 105, 33];

describe('diffusion bundles in the web runtime', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'strata-webdiff-'));
  const served: Record<'bd3lm' | 'llada', Served | null> = { bd3lm: null, llada: null };
  // What `strata run` gets on the same bundles: tokens after the prompt, and the canvas lines.
  const cli = { bd3lm: [] as number[], lines: [] as string[], llada: [] as number[] };

  beforeAll(async () => {
    const gpu = await testGpu();
    for (const [kind, spec] of [
      ['bd3lm', 'specs/tiny-bd3lm.strata'],
      ['llada', 'specs/tiny-llada.strata'],
    ] as const) {
      const model = loadSpec(spec);
      const dir = join(tmp, kind, 'bundle');
      const compiled = compileModel(model, { caps: gpu.caps, maxT: 32, capacity: 64 });
      await writeBundle(compiled, randomWeights(model, 5), dir);
      const gm = await GpuModel.load(gpu, await openBundle(dir));
      const d = model.diffusion!;
      if (d.kind === 'bd3lm') {
        const view = canvasView(PROMPT.length, d.maskId, { tok: byteTokenizer(260), ids: false });
        const run = { ...d, genLength: 12, temperature: 0, seed: 0 };
        const out = await blockDiffusionGenerateGpu(gm.newSequence(), PROMPT, run, (_c, canvas) => {
          cli.lines.push(view.line(canvas));
        });
        cli.bd3lm = Array.from(out.slice(PROMPT.length));
      } else if (d.kind === 'llada') {
        const run = {
          genLength: 8,
          blockLength: 8,
          steps: 8,
          remasking: d.remasking,
          temperature: 0,
          cfgScale: 0,
          threshold: null,
          cache: 'none' as const,
          maskId: d.maskId,
          seed: 0,
        };
        const out = await diffusionGenerateGpu(gm.newSequence(), PROMPT, run);
        cli.llada = Array.from(out.slice(PROMPT.length));
      }
      gm.destroy();
      served[kind] = await startServer(dir, { port: 0 });
    }
  });
  afterAll(async () => {
    await served.bd3lm?.close();
    await served.llada?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('samples a BD3-LM bundle block by block, showing each step', async () => {
    const model = await loadModel(`${served.bd3lm!.url}bundle/`, { gpu: await testGpu() });
    const ids: number[] = [];
    const steps: WebCanvasProgress[] = [];
    let text = '';
    // How many steps had run when each token was handed out.
    const arrivals: number[] = [];
    for await (const t of model.generate(PROMPT, {
      maxTokens: 12,
      temperature: 0,
      ignoreEos: true,
      onToken: (id) => {
        ids.push(id);
        arrivals.push(steps.length);
      },
      onCanvas: (p) => steps.push({ ...p, canvas: p.canvas.slice() }),
    }))
      text += t;
    expect(ids).toEqual(cli.bd3lm);
    expect(text).toBe(byteTokenizer(260).decode(cli.bd3lm));
    // Drawn on the device: the same tokens.
    const drawn: number[] = [];
    for await (const _ of model.generate(PROMPT, {
      maxTokens: 12,
      temperature: 0,
      ignoreEos: true,
      diffusion: { pick: 'gpu' },
      onToken: (id) => drawn.push(id),
    }));
    expect(drawn).toEqual(cli.bd3lm);
    expect(model.lastStop).toBe('max-tokens');
    expect(steps.map((s) => s.line)).toEqual(cli.lines);
    expect(steps[0]!.promptLength).toBe(PROMPT.length);
    expect(steps[0]!.maskId).toBe(259);
    // Each token comes out right after the step that settles it: the first after which no
    // position up to it is masked (the prompt's block settles after 1 step, the last after all).
    const settledAfter = cli.bd3lm.map(
      (_, i) =>
        1 +
        steps.findIndex((s) =>
          Array.from(s.canvas.subarray(PROMPT.length, PROMPT.length + i + 1)).every(
            (t) => t !== 259,
          ),
        ),
    );
    expect(arrivals).toEqual(settledAfter);
    expect(arrivals[0]).toBe(1);
    expect(arrivals[arrivals.length - 1]).toBe(steps.length);

    // A break after the first piece stops the sampler (no step after the consumer leaves).
    let seen = 0;
    for await (const _ of model.generate(PROMPT, {
      maxTokens: 12,
      temperature: 0,
      onCanvas: () => seen++,
    }))
      break;
    expect(seen).toBeLessThan(cli.lines.length);

    const ac = new AbortController();
    const aborted = async () => {
      for await (const _ of model.generate(PROMPT, {
        maxTokens: 12,
        signal: ac.signal,
        onCanvas: (p) => {
          if (p.step === 2) ac.abort(new Error('stopped by the test'));
        },
      }));
    };
    await expect(aborted()).rejects.toThrow('stopped by the test');

    await expect(
      model.generate(PROMPT, { diffusion: { remasking: 'random' } }).next(),
    ).rejects.toThrow(/diffusion\.remasking: LLaDA\/Dream sampler settings.*bd3lm/);
    await expect(model.generate(PROMPT, { topK: 5 }).next()).rejects.toThrow(
      /topK: an autoregressive sampling option.*bd3lm/,
    );
    await expect(model.generate(PROMPT, { diffusion: { blockLength: 6 } }).next()).rejects.toThrow(
      /diffusion\.blockLength \(6\) must be a multiple of the model's attention block 4/,
    );
    model.dispose();
  });

  it('samples a LLaDA bundle with its masked-diffusion sampler', async () => {
    const model = await loadModel(`${served.llada!.url}bundle/`, { gpu: await testGpu() });
    const ids: number[] = [];
    let steps = 0;
    for await (const _ of model.generate(PROMPT, {
      maxTokens: 8,
      temperature: 0,
      ignoreEos: true,
      onToken: (id) => ids.push(id),
      onCanvas: () => steps++,
    }));
    expect(ids).toEqual(cli.llada);
    expect(steps).toBe(8);
    await expect(model.generate(PROMPT, { diffusion: { sampler: 'ddpm' } }).next()).rejects.toThrow(
      /diffusion\.sampler: block-diffusion \(bd3lm\) settings/,
    );
    model.dispose();
  });
});
