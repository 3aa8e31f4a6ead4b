/**
 * The YAML/JSON spec form: a ModelIR object written out. Checked against the JSON Schema, then
 * the semantic rules; errors name the JSON path and, through the yaml library's source ranges,
 * the line and column.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import { SpecError, spanAt } from '../../grammar/diagnostics.ts';
import { didYouMean } from '../../grammar/suggest.ts';
import type { Issue } from './checks.ts';
import { FFNS, futureKindNames, MIXERS } from './kinds/index.ts';
import type { ModelIR } from './model.ts';
import { modelIrSchema } from './schema.ts';
import { showValue } from './show.ts';
import { validateModel } from './validate.ts';
import { JsonSyntaxError, scanJson, type JsonNode } from './json-scan.ts';
import { LIST_CAPS, listOverCap, MAX_DATA_VALUES, MAX_NESTING, overCap } from './limits.ts';

// allErrors so that an unknown (misspelt) property can be reported in preference to the
// required one it was meant to be; useDefaults fills optional fields newer than a spec.
const ajv = new Ajv({
  discriminator: true,
  allowUnionTypes: true,
  verbose: true,
  allErrors: true,
  useDefaults: true,
});
const validateSchema = ajv.compile<ModelIR>(modelIrSchema);

type Path = (string | number)[];

/** `layers[3].mixer.heads`: the path as a reader would write it. */
export function formatPath(path: readonly (string | number)[]): string {
  if (path.length === 0) return '(top level)';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

function pointerToPath(pointer: string): Path {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

interface Place {
  offset: number;
  length: number;
}

/** Where a path's value (or, with key, that key of the map there) is written; null if unknown. */
type Locator = (path: Path, key?: string) => Place | null;

/** Where a path's value (or, with key, that key of the map there) is written in the source. */
function locateYaml(doc: Document, path: Path, key?: string): Place {
  let node: unknown = doc.contents;
  const range = (n: unknown) => {
    const r = (n as Node | null)?.range;
    return r ? { offset: r[0], length: Math.max(1, r[1] - r[0]) } : null;
  };
  const steps: (string | number)[] = key === undefined ? path : [...path, key];
  // The nearest written place so far: a value may have no node of its own (`{kind}` and
  // `? kind` leave it null), and is then blamed on its key.
  let written = range(node) ?? { offset: 0, length: 1 };
  for (let s = 0; s < steps.length; s++) {
    if (isAlias(node)) node = node.resolve(doc);
    written = range(node) ?? written;
    const step = steps[s]!;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(step));
      if (!pair) return written;
      written = range(pair.key) ?? written;
      // The key, not the value, is what an unknown-property error is about.
      if (s === steps.length - 1 && key !== undefined) return written;
      node = pair.value;
    } else if (isSeq(node) && typeof step === 'number') {
      const item = node.items[step];
      if (item === undefined) return written;
      node = item;
    } else {
      return written;
    }
  }
  return range(node) ?? written;
}

/** locateYaml for a scanned JSON text. */
function locateJson(root: JsonNode, path: Path, key?: string): Place {
  const place = (start: number, end: number) => ({
    offset: start,
    length: Math.max(1, end - start),
  });
  let node = root;
  const steps: (string | number)[] = key === undefined ? path : [...path, key];
  for (let s = 0; s < steps.length; s++) {
    const step = steps[s]!;
    if (node.kind === 'object') {
      const member = node.members.get(String(step));
      if (!member) break;
      if (s === steps.length - 1 && key !== undefined) return place(member.keyStart, member.keyEnd);
      node = member.value;
    } else if (node.kind === 'array' && typeof step === 'number' && step < node.items.length) {
      node = node.items[step]!;
    } else break;
  }
  return place(node.start, node.end);
}

const TYPE_NAMES: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  null: 'null',
};

/** The error to report: a misspelt property explains a missing one, so it goes first. */
function firstError(errors: ErrorObject[]): ErrorObject {
  const real = errors.filter((e) => e.keyword !== 'if');
  return real.find((e) => e.keyword === 'additionalProperties') ?? real[0] ?? errors[0]!;
}

