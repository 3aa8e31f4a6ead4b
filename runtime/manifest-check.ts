/**
 * A parsed manifest.json checked before anything trusts it: shape (MANIFEST_SCHEMA), the model
 * (the same ModelIR schema and rules a spec file gets), then the facts that tie its parts
 * together (each dispatch's kernel and buffers exist, the vocabulary agrees with the embedding
 * and the logits). Errors name the manifest, the JSON path and the value.
 */
import { dtypeBytes } from '../src/graph/dtype.ts';
import { Ajv, type ErrorObject } from 'ajv';
import { assertModel, formatPath } from '../src/spec/load-data.ts';
import { EMBED } from '../src/import/names.ts';
import {
  BUNDLE_FORMAT,
  BUNDLE_VERSION,
  MANIFEST_SCHEMA,
  type BundleManifest,
  type ManifestPhase,
} from '../codegen/manifest.ts';

export class BundleError extends Error {
  override name = 'BundleError';
}

const ajv = new Ajv({ allErrors: true, verbose: true });
const validateSchema = ajv.compile(MANIFEST_SCHEMA);

/** A value from the manifest, shown briefly: it may be anything, of any length. */
function shown(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `the string ${shown(v)}` : `${typeof v} ${shown(v)}`;
}

function pathOf(pointer: string): string {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  return formatPath(parts);
}

function schemaIssue(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  const at = pathOf(e.instancePath);
  switch (e.keyword) {
    case 'required':
      return `${at}: missing property '${String(p.missingProperty)}'`;
    case 'additionalProperties':
      return `${at}: unknown property '${String(p.additionalProperty)}'`;
    case 'pattern':
      return `${at}: must be a relative path inside the bundle (no leading '/', no '..'), got ${shown(e.data)}`;
    default:
      return `${at}: ${e.message ?? 'is invalid'}, got ${shown(e.data)}`;
  }
}

const IO_BUFFERS = new Set(['ids', 'logits', 'token']);

/** The facts the schema cannot state; each issue is `path: problem`. */
function crossCheck(m: BundleManifest): string[] {
  const issues: string[] = [];
  const unique = (list: { name: string }[], field: string) => {
    const seen = new Set<string>();
    list.forEach((x, i) => {
      if (seen.has(x.name)) issues.push(`${field}[${i}].name: '${x.name}' is listed twice`);
      seen.add(x.name);
    });
  };
  unique(m.tensors, 'tensors');
  unique(m.state, 'state');
  unique(m.kernels, 'kernels');

  const { vocab, dim } = m.model;
  const embed = m.tensors.findIndex((t) => t.name === EMBED);
  if (embed >= 0) {
    const s = m.tensors[embed].shape;
    if (s.length !== 2 || s[0] !== vocab || s[1] !== dim)
      issues.push(
        `tensors[${embed}].shape: embedding '${EMBED}' is [${s}], but model.vocab × model.dim is [${vocab}, ${dim}]`,
      );
  }
  const maxBuffer = m.compile.caps.maxBufferBytes;
  m.state.forEach((s, i) => {
    const bytes = dtypeBytes(
      s.dtype,
      s.shape.reduce((a, b) => a * b, 1),
    );
    if (bytes > maxBuffer)
      issues.push(
        `state[${i}].shape: [${s.shape}] is ${bytes} bytes, over compile.caps.maxBufferBytes ${maxBuffer}`,
      );
  });
  if (m.phases.prefill.maxT !== m.compile.maxT)
    issues.push(
      `phases.prefill.maxT: ${m.phases.prefill.maxT}, but compile.maxT is ${m.compile.maxT}`,
    );
  for (const name of ['prefill', 'decode'] as const)
    issues.push(...phaseIssues(m, m.phases[name], `phases.${name}`));
  return issues;
}

