/**
 * The properties every input must satisfy, checked in-process (the sandbox adds the time
 * budget):
 *   1. nothing throws except a located user error: a SpecError whose span points where a reader
 *      counting CR, LF and CRLF as line breaks would look (DSL, YAML, JSON), or an importer Error
 *      naming config.json and the key (HF);
 *   2. (sandbox.ts) nothing takes over INPUT_BUDGET_MS;
 *   3. an accepted spec prints and re-parses to the same ModelIR, its JSON form loads back to the
 *      same ModelIR, and what `strata check` / `strata import` compute from it does not throw.
 */
import { fileURLToPath } from 'node:url';
import { SpecError } from '../../grammar/diagnostics.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { readConfigJson } from '../../src/import/json.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { deepEqual } from '../../src/spec/equal.ts';
import { MAX_LAYERS } from '../../src/spec/limits.ts';
import { assertModel, parseDataSpec } from '../../src/spec/load-data.ts';
import { parseSpec } from '../../src/spec/load.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { countParams } from '../../src/spec/params.ts';
import { printSpec } from '../../src/spec/print.ts';
import { layerTable } from '../../src/spec/table.ts';
import type { Failure, FuzzInput, InputKind, Outcome } from './types.ts';

/** Names every plain object inherits: a lookup keyed by user text must not find them. */
export const PROTO_NAMES: readonly string[] = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
  '__defineGetter__',
  '__lookupGetter__',
];

/** The file name each kind is parsed under; HF configs sit in a folder that names the model. */
export const HF_SOURCE = 'fuzz-model';
export const FILE_NAMES: Readonly<Record<InputKind, string>> = {
  dsl: 'fuzz.strata',
  yaml: 'fuzz.yaml',
  json: 'fuzz.json',
  hf: `${HF_SOURCE}/config.json`,
};

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/**
 * `fn (path:line)` of the innermost stack frame, repo-relative and without the column, so that
 * one bug gives one signature whatever input reaches it.
 */
function firstFrame(e: Error): string {
  const frame = (e.stack ?? '').split('\n').find((l) => /^\s+at /.test(l));
  if (!frame) return '(no stack)';
  const m = /^\s+at (?:(.*?) \()?(.*?)(?::(\d+))?(?::\d+)?\)?$/.exec(frame);
  if (!m) return frame.trim();
  const file = (m[2] ?? '').replace(/^file:\/\//, '').replace(REPO, '');
  return `${m[1] ?? '<anonymous>'} (${file}${m[3] ? `:${m[3]}` : ''})`;
}

/** Error class + first frame: how failures are deduplicated. */
export function errorSignature(stage: string, e: unknown): string {
  if (!(e instanceof Error)) return `${stage}: threw a non-Error ${typeof e}`;
  const overflow = /Maximum call stack/.test(e.message) ? ' (stack overflow)' : '';
  return `${stage}: ${e.constructor.name}${overflow} at ${firstFrame(e)}`;
}

/** A message with the input-specific parts (quoted text, numbers) blanked, for signatures. */
export function messageShape(message: string): string {
  return (
    message
      .split('\n')[0]!
      // JSON.parse quotes the input around the error: only its words identify the bug.
      .replace(/^(.*?invalid JSON: [A-Za-z ]*[A-Za-z])[^]*$/, '$1')
      .replace(/, got [^]*$/, ', got …')
      .replace(/^[A-Za-z_][\w.[\]]*: /, '<path>: ')
      .replace(/'[^']*'/g, "'…'")
      .replace(/"[^"]*"/g, '"…"')
      .replace(/-?\d+(\.\d+)?(e[-+]?\d+)?/gi, 'N')
      .replace(/ \([^]*$/, '')
      .slice(0, 70)
  );
}

function fail(signature: string, reason: string): Failure {
  return { status: 'failure', signature, reason: reason.split('\n')[0]!.slice(0, 300), ms: 0 };
}

function thrown(stage: string, e: unknown): Failure {
  const message = e instanceof Error ? e.message : String(e);
  return fail(errorSignature(stage, e), message);
}

/** Line and column of offset when CR, LF and CRLF each end a line, as editors count them. */
export function lineColOf(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) {
      line++;
      start = i + 1;
    }
  }
  return { line, col: offset - start + 1 };
}

