/**
 * Where a bundle may be written, and what may be removed to get there. A compile's -o path is
 * written when it is absent or an empty folder and replaced when it is a strata bundle; anything
 * else (a folder of the user's files, a regular file, a symlink) is refused unless forced, and
 * the compile's own inputs are never replaced, forced or not. Also sweeps the temporary and
 * set-aside siblings that a killed compile leaves next to the target.
 */
import { lstatSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, parse, relative, resolve, sep } from 'node:path';
import { BUNDLE_FORMAT } from './manifest.ts';

export class BundleTargetError extends Error {
  override name = 'BundleTargetError';
}

export interface BundleTargetOptions {
  /** Replace what is at the target even when it is not a strata bundle. */
  force?: boolean;
  /** Files and folders the compile reads (spec, weights, HF folder): never replaced. */
  inputs?: readonly string[];
}

/** What is at a target path, as far as replacing it is concerned. */
export type TargetKind =
  | { kind: 'absent' }
  | { kind: 'empty-folder' }
  | { kind: 'bundle' }
  | { kind: 'other'; what: string };

/** Entries a bundle folder holds at its top level; a folder with only these is one we wrote. */
const BUNDLE_ENTRIES = new Set(['manifest.json', 'shaders', 'weights.safetensors']);

function manifestFormat(dir: string): unknown {
  try {
    const m: unknown = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    return typeof m === 'object' && m !== null ? (m as { format?: unknown }).format : undefined;
  } catch {
    return undefined;
  }
}

export function classifyTarget(path: string): TargetKind {
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw e;
  }
  if (st.isSymbolicLink()) return { kind: 'other', what: 'a symbolic link' };
  if (st.isFile()) return { kind: 'other', what: `a regular file (${st.size} bytes)` };
  if (!st.isDirectory()) return { kind: 'other', what: 'not a regular file or folder' };
  const entries = readdirSync(path);
  if (entries.length === 0) return { kind: 'empty-folder' };
  if (!entries.includes('manifest.json'))
    return { kind: 'other', what: `a folder of ${entries.length} entries with no manifest.json` };
  if (manifestFormat(path) !== BUNDLE_FORMAT)
    return { kind: 'other', what: `a folder whose manifest.json is not a ${BUNDLE_FORMAT}` };
  return { kind: 'bundle' };
}

/** The real path of p, or of its nearest existing ancestor with the rest appended. */
export function realPathOf(p: string): string {
  const abs = resolve(p);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(realPathOf(parent), basename(abs));
  }
}

/** Whether `inner` is `outer` or lies inside it (both real, absolute paths). */
function within(inner: string, outer: string): boolean {
  const rel = relative(outer, inner);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

function overlaps(a: string, b: string): boolean {
  return within(a, b) || within(b, a);
}

/** The input that replacing `path` would touch (the same, inside it, or containing it). */
function inputAt(path: string, inputs: readonly string[]): string | undefined {
  // Both where the name itself lives and (for a symlink) what it points to.
  const here = [join(realPathOf(dirname(path)), basename(path)), realPathOf(path)];
  return inputs.find((i) => {
    const real = realPathOf(i);
    return here.some((h) => overlaps(h, real));
  });
}

/** Why `real` is a folder no bundle replaces, even forced: a typo away from losing everything. */
function protectedPlace(real: string): string | undefined {
  if (real === parse(real).root) return 'the root of the file system';
  if (real === realPathOf(homedir())) return 'your home folder';
  const cwd = realPathOf(process.cwd());
  if (within(cwd, real)) return 'the current folder or one holding it';
  return undefined;
}

/** Throws a BundleTargetError naming the path and the reason when a bundle may not go there. */
export function checkBundleTarget(path: string, opts: BundleTargetOptions = {}): TargetKind {
  const target = classifyTarget(path);
  if (target.kind === 'absent') return target;
  const place = target.kind === 'other' ? protectedPlace(realPathOf(path)) : undefined;
  if (place !== undefined)
    throw new BundleTargetError(
      `${path}: refusing to write the bundle there: it is ${place} (not even with --force)`,
    );
  const input = inputAt(path, opts.inputs ?? []);
  if (input !== undefined)
    throw new BundleTargetError(
      `${path}: refusing to write the bundle there: it is, holds or lies inside this compile's input ${input} (not even with --force)`,
    );
  if (target.kind === 'other' && !opts.force)
    throw new BundleTargetError(
      `${path}: refusing to replace it: it is ${target.what}, not a strata bundle; ` +
        `choose another -o, or pass --force to replace it`,
    );
  return target;
}

/** Names of the siblings writeBundle makes next to `outDir`: `.NAME.tmp-PID`, `NAME.old-PID`. */
export function tempSibling(outDir: string, pid = process.pid): string {
  return join(dirname(outDir), `.${basename(outDir)}.tmp-${pid}`);
}
export function oldSibling(outDir: string, pid = process.pid): string {
  return join(dirname(outDir), `${basename(outDir)}.old-${pid}`);
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return false; // our own leftovers: this process is not writing them now
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else; it may be compiling right now.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A plain folder holding nothing but what a bundle holds: safe to remove as our own leftover. */
function looksLikeOurs(path: string): boolean {
  try {
    if (!lstatSync(path).isDirectory()) return false;
    return readdirSync(path).every((e) => BUNDLE_ENTRIES.has(e));
  } catch {
    return false;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Removes `.NAME.tmp-PID` and `NAME.old-PID` siblings of outDir whose process is gone, when they
 * hold only bundle files (anything else there is left alone). Returns the paths removed.
 */
export function cleanStaleSiblings(outDir: string, inputs: readonly string[] = []): string[] {
  const dir = dirname(outDir);
  const name = escapeRegExp(basename(outDir));
  const pattern = new RegExp(`^(?:\\.${name}\\.tmp|${name}\\.old)-(\\d+)$`);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const e of entries.sort()) {
    const m = pattern.exec(e);
    if (!m) continue;
    const path = join(dir, e);
    if (isAlive(Number(m[1])) || !looksLikeOurs(path) || inputAt(path, inputs) !== undefined)
      continue;
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}

/**
 * The rule for single files a command writes (`import -o spec.strata` and its `.weights.json`):
 * an absent path is written; an existing one only with `force`, and never when it is one of the
 * command's inputs (a typo such as `import DIR -o DIR/config.json`), forced or not.
 */
export function checkFileTarget(path: string, opts: BundleTargetOptions = {}): void {
  const target = classifyTarget(path);
  if (target.kind === 'absent') return;
  const input = inputAt(path, opts.inputs ?? []);
  if (input !== undefined)
    throw new BundleTargetError(
      `${path}: refusing to write there: it is, holds or lies inside this command's input ${input} (not even with --force)`,
    );
  const isFile = target.kind === 'other' && target.what.startsWith('a regular file');
  if (isFile && opts.force) return;
  const what = target.kind === 'other' ? target.what : 'a folder';
  throw new BundleTargetError(
    `${path}: refusing to replace it: it is ${what}; choose another -o` +
      (isFile ? ', or pass --force to replace it' : ''),
  );
}
