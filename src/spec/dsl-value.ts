/**
 * DSL values as plain data, for going from ModelIR back to text: kinds describe a spec as DslArgs,
 * the printer formats them, and toAst turns them into AST so the resolver can check that what is
 * printed rebuilds the same spec.
 */
import type { Arg, Value } from '../../grammar/ast.ts';
import type { Span } from '../../grammar/diagnostics.ts';

/** number, true/false, none (null), a bare name (an enum member), a call, or a list `[...]`. */
export type DslValue = number | boolean | null | DslName | DslCall | DslValue[];

export interface DslName {
  name: string;
}

export interface DslCall {
  kind: string;
  args: DslArg[];
}

export interface DslArg {
  name: string;
  value: DslValue;
}

const NOWHERE: Span = { file: '<printed>', line: 1, col: 1, offset: 0, length: 0 };

function ident(name: string) {
  return { name, span: NOWHERE };
}

export function toAst(v: DslValue): Value {
  if (v === null) return { type: 'none', span: NOWHERE };
  if (typeof v === 'boolean') return { type: 'bool', value: v, span: NOWHERE };
  if (typeof v === 'number') {
    return { type: 'number', value: v, text: formatNumber(v), span: NOWHERE };
  }
  if (Array.isArray(v)) return { type: 'list', items: v.map(toAst), span: NOWHERE };
  if ('kind' in v) {
    return { type: 'call', kind: ident(v.kind), args: toAstArgs(v.args), span: NOWHERE };
  }
  return { type: 'call', kind: ident(v.name), args: null, span: NOWHERE };
}

export function toAstArgs(args: readonly DslArg[]): Arg[] {
  return args.map((a) => ({ name: ident(a.name), value: toAst(a.value), span: NOWHERE }));
}

/**
 * The shortest text that reads back as exactly n; tiny magnitudes in exponent form (1e-5 rather
 * than 0.00001), which is how norm epsilons are usually written.
 */
export function formatNumber(n: number): string {
  const plain = String(n);
  if (n !== 0 && Math.abs(n) < 1e-3) {
    const exp = n.toExponential();
    if (Number(exp) === n && exp.length <= plain.length) return exp.replace('e+', 'e');
  }
  return plain;
}

/** One-line rendering; the printer wraps long calls itself. */
export function formatValue(v: DslValue): string {
  if (v === null) return 'none';
  if (typeof v === 'boolean' || typeof v === 'number') {
    return typeof v === 'number' ? formatNumber(v) : String(v);
  }
  if (Array.isArray(v)) return `[${v.map(formatValue).join(', ')}]`;
  if ('kind' in v) {
    return v.args.length
      ? `${v.kind}(${v.args.map((a) => `${a.name}: ${formatValue(a.value)}`).join(', ')})`
      : v.kind;
  }
  return v.name;
}
