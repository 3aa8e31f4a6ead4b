/**
 * The strata parser: chevrotain's LL(k) engine with embedded actions that build the typed AST of
 * ast.ts directly. Node construction sits inside ACTION() because chevrotain first runs every
 * rule once in a recording phase where tokens and sub-results are placeholders.
 */
import { EmbeddedActionsParser, type IToken, type TokenType } from 'chevrotain';
import type {
  Arg,
  BlockRole,
  CallValue,
  DefinitionStmt,
  FfnBase,
  FfnModifier,
  FfnRef,
  FfnSchedule,
  Ident,
  LayerGroup,
  LetStmt,
  LetValue,
  LayerPattern,
  LayersStmt,
  LayerUnit,
  PatternSymbol,
  ListValue,
  ModelAst,
  NoneLit,
  NumberLit,
  OverrideEntry,
  OverrideStmt,
  Placement,
  RatioPart,
  SettingStmt,
  Statement,
  StringLit,
  Value,
} from './ast.ts';
import { joinSpans, type Span } from './diagnostics.ts';
import { errorMessages } from './parse-errors.ts';
import {
  ALL_TOKENS,
  As,
  At,
  Colon,
  Comma,
  Dot,
  Equals,
  Every,
  False,
  Ffn,
  First,
  Identifier,
  Layer,
  Layers,
  LBracket,
  LCurly,
  LParen,
  Mixer,
  Shared,
  Model,
  Name,
  None,
  NumberLiteral,
  Offset,
  Override,
  RBracket,
  RCurly,
  RParen,
  StringLiteral,
  True,
  With,
  X,
  Let,
  Plus,
  Minus,
  Star,
  Slash,
} from './lexer.ts';

/** Single-character escapes beyond \" and \\, as JSON writes them. */
const ESCAPES: ReadonlyMap<string, string> = new Map([
  ['n', '\n'],
  ['t', '\t'],
  ['r', '\r'],
  ['b', '\b'],
  ['f', '\f'],
]);

/**
 * The text of a string literal. JSON's escapes, \uXXXX included, read as JSON reads them: the
 * printer writes names with JSON.stringify, and they must read back unchanged. Any other escaped
 * character stands for itself.
 */
function unescape(quoted: string): string {
  return quoted
    .slice(1, -1)
    .replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, c: string) =>
      c.length === 5 ? String.fromCharCode(parseInt(c.slice(1), 16)) : (ESCAPES.get(c) ?? c),
    );
}

export class StrataParser extends EmbeddedActionsParser {
  /** File name recorded in every span of the next parse. */
  file = '<input>';

  constructor() {
    super(ALL_TOKENS, { maxLookahead: 3, errorMessageProvider: errorMessages });
    this.performSelfAnalysis();
  }

  private tokenSpan(t: IToken): Span {
    return {
      file: this.file,
      line: t.startLine ?? 1,
      col: t.startColumn ?? 1,
      offset: t.startOffset,
      length: (t.endOffset ?? t.startOffset) - t.startOffset + 1,
    };
  }

  /** From the start token to the last token consumed so far. */
  private spanFrom(start: IToken | Span): Span {
    const first = 'image' in start ? this.tokenSpan(start) : start;
    return joinSpans(first, this.tokenSpan(this.LA(0)));
  }

  private ident(t: IToken): Ident {
    return { name: t.image, span: this.tokenSpan(t) };
  }

  public model = this.RULE('model', (): ModelAst => {
    const start = this.CONSUME(Model);
    const name = this.SUBRULE(this.stringLit);
    this.CONSUME(LCurly);
    const statements: Statement[] = [];
    this.MANY(() => {
      const s = this.SUBRULE(this.statement);
      this.ACTION(() => statements.push(s));
    });
    this.CONSUME(RCurly);
    return this.ACTION(() => ({ name, statements, span: this.spanFrom(start) }));
  });

  private statement = this.RULE('statement', (): Statement =>
    this.OR([
      { ALT: () => this.SUBRULE(this.setting) },
      { ALT: () => this.SUBRULE(this.definition) },
      { ALT: () => this.SUBRULE(this.layers) },
      { ALT: () => this.SUBRULE(this.override) },
      { ALT: () => this.SUBRULE(this.letStmt) },
    ]),
  );

  private letStmt = this.RULE('letStmt', (): LetStmt => {
    const start = this.CONSUME(Let);
    const name = this.CONSUME(Identifier);
    this.CONSUME(Equals);
    const value = this.SUBRULE(this.sum);
    return this.ACTION(() => ({
      type: 'let' as const,
      name: this.ident(name),
      value,
      span: this.spanFrom(start),
    }));
  });

