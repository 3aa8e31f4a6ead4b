/** Text to AST: lexing, parsing, and turning the first lexer or parser error into a SpecError. */
import { EOF, type ILexingError, type IRecognitionException, type IToken } from 'chevrotain';
import type { ModelAst } from './ast.ts';
import { MAX_NESTING, SpecError, spanAt, type Span } from './diagnostics.ts';
import {
  Identifier,
  LBracket,
  LCurly,
  LParen,
  RBracket,
  RCurly,
  RParen,
  strataLexer,
} from './lexer.ts';
import { StrataParser, STATEMENT_KEYWORDS } from './parser.ts';
import { closest } from './suggest.ts';

// Building a chevrotain parser analyses the whole grammar: do it once.
let parser: StrataParser | null = null;

function lexError(e: ILexingError, file: string, text: string): SpecError {
  const ch = text[e.offset] ?? '';
  if (ch === '"') {
    // The string runs to the end of its line, whichever line break ends it.
    const lineEnd = text.slice(e.offset).search(/[\r\n]/);
    const end = lineEnd < 0 ? text.length : e.offset + lineEnd;
    return new SpecError('unterminated string', spanAt(file, text, e.offset, end - e.offset), text);
  }
  // Whole code points (an emoji is two UTF-16 units), control characters as escapes.
  const cp = text.codePointAt(e.offset) ?? 0;
  const char = String.fromCodePoint(cp);
  const shown = cp < 32 || cp === 127 ? JSON.stringify(char).slice(1, -1) : char;
  return new SpecError(
    `unexpected character '${shown}'`,
    spanAt(file, text, e.offset, char.length),
    text,
  );
}

function tokenSpan(t: IToken, file: string, text: string): Span {
  if (t.tokenType === EOF || Number.isNaN(t.startOffset)) {
    // Point just after the last meaningful character rather than at trailing blank lines.
    return spanAt(file, text, text.trimEnd().length, 1);
  }
  return spanAt(file, text, t.startOffset, t.image.length);
}

/**
 * A misspelt statement keyword ('layres 2 x attn') parses as a setting and fails a few tokens
 * later; naming the keyword is more useful than the token where the parser gave up.
 */
function misspeltKeyword(
  failed: IToken,
  tokens: IToken[],
): { token: IToken; keyword: string } | null {
  if (failed.tokenType === EOF) return null;
  const keywords = STATEMENT_KEYWORDS.map((k) => (k.LABEL ?? '').slice(1, -1));
  // The statement's first token: the first on the failing line, or the key of the one-value
  // setting the typo was parsed as ('layres 2' x ..., 'mixr a' = ...).
  const at = tokens.indexOf(failed);
  const leads = [tokens.find((t) => t.startLine === failed.startLine), tokens[at - 2]];
  for (const lead of leads) {
    if (!lead || lead.tokenType !== Identifier) continue;
    const keyword = closest(lead.image, keywords);
    if (keyword !== null) return { token: lead, keyword };
  }
  return null;
}

function parseError(
  e: IRecognitionException,
  tokens: IToken[],
  file: string,
  text: string,
): SpecError {
  const typo = misspeltKeyword(e.token, tokens);
  if (typo) {
    return new SpecError(
      `unknown statement '${typo.token.image}', did you mean '${typo.keyword}'?`,
      tokenSpan(typo.token, file, text),
      text,
    );
  }
  return new SpecError(e.message, tokenSpan(e.token, file, text), text);
}

/**
 * Refuses brackets nested deeper than maxDepth before the parser sees them: the parser recurses
 * once per level, and a thousand levels would overflow the stack instead of reporting an error.
 * Unbalanced brackets are left for the parser to report.
 */
function checkNesting(tokens: IToken[], maxDepth: number, file: string, text: string): void {
  let depth = 0;
  for (const t of tokens) {
    const type = t.tokenType;
    if (type === LParen || type === LBracket || type === LCurly) {
      depth++;
      if (depth > maxDepth) {
        throw new SpecError(
          `brackets nest deeper than the limit of ${maxDepth}`,
          tokenSpan(t, file, text),
          text,
        );
      }
    } else if (type === RParen || type === RBracket || type === RCurly) {
      depth = Math.max(0, depth - 1);
    }
  }
}

/** Parses one .strata source into its AST, or throws the first lexical or syntax error. */
export function parseStrata(text: string, file: string): ModelAst {
  const lexed = strataLexer.tokenize(text);
  const firstLexError = lexed.errors[0];
  if (firstLexError) throw lexError(firstLexError, file, text);
  checkNesting(lexed.tokens, MAX_NESTING, file, text);
  parser ??= new StrataParser();
  parser.file = file;
  parser.input = lexed.tokens;
  const ast = parser.model();
  const firstParseError = parser.errors[0];
  if (firstParseError) throw parseError(firstParseError, lexed.tokens, file, text);
  return ast;
}
