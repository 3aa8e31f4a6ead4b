/**
 * Text mutations (generator a): token- and character-level edits of real inputs. Each edit is
 * plain data with natural-number positions taken modulo the text, so fast-check shrinks a
 * failing input towards fewer edits at earlier places.
 */
import fc from 'fast-check';
import { PROTO_NAMES } from './properties.ts';

/** Numbers at the edges: zero, negatives, int32/uint32/2^53 limits, overflow, underflow, NaN. */
export const EXTREME_NUMBERS: readonly string[] = [
  '0',
  '-1',
  '-0',
  '1e30',
  '1e400',
  '1e-400',
  '2147483647',
  '2147483648',
  '4294967296',
  '9007199254740992',
  '9007199254740993',
  '1e9',
  '100000',
  '0.5',
  '1.5',
  '-2147483649',
  'NaN',
  'Infinity',
  '-Infinity',
];

/** Pieces of syntax worth dropping anywhere. */
const SNIPPETS: readonly string[] = [
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  ',',
  ':',
  '=',
  '.',
  '"',
  '#',
  ' x ',
  ' as ',
  ' at ',
  ' with ffn ',
  ' none ',
  ' every 2 offset 1',
  '\nlayers 10000 x a\n',
  '\noverride layer 0 { mixer.heads: 2 }\n',
  '\t',
  '\u00a0',
  '\u2028',
  '\ufeff',
  'é',
  '\ud83d\ude00',
  '\ud800',
  '\u0000',
  '\\',
];

export type TextEdit =
  | { op: 'delete'; at: number; count: number }
  | { op: 'duplicate'; at: number; count: number }
  | { op: 'swap'; a: number; b: number }
  | { op: 'number'; at: number; value: string }
  | { op: 'name'; at: number; value: string }
  | { op: 'insert'; at: number; text: string }
  | { op: 'nest'; at: number; depth: number; call: boolean }
  | { op: 'eol'; style: '\r' | '\r\n' | '\n'; all: boolean; at: number }
  | { op: 'long'; at: number; length: number }
  | { op: 'char'; at: number; remove: boolean; code: number };

/** A lexer for mutation only: close enough to the DSL, YAML and JSON to cut at token edges. */
const TOKEN =
  /\s+|#[^\r\n]*|\/\/[^\r\n]*|"(?:[^"\\\r\n]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|[^]/gu;

export function tokenize(text: string): string[] {
  return text.match(TOKEN) ?? [];
}

const isSpace = (t: string) => /^\s+$/.test(t);
const isNumber = (t: string) => /^-?\d/.test(t);
const isName = (t: string) => /^[A-Za-z_]/.test(t);

/** The index of the k-th token (mod) satisfying pick, or -1. */
function nth(tokens: string[], k: number, pick: (t: string) => boolean): number {
  const idx: number[] = [];
  tokens.forEach((t, i) => {
    if (pick(t)) idx.push(i);
  });
  return idx.length ? idx[k % idx.length]! : -1;
}

function nest(value: string, depth: number, call: boolean): string {
  // Calls nest through a real kind so the parser, not the resolver, meets the depth first.
  return call
    ? 'rope(scaling: '.repeat(depth) + value + ')'.repeat(depth)
    : '['.repeat(depth) + value + ']'.repeat(depth);
}

export function applyEdit(text: string, e: TextEdit): string {
  const tokens = tokenize(text);
  const n = tokens.length;
  if (n === 0) return e.op === 'insert' ? e.text : text;
  const solid = (t: string) => !isSpace(t);
  switch (e.op) {
    case 'delete':
    case 'duplicate': {
      const i = nth(tokens, e.at, solid);
      if (i < 0) return text;
      const piece = tokens.slice(i, i + e.count);
      tokens.splice(i, e.op === 'delete' ? piece.length : 0, ...(e.op === 'delete' ? [] : piece));
      return tokens.join('');
    }
    case 'swap': {
      const i = nth(tokens, e.a, solid);
      const j = nth(tokens, e.b, solid);
      if (i < 0 || j < 0) return text;
      [tokens[i], tokens[j]] = [tokens[j]!, tokens[i]!];
      return tokens.join('');
    }
    case 'number':
    case 'name': {
      const i = nth(tokens, e.at, e.op === 'number' ? isNumber : isName);
      if (i < 0) return text;
      const old = tokens[i]!;
      // Keep JSON keys and string values quoted so the edit tests values, not the syntax.
      tokens[i] = old.startsWith('"') ? `"${e.value}"` : e.value;
      return tokens.join('');
    }
    case 'insert': {
      tokens.splice(e.at % (n + 1), 0, e.text);
      return tokens.join('');
    }
    case 'nest': {
      const i = nth(tokens, e.at, isNumber);
      if (i < 0) return text;
      tokens[i] = nest(tokens[i]!, e.depth, e.call);
      return tokens.join('');
    }
    case 'eol': {
      if (e.all) return text.replace(/\r\n|\r|\n/g, e.style);
      const i = nth(tokens, e.at, (t) => /[\r\n]/.test(t));
      if (i < 0) return text;
      tokens[i] = tokens[i]!.replace(/\r\n|\r|\n/, e.style);
      return tokens.join('');
    }
    case 'long': {
      const i = nth(tokens, e.at, solid);
      if (i < 0) return text;
      tokens.splice(i, 0, isName(tokens[i]!) ? 'n'.repeat(e.length) : ' '.repeat(e.length));
      return tokens.join('');
    }
    case 'char': {
      const at = e.at % (text.length + 1);
      return e.remove
        ? text.slice(0, at) + text.slice(at + 1)
        : text.slice(0, at) + String.fromCharCode(e.code) + text.slice(at);
    }
  }
}

const pos = fc.nat({ max: 100_000 });

export const textEditArb: fc.Arbitrary<TextEdit> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('delete' as const),
      at: pos,
      count: fc.integer({ min: 1, max: 4 }),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('duplicate' as const),
      at: pos,
      count: fc.integer({ min: 1, max: 6 }),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ op: fc.constant('swap' as const), a: pos, b: pos }), weight: 2 },
  {
    arbitrary: fc.record({
      op: fc.constant('number' as const),
      at: pos,
      value: fc.constantFrom(...EXTREME_NUMBERS),
    }),
    weight: 5,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('name' as const),
      at: pos,
      value: fc.constantFrom(...PROTO_NAMES),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('insert' as const),
      at: pos,
      text: fc.constantFrom(...SNIPPETS),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('nest' as const),
      at: pos,
      depth: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 200, max: 3000 })),
      call: fc.boolean(),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('eol' as const),
      style: fc.constantFrom('\r' as const, '\r\n' as const, '\n' as const),
      all: fc.boolean(),
      at: pos,
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('long' as const),
      at: pos,
      length: fc.integer({ min: 200, max: 20_000 }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('char' as const),
      at: pos,
      remove: fc.boolean(),
      code: fc.integer({ min: 0, max: 0xffff }),
    }),
    weight: 2,
  },
);

export const textEditsArb = fc.array(textEditArb, { minLength: 1, maxLength: 4 });

export function applyEdits(text: string, edits: readonly TextEdit[]): string {
  return edits.reduce(applyEdit, text);
}
