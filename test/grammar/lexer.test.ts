import { describe, expect, it } from 'vitest';
import { SpecError } from '../../grammar/diagnostics.ts';
import { strataLexer } from '../../grammar/lexer.ts';
import { parseStrata } from '../../grammar/index.ts';

function tokens(text: string): [string, string][] {
  const r = strataLexer.tokenize(text);
  expect(r.errors).toEqual([]);
  return r.tokens.map((t) => [t.tokenType.name, t.image]);
}

function lexFailure(text: string): SpecError {
  try {
    parseStrata(text, 'lex.strata');
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  throw new Error('expected a SpecError');
}

describe('lexer', () => {
  it('tells keywords from identifiers that start with them', () => {
    expect(tokens('layers layer layer_norm x xs offset unit_offset none nonexistent')).toEqual([
      ['Layers', 'layers'],
      ['Layer', 'layer'],
      ['Identifier', 'layer_norm'],
      ['X', 'x'],
      ['Identifier', 'xs'],
      ['Offset', 'offset'],
      ['Identifier', 'unit_offset'],
      ['None', 'none'],
      ['Identifier', 'nonexistent'],
    ]);
  });

  it('reads integers, decimals, exponents and negative numbers', () => {
    expect(tokens('512 1.0 1e-5 2.5E+3 -4')).toEqual([
      ['NumberLiteral', '512'],
      ['NumberLiteral', '1.0'],
      ['NumberLiteral', '1e-5'],
      ['NumberLiteral', '2.5E+3'],
      ['NumberLiteral', '-4'],
    ]);
  });

  it('skips # and // comments to the end of the line', () => {
    expect(tokens('vocab 5 # a comment: with { tokens }\n// another one\ndim 2')).toEqual([
      ['Identifier', 'vocab'],
      ['NumberLiteral', '5'],
      ['Identifier', 'dim'],
      ['NumberLiteral', '2'],
    ]);
  });

  it('reads strings with escapes', () => {
    const ast = parseStrata('model "a \\"b\\" \\\\ c" { }', 'esc.strata');
    expect(ast.name.value).toBe('a "b" \\ c');
  });

  it('reports an unexpected character with its position and a caret', () => {
    const e = lexFailure('model "m" {\n  vocab 5 @\n}');
    expect(e.name).toBe('SpecError');
    expect(e.message).toBe(
      [
        "lex.strata:2:11: error: unexpected character '@'",
        ' 2 |   vocab 5 @',
        ' ~ |           ^'.replace('~', ' '),
      ].join('\n'),
    );
    expect(e.span).toEqual({ file: 'lex.strata', line: 2, col: 11, offset: 22, length: 1 });
  });

  it('reports an unterminated string up to the end of its line', () => {
    const e = lexFailure('model "m {\n}');
    expect(e.reason).toBe('unterminated string');
    expect(e.message).toContain(' 1 | model "m {\n   |       ^^^^');
  });
});
