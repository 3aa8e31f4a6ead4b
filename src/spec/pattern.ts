/**
 * Megatron-style pattern strings (Megatron-LM / Nemotron-H `hybrid_override_pattern`):
 * `layers "M-M*-" with { M: mamba, "*": attn, "-": mlp }` is one layer per character. A symbol
 * mapped to a mixer gives a layer with that mixer and no ffn; one mapped to an ffn gives a layer
 * with that ffn and no mixer. This module turns the string into one definition reference per
 * layer; the resolver decides the role of each name, so unknown names are reported there.
 */
import type { Ident, LayersStmt, PatternSymbol, StringLit } from '../../grammar/ast.ts';
import type { Span } from '../../grammar/diagnostics.ts';
import type { Fail } from './kind.ts';
import { MAX_LAYERS, tooManyLayers } from './limits.ts';

/** The kinds a definition may have, for the default symbol mapping. */
export interface PatternDefinition {
  name: Ident;
  /** 'mamba1', 'attention', 'mlp', ... ('none' for `mixer NAME = none`). */
  kind: string;
}

/** Megatron's symbols, with the definition kinds each stands for when `with {...}` omits it. */
const DEFAULT_SYMBOLS: ReadonlyMap<string, { kinds: readonly string[]; what: string }> = new Map([
  ['M', { kinds: ['mamba1', 'mamba2'], what: 'Mamba mixer' }],
  ['*', { kinds: ['attention'], what: 'attention mixer' }],
  ['-', { kinds: ['mlp', 'swiglu', 'geglu'], what: 'dense ffn' }],
  ['E', { kinds: ['moe'], what: 'moe ffn' }],
]);

/** One layer of a pattern: the definition it uses, and the character that asked for it. */
export interface PatternLayer {
  name: Ident;
  at: Span;
}

/** The span of character i of a string literal with no escapes (checked by the caller). */
function charSpan(lit: StringLit, i: number): Span {
  return { ...lit.span, col: lit.span.col + 1 + i, offset: lit.span.offset + 1 + i, length: 1 };
}

function symbolText(s: PatternSymbol): string {
  return 'type' in s.symbol ? s.symbol.value : s.symbol.name;
}

export function expandPattern(
  stmt: LayersStmt,
  definitions: readonly PatternDefinition[],
  fail: Fail,
): PatternLayer[] {
  const p = stmt.pattern;
  if (p.type !== 'pattern') throw new Error('expandPattern needs a pattern string');
  const lit = p.pattern;
  const text = lit.value;
  if (stmt.ffn) {
    fail(
      "a pattern string gives each layer its ffn (or none): drop 'with ffn ...' and map symbols in 'with { ... }'",
      stmt.ffn.span,
    );
  }
  if (text.length === 0) fail('a pattern string needs at least one symbol', lit.span);
  // Every symbol is one source character, so carets can point at it; an escape would break that.
  if (lit.span.length !== text.length + 2) {
    fail('a pattern string cannot contain escapes', lit.span);
  }
  if (text.length > MAX_LAYERS) {
    fail(tooManyLayers(text.length), lit.span);
  }

  const mapped = new Map<string, PatternSymbol>();
  for (const s of p.symbols ?? []) {
    const sym = symbolText(s);
    if ([...sym].length !== 1) {
      fail(`a pattern symbol is one character, got '${sym}'`, s.symbol.span);
    }
    const earlier = mapped.get(sym);
    if (earlier) {
      const at = earlier.span;
      fail(`symbol '${sym}' is already mapped at ${at.line}:${at.col}`, s.symbol.span);
    }
    if (!text.includes(sym)) {
      fail(`symbol '${sym}' does not occur in the pattern "${text}"`, s.symbol.span);
    }
    mapped.set(sym, s);
  }

  // Each distinct symbol resolves once, at its first occurrence, so errors point there.
  const resolved = new Map<string, Ident>();
  const layers: PatternLayer[] = [];
  for (let i = 0; i < text.length; i++) {
    const sym = text[i]!;
    const at = charSpan(lit, i);
    let name = resolved.get(sym);
    if (!name) {
      name = mapped.get(sym)?.name ?? defaultFor(sym, at, definitions, fail);
      resolved.set(sym, name);
    }
    layers.push({ name, at });
  }
  return layers;
}

/** The one definition of the kind a Megatron symbol stands for; an error when there is not one. */
function defaultFor(
  sym: string,
  at: Span,
  definitions: readonly PatternDefinition[],
  fail: Fail,
): Ident {
  const how = `map it: with { ${/^[A-Za-z_]$/.test(sym) ? sym : `"${sym}"`}: NAME }`;
  const std = DEFAULT_SYMBOLS.get(sym);
  if (!std) return fail(`unknown pattern symbol '${sym}': ${how}`, at);
  const fits = definitions.filter((d) => std.kinds.includes(d.kind));
  if (fits.length === 1) return fits[0]!.name;
  const found =
    fits.length === 0
      ? `no ${std.what} is defined`
      : `${fits.length} ${std.what}s are defined (${fits.map((d) => d.name.name).join(', ')})`;
  return fail(`which definition is '${sym}'? ${found}: ${how}`, at);
}
