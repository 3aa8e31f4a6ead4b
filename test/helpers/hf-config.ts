/**
 * Reading the HF config fixtures the import tests share: parsed as transformers writes them
 * (NaN and Infinity allowed), a fresh object on every call so a test may edit its copy.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePythonJson } from '../../src/import/json.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');

/** A config under test/fixtures, `path` relative to it (e.g. 'configs/gpt-oss-20b.json'). */
export function fixtureConfig(path: string): Record<string, unknown> {
  return parsePythonJson(readFileSync(join(FIXTURES, path), 'utf8'), path) as Record<
    string,
    unknown
  >;
}

/** The tiny golden fixture's config: test/fixtures/hf/<type>/config.json. */
export function tinyConfig(type: string): Record<string, unknown> {
  return fixtureConfig(join('hf', type, 'config.json'));
}
