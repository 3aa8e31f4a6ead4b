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
import { validateModel } from './validate.ts';

// allErrors so that an unknown (misspelt) property can be reported in preference to the
// required one it was meant to be.
const ajv = new Ajv({ discriminator: true, allowUnionTypes: true, verbose: true, allErrors: true });
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

/** Where a path's value (or, with key, that key of the map there) is written in the source. */
function locate(
  doc: Document,
  path: Path,
  key?: string,
): { offset: number; length: number } | null {
  let node: unknown = doc.contents;
  const range = (n: unknown) => {
    const r = (n as Node | null)?.range;
    return r ? { offset: r[0], length: Math.max(1, r[1] - r[0]) } : null;
  };
  const steps: (string | number)[] = key === undefined ? path : [...path, key];
  for (let s = 0; s < steps.length; s++) {
    if (isAlias(node)) node = node.resolve(doc);
    const step = steps[s]!;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(step));
      if (!pair) return range(node);
      // The key, not the value, is what an unknown-property error is about.
      if (s === steps.length - 1 && key !== undefined) return range(pair.key);
      node = pair.value;
    } else if (isSeq(node) && typeof step === 'number') {
      const item = node.items[step];
      if (item === undefined) return range(node);
      node = item;
    } else {
      return range(node);
    }
  }
  return range(node);
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
        message: `must be one of ${(p.allowedValues as unknown[]).join(', ')}, got ${JSON.stringify(e.data)}`,
      };
    case 'type': {
      const types = ([] as string[]).concat(p.type as string | string[]);
      const expected = types.map((t) => TYPE_NAMES[t] ?? t).join(' or ');
      return { message: `must be ${expected}, got ${JSON.stringify(e.data) ?? 'nothing'}` };
    }
    case 'const':
      return {
        message: `must be ${JSON.stringify(p.allowedValue)}, got ${JSON.stringify(e.data)}`,
      };
    default:
      return { message: `${e.message ?? 'is invalid'}, got ${JSON.stringify(e.data)}` };
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

/** Where a spec's values were written, for errors; doc null when positions are unknown. */
class DataSource {
  constructor(
    readonly file: string,
    readonly text: string,
    readonly doc: Document | null,
  ) {}

  error(path: Path, message: string, key?: string): SpecError {
    const reason = `${formatPath(key === undefined ? path : [...path, key])}: ${message}`;
    const at = this.doc ? locate(this.doc, path, key) : null;
    if (!at) return new SpecError(reason, this.file);
    return new SpecError(reason, spanAt(this.file, this.text, at.offset, at.length), this.text);
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    const pos = /at position (\d+)/.exec(message);
    const reason = `invalid JSON: ${message.replace(/ in JSON at position \d+.*$/, '')}`;
    const offset = pos
      ? Number(pos[1])
      : /end of JSON/.test(message)
        ? text.trimEnd().length
        : null;
    if (offset === null) throw new SpecError(reason, file);
    throw new SpecError(reason, spanAt(file, text, offset, 1), text);
  }
}

function yamlError(doc: Document, text: string, file: string): SpecError | null {
  const err = doc.errors[0];
  if (!err) return null;
  const [start, end] = err.pos;
  const span = spanAt(file, text, start, Math.max(1, end - start));
  return new SpecError(`invalid YAML: ${err.message}`, span, text);
}

/** A ModelIR from YAML or JSON text, schema- and semantics-checked. */
export function parseDataSpec(text: string, file: string, format: 'yaml' | 'json'): ModelIR {
  const doc = parseDocument(text, { prettyErrors: false });
  let value: unknown;
  if (format === 'json') {
    value = parseJson(text, file);
  } else {
    const err = yamlError(doc, text, file);
    if (err) throw err;
    value = doc.toJS();
  }
  // JSON is YAML too, so the YAML parse gives source ranges for JSON files as well; in the rare
  // case it disagrees, errors still name the path, only without a line.
  return checked(value, new DataSource(file, text, doc.errors.length ? null : doc));
}

function checked(value: unknown, source: DataSource): ModelIR {
  if (!validateSchema(value)) {
    if (value === null || value === undefined) {
      throw new SpecError('the spec is empty: expected a ModelIR mapping', source.file);
    }
    const e = firstError(validateSchema.errors!);
    const { message, key } = schemaMessage(e);
    throw source.error(pointerToPath(e.instancePath), message, key);
  }
  fillDefaults(value);
  const issue: Issue | undefined = validateModel(value)[0];
  if (issue) throw source.error([...issue.path], issue.message);
  return value;
}

/** Fields the schema leaves optional (added after specs were written) get their defaults. */
function fillDefaults(model: ModelIR): void {
  for (const layer of model.layers) {
    if (layer.mixer?.kind === 'attention') layer.mixer.outputGate ??= false;
  }
}

/**
 * Checks a ModelIR built in code (by an importer, say) as strictly as a loaded one; label names
 * it in the SpecError.
 */
export function assertModel(value: unknown, label: string): ModelIR {
  return checked(value, new DataSource(label, '', null));
}
