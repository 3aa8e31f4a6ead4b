/**
 * `strata compile -o`: what it writes over and what it refuses (user folders and files, its own
 * inputs), the leftovers of killed compiles, byte-identical output, and strict numeric options.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { cli } from './run-cli.ts';

const SPEC = 'specs/tiny-llama.strata';
const SMALL = ['--target', 'baseline', '--max-t', '8', '--capacity', '32'];
/** A PID that no process has: past the kernel's largest pid_max (4194304). */
const DEAD_PID = 4194305 + 23;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-out-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function compile(out: string, ...more: string[]) {
  return cli('compile', SPEC, '-o', out, ...SMALL, ...more);
}

/** Every file under `root`, by relative path, with its bytes. */
function files(root: string): Map<string, Buffer> {
  const all = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else all.set(relative(root, p), readFileSync(p));
    }
  };
  walk(root);
  return all;
}

describe('compile -o refuses what is not a bundle', () => {
  it("keeps a folder of the user's files, naming it and --force", async () => {
    const out = join(dir, 'docs');
    mkdirSync(out);
    writeFileSync(join(out, 'thesis.tex'), 'years of work');
    const r = await compile(out);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${out}: refusing to replace it`);
    expect(r.err).toContain('--force');
    expect(readFileSync(join(out, 'thesis.tex'), 'utf8')).toBe('years of work');
    expect(readdirSync(dir).filter((f) => f.includes('tmp'))).toEqual([]);
  });

  it('keeps a regular file', async () => {
    const out = join(dir, 'file.bin');
    writeFileSync(out, 'data');
    const r = await compile(out);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/file\.bin: refusing to replace it: it is a regular file/);
    expect(readFileSync(out, 'utf8')).toBe('data');
  });

  it('replaces a folder with --force, and an existing bundle without it', async () => {
    const out = join(dir, 'forced');
    mkdirSync(out);
    writeFileSync(join(out, 'old.txt'), 'x');
    expect((await compile(out, '--force')).code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['manifest.json', 'shaders', 'weights.safetensors']);
    const again = await compile(out);
    expect(again.code, again.err).toBe(0);
    expect(readdirSync(dir).filter((f) => f.startsWith('.forced') || f.includes('old-'))).toEqual(
      [],
    );
  });

  it('never overwrites the spec it compiles, even with --force', async () => {
    const spec = join(dir, 'x.strata');
    cpSync(SPEC, spec);
    const text = readFileSync(spec, 'utf8');
    const r = await cli('compile', spec, '-o', spec, ...SMALL, '--force');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/x\.strata: refusing to write the bundle there.*input/);
    expect(readFileSync(spec, 'utf8')).toBe(text);
    // Nor the folder that holds it.
    const up = await cli('compile', spec, '-o', dir, ...SMALL, '--force');
    expect(up.code).toBe(1);
    expect(existsSync(spec)).toBe(true);
  });

  it('never overwrites the HuggingFace folder it compiles, even with --force', async () => {
    const hf = join(dir, 'hf-llama');
    cpSync('test/fixtures/hf/llama', hf, { recursive: true });
    const before = files(hf);
    for (const out of [hf, join(hf, 'config.json')]) {
      const r = await cli('compile', '--hf', hf, '-o', out, ...SMALL, '--force');
      expect(r.code, out).toBe(1);
      expect(r.err).toContain('refusing to write the bundle there');
    }
    expect(files(hf)).toEqual(before);
  });
});

describe('compile cleans up after killed compiles', () => {
  it('removes stale .NAME.tmp-PID and NAME.old-PID siblings of the target', async () => {
    const out = join(dir, 'swept');
    const tmp = join(dir, `.swept.tmp-${DEAD_PID}`);
    mkdirSync(join(tmp, 'shaders'), { recursive: true });
    writeFileSync(join(tmp, 'weights.safetensors'), 'half written');
    const old = join(dir, `swept.old-${DEAD_PID}`);
    mkdirSync(join(old, 'shaders'), { recursive: true });
    writeFileSync(join(old, 'manifest.json'), '{"format":"strata-bundle"}');
    const r = await compile(out);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(tmp)).toBe(false);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(join(out, 'manifest.json'))).toBe(true);
  });
});

describe('compile output is deterministic', () => {
  it('writes byte-identical bundles for the same spec and options', async () => {
    const a = join(dir, 'det-a');
    const b = join(dir, 'det-b');
    expect((await compile(a, '--seed', '5')).code).toBe(0);
    expect((await compile(b, '--seed', '5')).code).toBe(0);
    const fa = files(a);
    const fb = files(b);
    expect([...fb.keys()]).toEqual([...fa.keys()]);
    for (const [name, bytes] of fa) expect(bytes.equals(fb.get(name)!), name).toBe(true);
  });
});

describe('numeric options', () => {
  it('accepts --seed 0, the documented default, and gives its bundle', async () => {
    const zero = join(dir, 'seed0');
    const r = await compile(zero, '--seed', '0');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('seed 0');
    const dflt = join(dir, 'seed-default');
    expect((await compile(dflt)).code).toBe(0);
    expect(readFileSync(join(zero, 'weights.safetensors'))).toEqual(
      readFileSync(join(dflt, 'weights.safetensors')),
    );
  });

  // Number() takes all of these; each once compiled with a value the user did not write.
  it.each([
    ['--max-t', '0x10'],
    ['--max-t', '1e3'],
    ['--capacity', ' 5'],
    ['--capacity', '+5'],
    ['--seed', '0x1'],
    ['--max-t', '99999999999999999999'],
  ])('rejects %s %j, naming the flag and the value', async (flag, value) => {
    const out = join(dir, `never${flag}${value.trim()}`);
    const r = await compile(out, `${flag}=${value}`);
    expect(r.code).toBe(1);
    expect(r.err).toContain(flag);
    expect(r.err).toContain(`'${value}'`);
    expect(existsSync(out)).toBe(false);
  });

  it('still rejects 0 for sizes, and negative or fractional values', async () => {
    for (const [flag, value] of [
      ['--capacity', '0'],
      ['--max-t', '0'],
      ['--seed', '-1'],
      ['--seed', '1.5'],
      ['--seed', ''],
    ]) {
      const r = await compile(join(dir, 'never'), `${flag}=${value}`);
      expect(r.code, `${flag} ${value}`).toBe(1);
      expect(r.err).toMatch(new RegExp(`${flag} must be .*'${value}'`));
    }
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });
});
