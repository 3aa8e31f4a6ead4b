/**
 * The spec AST: what the user wrote, nothing resolved. Every node carries its source span so the
 * resolver can point at the exact text of any mistake.
 */
import type { Span } from './diagnostics.ts';

export interface Ident {
  name: string;
  span: Span;
}

export interface NumberLit {
  type: 'number';
  value: number;
  /** The literal as written (keeps '1e-5' vs '0.00001' for messages). */
  text: string;
  span: Span;
  /**
   * Set when the number was written as a parameter name (`[ratio mamba : 1 attn]`): value is NaN
   * and text the name until src/spec/lets.ts substitutes the parameter's value.
   */
  ref?: Ident;
}

export interface StringLit {
  type: 'string';
  value: string;
  span: Span;
}

export interface BoolLit {
  type: 'bool';
  value: boolean;
  span: Span;
}

export interface NoneLit {
  type: 'none';
  span: Span;
}

/** `kind(args)`, or a bare name `kind` (an enum value, or a kind with every parameter defaulted). */
export interface CallValue {
  type: 'call';
  kind: Ident;
  /** null for a bare name written without parentheses. */
  args: Arg[] | null;
  span: Span;
}

export interface ListValue {
  type: 'list';
  items: Value[];
  span: Span;
}

export type Value = NumberLit | StringLit | BoolLit | NoneLit | CallValue | ListValue;

/** `name: value`, or a positional `value` (name null) for kinds that take operands. */
export interface Arg {
  name: Ident | null;
  value: Value;
  span: Span;
}

/** A top-level setting such as `vocab 512` or `norm rms(eps: 1e-5)`. */
export interface SettingStmt {
  type: 'setting';
  key: Ident;
  value: Value;
  span: Span;
}

export type BlockRole = 'mixer' | 'ffn' | 'shared';

/**
 * `mixer attn = attention(...)` / `ffn mlp = swiglu(...)` / `shared blk = transformer(...)` (a
 * block whose weights the layers that name it in an override share).
 */
export interface DefinitionStmt {
  type: 'definition';
  role: BlockRole;
  name: Ident;
  value: Value;
  span: Span;
}

/** One part of a ratio group: `7 mamba`, optionally placed at an offset: `1 attn at 4`. */
export interface RatioPart {
  count: NumberLit;
  name: Ident;
  at: NumberLit | null;
  span: Span;
}

/** `[7 mamba : 1 attn at 4]`. */
export interface RatioGroup {
  type: 'ratio';
  parts: RatioPart[];
  span: Span;
}

/** `[attn, mamba, attn]`. */
export interface SequenceGroup {
  type: 'sequence';
  items: Ident[];
  span: Span;
}

export type LayerGroup = RatioGroup | SequenceGroup;

/** What a layers statement repeats: one mixer name or a group. */
export type LayerUnit = { type: 'name'; name: Ident; span: Span } | LayerGroup;

/** `, attn at [9, 18, 27]`: put a mixer at explicit indices of the statement. */
export interface Placement {
  name: Ident;
  indices: NumberLit[];
  span: Span;
}

export type LayerPattern =
  /** `16 x attn`, `4 x [7 mamba : 1 attn]`, or a bare unit (count null). */
  | {
      type: 'repeat';
      count: NumberLit | null;
      unit: LayerUnit;
      placements: Placement[];
      span: Span;
    }
  /** `32 as [7 mamba : 1 attn]`: 32 layers in total, in groups shaped like the ratio. */
  | { type: 'total'; count: NumberLit; group: LayerGroup; placements: Placement[]; span: Span }
  /**
   * A Megatron-style pattern string such as "M-M-M*-", one layer per character, with its
   * symbol mapping (`with { M: mamba, "*": attn }`); symbols null when there is no `with {...}`.
   */
  | { type: 'pattern'; pattern: StringLit; symbols: PatternSymbol[] | null; span: Span };

/** `M: mamba` or `"*": attn` in a pattern's mapping: the symbol stands for that definition. */
export interface PatternSymbol {
  /** The symbol as written: a name (`M`) or a string literal (`"*"`). */
  symbol: Ident | StringLit;
  name: Ident;
  span: Span;
}

/** An ffn reference in a schedule: a definition name or `none` (no ffn sublayer). */
export type FfnRef = Ident | NoneLit;

export type FfnBase =
  | { type: 'single'; ref: FfnRef; span: Span }
  /** `[mlp, moe]`: cycles through the list layer by layer. */
  | { type: 'cycle'; refs: FfnRef[]; span: Span };

export type FfnModifier =
  /** `first 3 mlp`. */
  | { type: 'first'; count: NumberLit; ref: FfnRef; span: Span }
  /** `moe every 2 offset 1`. */
  | { type: 'every'; ref: FfnRef; every: NumberLit; offset: NumberLit | null; span: Span }
  /** `mlp at [0, 5]`. */
  | { type: 'at'; ref: FfnRef; indices: NumberLit[]; span: Span };

export interface FfnSchedule {
  base: FfnBase;
  modifiers: FfnModifier[];
  span: Span;
}

export interface LayersStmt {
  type: 'layers';
  pattern: LayerPattern;
  /** null when the statement has no `with ffn ...` clause. */
  ffn: FfnSchedule | null;
  span: Span;
}

/**
 * One assignment in an override body. target is a definition name (`attn.window`), or the
 * keywords 'mixer'/'ffn' meaning whatever the layer has; field null swaps the whole block
 * (`mixer: local`, `ffn: none`), or with 'shared' picks the layer's shared block (`shared: blk`).
 */
export interface OverrideEntry {
  target: Ident;
  field: Ident | null;
  value: Value;
  span: Span;
}

export interface OverrideStmt {
  type: 'override';
  layers: NumberLit[];
  entries: OverrideEntry[];
  span: Span;
}

/** Integer arithmetic on numbers and earlier parameters, in `let` values only. */
export interface BinaryExpr {
  type: 'binary';
  op: '+' | '-' | '*' | '/';
  left: LetValue;
  right: LetValue;
  span: Span;
}

export type LetValue = Value | BinaryExpr;

/**
 * `let ratio = 7`: a parameter, usable wherever a literal goes (counts, offsets, index lists,
 * argument values, mixer and kind names). `strata explore --vary` overrides its value.
 */
export interface LetStmt {
  type: 'let';
  name: Ident;
  value: LetValue;
  span: Span;
}

export type Statement = SettingStmt | DefinitionStmt | LayersStmt | OverrideStmt | LetStmt;

export interface ModelAst {
  name: StringLit;
  statements: Statement[];
  span: Span;
}