function schemaMessage(e: ErrorObject): { message: string; key?: string } {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return { message: `missing property '${String(p.missingProperty)}'` };
    case 'additionalProperties': {
      const prop = String(p.additionalProperty);
      const known = Object.keys(
        (e.parentSchema as { properties?: object } | undefined)?.properties ?? {},
      );
      return { message: `unknown property '${prop}'${didYouMean(prop, known)}`, key: prop };
    }
    case 'discriminator': {
      if (p.error !== 'mapping') return { message: `'${String(p.tag)}' must be a string` };
      const tag = String(p.tagValue);
      const family = e.instancePath.endsWith('/mixer')
        ? MIXERS
        : e.instancePath.endsWith('/ffn')
          ? FFNS
          : null;
      if (family && futureKindNames(family).includes(tag)) {
        return { message: `${family.noun} kind '${tag}' is not supported yet` };
      }
      const branches = ((e.parentSchema as { oneOf?: unknown[] }).oneOf ?? []).map((b) =>
        kindOfBranch(b),
      );
      return {
        message: `unknown kind '${tag}'${didYouMean(tag, branches)} (expected ${branches.join(', ')})`,
      };
    }
    case 'enum':
      return {
        message: `must be one of ${(p.allowedValues as unknown[]).join(', ')}, got ${showValue(e.data)}`,
      };
    case 'type': {
      const types = ([] as string[]).concat(p.type as string | string[]);
      const expected = types.map((t) => TYPE_NAMES[t] ?? t).join(' or ');
      return { message: `must be ${expected}, got ${showValue(e.data)}` };
    }
    case 'maximum': {
      const field = String(pointerToPath(e.instancePath).at(-1) ?? '');
      return { message: overCap(field, e.data as number, p.limit as number) };
    }
    case 'maxItems': {
      const field = String(pointerToPath(e.instancePath).at(-1) ?? '');
      return { message: listOverCap(field, (e.data as unknown[]).length, p.limit as number) };
    }
    case 'const':
      return {
        message: `must be ${JSON.stringify(p.allowedValue)}, got ${showValue(e.data)}`,
      };
    default:
      return { message: `${e.message ?? 'is invalid'}, got ${showValue(e.data)}` };
  }
}

function kindOfBranch(branch: unknown): string {
  const ref = (branch as { $ref?: string }).$ref;
  const schema = ref
    ? (modelIrSchema.definitions as Record<string, unknown>)[ref.split('/').at(-1)!]
    : branch;
  const kind = (schema as { properties?: { kind?: { const?: string } } }).properties?.kind?.const;
  return kind ?? '?';
}

/** Where a spec's values were written, for errors; locate null when positions are unknown. */
class DataSource {
  constructor(
    readonly file: string,
    readonly text: string,
    readonly locate: Locator | null,
  ) {}

  error(path: Path, message: string, key?: string): SpecError {
    const reason = `${formatPath(key === undefined ? path : [...path, key])}: ${message}`;
    const at = this.locate ? this.locate(path, key) : null;
    if (!at) return new SpecError(reason, this.file);
    return new SpecError(reason, spanAt(this.file, this.text, at.offset, at.length), this.text);
  }
}

/**
 * JSON through JSON.parse, after a linear scan (json-scan.ts) that gives syntax errors their
 * position on every Node version, refuses deep nesting and duplicate keys, and records where each
 * value is written for the schema's errors. (The YAML parser would locate them too, but takes
 * seconds on a megabyte.)
 */
function parseJson(text: string, file: string): { value: unknown; locate: Locator } {
  let root: JsonNode;
  try {
    root = scanJson(text, MAX_NESTING);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    throw new SpecError(`invalid JSON: ${e.message}`, spanAt(file, text, e.offset, e.length), text);
  }
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  return {
    value: JSON.parse(body, plainNumbers),
    locate: (path, key) => locateJson(root, path, key),
  };
}

/** -0 reads as 0: the two print alike, so a spec holding -0 would not read back as itself. */
function plainNumbers(_key: string, value: unknown): unknown {
  return value === 0 ? 0 : value;
}

function yamlError(doc: Document, text: string, file: string): SpecError | null {
  const err = doc.errors[0];
  if (!err) return null;
  const [start, end] = err.pos;
  const span = spanAt(file, text, start, Math.max(1, end - start));
  // The parser catches its own stack overflow on deep nesting; say what the input did instead.
  const message = /call stack/i.test(err.message)
    ? `collections nest deeper than the limit of ${MAX_NESTING}`
    : `invalid YAML: ${err.message}`;
  return new SpecError(message, span, text);
}

/** The first collection nested deeper than the limit, if any (walked before toJS recurses). */
function tooDeep(node: unknown, depth: number): Node | null {
  if (isAlias(node) || !(isMap(node) || isSeq(node))) return null;
  if (depth > MAX_NESTING) return node;
  for (const item of node.items) {
    const found = isSeq(node)
      ? tooDeep(item, depth + 1)
      : (tooDeep((item as { key: unknown }).key, depth + 1) ??
        tooDeep((item as { value: unknown }).value, depth + 1));
    if (found) return found;
  }
  return null;
}

/**
 * The first mapping key that is a collection (or an alias of one), if any. JavaScript objects
 * have string keys only: the yaml library would stringify such a key, with a warning printed to
 * stderr, and the spec would then fail on a key the user never wrote. Walked after tooDeep, so
 * the recursion is bounded; aliases are not followed (their anchors are walked where written).
 */
