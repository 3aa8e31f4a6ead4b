/**
 * The files a manifest names (shaders, weights, tokenizer) live inside the bundle folder: a
 * relative path without `..` whose real path, after symlinks, is still inside the folder's real
 * path. Anything else is refused, so a bundle cannot make strata read /etc/passwd.
 */
import { existsSync, realpathSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import { BundleError } from '../manifest-check.ts';

function shown(s: string): string {
  return JSON.stringify(s.length > 120 ? `${s.slice(0, 117)}...` : s);
}

export interface BundleFile {
  /** Where to read it: the real path, inside the bundle. */
  path: string;
  exists: boolean;
}

/**
 * Resolves `rel` (the manifest's `field`) inside the bundle whose real path is `realDir`.
 * `manifestPath` names the manifest in errors.
 */
export function bundleFile(
  realDir: string,
  rel: string,
  field: string,
  manifestPath: string,
): BundleFile {
  const refuse = (why: string) =>
    new BundleError(`${manifestPath}: ${field} is ${shown(rel)}, ${why}; refusing to read it`);
  if (rel.length === 0 || rel.includes('\0')) throw refuse('not a file name');
  if (isAbsolute(rel) || /^[A-Za-z]:/.test(rel) || rel.startsWith('\\'))
    throw refuse('an absolute path, but bundle files are relative to the bundle folder');
  if (rel.split(/[/\\]/).includes('..'))
    throw refuse("a path with '..', but bundle files stay inside the bundle folder");
  const lexical = join(realDir, rel);
  if (!existsSync(lexical)) return { path: lexical, exists: false };
  const real = realpathSync(lexical);
  const inside = relative(realDir, real);
  if (inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside))
    throw refuse(`a link to ${real}, outside the bundle folder ${realDir}`);
  return { path: real, exists: true };
}
