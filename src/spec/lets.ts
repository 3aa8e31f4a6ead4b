/**
 * `let` parameters: each let is evaluated in order (arithmetic on earlier lets included), then
 * every use is replaced by its value, so the resolver only ever sees literals. Uses keep their own
 * spans, so a value that does not fit where it is used is reported there. ModelIR has no lets:
 * printSpec writes the resolved design, which is what was checked (explore writes designs by
 * replacing let values in the source instead, keeping the parameters readable).
 */
import type {
  Arg,
  FfnModifier,
  FfnRef,
  FfnSchedule,
  Ident,
  LayerGroup,
  LayerPattern,
  LayersStmt,
  LayerUnit,
  LetStmt,
  LetValue,
  ModelAst,
  NumberLit,
  OverrideStmt,
  Placement,
  Statement,
  Value,
} from '../../grammar/ast.ts';
import type { Span } from '../../grammar/diagnostics.ts';
import { didYouMean } from '../../grammar/suggest.ts';
import { formatNumber } from './dsl-value.ts';
import type { Fail } from './kind.ts';
import { describeValue } from './values.ts';

/** One parameter: where it is defined and what it evaluated to. */
export interface LetBinding {
  stmt: LetStmt;
  value: Value;
}

function where(s: Span): string {
  return `${s.line}:${s.col}`;
}

/** A copy of v with every span moved to `at` (the use site), so errors point where it is used. */
function respan(v: Value, at: Span): Value {
  switch (v.type) {
    case 'call':
      return {
        type: 'call',
        kind: { name: v.kind.name, span: at },
        args: v.args?.map((a) => ({ ...a, value: respan(a.value, at), span: at })) ?? null,
        span: at,
      };
    case 'list':
      return { type: 'list', items: v.items.map((i) => respan(i, at)), span: at };
    default:
      return { ...v, span: at };
  }
}

/** A bare name (`mamba`): how a parameter holding a mixer, ffn or kind name reads. */
function bareName(v: Value): string | null {
  return v.type === 'call' && v.args === null ? v.kind.name : null;
}

class Lets {
  readonly bindings = new Map<string, LetBinding>();
  /** Every let name, defined yet or not, to tell "used before its definition" from "unknown". */
  private readonly all: Map<string, LetStmt>;

  constructor(
    ast: ModelAst,
    private readonly fail: Fail,
  ) {
    this.all = new Map();
    const definitions = new Map<string, Span>();
    for (const s of ast.statements) {
      if (s.type === 'definition') definitions.set(s.name.name, s.name.span);
    }
    for (const s of ast.statements) {
      if (s.type !== 'let') continue;
      const name = s.name.name;
      const earlier = this.all.get(name);
      if (earlier) {
        fail(`parameter '${name}' is already defined at ${where(earlier.name.span)}`, s.name.span);
      }
      const def = definitions.get(name);
      if (def) {
        fail(
          `parameter '${name}' has the name of the definition at ${where(def)}: rename one`,
          s.name.span,
        );
      }
      this.all.set(name, s);
    }
    for (const s of this.all.values()) {
      this.bindings.set(s.name.name, { stmt: s, value: this.evaluate(s.value) });
    }
  }

  private binding(name: string, at: Span): LetBinding | null {
    const b = this.bindings.get(name);
    if (b) return b;
    const later = this.all.get(name);
    if (later) {
      this.fail(
        `parameter '${name}' is used before its definition at ${where(later.name.span)}`,
        at,
      );
    }
    return null;
  }

  private evaluate(v: LetValue): Value {
    if (v.type !== 'binary') return this.value(v);
    const a = this.number(this.evaluate(v.left), v.left.span);
    const b = this.number(this.evaluate(v.right), v.right.span);
    if (v.op === '/' && b === 0) this.fail('division by zero', v.right.span);
    const n = v.op === '+' ? a + b : v.op === '-' ? a - b : v.op === '*' ? a * b : a / b;
    return { type: 'number', value: n, text: formatNumber(n), span: v.span };
  }

  private number(v: Value, at: Span): number {
    if (v.type !== 'number') {
      this.fail(`arithmetic needs numbers, got ${describeValue(v)}`, at);
    }
    return v.value;
  }

  /** A value with parameters replaced: a bare parameter name, or a call whose kind is one. */
  value(v: Value): Value {
    switch (v.type) {
      case 'call': {
        const b = this.binding(v.kind.name, v.kind.span);
        if (b && v.args === null) return respan(b.value, v.span);
        const kind = b ? this.nameOf(b, v.kind, 'a kind name') : v.kind;
        return { ...v, kind, args: v.args?.map((a) => this.arg(a)) ?? null };
      }
      case 'list':
        return { ...v, items: v.items.map((i) => this.value(i)) };
      default:
        return v;
    }
  }

  private arg(a: Arg): Arg {
    return { ...a, value: this.value(a.value) };
  }

  private nameOf(b: LetBinding, use: Ident, what: string): Ident {
    const name = bareName(b.value);
    if (name === null) this.mismatch(b, what, use.span);
    return { name, span: use.span };
  }

