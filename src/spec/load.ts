/** Spec files to ModelIR, whatever their format: .strata, .yaml/.yml or .json. */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { SpecError } from '../../grammar/diagnostics.ts';
import { parseStrata } from '../../grammar/parse.ts';
import { parseDataSpec } from './load-data.ts';
import type { ModelIR } from './model.ts';
import { textSizeError } from './limits.ts';
import { resolveModel } from './resolve.ts';

export type SpecFormat = 'strata' | 'yaml' | 'json';

const FORMATS: Record<string, SpecFormat> = {
  '.strata': 'strata',
  '.yaml': 'yaml',
  '.yml': 'yaml',
  '.json': 'json',
};

/** The format a file name implies; null for an unknown extension. */
export function specFormat(fileName: string): SpecFormat | null {
  return FORMATS[extname(fileName).toLowerCase()] ?? null;
}

/**
 * Parses spec text. fileName picks the format by extension (anything else is read as .strata)
 * and names the file in error messages.
 */
export function parseSpec(text: string, fileName: string): ModelIR {
  const format = specFormat(fileName) ?? 'strata';
  const tooLong = textSizeError(text, fileName, format);
  if (tooLong) throw tooLong;
  if (format === 'strata') return resolveModel(parseStrata(text, fileName), text);
  return parseDataSpec(text, fileName, format);
}

/** Reads and parses a spec file; every problem, unreadable file included, is a SpecError. */
export function loadSpec(path: string): ModelIR {
  if (specFormat(path) === null) {
    throw new SpecError(
      `unknown spec format '${extname(path) || '(no extension)'}': use .strata, .yaml, .yml or .json`,
      path,
    );
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory'
          : (e as Error).message;
    throw new SpecError(`cannot read spec: ${why}`, path);
  }
  return parseSpec(text, path);
}