  /** `a + b - c`, left-associative over products. */
  private sum = this.RULE('sum', (): LetValue => {
    let left = this.SUBRULE(this.product);
    this.MANY(() => {
      const op = this.OR([{ ALT: () => this.CONSUME(Plus) }, { ALT: () => this.CONSUME(Minus) }]);
      const right = this.SUBRULE2(this.product);
      this.ACTION(() => {
        left = binary(op.image, left, right);
      });
    });
    return left;
  });

  private product = this.RULE('product', (): LetValue => {
    let left = this.SUBRULE(this.atom);
    this.MANY(() => {
      const op = this.OR([{ ALT: () => this.CONSUME(Star) }, { ALT: () => this.CONSUME(Slash) }]);
      const right = this.SUBRULE2(this.atom);
      this.ACTION(() => {
        left = binary(op.image, left, right);
      });
    });
    return left;
  });

  private atom = this.RULE('atom', (): LetValue =>
    this.OR([
      { ALT: () => this.SUBRULE(this.value) },
      {
        ALT: () => {
          this.CONSUME(LParen);
          const inner = this.SUBRULE(this.sum);
          this.CONSUME(RParen);
          return inner;
        },
      },
    ]),
  );

  /** A number where the layer grammar takes one, or a parameter name standing for it. */
  private countLit = this.RULE('countLit', (): NumberLit =>
    this.OR([
      { ALT: () => this.SUBRULE(this.numberLit) },
      {
        ALT: () => {
          const t = this.CONSUME(Identifier);
          return this.ACTION(() => ({
            type: 'number' as const,
            value: NaN,
            text: t.image,
            span: this.tokenSpan(t),
            ref: this.ident(t),
          }));
        },
      },
    ]),
  );

  private setting = this.RULE('setting', (): SettingStmt => {
    const key = this.CONSUME(Identifier);
    const value = this.SUBRULE(this.value);
    return this.ACTION(() => ({
      type: 'setting' as const,
      key: this.ident(key),
      value,
      span: this.spanFrom(key),
    }));
  });

  private definition = this.RULE('definition', (): DefinitionStmt => {
    const role = this.OR([
      { ALT: () => this.CONSUME(Mixer) },
      { ALT: () => this.CONSUME(Ffn) },
      { ALT: () => this.CONSUME(Shared) },
    ]);
    const name = this.CONSUME(Identifier);
    this.CONSUME(Equals);
    const value = this.SUBRULE(this.value);
    return this.ACTION(() => ({
      type: 'definition' as const,
      role: role.image as BlockRole,
      name: this.ident(name),
      value,
      span: this.spanFrom(role),
    }));
  });

  private layers = this.RULE('layers', (): LayersStmt => {
    const start = this.CONSUME(Layers);
    const pattern = this.SUBRULE(this.layerPattern);
    const ffn = this.OPTION(() => this.SUBRULE(this.ffnSchedule));
    return this.ACTION(() => ({
      type: 'layers' as const,
      pattern,
      ffn: ffn ?? null,
      span: this.spanFrom(start),
    }));
  });

  private layerPattern = this.RULE('layerPattern', (): LayerPattern =>
    this.OR([
      {
        ALT: () => {
          const pattern = this.SUBRULE(this.stringLit);
          // The layers rule may follow with `with ffn`, which this rule's own lookahead cannot
          // see, so the second token decides.
          const symbols = this.OPTION({
            GATE: () => this.LA(2).tokenType === LCurly,
            DEF: () => this.SUBRULE(this.patternSymbols),
          });
          return this.ACTION(() => ({
            type: 'pattern' as const,
            pattern,
            symbols: symbols ?? null,
            span: this.spanFrom(pattern.span),
          }));
        },
      },
      {
        ALT: () => {
          const count = this.SUBRULE(this.countLit);
          return this.OR2([
            {
              ALT: () => {
                this.CONSUME(X);
                const unit = this.SUBRULE(this.layerUnit);
                const placements = this.SUBRULE(this.placements);
                return this.ACTION(() => ({
                  type: 'repeat' as const,
                  count,
                  unit,
                  placements,
                  span: this.spanFrom(count.span),
                }));
              },
            },
            {
              ALT: () => {
                this.CONSUME(As);
                const group = this.SUBRULE(this.group);
                const placements = this.SUBRULE2(this.placements);
                return this.ACTION(() => ({
                  type: 'total' as const,
                  count,
                  group,
                  placements,
                  span: this.spanFrom(count.span),
                }));
              },
            },
          ]);
        },
      },
      {
        ALT: () => {
          const unit = this.SUBRULE2(this.layerUnit);
          const placements = this.SUBRULE3(this.placements);
          return this.ACTION(() => ({
            type: 'repeat' as const,
            count: null,
            unit,
            placements,
            span: this.spanFrom(unit.span),
          }));
        },
      },
    ]),
  );

