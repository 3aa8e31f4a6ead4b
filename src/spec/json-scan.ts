/**
 * A JSON syntax check that records where every value is written. JSON.parse builds the value
 * (fast, and the same everywhere) but its errors carry no position on Node 20 and its result no
 * source ranges; this single linear pass supplies both, refuses collections nested deeper than a
 * limit (before anything recurses deeply) and refuses duplicate keys, whose meaning JSON leaves
 * open.
 */

/** Where a value is written: [start, end) offsets, and its members or items. */
export type JsonNode =
  | { kind: 'object'; start: number; end: number; members: Map<string, JsonMember> }
  | { kind: 'array'; start: number; end: number; items: JsonNode[] }
  | { kind: 'scalar'; start: number; end: number };

export interface JsonMember {
  keyStart: number;
  keyEnd: number;
  value: JsonNode;
}

/** A syntax error at an offset of the scanned text. */
export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
    readonly length = 1,
  ) {
    super(message);
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y;
const LITERALS = ['true', 'false', 'null'] as const;
/** What Python's json.dumps writes for non-finite floats (HuggingFace config.json files). */
const PYTHON_LITERALS = ['NaN', 'Infinity', '-Infinity'] as const;

class Scanner {
  private pos = 0;

  private readonly literals: readonly string[];

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
    python: boolean,
  ) {
    this.literals = python ? [...PYTHON_LITERALS, ...LITERALS] : LITERALS;
  }

  document(): JsonNode {
    // A byte-order mark is how some editors start a UTF-8 file; it is not part of the JSON.
    if (this.text.charCodeAt(0) === 0xfeff) this.pos = 1;
    this.skipSpace();
    const node = this.value(1);
    this.skipSpace();
    if (this.pos < this.text.length) this.unexpected('after the end of the document');
    return node;
  }

  private skipSpace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 32 && c !== 9 && c !== 10 && c !== 13) return;
      this.pos++;
    }
  }

  /** Fails on the character at pos (or the end of the text). */
  private unexpected(context = ''): never {
    const where = context ? ` ${context}` : '';
    if (this.pos >= this.text.length) {
      throw new JsonSyntaxError(`unexpected end of input${where}`, this.text.length);
    }
    const cp = this.text.codePointAt(this.pos)!;
    const ch = String.fromCodePoint(cp);
    const shown = cp < 32 || cp === 127 ? `\\u${cp.toString(16).padStart(4, '0')}` : ch;
    throw new JsonSyntaxError(`unexpected character '${shown}'${where}`, this.pos, ch.length);
  }

  private expect(ch: string, what: string): void {
    if (this.text[this.pos] !== ch) this.unexpected(`(expected ${what})`);
    this.pos++;
  }

  private value(depth: number): JsonNode {
    const t = this.text;
    const start = this.pos;
    const c = t[start];
    if (c === '{' || c === '[') {
      if (depth > this.maxDepth) {
        throw new JsonSyntaxError(`values nest deeper than the limit of ${this.maxDepth}`, start);
      }
      return c === '{' ? this.object(depth) : this.array(depth);
    }
    if (c === '"') {
      this.string();
      return { kind: 'scalar', start, end: this.pos };
    }
    for (const lit of this.literals) {
      if (t.startsWith(lit, start)) {
        this.pos += lit.length;
        return { kind: 'scalar', start, end: this.pos };
      }
    }
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      NUMBER.lastIndex = start;
      if (!NUMBER.test(t)) this.unexpected('(expected a number)');
      this.pos = NUMBER.lastIndex;
      return { kind: 'scalar', start, end: this.pos };
    }
    return this.unexpected('(expected a value)');
  }

  /** Moves past a string starting at pos; a plain loop, since a regex may backtrack on megabytes. */
  private string(): void {
    const t = this.text;
    let i = this.pos + 1;
    for (;;) {
      if (i >= t.length) throw new JsonSyntaxError('unterminated string', this.pos);
      const c = t.charCodeAt(i);
      if (c === 34) break; // "
      if (c < 32) {
        this.pos = i;
        this.unexpected('in a string');
      }
      if (c === 92) {
        ESCAPE.lastIndex = i;
        if (!ESCAPE.test(t)) throw new JsonSyntaxError('invalid escape in a string', i, 2);
        i = ESCAPE.lastIndex;
      } else i++;
    }
    this.pos = i + 1;
  }

  private object(depth: number): JsonNode {
    const start = this.pos++;
    const members = new Map<string, JsonMember>();
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return { kind: 'object', start, end: this.pos, members };
    }
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') this.unexpected('(expected a key in double quotes)');
      const keyStart = this.pos;
      this.string();
      const keyEnd = this.pos;
      const key = JSON.parse(this.text.slice(keyStart, keyEnd)) as string;
      if (members.has(key)) {
        throw new JsonSyntaxError(
          `duplicate key ${this.text.slice(keyStart, keyEnd)}`,
          keyStart,
          keyEnd - keyStart,
        );
      }
      this.skipSpace();
      this.expect(':', "':' after the key");
      this.skipSpace();
      members.set(key, { keyStart, keyEnd, value: this.value(depth + 1) });
      this.skipSpace();
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.expect('}', "',' or '}'");
      return { kind: 'object', start, end: this.pos, members };
    }
  }

  private array(depth: number): JsonNode {
    const start = this.pos++;
    const items: JsonNode[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return { kind: 'array', start, end: this.pos, items };
    }
    for (;;) {
      this.skipSpace();
      items.push(this.value(depth + 1));
      this.skipSpace();
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.expect(']', "',' or ']'");
      return { kind: 'array', start, end: this.pos, items };
    }
  }
}

/**
 * The value tree of a JSON text, or a JsonSyntaxError at the first problem. python: also accept
 * NaN, Infinity and -Infinity as values.
 */
export function scanJson(text: string, maxDepth: number, python = false): JsonNode {
  return new Scanner(text, maxDepth, python).document();
}

/** Where a dotted key ('rope_scaling.factor') is written: the key's [start, end), or null. */
export function keyRange(root: JsonNode, dotted: string): [number, number] | null {
  let node: JsonNode = root;
  let range: [number, number] | null = null;
  for (const part of dotted.split('.')) {
    if (node.kind !== 'object') return range;
    const member = node.members.get(part);
    if (!member) return range;
    range = [member.keyStart, member.keyEnd];
    node = member.value;
  }
  return range;
}
