/**
 * Reading the HF config fixtures the import and spec tests share: parsed as transformers writes
 * them (NaN and Infinity allowed), a fresh object on every call so a test may edit its copy.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { importHfConfig, type HfImport } from '../../src/import/hf.ts';
import { parsePythonJson } from '../../src/import/json.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');

function readConfig(file: string, label: string): Record<string, unknown> {
  return parsePythonJson(readFileSync(file, 'utf8'), label) as Record<string, unknown>;
}

/** A config under test/fixtures, `path` relative to it (e.g. 'configs/gpt-oss-20b.json'). */
export function fixtureConfig(path: string): Record<string, unknown> {
  return readConfig(join(FIXTURES, path), path);
}

/** The tiny golden fixture's config: test/fixtures/hf/<type>/config.json. */
export function tinyConfig(type: string): Record<string, unknown> {
  return fixtureConfig(join('hf', type, 'config.json'));
}

/** Imports the config.json at `file` (a path from the project root) as `source`, as the CLI does. */
export function importConfigFile(file: string, source: string): HfImport {
  return importHfConfig(readConfig(file, file), source);
}

/** The message importHfConfig refuses `config` with (the test fails when it imports instead). */
export function importRefusal(config: Record<string, unknown>): string {
  try {
    importHfConfig(config, 'fixture');
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected the import to be refused');
}
