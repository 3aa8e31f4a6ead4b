/**
 * The regression corpus: test/fuzz/corpus/<kind>/<name>.{strata,yaml,json}, each with a
 * <name>.reason file holding one line: the signature it reproduced (or, for the hand-written
 * ones, what was wrong), then ' | ' and the detail.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Found } from './drive.ts';
import { EXTENSIONS, INPUT_KINDS, type FuzzInput, type InputKind } from './types.ts';

export const CORPUS_DIR = fileURLToPath(new URL('../../test/fuzz/corpus/', import.meta.url));

export interface CorpusEntry {
  file: string;
  input: FuzzInput;
  reason: string;
}

export function readCorpus(dir = CORPUS_DIR): CorpusEntry[] {
  const out: CorpusEntry[] = [];
  for (const kind of INPUT_KINDS) {
    const sub = join(dir, kind);
    if (!existsSync(sub)) continue;
    for (const f of readdirSync(sub).sort()) {
      if (!f.endsWith(`.${EXTENSIONS[kind]}`)) continue;
      const base = f.slice(0, -EXTENSIONS[kind].length - 1);
      const reasonFile = join(sub, `${base}.reason`);
      out.push({
        file: `${kind}/${f}`,
        // Binary-exact: reproducers may hinge on a lone CR or a BOM.
        input: { kind, text: readFileSync(join(sub, f), 'utf8'), origin: `corpus:${kind}/${f}` },
        reason: existsSync(reasonFile) ? readFileSync(reasonFile, 'utf8').trim() : '',
      });
    }
  }
  return out;
}

function slug(signature: string): string {
  const hash = createHash('sha256').update(signature).digest('hex').slice(0, 8);
  const words = signature
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60)
    .replace(/-$/, '');
  return `${words}-${hash}`;
}

/** Writes a newly found failure unless the corpus already reproduces its signature. */
export function addToCorpus(found: Found, dir = CORPUS_DIR): string | null {
  const have = readCorpus(dir).some((e) => e.reason.split(' | ')[0] === found.signature);
  if (have) return null;
  const kind: InputKind = found.input.kind;
  const name = slug(found.signature);
  mkdirSync(join(dir, kind), { recursive: true });
  const file = join(dir, kind, `${name}.${EXTENSIONS[kind]}`);
  writeFileSync(file, found.input.text);
  const detail = `${found.reason.replace(/\s+/g, ' ').slice(0, 200)} (fuzz seed ${found.seed}, from ${found.input.origin})`;
  writeFileSync(join(dir, kind, `${name}.reason`), `${found.signature} | ${detail}\n`);
  return `${kind}/${name}.${EXTENSIONS[kind]}`;
}