  /** `with { M: mamba, "*": attn, }`; `with ffn ...` (two tokens in) is the ffn schedule instead. */
  private patternSymbols = this.RULE('patternSymbols', (): PatternSymbol[] => {
    this.CONSUME(With);
    this.CONSUME(LCurly);
    const out: PatternSymbol[] = [];
    this.OPTION(() => {
      const first = this.SUBRULE(this.patternSymbol);
      this.ACTION(() => out.push(first));
      this.MANY(() => {
        this.CONSUME(Comma);
        const next = this.SUBRULE2(this.patternSymbol);
        this.ACTION(() => out.push(next));
      });
      this.OPTION2(() => this.CONSUME2(Comma));
    });
    this.CONSUME(RCurly);
    return out;
  });

  private patternSymbol = this.RULE('patternSymbol', (): PatternSymbol => {
    // Any name works as a symbol, keywords included (`x`); other characters need quotes.
    const symbol = this.OR([
      {
        ALT: () => {
          const t = this.CONSUME(Name);
          return this.ACTION(() => this.ident(t));
        },
      },
      { ALT: () => this.SUBRULE(this.stringLit) },
    ]);
    this.CONSUME(Colon);
    const name = this.CONSUME(Identifier);
    return this.ACTION(() => ({
      symbol,
      name: this.ident(name),
      span: this.spanFrom(symbol.span),
    }));
  });

  private layerUnit = this.RULE('layerUnit', (): LayerUnit =>
    this.OR([
      {
        ALT: () => {
          const t = this.CONSUME(Identifier);
          return this.ACTION(() => ({
            type: 'name' as const,
            name: this.ident(t),
            span: this.tokenSpan(t),
          }));
        },
      },
      { ALT: () => this.SUBRULE(this.group) },
    ]),
  );

  private group = this.RULE('group', (): LayerGroup => {
    const open = this.CONSUME(LBracket);
    const group = this.OR([
      {
        ALT: () => {
          const parts: RatioPart[] = [];
          const first = this.SUBRULE(this.ratioPart);
          this.ACTION(() => parts.push(first));
          this.MANY(() => {
            this.CONSUME(Colon);
            const p = this.SUBRULE2(this.ratioPart);
            this.ACTION(() => parts.push(p));
          });
          return { type: 'ratio' as const, parts };
        },
      },
      {
        ALT: () => {
          const items: Ident[] = [];
          const first = this.CONSUME(Identifier);
          this.ACTION(() => items.push(this.ident(first)));
          this.MANY2(() => {
            this.CONSUME(Comma);
            const t = this.CONSUME2(Identifier);
            this.ACTION(() => items.push(this.ident(t)));
          });
          return { type: 'sequence' as const, items };
        },
      },
    ]);
    this.CONSUME(RBracket);
    return this.ACTION(() => ({ ...group, span: this.spanFrom(open) }));
  });

  private ratioPart = this.RULE('ratioPart', (): RatioPart => {
    const count = this.SUBRULE(this.countLit);
    const name = this.CONSUME(Identifier);
    const at = this.OPTION(() => {
      this.CONSUME(At);
      return this.SUBRULE2(this.countLit);
    });
    return this.ACTION(() => ({
      count,
      name: this.ident(name),
      at: at ?? null,
      span: this.spanFrom(count.span),
    }));
  });

  private placements = this.RULE('placements', (): Placement[] => {
    const out: Placement[] = [];
    this.MANY(() => {
      this.CONSUME(Comma);
      const name = this.CONSUME(Identifier);
      this.CONSUME(At);
      const indices = this.SUBRULE(this.indexList);
      this.ACTION(() => out.push({ name: this.ident(name), indices, span: this.spanFrom(name) }));
    });
    return out;
  });

  private indexList = this.RULE('indexList', (): NumberLit[] =>
    this.OR([
      {
        ALT: () => {
          const n = this.SUBRULE(this.countLit);
          return this.ACTION(() => [n]);
        },
      },
      {
        ALT: () => {
          const out: NumberLit[] = [];
          this.CONSUME(LBracket);
          const first = this.SUBRULE2(this.countLit);
          this.ACTION(() => out.push(first));
          this.MANY(() => {
            this.CONSUME(Comma);
            const n = this.SUBRULE3(this.countLit);
            this.ACTION(() => out.push(n));
          });
          this.CONSUME(RBracket);
          return out;
        },
      },
    ]),
  );

