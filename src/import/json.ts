/**
 * JSON as Python writes it. `json.dump` emits bare `NaN`, `Infinity` and `-Infinity`
 * (Nemotron-H's published config has `"time_step_limit": [0.0, Infinity]`), which
 * JSON.parse rejects; this reads them as the numbers they mean.
 */

import { SpecError, spanAt } from '../../grammar/diagnostics.ts';
import { JsonSyntaxError, keyRange, scanJson, type JsonNode } from '../spec/json-scan.ts';
import { MAX_NESTING, textSizeError } from '../spec/limits.ts';
import type { ConfigOrigin } from './config-reader.ts';

const SENTINEL = '\u0000strata-nonfinite:';
const LITERALS: ReadonlyArray<[string, number]> = [
  ['-Infinity', -Infinity],
  ['Infinity', Infinity],
  ['NaN', NaN],
];

/** The key tree of a config text, or the located SpecError of its first syntax error. */
function scanConfig(text: string, source: string): JsonNode {
  const tooLong = textSizeError(text, source, 'config');
  if (tooLong) throw tooLong;
  try {
    return scanJson(text, MAX_NESTING, true);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    const span = spanAt(source, text, e.offset, e.length);
    throw new SpecError(`not valid JSON (${e.message})`, span, text);
  }
}

/** A config.json's value and where its keys are written, for located errors. */
export function readConfigJson(
  text: string,
  file: string,
): { config: unknown; origin: ConfigOrigin } {
  const root = scanConfig(text, file);
  const config = parsePythonJson(text, file);
  // A key that is not written (a required one, say) is blamed on its nearest written parent,
  // else on the config object as a whole.
  const locate = (key: string) => {
    const [start, end] = keyRange(root, key) ?? [root.start, root.start + 1];
    return spanAt(file, text, start, end - start);
  };
  return { config, origin: { file, text, locate } };
}

export function parsePythonJson(text: string, source: string): unknown {
  // Syntax (and nesting depth) first, so an error is a located SpecError on any Node version.
  scanConfig(text, source);
  let out = '';
  let inString = false;
  let escaped = false;
  // A byte-order mark is whitespace to the scanner (and to Python's json with utf-8-sig) but a
  // syntax error to JSON.parse: skip it.
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let last = i;
  while (i < text.length) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      i++;
      continue;
    }
    if (c === '"') {
      inString = true;
      i++;
      continue;
    }
    const hit = LITERALS.find(([lit]) => text.startsWith(lit, i));
    if (hit) {
      out += text.slice(last, i) + JSON.stringify(SENTINEL + hit[0]);
      i += hit[0].length;
      last = i;
      continue;
    }
    i++;
  }
  out += text.slice(last);
  try {
    return JSON.parse(out, (_key, value: unknown) => {
      if (typeof value === 'string' && value.startsWith(SENTINEL)) {
        const lit = value.slice(SENTINEL.length);
        return LITERALS.find(([l]) => l === lit)?.[1];
      }
      // transformers 5 writes non-finite floats as {"__float__": "Infinity"}.
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        const keys = Object.keys(value);
        const lit = (value as Record<string, unknown>).__float__;
        const hit = LITERALS.find(([l]) => l === lit);
        if (keys.length === 1 && keys[0] === '__float__' && hit) return hit[1];
      }
      // -0 reads as 0, as in spec files: the two print alike.
      return value === 0 ? 0 : value;
    });
  } catch (e) {
    throw new SpecError(`not valid JSON (${(e as Error).message})`, source);
  }
}
