/**
 * What a first hour with the CLI met: --version, `strata help CMD`, did-you-mean for unknown
 * commands and flags, `check` on a Hugging Face config pointing to `import`, `import --name`,
 * and a --weights file that does not exist refused by every command that takes one.
 */
import { describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './run-cli.ts';

describe('a CLI a newcomer can trust', () => {
  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await cli(flag);
      expect(r.code).toBe(0);
      expect(r.out).toBe(`strata ${version}\n`);
    }
  });

  it('strata help CMD prints that command’s help, as CMD --help does', async () => {
    const viaHelp = await cli('help', 'run');
    const viaFlag = await cli('run', '--help');
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.out).toBe(viaFlag.out);
    expect(viaHelp.out).toMatch(/usage: strata run/);
    const typo = await cli('help', 'complie');
    expect(typo.code).toBe(2);
    expect(typo.err).toMatch(/unknown command 'complie', did you mean 'compile'\?/);
  });

  it('an unknown command or flag gets a did-you-mean', async () => {
    const cmd = await cli('inspcet', 'specs/tiny-llama.strata');
    expect(cmd.code).toBe(2);
    expect(cmd.err).toMatch(/unknown command 'inspcet', did you mean 'inspect'\?/);
    const flag = await cli('run', 'specs/tiny-llama.strata', '--promt', 'hi');
    expect(flag.code).toBe(1);
    expect(flag.err).toMatch(/strata run: unknown option '--promt', did you mean '--prompt'\?/);
    expect(flag.err).toMatch(/strata help run/);
    const check = await cli('check', 'specs/tiny-llama.strata', '--jsno');
    expect(check.err).toMatch(/unknown option '--jsno', did you mean '--json'\?/);
    const far = await cli('compile', 'specs/tiny-llama.strata', '--zzzzzz');
    expect(far.err).toMatch(/unknown option '--zzzzzz'\n/);
  });

  it('check on a Hugging Face folder or config.json points to import', async () => {
    for (const arg of ['test/fixtures/hf/llama', 'test/fixtures/hf/llama/config.json']) {
      const r = await cli('check', arg);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        new RegExp(`${arg} is a Hugging Face config.*run 'strata import ${arg}'`),
      );
    }
  });

  it('import --name names the model (default: the folder)', async () => {
    const dflt = await cli('import', 'test/fixtures/hf/llama');
    expect(dflt.out).toMatch(/^model "llama"/m);
    const named = await cli('import', 'test/fixtures/hf/llama', '--name', 'tiny-llama');
    expect(named.code, named.err).toBe(0);
    expect(named.out).toMatch(/^model "tiny-llama"/m);
    expect((await cli('import', 'test/fixtures/hf/llama', '--name', ' ')).err).toMatch(
      /--name must not be empty/,
    );
  });

  it('inspect reads a bare config.json: no weights needed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-cfg-'));
    try {
      cpSync('test/fixtures/hf/llama/config.json', join(dir, 'config.json'));
      const r = await cli('inspect', join(dir, 'config.json'));
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/107K parameters \(106,816\)/);
      // No --target: the nominal target, and no GPU (a WebGPU adapter is never asked for).
      expect(r.out).toMatch(/^target nominal: no GPU opened/);
      expect(r.out).toMatch(/FLOPs per decoded token: \d+(\.\d+)? kFLOP/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a --weights file that does not exist is an error for every command', async () => {
    for (const cmd of [
      ['compile', 'specs/tiny-llama.strata', '-o', '/nonexistent/out'],
      ['run', 'specs/tiny-llama.strata'],
      ['inspect', 'specs/tiny-llama.strata', '--target', 'baseline'],
    ]) {
      const r = await cli(...cmd, '--weights', 'no/such.safetensors');
      expect(r.code, cmd[0]).toBe(1);
      expect(r.err, cmd[0]).toMatch(/--weights: no such file: no\/such\.safetensors/);
    }
    // A checkpoint brings its own weights: --weights beside it is refused, not ignored.
    const r = await cli('inspect', 'test/fixtures/hf/llama', '--weights', 'package.json');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/--weights goes with a spec; test\/fixtures\/hf\/llama brings its own/);
  });

  it('compile and run read a checkpoint through the weight map that import -o wrote', async () => {
    // gpt_oss: fused gate_up experts (interleaved columns), reshaped sinks: slices and shapes.
    const dir = mkdtempSync(join(tmpdir(), 'strata-map-'));
    try {
      const spec = join(dir, 'gpt_oss.strata');
      const imp = await cli('import', 'test/fixtures/hf/gpt_oss', '-o', spec);
      expect(imp.code, imp.err).toBe(0);
      const ids = ['--prompt-ids', '1,2,3,4', '--max-tokens', '3', '--target', 'baseline'];
      const viaMap = await cli(
        'run',
        spec,
        '--weights',
        'test/fixtures/hf/gpt_oss',
        ...ids,
        '--dump-logits',
        join(dir, 'map.safetensors'),
      );
      expect(viaMap.code, viaMap.err).toBe(0);
      const direct = await cli(
        'run',
        'test/fixtures/hf/gpt_oss',
        ...ids,
        '--dump-logits',
        join(dir, 'hf.safetensors'),
      );
      expect(direct.code, direct.err).toBe(0);
      // The same model and weights compile to the same kernels: the logits are equal bit for bit.
      expect(
        readFileSync(join(dir, 'map.safetensors')).equals(
          readFileSync(join(dir, 'hf.safetensors')),
        ),
      ).toBe(true);
      // A map entry that names a tensor the checkpoint lacks is an error naming both.
      const map = JSON.parse(readFileSync(`${spec}.weights.json`, 'utf8')) as Record<
        string,
        unknown
      >;
      map['model.embed_tokens.weight'] = 'model.no_such_tensor';
      writeFileSync(`${spec}.weights.json`, JSON.stringify(map));
      const bad = await cli(
        'compile',
        spec,
        '--weights',
        'test/fixtures/hf/gpt_oss',
        '-o',
        join(dir, 'b'),
      );
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(
        /missing tensor 'model\.no_such_tensor' \(strata 'model\.embed_tokens\.weight'\)/,
      );
      expect(bad.err).toMatch(/names from .*gpt_oss\.strata\.weights\.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
