/** Reading a HuggingFace config.json fixture the way the CLI does. */
import { readFileSync } from 'node:fs';
import { importHfConfig, type HfImport } from '../../src/import/hf.ts';
import { parsePythonJson } from '../../src/import/json.ts';

/** Imports the config.json at `file` (Python's JSON, Infinity and NaN included) as `source`. */
export function importConfigFile(file: string, source: string): HfImport {
  return importHfConfig(parsePythonJson(readFileSync(file, 'utf8'), file) as object, source);
}