  private ffnSchedule = this.RULE('ffnSchedule', (): FfnSchedule => {
    const start = this.CONSUME(With);
    this.CONSUME(Ffn);
    const base = this.SUBRULE(this.ffnBase);
    const modifiers: FfnModifier[] = [];
    this.MANY(() => {
      this.CONSUME(Comma);
      const m = this.SUBRULE(this.ffnModifier);
      this.ACTION(() => modifiers.push(m));
    });
    return this.ACTION(() => ({ base, modifiers, span: this.spanFrom(start) }));
  });

  private ffnBase = this.RULE('ffnBase', (): FfnBase =>
    this.OR([
      {
        ALT: () => {
          const open = this.CONSUME(LBracket);
          const refs: FfnRef[] = [];
          const first = this.SUBRULE(this.ffnRef);
          this.ACTION(() => refs.push(first));
          this.MANY(() => {
            this.CONSUME(Comma);
            const r = this.SUBRULE2(this.ffnRef);
            this.ACTION(() => refs.push(r));
          });
          this.CONSUME(RBracket);
          return this.ACTION(() => ({ type: 'cycle' as const, refs, span: this.spanFrom(open) }));
        },
      },
      {
        ALT: () => {
          const ref = this.SUBRULE3(this.ffnRef);
          return this.ACTION(() => ({ type: 'single' as const, ref, span: ref.span }));
        },
      },
    ]),
  );

  private ffnRef = this.RULE('ffnRef', (): FfnRef =>
    this.OR([
      {
        ALT: () => {
          const t = this.CONSUME(Identifier);
          return this.ACTION(() => this.ident(t));
        },
      },
      { ALT: () => this.SUBRULE(this.noneLit) },
    ]),
  );

  private ffnModifier = this.RULE('ffnModifier', (): FfnModifier =>
    this.OR([
      {
        ALT: () => {
          const start = this.CONSUME(First);
          const count = this.SUBRULE(this.countLit);
          const ref = this.SUBRULE(this.ffnRef);
          return this.ACTION(() => ({
            type: 'first' as const,
            count,
            ref,
            span: this.spanFrom(start),
          }));
        },
      },
      {
        ALT: () => {
          const ref = this.SUBRULE2(this.ffnRef);
          return this.OR2([
            {
              ALT: () => {
                this.CONSUME(Every);
                const every = this.SUBRULE2(this.countLit);
                const offset = this.OPTION(() => {
                  this.CONSUME(Offset);
                  return this.SUBRULE3(this.countLit);
                });
                return this.ACTION(() => ({
                  type: 'every' as const,
                  ref,
                  every,
                  offset: offset ?? null,
                  span: this.spanFrom(ref.span),
                }));
              },
            },
            {
              ALT: () => {
                this.CONSUME(At);
                const indices = this.SUBRULE(this.indexList);
                return this.ACTION(() => ({
                  type: 'at' as const,
                  ref,
                  indices,
                  span: this.spanFrom(ref.span),
                }));
              },
            },
          ]);
        },
      },
    ]),
  );

  private override = this.RULE('override', (): OverrideStmt => {
    const start = this.CONSUME(Override);
    const layers = this.OR([
      {
        ALT: () => {
          this.CONSUME(Layer);
          const n = this.SUBRULE(this.countLit);
          return this.ACTION(() => [n]);
        },
      },
      {
        ALT: () => {
          this.CONSUME(Layers);
          return this.SUBRULE(this.indexList);
        },
      },
    ]);
    this.CONSUME(LCurly);
    const entries: OverrideEntry[] = [];
    this.AT_LEAST_ONE(() => {
      const e = this.SUBRULE(this.overrideEntry);
      this.ACTION(() => entries.push(e));
      this.OPTION(() => this.CONSUME(Comma));
    });
    this.CONSUME(RCurly);
    return this.ACTION(() => ({
      type: 'override' as const,
      layers,
      entries,
      span: this.spanFrom(start),
    }));
  });