/** Property 1 for spec text: a SpecError located in this file, at the right line and column. */
function checkSpecError(e: unknown, stage: string, file: string, text: string): Failure | null {
  if (!(e instanceof SpecError)) return thrown(stage, e);
  const span = e.span;
  if (span === null) {
    // Only a file-as-a-whole problem may go without a position.
    if (/the spec is empty/.test(e.reason)) return null;
    return fail(`${stage}: SpecError without line:col: ${messageShape(e.reason)}`, e.message);
  }
  if (span.file !== file) return fail(`${stage}: SpecError names another file`, e.message);
  if (!(span.offset >= 0 && span.offset <= text.length)) {
    return fail(`${stage}: SpecError offset outside the text`, e.message);
  }
  const want = lineColOf(text, span.offset);
  if (want.line !== span.line || want.col !== span.col) {
    return fail(
      `${stage}: SpecError line:col is not where its offset is (CR line endings?)`,
      `reported ${span.line}:${span.col}, offset ${span.offset} is at ${want.line}:${want.col}: ${e.message}`,
    );
  }
  if (!e.message.startsWith(`${file}:${span.line}:${span.col}: error: `)) {
    return fail(`${stage}: SpecError message does not start with file:line:col`, e.message);
  }
  return null;
}

/** Own keys named like Object.prototype members anywhere in a value: what loaders must refuse. */
function protoKeyPath(v: unknown, path: string): string | null {
  if (typeof v !== 'object' || v === null) return null;
  for (const k of Object.keys(v)) {
    if (PROTO_NAMES.includes(k)) return `${path}.${k}`;
    const inner = protoKeyPath((v as Record<string, unknown>)[k], `${path}.${k}`);
    if (inner) return inner;
  }
  return null;
}

/**
 * Parameter (`name:` after `(`, `,` or `{`) or setting (line-leading `name value`) uses of a
 * prototype name. A block the user names `constructor` is fine (the resolver keys names by Map),
 * and so is its use in a ratio such as `[1 constructor : 1 attn]`; round-tripping checks those.
 */
