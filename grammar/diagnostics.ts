/**
 * Source positions and the user-facing error every spec stage throws. It lives with the grammar
 * because the lexer and parser are the first to report; src/spec re-exports it.
 */

/**
 * How deep brackets (and YAML/JSON collections; src/spec/limits.ts re-exports it) may nest. Real
 * specs nest about four deep: model { ... attention(rope: rope(scaling: yarn(...))) }. Parsers
 * recurse once per level, so deeper input is refused before parsing.
 */
export const MAX_NESTING = 32;

/** A stretch of source text. line and col are 1-based; offset and length count UTF-16 units. */
export interface Span {
  file: string;
  line: number;
  col: number;
  offset: number;
  length: number;
}

/** The smallest span covering both a and b (same file assumed). */
export function joinSpans(a: Span, b: Span): Span {
  const first = a.offset <= b.offset ? a : b;
  const end = Math.max(a.offset + a.length, b.offset + b.length);
  return { ...first, length: end - first.offset };
}

/**
 * Line breaks as chevrotain's lexer (and editors) count them: CRLF, a lone CR and LF each end a
 * line, so a file saved with old Mac line ends reports the same lines as the lexer's tokens.
 */
const LINE_BREAK = /\r\n|\r|\n/;

/** The span of text[offset, offset + length), with line and column computed from the text. */
export function spanAt(file: string, text: string, offset: number, length: number): Span {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    const c = text.charCodeAt(i);
    // CR counts once, and the LF after it (CRLF) then starts no further line.
    if (c === 13 || (c === 10 && text.charCodeAt(i - 1) !== 13)) line++;
    if (c === 13 || c === 10) lineStart = i + 1;
  }
  return { file, line, col: offset - lineStart + 1, offset, length };
}

/** Source lines wider than this are shown as a window around the caret. */
const MAX_EXCERPT = 120;

/**
 * The source line of a span followed by a caret line under the offending text; the caret stops at
 * the end of the line when the span runs over several lines.
 */
export function excerpt(span: Span, text: string): string {
  const lines = text.split(LINE_BREAK);
  const full = lines[span.line - 1];
  if (full === undefined) return '';
  const gutter = String(span.line);
  let start = Math.min(span.col - 1, full.length);
  let width = span.length;
  let line = full;
  // A minified or generated file can put megabytes on one line: show the part that matters.
  if (full.length > MAX_EXCERPT) {
    const from = Math.max(0, Math.min(start - 20, full.length - MAX_EXCERPT));
    const to = from + MAX_EXCERPT;
    line = (from > 0 ? '…' : '') + full.slice(from, to) + (to < full.length ? '…' : '');
    start += (from > 0 ? 1 : 0) - from;
  }
  width = Math.max(1, Math.min(width, line.length - start));
  // Tabs stay tabs so the caret lines up with the source however the terminal expands them.
  const pad = line.slice(0, start).replace(/[^\t]/g, ' ');
  return ` ${gutter} | ${line}\n` + ` ${' '.repeat(gutter.length)} | ${pad}${'^'.repeat(width)}`;
}

/**
 * An error in a spec the user wrote. Its message is complete and meant to be printed as is:
 * `file:line:col: error: <reason>`, then the source line with a caret under the offending text.
 */
export class SpecError extends Error {
  override name = 'SpecError';
  readonly reason: string;
  readonly file: string;
  /** null when the error concerns the file as a whole (unreadable, unknown format). */
  readonly span: Span | null;

  constructor(reason: string, where: Span | string, sourceText?: string) {
    const span = typeof where === 'string' ? null : where;
    const file = typeof where === 'string' ? where : where.file;
    const head = span
      ? `${file}:${span.line}:${span.col}: error: ${reason}`
      : `${file}: error: ${reason}`;
    const shown = span && sourceText !== undefined ? excerpt(span, sourceText) : '';
    super(shown ? `${head}\n${shown}` : head);
    this.reason = reason;
    this.file = file;
    this.span = span;
  }
}
