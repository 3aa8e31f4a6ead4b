/** `strata run` / `inspect` on a block-diffusion (bd3lm) spec: the run against the reference, flag errors. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../cli/run-cli.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { loadSpec } from '../../src/spec/load.ts';
import type { BlockDiffusionSpec } from '../../src/spec/model.ts';
import { compileModel } from '../../codegen/compile.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { blockDiffusionSample } from '../../src/ops/block-diffusion.ts';
import { BASELINE_CAPS } from '../../src/target.ts';

const SPEC = 'specs/tiny-bd3lm.strata';
const dir = mkdtempSync(join(tmpdir(), 'strata-bd3lm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('strata run on a block-diffusion model', () => {
  let hostTokens: number[] = [];
  it('generates the reference tokens with --gen-length --block-length --steps', async () => {
    const file = join(dir, 'dump.safetensors');
    const args = ['--prompt-ids', '5,17,3', '--seed', '2', '--temperature', '0.7'];
    const flags = ['--gen-length', '9', '--block-length', '8', '--steps', '8'];
    const r = await cli('run', SPEC, ...args, ...flags, '--dump-logits', file);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/9 steps, 9 forwards/);
    const dump = await openSafetensors(file);
    const tokens = Array.from(await dump.readTensorI32('decode_tokens'));
    await dump.close();

    const model = loadSpec(SPEC);
    const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 12, capacity: 12 });
    const pre = await Interpreter.create(c.graphs.prefill, randomWeights(model, 2));
    const d = model.diffusion as BlockDiffusionSpec;
    const want = await blockDiffusionSample(
      async (canvas, _span, rows) => {
        const all = pre.step(canvas, 0, canvas.length, pre.newState()).logits;
        return Float32Array.from(
          rows.flatMap((p) => [...all.subarray(p * model.vocab, (p + 1) * model.vocab)]),
        );
      },
      [5, 17, 3],
      model.vocab,
      { ...d, genLength: 9, blockLength: 8, steps: 8, temperature: 0.7, seed: 2 },
    );
    expect(tokens).toEqual([...want.slice(3)]);
    hostTokens = tokens;
  });

  it('--pick gpu draws on the device: the same tokens, and no logits to dump', async () => {
    const args = ['--prompt-ids', '5,17,3', '--seed', '2', '--temperature', '0.7', '--ids'];
    const flags = ['--gen-length', '9', '--block-length', '8', '--steps', '8'];
    const gpu = await cli('run', SPEC, ...args, ...flags, '--pick', 'gpu');
    expect(gpu.code, gpu.err).toBe(0);
    // The first test's tokens (the dump of the host-drawn run, equal to the reference there).
    expect(gpu.out.trim().split('\n').at(-1)).toBe(hostTokens.join(' '));
    const file = join(dir, 'no.safetensors');
    expect((await cli('run', SPEC, ...args, '--pick', 'gpu', '--dump-logits', file)).err).toMatch(
      /--pick gpu reads no logits back, but --dump-logits writes them/,
    );
    expect((await cli('run', SPEC, ...args, '--pick', 'cpu')).err).toMatch(
      /--pick must be one of host, gpu, got 'cpu'/,
    );
  });

  it('shows the canvas a line per step when piped', async () => {
    const r = await cli('run', SPEC, '--prompt-ids', '1,2', '--ids', '--gen-length', '6');
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines.length).toBe(7);
    expect(lines[0]).toMatch(
      /^step 1 \(block 0\): (\d+ _ _ _ _ _|_ \d+ _ _ _ _|_ _ \d+ _ _ _|_ _ _ _ \d+ _|_ _ _ _ _ \d+)$/,
    );
    expect(lines[6]).toMatch(/^(\d+ ){5}\d+$/);
  });

  it('refuses bad settings naming the flag and the allowed range', async () => {
    const run = (...a: string[]) => cli('run', SPEC, '--prompt-ids', '1', ...a);
    expect((await run('--block-length', '6')).err).toMatch(
      /--block-length \(6\) must be a multiple of the model's attention block 4 .*allowed: 4, 8/,
    );
    expect((await run('--block-length', '8', '--steps', '5')).err).toMatch(
      /--steps \(5\) is below --block-length \(8\).*allowed: at least 8, or sampler ddpm/,
    );
    expect((await run('--steps', '0')).err).toMatch(/--steps must be an integer >= 1/);
    expect((await run('--sampler', 'euler')).err).toMatch(
      /--sampler must be one of first_hitting, ddpm/,
    );
    expect((await run('--nucleus-p', '0')).err).toMatch(/--nucleus-p must lie in \(0, 1\]/);
    expect((await run('--temperature', 'hot')).err).toMatch(/--temperature must be a number/);
    expect((await run('--remasking', 'random')).err).toMatch(
      /--remasking: LLaDA sampler options, but the model is a block-diffusion model/,
    );
    expect((await run('--max-tokens', '3')).err).toMatch(/--max-tokens: autoregressive/);
    expect((await cli('run', 'specs/tiny-llada.strata', '--sampler', 'ddpm')).err).toMatch(
      /--sampler: block-diffusion \(bd3lm\) sampler options, but the model is a LLaDA/,
    );
  });

  it('inspect reports the cost per generated token beside LLaDA and autoregressive', async () => {
    const r = await cli('inspect', SPEC, '--prompt-length', '5', '--sampler', 'ddpm');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/diffusion bd3lm: mask id 259/);
    expect(r.out).toMatch(/schedule: gen length 16, blocks of 4, ddpm .* forwards over \d+ rows/);
    expect(r.out).toMatch(/LLaDA's sampler, same weights .*: 16 forwards over 336 rows/);
    expect(r.out).toMatch(/autoregressive, same weights: .*x the FLOPs/);
    // First hitting, blocks [4, 8) … [20, 21): a forward a token; a block's first one also runs
    // the block before it (the prompt's [0, 4) at the first): 8 + 2·4 + 3·(8 + 3·4) + 5 rows.
    const fh = await cli('inspect', SPEC, '--prompt-length', '5');
    expect(fh.out).toMatch(/first_hitting \(a step a token\), prompt 5: 16 forwards over 81 rows/);
  });
});