function phaseIssues(m: BundleManifest, ph: ManifestPhase, at: string): string[] {
  const issues: string[] = [];
  const logits = ph.maxT * m.model.vocab * 4;
  if (ph.ioBytes.logits !== logits)
    issues.push(
      `${at}.ioBytes.logits: ${ph.ioBytes.logits}, but maxT ${ph.maxT} × model.vocab ${m.model.vocab} × 4 bytes is ${logits}`,
    );
  if (ph.ioBytes.ids !== ph.maxT * 4)
    issues.push(
      `${at}.ioBytes.ids: ${ph.ioBytes.ids}, but maxT ${ph.maxT} × 4 bytes is ${ph.maxT * 4}`,
    );
  const kernels = new Map(m.kernels.map((k) => [k.name, k]));
  const tensors = new Set(m.tensors.map((t) => t.name));
  const state = new Set(m.state.map((s) => s.name));
  ph.dispatches.forEach((d, i) => {
    const where = `${at}.dispatches[${i}]`;
    const k = kernels.get(d.kernel);
    if (!k) {
      issues.push(`${where}.kernel: '${d.kernel}' is not in kernels`);
      return;
    }
    for (const b of k.bindings.slice(1))
      if (d.bind[b.name] === undefined)
        issues.push(`${where}.bind: no buffer for binding '${b.name}' of kernel '${k.name}'`);
    for (const [binding, ref] of Object.entries(d.bind)) {
      const bad = refIssue(ref, tensors, state, ph);
      if (bad) issues.push(`${where}.bind.${binding}: '${ref}' ${bad}`);
    }
  });
  return issues;
}

/** Why a buffer reference (`param:NAME`, `state:NAME`, `slot:N`, `scratch:NAME`, ids…) is bad. */
function refIssue(
  ref: string,
  tensors: Set<string>,
  state: Set<string>,
  ph: ManifestPhase,
): string | null {
  const i = ref.indexOf(':');
  const kind = i < 0 ? ref : ref.slice(0, i);
  const rest = i < 0 ? '' : ref.slice(i + 1);
  switch (kind) {
    case 'param':
      return tensors.has(rest) ? null : 'names no tensor listed in tensors';
    case 'state':
      return state.has(rest) ? null : 'names no buffer listed in state';
    case 'slot':
      return /^\d+$/.test(rest) && Number(rest) < ph.slots.length
        ? null
        : `names no slot (the phase has ${ph.slots.length})`;
    case 'scratch':
      return Object.hasOwn(ph.scratch, rest) ? null : 'names no scratch buffer of the phase';
    default:
      return i < 0 && IO_BUFFERS.has(kind)
        ? null
        : 'is not a param:, state:, slot: or scratch: buffer, nor ids, logits or token';
  }
}

/** `value` (parsed from `file`) as a manifest this strata can run, or a BundleError saying why not. */
export function checkManifest(value: unknown, file: string): BundleManifest {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new BundleError(`${file}: must be a JSON object, got ${describeType(value)}`);
  const v = value as Record<string, unknown>;
  if (v.format !== BUNDLE_FORMAT)
    throw new BundleError(
      `${file}: format is ${v.format === undefined ? 'missing' : shown(v.format)}, expected '${BUNDLE_FORMAT}' (not a strata bundle)`,
    );
  if (typeof v.version !== 'number' || !Number.isInteger(v.version))
    throw new BundleError(`${file}: version must be an integer, got ${describeType(v.version)}`);
  if (v.version !== BUNDLE_VERSION)
    throw new BundleError(
      `${file}: bundle version ${v.version}, this strata reads version ${BUNDLE_VERSION}; recompile the bundle`,
    );
  if (!validateSchema(value)) {
    const lines = (validateSchema.errors ?? []).slice(0, 5).map((e) => `  ${schemaIssue(e)}`);
    throw new BundleError(`${file}: does not match the manifest schema:\n${lines.join('\n')}`);
  }
  try {
    assertModel(v.model, file);
  } catch (e) {
    const reason = (e as { reason?: unknown }).reason;
    if (typeof reason !== 'string') throw e;
    const at = reason.startsWith('(top level)') ? reason.slice('(top level)'.length) : `.${reason}`;
    throw new BundleError(`${file}: model${at}`);
  }
  const m = value as unknown as BundleManifest;
  const issues = crossCheck(m);
  if (issues.length > 0)
    throw new BundleError(
      `${file}: inconsistent manifest:\n${issues
        .slice(0, 5)
        .map((s) => `  ${s}`)
        .join('\n')}`,
    );
  return m;
}