function collectionKey(node: unknown, doc: Document): Node | null {
  if (!(isMap(node) || isSeq(node))) return null;
  for (const item of node.items) {
    if (isSeq(node)) {
      const found = collectionKey(item, doc);
      if (found) return found;
      continue;
    }
    const { key, value } = item as { key: unknown; value: unknown };
    const resolved = isAlias(key) ? key.resolve(doc) : key;
    if (isMap(resolved) || isSeq(resolved)) return key as Node;
    const found = collectionKey(value, doc);
    if (found) return found;
  }
  return null;
}

/** A ModelIR from YAML or JSON text, schema- and semantics-checked. */
export function parseDataSpec(text: string, file: string, format: 'yaml' | 'json'): ModelIR {
  if (format === 'json') {
    const { value, locate } = parseJson(text, file);
    return checked(value, new DataSource(file, text, locate));
  }
  // The yaml library ends lines at LF and CRLF only; a lone CR (which the DSL lexer and spanAt
  // count as a line end) becomes LF. Same length, so every offset still points into text.
  const lf = text.replace(/\r(?!\n)/g, '\n');
  const deepAt = yamlNestingPlace(lf, 2 * MAX_NESTING);
  if (deepAt !== null) {
    throw new SpecError(
      `collections nest deeper than the limit of ${MAX_NESTING}`,
      spanAt(file, text, deepAt, 1),
      text,
    );
  }
  let doc: Document;
  try {
    doc = parseDocument(lf, { prettyErrors: false, uniqueKeys: true });
  } catch (e) {
    // A backstop for nesting the scan did not foresee: the parser's recursion overflowed.
    if (!(e instanceof RangeError)) throw e;
    throw new SpecError(
      `collections nest deeper than the limit of ${MAX_NESTING}`,
      spanAt(file, text, 0, Math.max(1, Math.min(text.length, 1))),
      text,
    );
  }
  const err = yamlError(doc, text, file);
  if (err) throw err;
  const deep = tooDeep(doc.contents, 1);
  if (deep) {
    const [start, end] = deep.range ?? [0, 1];
    throw new SpecError(
      `collections nest deeper than the limit of ${MAX_NESTING}`,
      spanAt(file, text, start, Math.max(1, end - start)),
      text,
    );
  }
  const badKey = collectionKey(doc.contents, doc);
  if (badKey) {
    const [start, end] = badKey.range ?? [0, 1];
    throw new SpecError(
      'a mapping key must be a plain value, not a list or mapping',
      spanAt(file, text, start, Math.max(1, end - start)),
      text,
    );
  }
  const value = yamlValue(doc, text, file);
  return checked(
    normaliseZeros(value),
    new DataSource(file, text, (path, key) => locateYaml(doc, path, key)),
  );
}

/**
 * The JS value of a parsed YAML document. Aliases become shared references, so the value is small
 * whatever it expands to; but the schema and every later pass walk it as a tree, so its expanded
 * size is capped (a "billion laughs" of nested aliases would otherwise take forever). The yaml
 * library's own alias limit is off: it refuses ordinary specs that alias one block per layer.
 */
function yamlValue(doc: Document, text: string, file: string): unknown {
  const whole = spanAt(file, text, 0, Math.max(1, text.trimEnd().length));
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: -1 });
  } catch (e) {
    throw new SpecError(`invalid YAML: ${(e as Error).message}`, whole, text);
  }
  const size = expandedSize(value, new Map(), MAX_DATA_VALUES);
  if (size > MAX_DATA_VALUES) {
    throw new SpecError(
      `the spec expands (through its aliases) to more than ${MAX_DATA_VALUES} values, the limit`,
      whole,
      text,
    );
  }
  return value;
}

/**
 * How many values a value holds, counting shared ones at each use; stops counting past `limit`.
 * Memoised by identity, so it is linear in the document, not in what the aliases expand to.
 */
function expandedSize(v: unknown, memo: Map<object, number>, limit: number): number {
  if (typeof v !== 'object' || v === null) return 1;
  const known = memo.get(v);
  if (known !== undefined) return known;
  let n = 1;
  for (const item of Object.values(v)) {
    n += expandedSize(item, memo, limit);
    if (n > limit) break;
  }
  memo.set(v, n);
  return n;
}

