/** Tokens of the strata DSL. Labels are what parse errors show for an expected token. */
import { createToken, Lexer, type TokenType } from 'chevrotain';

/** Anything that can name a parameter: identifiers and keywords alike (a kind may take `offset:`). */
export const Name = createToken({ name: 'Name', pattern: Lexer.NA, label: 'a name' });

export const Identifier = createToken({
  name: 'Identifier',
  pattern: /[A-Za-z_][A-Za-z0-9_]*/,
  label: 'a name',
  categories: [Name],
});

function keyword(word: string): TokenType {
  return createToken({
    name: word[0]!.toUpperCase() + word.slice(1),
    pattern: new RegExp(word),
    label: `'${word}'`,
    longer_alt: Identifier,
    categories: [Name],
  });
}

// 'layers' precedes 'layer' so the longer keyword wins.
export const Model = keyword('model');
export const Mixer = keyword('mixer');
export const Ffn = keyword('ffn');
export const Shared = keyword('shared');
export const Layers = keyword('layers');
export const Layer = keyword('layer');
export const Override = keyword('override');
export const With = keyword('with');
export const First = keyword('first');
export const Every = keyword('every');
export const Offset = keyword('offset');
export const At = keyword('at');
export const As = keyword('as');
export const X = keyword('x');
export const True = keyword('true');
export const False = keyword('false');
export const None = keyword('none');
export const Let = keyword('let');

export const KEYWORDS: readonly TokenType[] = [
  Model,
  Mixer,
  Ffn,
  Shared,
  Layers,
  Layer,
  Override,
  With,
  First,
  Every,
  Offset,
  At,
  As,
  X,
  True,
  False,
  None,
  Let,
];

/** Reserved words: they cannot name a mixer or ffn definition. */
export const RESERVED_WORDS: ReadonlySet<string> = new Set(
  KEYWORDS.map((k) => (k.LABEL ?? '').slice(1, -1)),
);

export const NumberLiteral = createToken({
  name: 'NumberLiteral',
  pattern: /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/,
  label: 'a number',
});
export const StringLiteral = createToken({
  name: 'StringLiteral',
  pattern: /"(?:[^"\\\n\r]|\\.)*"/,
  label: 'a string',
});

export const LCurly = createToken({ name: 'LCurly', pattern: /{/, label: "'{'" });
export const RCurly = createToken({ name: 'RCurly', pattern: /}/, label: "'}'" });
export const LParen = createToken({ name: 'LParen', pattern: /\(/, label: "'('" });
export const RParen = createToken({ name: 'RParen', pattern: /\)/, label: "')'" });
export const LBracket = createToken({ name: 'LBracket', pattern: /\[/, label: "'['" });
export const RBracket = createToken({ name: 'RBracket', pattern: /]/, label: "']'" });
export const Comma = createToken({ name: 'Comma', pattern: /,/, label: "','" });
export const Colon = createToken({ name: 'Colon', pattern: /:/, label: "':'" });
export const Equals = createToken({ name: 'Equals', pattern: /=/, label: "'='" });
export const Dot = createToken({ name: 'Dot', pattern: /\./, label: "'.'" });
// Arithmetic, only in `let` values. A '-' directly before digits lexes as a negative number, so
// subtraction is written with spaces ('ratio - 1').
export const Plus = createToken({ name: 'Plus', pattern: /\+/, label: "'+'" });
export const Minus = createToken({ name: 'Minus', pattern: /-/, label: "'-'" });
export const Star = createToken({ name: 'Star', pattern: /\*/, label: "'*'" });
export const Slash = createToken({ name: 'Slash', pattern: /\//, label: "'/'" });

const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /\s+/, group: Lexer.SKIPPED });
const Comment = createToken({
  name: 'Comment',
  pattern: /(?:#|\/\/)[^\n\r]*/,
  group: Lexer.SKIPPED,
});

export const ALL_TOKENS: TokenType[] = [
  WhiteSpace,
  Comment,
  StringLiteral,
  NumberLiteral,
  ...KEYWORDS,
  Identifier,
  Name,
  LCurly,
  RCurly,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Comma,
  Colon,
  Equals,
  Dot,
  Plus,
  Minus,
  Star,
  Slash,
];

export const strataLexer = new Lexer(ALL_TOKENS, {
  positionTracking: 'full',
  ensureOptimizations: false,
});
