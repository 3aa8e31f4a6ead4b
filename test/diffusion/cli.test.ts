/** `strata run` on a diffusion spec: the dump against the CPU reference, flag errors, display. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../cli/run-cli.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { loadSpec } from '../../src/spec/load.ts';
import type { DiffusionSpec } from '../../src/spec/model.ts';
import { compileModel } from '../../codegen/compile.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { diffusionGenerate } from '../../src/ops/diffusion.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError } from '../helpers/numeric.ts';

const SPEC = 'specs/tiny-llada.strata';
const dir = mkdtempSync(join(tmpdir(), 'strata-diffusion-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('strata run on a diffusion model', () => {
  it('dumps prompt_ids, the first canvas logits and the tokens, as the CPU reference has them', async () => {
    const file = join(dir, 'dump.safetensors');
    const args = ['--prompt-ids', '5,17,3', '--seed', '2', '--temperature', '0.5'];
    const r = await cli('run', SPEC, ...args, '--remasking', 'random', '--dump-logits', file);
    expect(r.code, r.err).toBe(0);
    const dump = await openSafetensors(file);
    const prompt = Array.from(await dump.readTensorI32('prompt_ids'));
    const logits = await dump.readTensorF32('canvas_logits');
    const tokens = Array.from(await dump.readTensorI32('decode_tokens'));
    await dump.close();
    expect(prompt).toEqual([5, 17, 3]);
    expect(tokens.length).toBe(16);

    const model = loadSpec(SPEC);
    const gpu = await testGpu();
    const c = compileModel(model, { caps: gpu.caps, maxT: 19, capacity: 19 });
    const pre = await Interpreter.create(c.graphs.prefill, randomWeights(model, 2));
    const forward = async (canvas: Uint32Array) =>
      pre.step(canvas, 0, canvas.length, pre.newState()).logits;
    const d = model.diffusion as DiffusionSpec;
    const canvas = Uint32Array.from([5, 17, 3, ...Array(16).fill(d.maskId)]);
    expect(logits.length).toBe(19 * model.vocab);
    expect(maxRelError(logits, await forward(canvas))).toBeLessThan(1e-4);
    const ref = await diffusionGenerate(forward, prompt, model.vocab, {
      ...d,
      remasking: 'random',
      temperature: 0.5,
      seed: 2,
    });
    expect(tokens).toEqual(Array.from(ref.slice(3)));
  });

  it('shows the canvas filling in, a line per step when piped', async () => {
    const r = await cli(
      'run',
      SPEC,
      '--prompt-ids',
      '1,2',
      '--ids',
      '--gen-length',
      '8',
      '--steps',
      '4',
    );
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines.length).toBe(5);
    expect(lines[0]).toMatch(/^step 1\/4: (\d+ ){2}(_ ){5}_$/);
    expect(lines[3]).not.toMatch(/_/);
  });

  it('runs Fast-dLLM settings with the GPU pick', async () => {
    const args = ['--prompt-ids', '1,2', '--ids', '--gen-length', '8', '--block-length', '4'];
    const r = await cli(
      'run',
      SPEC,
      ...args,
      '--threshold',
      '0.5',
      '--cache',
      'dual',
      '--pick',
      'gpu',
    );
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[lines.length - 1]).toMatch(/^(\d+ ){7}\d+$/);
  });

  it('refuses bad sampler flags naming the flag and the allowed range', async () => {
    const run = (...a: string[]) => cli('run', SPEC, '--prompt-ids', '1', ...a);
    expect((await run('--block-length', '5')).err).toMatch(
      /--block-length \(5\) must divide --gen-length \(16\).*allowed: a divisor of 16: 1, 2, 4, 8, 16/,
    );
    expect((await run('--steps', '3')).err).toMatch(
      /--steps \(3\) must be a multiple of the number of blocks 2 .*allowed: 2, 4/,
    );
    expect((await run('--remasking', 'lowest')).err).toMatch(
      /--remasking must be one of low_confidence, random/,
    );
    expect((await run('--gen-length', '0')).err).toMatch(/--gen-length must be an integer >= 1/);
    expect((await run('--max-tokens', '4')).err).toMatch(/--max-tokens: autoregressive/);
    expect((await run('--threshold', '0')).err).toMatch(
      /--threshold must lie in \(0, 1\] .*got '0'/,
    );
    expect((await run('--threshold', 'high')).err).toMatch(/--threshold must lie in .*got 'high'/);
    expect((await run('--cache', 'kv')).err).toMatch(
      /--cache must be one of none, prefix, dual, got 'kv'/,
    );
    expect((await run('--cfg-scale=-1')).err).toMatch(
      /--cfg-scale must be a number of at least 0, got -1/,
    );
    expect((await run('--cfg-scale', '1', '--cache', 'prefix')).err).toMatch(
      /--cfg-scale 1 with --cache prefix: .*allowed: --cache none/,
    );
    expect((await run('--cfg-scale', '1', '--pick', 'gpu')).err).toMatch(
      /--pick gpu with --cfg-scale 1: .*allowed: --pick host/,
    );
    expect((await run('--pick', 'cpu')).err).toMatch(/--pick must be one of host, gpu, got 'cpu'/);
    expect((await run('--pick', 'gpu', '--dump-logits', join(dir, 'x'))).err).toMatch(
      /--pick gpu reads no logits back/,
    );
    expect((await cli('run', 'specs/tiny-llama.strata', '--steps', '4')).err).toMatch(
      /--steps: diffusion sampler options, but .* is an autoregressive model/,
    );
    expect((await cli('run', 'specs/tiny-llama.strata', '--cache', 'dual')).err).toMatch(
      /--cache: diffusion sampler options, but .* is an autoregressive model/,
    );
  });
});
