import { describe, expect, it } from 'vitest';
import { excerpt, joinSpans, spanAt } from '../../grammar/diagnostics.ts';
import { closest, didYouMean, editDistance } from '../../grammar/suggest.ts';

describe('editDistance', () => {
  it('counts insertions, deletions, substitutions and adjacent swaps as one edit', () => {
    expect(editDistance('mamba', 'mamba')).toBe(0);
    expect(editDistance('mamab', 'mamba')).toBe(1);
    expect(editDistance('atention', 'attention')).toBe(1);
    expect(editDistance('heads', 'head')).toBe(1);
    expect(editDistance('relu3', 'relu2')).toBe(1);
    expect(editDistance('abc', 'xyz')).toBe(3);
    expect(editDistance('', 'ab')).toBe(2);
  });
});

describe('closest', () => {
  it('suggests the nearest candidate within the typo budget', () => {
    expect(closest('mamab', ['attn', 'mamba'])).toBe('mamba');
    expect(closest('kvheads', ['heads', 'kv_heads'])).toBe('kv_heads');
    expect(closest('Heads', ['heads'])).toBe('heads');
  });

  it('suggests nothing for distant or very short names', () => {
    expect(closest('window', ['heads', 'kv_heads'])).toBeNull();
    expect(closest('ab', ['xy'])).toBeNull();
    // One edit is allowed below five characters, two from five on.
    expect(closest('atn', ['attn'])).toBe('attn');
    expect(closest('at', ['attn'])).toBeNull();
    expect(closest('windw', ['window'])).toBe('window');
  });

  it('phrases a suggestion', () => {
    expect(didYouMean('mamab', ['mamba'])).toBe(", did you mean 'mamba'?");
    expect(didYouMean('zzz', ['mamba'])).toBe('');
  });
});

describe('spans and excerpts', () => {
  const text = 'line one\n\tsecond line\nthird';

  it('computes line and column from an offset', () => {
    expect(spanAt('f', text, 0, 4)).toEqual({ file: 'f', line: 1, col: 1, offset: 0, length: 4 });
    expect(spanAt('f', text, 10, 6)).toEqual({ file: 'f', line: 2, col: 2, offset: 10, length: 6 });
  });

  it('joins spans into one covering both', () => {
    const a = spanAt('f', text, 10, 6);
    const b = spanAt('f', text, 17, 4);
    expect(joinSpans(b, a)).toMatchObject({ offset: 10, length: 11, line: 2, col: 2 });
  });

  it('keeps tabs so the caret lines up, and stops it at the end of the line', () => {
    expect(excerpt(spanAt('f', text, 10, 6), text)).toBe(' 2 | \tsecond line\n   | \t^^^^^^');
    expect(excerpt(spanAt('f', text, 17, 30), text)).toBe(' 2 | \tsecond line\n   | \t       ^^^^');
  });
});
