/**
 * The -o policy on its own (no compile): what may be written over, what is refused and why, and
 * which leftovers of killed compiles are swept.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkBundleTarget,
  checkFileTarget,
  classifyTarget,
  cleanStaleSiblings,
} from '../../codegen/bundle-target.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-target-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function fakeBundle(path: string, format = 'strata-bundle'): string {
  mkdirSync(join(path, 'shaders'), { recursive: true });
  writeFileSync(join(path, 'manifest.json'), JSON.stringify({ format }));
  writeFileSync(join(path, 'weights.safetensors'), '');
  return path;
}

/** A PID that no process has: past the kernel's pid_max (4194304 at most on Linux). */
const DEAD_PID = 4194305 + 17;

describe('classifyTarget / checkBundleTarget', () => {
  it('writes into an absent path or an empty folder, and replaces a bundle', () => {
    expect(checkBundleTarget(join(dir, 'new')).kind).toBe('absent');
    mkdirSync(join(dir, 'empty'));
    expect(checkBundleTarget(join(dir, 'empty')).kind).toBe('empty-folder');
    expect(checkBundleTarget(fakeBundle(join(dir, 'b'))).kind).toBe('bundle');
  });

  it('refuses a folder of other files, naming it and how to override', () => {
    const d = join(dir, 'photos');
    mkdirSync(d);
    writeFileSync(join(d, 'cat.jpg'), 'meow');
    expect(() => checkBundleTarget(d)).toThrow(
      new RegExp(`${d}: refusing to replace it: it is a folder of 1 entries.*--force`),
    );
    expect(checkBundleTarget(d, { force: true }).kind).toBe('other');
  });

  it('refuses a folder whose manifest.json is not a strata bundle', () => {
    const d = fakeBundle(join(dir, 'npm'), 'something-else');
    expect(() => checkBundleTarget(d)).toThrow(/manifest\.json is not a strata-bundle/);
  });

  it('refuses a regular file and a symlink', () => {
    const f = join(dir, 'notes.txt');
    writeFileSync(f, 'hello');
    expect(() => checkBundleTarget(f)).toThrow(/notes\.txt: refusing.*a regular file \(5 bytes\)/);
    const l = join(dir, 'link');
    symlinkSync(fakeBundle(join(dir, 'real')), l);
    expect(classifyTarget(l)).toEqual({ kind: 'other', what: 'a symbolic link' });
    expect(() => checkBundleTarget(l)).toThrow(/symbolic link/);
  });

  it("never replaces the compile's inputs, even with --force", () => {
    const spec = join(dir, 'x.strata');
    writeFileSync(spec, 'model x');
    const hf = join(dir, 'hf');
    mkdirSync(hf);
    writeFileSync(join(hf, 'config.json'), '{}');
    const opts = { force: true, inputs: [spec, hf] };
    // The input itself, a folder holding one, a path inside one, and a link to one.
    expect(() => checkBundleTarget(spec, opts)).toThrow(/x\.strata.*not even with --force/);
    expect(() => checkBundleTarget(hf, opts)).toThrow(/input .*hf/);
    expect(() => checkBundleTarget(dir, opts)).toThrow(/input/);
    expect(() => checkBundleTarget(join(hf, 'config.json'), opts)).toThrow(/input/);
    symlinkSync(hf, join(dir, 'hf-link'));
    expect(() => checkBundleTarget(join(dir, 'hf-link'), opts)).toThrow(/input/);
    // A new folder inside the HF folder replaces nothing.
    expect(checkBundleTarget(join(hf, 'bundle'), opts).kind).toBe('absent');
  });

  it('never replaces the current folder, one holding it, home or the root, even with --force', () => {
    for (const p of ['.', '..', homedir(), '/'])
      expect(() => checkBundleTarget(p, { force: true }), p).toThrow(/not even with --force/);
  });
});

describe('cleanStaleSiblings', () => {
  it('removes the leftovers of dead compiles and nothing else', () => {
    const out = join(dir, 'm.bundle');
    const deadTmp = join(dir, `.m.bundle.tmp-${DEAD_PID}`);
    mkdirSync(join(deadTmp, 'shaders'), { recursive: true });
    writeFileSync(join(deadTmp, 'weights.safetensors'), 'partial');
    const deadOld = fakeBundle(join(dir, `m.bundle.old-${DEAD_PID}`));
    // A live process's temp folder (our parent's), a leftover holding a user's file, a file
    // that only looks like a leftover, and another target's leftover: all kept.
    const live = fakeBundle(join(dir, `.m.bundle.tmp-${process.ppid}`));
    const mixed = fakeBundle(join(dir, `m.bundle.old-${DEAD_PID + 1}`));
    writeFileSync(join(mixed, 'notes.txt'), 'mine');
    writeFileSync(join(dir, `m.bundle.old-${DEAD_PID + 2}`), 'a file');
    const other = fakeBundle(join(dir, `.other.tmp-${DEAD_PID}`));

    expect(cleanStaleSiblings(out).sort()).toEqual([deadTmp, deadOld].sort());
    expect(existsSync(deadTmp) || existsSync(deadOld)).toBe(false);
    for (const kept of [live, mixed, other]) expect(existsSync(kept)).toBe(true);
    expect(readdirSync(dir)).toHaveLength(4);
  });
});

describe('checkFileTarget (import -o)', () => {
  it('writes an absent file, replaces an existing one only when forced', () => {
    const out = join(dir, 'x.strata');
    expect(() => checkFileTarget(out)).not.toThrow();
    writeFileSync(out, 'mine');
    expect(() => checkFileTarget(out)).toThrow(
      /refusing to replace it: it is a regular file \(4 bytes\).*--force/,
    );
    expect(() => checkFileTarget(out, { force: true })).not.toThrow();
  });

  it('never replaces a folder or an input, forced or not', () => {
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'keep'), '');
    expect(() => checkFileTarget(join(dir, 'sub'), { force: true })).toThrow(
      /a folder of 1 entries/,
    );
    const config = join(dir, 'config.json');
    writeFileSync(config, '{}');
    expect(() => checkFileTarget(config, { force: true, inputs: [config] })).toThrow(
      /this command's input .*not even with --force/,
    );
  });
});