  private overrideEntry = this.RULE('overrideEntry', (): OverrideEntry => {
    const target = this.OR([
      { ALT: () => this.CONSUME(Identifier) },
      { ALT: () => this.CONSUME(Mixer) },
      { ALT: () => this.CONSUME(Ffn) },
      { ALT: () => this.CONSUME(Shared) },
    ]);
    const field = this.OPTION(() => {
      this.CONSUME(Dot);
      return this.CONSUME(Name);
    });
    this.CONSUME(Colon);
    const value = this.SUBRULE(this.value);
    return this.ACTION(() => ({
      target: this.ident(target),
      field: field ? this.ident(field) : null,
      value,
      span: this.spanFrom(target),
    }));
  });

  private value = this.RULE('value', (): Value =>
    this.OR([
      { ALT: () => this.SUBRULE(this.numberLit) },
      { ALT: () => this.SUBRULE(this.stringLit) },
      { ALT: () => this.SUBRULE(this.boolLit) },
      { ALT: () => this.SUBRULE(this.noneLit) },
      { ALT: () => this.SUBRULE(this.call) },
      { ALT: () => this.SUBRULE(this.list) },
    ]),
  );

  private call = this.RULE('call', (): CallValue => {
    // `layer` is a keyword (override layer 3) and also a norm kind: norm layer(eps: 1e-5).
    const kind = this.OR([
      { ALT: () => this.CONSUME(Identifier) },
      { ALT: () => this.CONSUME(Layer) },
    ]);
    const args = this.OPTION(() => {
      const out: Arg[] = [];
      this.CONSUME(LParen);
      this.OPTION2(() => {
        const first = this.SUBRULE(this.arg);
        this.ACTION(() => out.push(first));
        this.MANY(() => {
          this.CONSUME(Comma);
          const a = this.SUBRULE2(this.arg);
          this.ACTION(() => out.push(a));
        });
        this.OPTION3(() => this.CONSUME2(Comma));
      });
      this.CONSUME(RParen);
      return out;
    });
    return this.ACTION(() => ({
      type: 'call' as const,
      kind: this.ident(kind),
      args: args ?? null,
      span: this.spanFrom(kind),
    }));
  });

  private arg = this.RULE('arg', (): Arg => {
    const name = this.OPTION(() => {
      const n = this.CONSUME(Name);
      this.CONSUME(Colon);
      return n;
    });
    const value = this.SUBRULE(this.value);
    return this.ACTION(() => ({
      name: name ? this.ident(name) : null,
      value,
      span: name ? this.spanFrom(name) : value.span,
    }));
  });

  private list = this.RULE('list', (): ListValue => {
    const open = this.CONSUME(LBracket);
    const items: Value[] = [];
    this.OPTION(() => {
      const first = this.SUBRULE(this.value);
      this.ACTION(() => items.push(first));
      this.MANY(() => {
        this.CONSUME(Comma);
        const v = this.SUBRULE2(this.value);
        this.ACTION(() => items.push(v));
      });
      this.OPTION2(() => this.CONSUME2(Comma));
    });
    this.CONSUME(RBracket);
    return this.ACTION(() => ({ type: 'list' as const, items, span: this.spanFrom(open) }));
  });

  private numberLit = this.RULE('numberLit', (): NumberLit => {
    const t = this.CONSUME(NumberLiteral);
    return this.ACTION(() => ({
      type: 'number' as const,
      // + 0 turns -0 into 0: they print alike, so -0 would not read back as itself.
      value: Number(t.image) + 0,
      text: t.image,
      span: this.tokenSpan(t),
    }));
  });

  private stringLit = this.RULE('stringLit', (): StringLit => {
    const t = this.CONSUME(StringLiteral);
    return this.ACTION(() => ({
      type: 'string' as const,
      value: unescape(t.image),
      span: this.tokenSpan(t),
    }));
  });

  private boolLit = this.RULE('boolLit', (): Value => {
    const t = this.OR([{ ALT: () => this.CONSUME(True) }, { ALT: () => this.CONSUME(False) }]);
    return this.ACTION(() => ({
      type: 'bool' as const,
      value: t.tokenType === True,
      span: this.tokenSpan(t),
    }));
  });

  private noneLit = this.RULE('noneLit', (): NoneLit => {
    const t = this.CONSUME(None);
    return this.ACTION(() => ({ type: 'none' as const, span: this.tokenSpan(t) }));
  });
}

function binary(op: string, left: LetValue, right: LetValue): LetValue {
  return {
    type: 'binary',
    op: op as '+' | '-' | '*' | '/',
    left,
    right,
    span: joinSpans(left.span, right.span),
  };
}

/** Token types that can start a statement, for "did you mean" on a misspelt statement keyword. */
export const STATEMENT_KEYWORDS: readonly TokenType[] = [
  Model,
  Mixer,
  Ffn,
  Shared,
  Layers,
  Override,
  Let,
];
