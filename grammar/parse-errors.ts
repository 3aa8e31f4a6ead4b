/** Parse error wording: what was expected, in the user's terms, and what was found. */
import { EOF, type IParserErrorMessageProvider, type IToken, type TokenType } from 'chevrotain';

/** What each rule expects, for errors where no single token was required. */
const RULE_EXPECTS: Record<string, string> = {
  statement: "a statement (a setting such as 'dim 128', or 'mixer', 'ffn', 'layers', 'override')",
  value: 'a value (a number, a string, true, false, none, a name, kind(...) or [list])',
  layerPattern: "a layer pattern such as '16 x attn', '4 x [7 mamba : 1 attn]' or '[attn, mamba]'",
  layerUnit: "a mixer name or a group such as '[3 local : 1 attn]'",
  group: "a ratio such as '3 local : 1 attn' or a sequence such as 'attn, mamba'",
  indexList: "a layer index or a list of indices such as '[0, 5]'",
  ffnBase: "an ffn name, 'none', or a list such as '[mlp, moe]'",
  ffnRef: "an ffn name or 'none'",
  ffnModifier: "'first N name', 'name every N', 'name every N offset K' or 'name at [...]'",
  override: "'layer N' or 'layers [i, j]'",
  overrideEntry: "an override such as 'attn.window: 128', 'mixer: local' or 'ffn: none'",
  definition: "'mixer' or 'ffn'",
  boolLit: "'true' or 'false'",
};

export function describeToken(t: IToken): string {
  return t.tokenType === EOF ? 'end of file' : `'${t.image}'`;
}

function label(t: TokenType): string {
  return t === EOF ? 'end of file' : (t.LABEL ?? t.name);
}

function firstTokens(paths: TokenType[][]): string {
  const labels = [...new Set(paths.map((p) => (p[0] ? label(p[0]) : 'end of file')))];
  return labels.length <= 1
    ? (labels[0] ?? 'something else')
    : `${labels.slice(0, -1).join(', ')} or ${labels.at(-1)}`;
}

export const errorMessages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual, ruleName }) {
    // The statement loop of a model block exits on anything it cannot start a statement with.
    const expects =
      ruleName === 'model' && expected.LABEL === "'}'"
        ? `${RULE_EXPECTS.statement} or '}'`
        : label(expected);
    return `expected ${expects} but found ${describeToken(actual)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `unexpected ${describeToken(firstRedundant)} after the end of the model block`;
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, actual, ruleName }) {
    const found = actual[0] ? describeToken(actual[0]) : 'end of file';
    if (actual[0]?.image === '=') {
      return "unexpected '=': definitions are written 'mixer NAME = kind(...)' or 'ffn NAME = kind(...)'";
    }
    const expects = RULE_EXPECTS[ruleName] ?? firstTokens(expectedPathsPerAlt.flat());
    return `expected ${expects} but found ${found}`;
  },
  buildEarlyExitMessage({ expectedIterationPaths, actual, ruleName }) {
    const found = actual[0] ? describeToken(actual[0]) : 'end of file';
    const expects =
      ruleName === 'override' ? RULE_EXPECTS.overrideEntry! : firstTokens(expectedIterationPaths);
    return `expected ${expects} but found ${found}`;
  },
};