function protoNameInDsl(text: string): string | null {
  const code = text.replace(/(#|\/\/)[^\r\n]*/g, '').replace(/"[^"\r\n]*"/g, '""');
  for (const name of PROTO_NAMES) {
    const asParam = new RegExp(`(^|[(,{])\\s*${name}\\s*:`).test(code);
    const asSetting = new RegExp(`(^|[\\r\\n{])[ \\t]*${name}[ \\t]+[^=\\s]`).test(code);
    if (asParam || asSetting) return name;
  }
  return null;
}

/** Property 3, and what check/import compute, for a model the front end accepted. */
function checkAccepted(model: ModelIR, stage: string): Failure | null {
  if (model.layers.length > MAX_LAYERS) {
    return fail(
      `${stage}: accepted more than MAX_LAYERS layers`,
      `${model.layers.length} layers accepted; the cap is ${MAX_LAYERS}`,
    );
  }
  const protoKey = protoKeyPath(model, 'model');
  if (protoKey) return fail(`${stage}: accepted an Object.prototype key`, protoKey);
  try {
    layerTable(model);
    countParams(model);
    expectedTensors(model);
  } catch (e) {
    return thrown(`${stage} → check`, e);
  }
  try {
    printSpec(model);
  } catch (e) {
    if (e instanceof SpecError) {
      return fail(
        `${stage} → print: the printer's re-parse rejects an accepted model: ${messageShape(e.reason)}`,
        e.message,
      );
    }
    if (e instanceof Error && /does not resolve to the same model/.test(e.message)) {
      return fail(`${stage} → print: printed spec resolves to another ModelIR`, e.message);
    }
    return thrown(`${stage} → print`, e);
  }
  try {
    const back = parseDataSpec(JSON.stringify(model), 'roundtrip.json', 'json');
    if (!deepEqual(back, model)) {
      return fail(`${stage} → JSON: JSON form loads to another ModelIR`, 'JSON round trip differs');
    }
  } catch (e) {
    if (e instanceof SpecError) {
      return fail(
        `${stage} → JSON: JSON form of an accepted model is rejected: ${messageShape(e.reason)}`,
        e.message,
      );
    }
    return thrown(`${stage} → JSON`, e);
  }
  return null;
}

function checkSpecText(input: FuzzInput): Failure | null | 'rejected' {
  const file = FILE_NAMES[input.kind];
  let model: ModelIR;
  try {
    model = parseSpec(input.text, file);
  } catch (e) {
    return checkSpecError(e, input.kind, file, input.text) ?? 'rejected';
  }
  if (input.kind === 'dsl') {
    const name = protoNameInDsl(input.text);
    if (name) {
      return fail(
        `dsl: accepted an Object.prototype name as a parameter or setting`,
        `'${name}' was accepted`,
      );
    }
  }
  return checkAccepted(model, input.kind);
}

/** Where in a config the key an importer message names has a non-null value, if anywhere. */
function findKey(v: unknown, key: string): unknown {
  if (typeof v !== 'object' || v === null) return undefined;
  if (Object.hasOwn(v, key)) return (v as Record<string, unknown>)[key];
  for (const inner of Object.values(v)) {
    const found = findKey(inner, key);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Property 1 for HF: a SpecError located in config.json at the right line:col (the CLI reads
 * configs through readConfigJson, which records where each key is written), and one that never
 * calls a written value null.
 */
function checkHfError(e: unknown, stage: string, text: string, config: unknown): Failure | null {
  const located = checkSpecError(e, stage, FILE_NAMES.hf, text);
  if (located) return located;
  const m = (e as SpecError).message;
  const key = /config keys? '([^']+)'/.exec(m)?.[1];
  if (key && /got null/.test(m)) {
    const value = findKey(config, key);
    if (value !== null && value !== undefined) {
      return fail(`${stage}: a non-null value is reported as "got null"`, `${key}: ${m}`);
    }
  }
  return null;
}

function checkHf(input: FuzzInput): Failure | null | 'rejected' {
  let read: ReturnType<typeof readConfigJson>;
  try {
    read = readConfigJson(input.text, FILE_NAMES.hf);
  } catch (e) {
    return checkHfError(e, 'hf → json', input.text, undefined) ?? 'rejected';
  }
  let model: ModelIR;
  try {
    model = importHfConfig(read.config as object, HF_SOURCE, read.origin).model;
  } catch (e) {
    return checkHfError(e, 'hf → import', input.text, read.config) ?? 'rejected';
  }
  try {
    assertModel(model, `model '${model.name}'`);
  } catch (e) {
    if (e instanceof SpecError) {
      return fail(
        `hf: import accepts a model the spec checks reject: ${messageShape(e.reason)}`,
        e.message,
      );
    }
    return thrown('hf → validate', e);
  }
  return checkAccepted(model, 'hf');
}

/** Runs every in-process property on one input. */
export function checkInput(input: FuzzInput): Outcome {
  const start = performance.now();
  let verdict: Failure | null | 'rejected';
  try {
    verdict = input.kind === 'hf' ? checkHf(input) : checkSpecText(input);
  } catch (e) {
    // The checks above catch per stage; this is the fuzzer's own safety net.
    verdict = thrown(`${input.kind}: uncaught`, e);
  }
  const ms = performance.now() - start;
  if (verdict === null) return { status: 'accepted', ms };
  if (verdict === 'rejected') return { status: 'rejected', ms };
  return { ...verdict, ms };
}