/** plainNumbers for a YAML value, in place (depth is bounded by tooDeep). */
function normaliseZeros(value: unknown): unknown {
  if (value === 0) return 0;
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      normaliseZeros(v);
      // defineProperty, not assignment: a key '__proto__' must stay a plain property.
      if (Object.is(v, -0)) {
        Object.defineProperty(value, k, {
          value: 0,
          writable: true,
          enumerable: true,
          configurable: true,
        });
      }
    }
  }
  return value;
}
/** Lists over their cap, refused before the schema walks every item of a huge one. */
function listCapError(value: unknown, source: DataSource): SpecError | null {
  if (typeof value !== 'object' || value === null) return null;
  for (const [field, cap] of Object.entries(LIST_CAPS)) {
    const list: unknown = Object.hasOwn(value, field)
      ? (value as Record<string, unknown>)[field]
      : undefined;
    if (Array.isArray(list) && list.length > cap) {
      return source.error([field], listOverCap(field, list.length, cap));
    }
  }
  return null;
}

/** The first problem of a value as a ModelIR: a path from the root and a message. */
export function firstModelIssue(
  value: unknown,
): { path: Path; message: string; key?: string } | null {
  if (!validateSchema(value)) {
    const e = firstError(validateSchema.errors!);
    return { path: pointerToPath(e.instancePath), ...schemaMessage(e) };
  }
  const issue: Issue | undefined = validateModel(value)[0];
  return issue ? { path: [...issue.path], message: issue.message } : null;
}

function checked(value: unknown, source: DataSource): ModelIR {
  const tooLong = listCapError(value, source);
  if (tooLong) throw tooLong;
  if (value === null || value === undefined) {
    // Blamed on the start of the file: an empty spec has nothing else to point at.
    const at = source.text ? spanAt(source.file, source.text, 0, 1) : source.file;
    throw new SpecError('the spec is empty: expected a ModelIR mapping', at, source.text);
  }
  const issue = firstModelIssue(value);
  if (issue) throw source.error(issue.path, issue.message, issue.key);
  return value as ModelIR;
}

/**
 * Checks a ModelIR built in code (by an importer, say) as strictly as a loaded one; label names
 * it in the SpecError.
 */
export function assertModel(value: unknown, label: string): ModelIR {
  return checked(value, new DataSource(label, '', null));
}

/**
 * The place where a YAML text's nesting passes a bound, found by a linear scan before the yaml
 * library parses it: its parser recurses once per collection (and once per `key: ` on a line, as
 * in `a: b: c: ...`), so a deep enough text overflows the stack. The scan counts, per line, the
 * indentation levels open, the block indicators (`- `, `? `, `key: `) on the line and the flow
 * brackets open, skipping quoted strings, comments and block scalars. It over-counts (a `key: `
 * and the indentation under it are one level), so it only refuses a text whose estimate passes
 * twice the limit; tooDeep then checks the parsed document exactly.
 */
function yamlNestingPlace(text: string, bound: number): number | null {
  const indents: number[] = [];
  let flow = 0;
  let quote: '' | "'" | '"' = '';
  // A block scalar's content: lines indented past blockParent (or blank) are text.
  let blockParent: number | null = null;
  let pos = 0;
  while (pos <= text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    const line = text.slice(pos, end);
    let indent = 0;
    while (indent < line.length && line[indent] === ' ') indent++;
    const blank = indent === line.length || line.trim() === '';
    if (blockParent !== null && (blank || indent > blockParent)) {
      pos = end + 1;
      continue;
    }
    blockParent = null;
    let depth = flow;
    if (!quote && flow === 0 && !blank && line[indent] !== '#') {
      while (indents.length > 0 && indents.at(-1)! >= indent) indents.pop();
      indents.push(indent);
    }
    depth += indents.length;
    for (let i = indent; i < line.length; i++) {
      const c = line[i]!;
      if (quote) {
        if (quote === '"' && c === '\\') i++;
        else if (c === quote) {
          if (quote === "'" && line[i + 1] === "'") i++;
          else quote = '';
        }
        continue;
      }
      const before = i === 0 ? ' ' : line[i - 1]!;
      const after = line[i + 1] ?? ' ';
      const atToken = before === ' ' || before === '\t' || i === indent;
      const spaced = after === ' ' || after === '\t' || after === '\r';
      if (c === '#' && (before === ' ' || before === '\t' || i === 0)) break;
      if ((c === '"' || c === "'") && atToken) quote = c;
      else if (c === '[' || c === '{') {
        flow++;
        depth++;
      } else if ((c === ']' || c === '}') && flow > 0) {
        flow--;
        depth--;
      } else if (flow === 0 && spaced && (((c === '-' || c === '?') && atToken) || c === ':')) {
        depth++;
      } else if (flow === 0 && (c === '|' || c === '>') && atToken) {
        // `key: |` (with optional indentation/chomping indicators) starts a block scalar.
        if (/^[|>][-+0-9]*\s*(#.*)?\r?$/.test(line.slice(i))) {
          blockParent = indent;
          break;
        }
      }
      if (depth > bound) return pos + i;
    }
    if (depth > bound) return pos + indent;
    pos = end + 1;
  }
  return null;
}
