/**
 * Structured mutations of plain data (generators c and d): ModelIR objects of real specs and HF
 * config.json objects, with values replaced (extreme numbers, wrong types), keys deleted, added
 * or renamed (Object.prototype names among them), then written out as JSON, YAML or Python-style
 * JSON (bare NaN/Infinity, as HF configs have them).
 */
import fc from 'fast-check';
import { EXTREME_NUMBERS } from './mutate.ts';
import { stringify as toYaml } from 'yaml';
import { PROTO_NAMES } from './properties.ts';

/** A number written exactly as given (1e-400, 9007199254740993, NaN) when serialised. */
export class RawNumber {
  constructor(readonly text: string) {}
}

type Data = unknown;

export type DataEdit =
  | { op: 'set'; at: number; value: Data }
  | { op: 'delete'; at: number }
  | { op: 'add'; at: number; key: string; value: Data }
  | { op: 'rename'; at: number; key: string }
  | { op: 'nest'; at: number; depth: number };

// -1e400 as well: in data a sign is part of the number token, so it overflows to -Infinity.
const RAW_NUMBERS = [...EXTREME_NUMBERS, '-1e400'];

/** Replacement values: extreme numbers, and every JSON type where another is expected. */
const valueArb: fc.Arbitrary<Data> = fc.oneof(
  { arbitrary: fc.constantFrom(...RAW_NUMBERS).map((t) => new RawNumber(t)), weight: 6 },
  { arbitrary: fc.integer({ min: -2, max: 300 }), weight: 3 },
  { arbitrary: fc.double({ noNaN: false }), weight: 1 },
  {
    arbitrary: fc.constantFrom<Data>(null, true, false, '', 'silu', 'none', 'rms', [], {}, [1, 2], {
      kind: 'none',
    }),
    weight: 3,
  },
  { arbitrary: fc.constantFrom(...PROTO_NAMES), weight: 1 },
);

/** Keys to add or rename to: prototype names, plus real keys misplaced. */
const KEYS = [
  ...PROTO_NAMES,
  'kind',
  'heads',
  'layers',
  'num_hidden_layers',
  'num_experts',
  'rope_scaling',
  'rope_parameters',
  'model_type',
  'experts',
];

const pos = fc.nat({ max: 100_000 });

export const dataEditArb: fc.Arbitrary<DataEdit> = fc.oneof(
  {
    arbitrary: fc.record({ op: fc.constant('set' as const), at: pos, value: valueArb }),
    weight: 8,
  },
  { arbitrary: fc.record({ op: fc.constant('delete' as const), at: pos }), weight: 3 },
  {
    arbitrary: fc.record({
      op: fc.constant('add' as const),
      at: pos,
      key: fc.constantFrom(...KEYS),
      value: valueArb,
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('rename' as const),
      at: pos,
      key: fc.constantFrom(...KEYS),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('nest' as const),
      at: pos,
      depth: fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 300, max: 1200 })),
    }),
    weight: 1,
  },
);

export const dataEditsArb = fc.array(dataEditArb, { minLength: 1, maxLength: 4 });

type Container = Record<string, Data> | Data[];

/** Every (container, key) slot in the tree, in a stable depth-first order. */
function slots(root: Data): [Container, string | number][] {
  const out: [Container, string | number][] = [];
  const walk = (v: Data) => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push([v, i]);
        walk(x);
      });
    } else if (typeof v === 'object' && v !== null && !(v instanceof RawNumber)) {
      for (const k of Object.keys(v)) {
        out.push([v as Record<string, Data>, k]);
        walk((v as Record<string, Data>)[k]);
      }
    }
  };
  walk(root);
  return out;
}

function clone(v: Data): Data {
  if (Array.isArray(v)) return v.map(clone);
  if (v instanceof RawNumber || typeof v !== 'object' || v === null) return v;
  const out: Record<string, Data> = {};
  // defineProperty so that a '__proto__' key stays an own key instead of setting the prototype.
  for (const [k, x] of Object.entries(v)) {
    Object.defineProperty(out, k, {
      value: clone(x),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function setKey(o: Record<string, Data>, k: string, v: Data): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

export function applyDataEdits(root: Data, edits: readonly DataEdit[]): Data {
  const tree = clone(root);
  for (const e of edits) {
    const all = slots(tree);
    if (all.length === 0) break;
    const [box, key] = all[e.at % all.length]!;
    const get = () => (box as Record<string | number, Data>)[key];
    switch (e.op) {
      case 'set':
        if (Array.isArray(box)) box[key as number] = clone(e.value);
        else setKey(box, key as string, clone(e.value));
        break;
      case 'delete':
        if (Array.isArray(box)) box.splice(key as number, 1);
        else delete box[key as string];
        break;
      case 'add': {
        const target = get();
        const obj =
          typeof target === 'object' &&
          target !== null &&
          !Array.isArray(target) &&
          !(target instanceof RawNumber)
            ? (target as Record<string, Data>)
            : Array.isArray(box)
              ? null
              : box;
        if (obj) setKey(obj, e.key, clone(e.value));
        break;
      }
      case 'rename':
        if (!Array.isArray(box)) {
          const v = get();
          delete box[key as string];
          setKey(box, e.key, v);
        }
        break;
      case 'nest': {
        let v: Data = get();
        for (let i = 0; i < e.depth; i++) v = i % 2 ? [v] : { kind: v };
        if (Array.isArray(box)) box[key as number] = v;
        else setKey(box, key as string, v);
        break;
      }
    }
  }
  return tree;
}

/** JSON with RawNumbers written verbatim (so NaN, 1e-400 and 2^53 + 1 reach the parser as text). */
export function toJsonText(v: Data, indent = 2): string {
  // Deep nesting is written flat beyond 40 levels: indenting it would grow quadratically.
  const pad = (d: number) => (indent && d < 40 ? '\n' + ' '.repeat(indent * d) : '');
  const write = (x: Data, d: number): string => {
    if (x instanceof RawNumber) return x.text;
    if (typeof x === 'number')
      return Number.isFinite(x) ? String(x) : x > 0 ? 'Infinity' : x < 0 ? '-Infinity' : 'NaN';
    if (Array.isArray(x)) {
      if (x.length === 0) return '[]';
      return `[${x.map((y) => pad(d + 1) + write(y, d + 1)).join(',')}${pad(d)}]`;
    }
    if (typeof x === 'object' && x !== null) {
      const keys = Object.keys(x);
      if (keys.length === 0) return '{}';
      const body = keys.map(
        (k) => `${pad(d + 1)}${JSON.stringify(k)}: ${write((x as Record<string, Data>)[k], d + 1)}`,
      );
      return `{${body.join(',')}${pad(d)}}`;
    }
    return JSON.stringify(x) ?? 'null';
  };
  return write(v, 0) + '\n';
}

/** YAML through the yaml library, RawNumbers as the numbers they denote. */
export function toYamlText(v: Data): string {
  const plain = (x: Data): Data => {
    if (x instanceof RawNumber) return Number(x.text);
    if (Array.isArray(x)) return x.map(plain);
    if (typeof x === 'object' && x !== null) {
      const out: Record<string, Data> = {};
      for (const [k, y] of Object.entries(x)) setKey(out, k, plain(y));
      return out;
    }
    return x;
  };
  return toYaml(plain(v), { aliasDuplicateObjects: false });
}