  private mismatch(b: LetBinding, what: string, at: Span): never {
    return this.fail(
      `parameter '${b.stmt.name.name}' (defined at ${where(b.stmt.name.span)}) is ${describeValue(b.value)}, but ${what} goes here`,
      at,
    );
  }

  /** A mixer or ffn reference: a parameter holding a name, or the name itself. */
  ident(i: Ident): Ident {
    const b = this.binding(i.name, i.span);
    return b ? this.nameOf(b, i, 'a mixer or ffn name') : i;
  }

  private ffnRef(r: FfnRef): FfnRef {
    return 'type' in r ? r : this.ident(r);
  }

  /** A count or offset written as a parameter name. */
  count(n: NumberLit): NumberLit {
    const [one, ...more] = this.counts(n);
    if (more.length > 0 || !one) {
      const b = this.bindings.get(n.text)!;
      this.mismatch(b, 'one number', n.span);
    }
    return one;
  }

  /** Index list items: a parameter may hold one number or a list of them. */
  counts(n: NumberLit): NumberLit[] {
    if (!n.ref) return [n];
    const b = this.binding(n.ref.name, n.span);
    if (!b) {
      const names = [...this.bindings.keys()];
      return this.fail(`unknown parameter '${n.ref.name}'${didYouMean(n.ref.name, names)}`, n.span);
    }
    const items = b.value.type === 'list' ? b.value.items : [b.value];
    return items.map((v) => {
      if (v.type !== 'number') this.mismatch(b, 'a number', n.span);
      return { type: 'number', value: v.value, text: formatNumber(v.value), span: n.span };
    });
  }

  private group(g: LayerGroup): LayerGroup {
    if (g.type === 'sequence') return { ...g, items: g.items.map((i) => this.ident(i)) };
    return {
      ...g,
      parts: g.parts.map((p) => ({
        ...p,
        count: this.count(p.count),
        name: this.ident(p.name),
        at: p.at ? this.count(p.at) : null,
      })),
    };
  }

  private unit(u: LayerUnit): LayerUnit {
    return u.type === 'name' ? { ...u, name: this.ident(u.name) } : this.group(u);
  }

  private pattern(p: LayerPattern): LayerPattern {
    const placements = (ps: readonly Placement[]): Placement[] =>
      ps.map((x) => ({
        ...x,
        name: this.ident(x.name),
        indices: x.indices.flatMap((n) => this.counts(n)),
      }));
    switch (p.type) {
      case 'pattern':
        return {
          ...p,
          symbols: p.symbols?.map((s) => ({ ...s, name: this.ident(s.name) })) ?? null,
        };
      case 'repeat':
        return {
          ...p,
          count: p.count ? this.count(p.count) : null,
          unit: this.unit(p.unit),
          placements: placements(p.placements),
        };
      case 'total':
        return {
          ...p,
          count: this.count(p.count),
          group: this.group(p.group),
          placements: placements(p.placements),
        };
    }
  }

  private modifier(m: FfnModifier): FfnModifier {
    switch (m.type) {
      case 'first':
        return { ...m, count: this.count(m.count), ref: this.ffnRef(m.ref) };
      case 'every':
        return {
          ...m,
          ref: this.ffnRef(m.ref),
          every: this.count(m.every),
          offset: m.offset ? this.count(m.offset) : null,
        };
      case 'at':
        return { ...m, ref: this.ffnRef(m.ref), indices: m.indices.flatMap((n) => this.counts(n)) };
    }
  }

  private schedule(f: FfnSchedule): FfnSchedule {
    const base =
      f.base.type === 'single'
        ? { ...f.base, ref: this.ffnRef(f.base.ref) }
        : { ...f.base, refs: f.base.refs.map((r) => this.ffnRef(r)) };
    return { ...f, base, modifiers: f.modifiers.map((m) => this.modifier(m)) };
  }

  private layers(s: LayersStmt): LayersStmt {
    return { ...s, pattern: this.pattern(s.pattern), ffn: s.ffn ? this.schedule(s.ffn) : null };
  }

  private override(s: OverrideStmt): OverrideStmt {
    return {
      ...s,
      layers: s.layers.flatMap((n) => this.counts(n)),
      entries: s.entries.map((e) => ({ ...e, value: this.value(e.value) })),
    };
  }

  statement(s: Statement): Statement | null {
    switch (s.type) {
      case 'let':
        return null;
      case 'setting':
        return { ...s, value: this.value(s.value) };
      case 'definition':
        return { ...s, value: this.value(s.value) };
      case 'layers':
        return this.layers(s);
      case 'override':
        return this.override(s);
    }
  }
}

/** The parameters of a parsed spec, evaluated, in the order they are defined. */
export function letBindings(ast: ModelAst, fail: Fail): Map<string, LetBinding> {
  return new Lets(ast, fail).bindings;
}

/** The spec with its lets evaluated and substituted: what the resolver reads. */
export function substituteLets(ast: ModelAst, fail: Fail): ModelAst {
  const lets = new Lets(ast, fail);
  const statements: Statement[] = [];
  for (const s of ast.statements) {
    const out = lets.statement(s);
    if (out) statements.push(out);
  }
  return { ...ast, statements };
}
