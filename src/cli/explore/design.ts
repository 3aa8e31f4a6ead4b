/**
 * Designs as spec text: the base spec with some `let` values replaced. Keeping the source (its
 * comments, its parameters) rather than printing the resolved ModelIR makes each written design
 * read like the spec it came from, diff against it line by line, and stay sweepable itself.
 */
import { parseStrata } from '../../../grammar/parse.ts';
import { SpecError, type Span } from '../../../grammar/diagnostics.ts';
import { didYouMean } from '../../../grammar/suggest.ts';
import { letBindings } from '../../spec/lets.ts';
import { describeValue } from '../../spec/values.ts';
import { UserError } from '../command.ts';

/** One `let` of the base spec: the text range its value occupies. */
export interface LetSite {
  name: string;
  /** The value as the base spec writes it, and as it evaluates. */
  written: string;
  shown: string;
  isList: boolean;
  from: number;
  to: number;
}

export function letSites(text: string, file: string): Map<string, LetSite> {
  const ast = parseStrata(text, file);
  const fail = (m: string, span: Span): never => {
    throw new SpecError(m, span, text);
  };
  const values = letBindings(ast, fail);
  const out = new Map<string, LetSite>();
  for (const s of ast.statements) {
    if (s.type !== 'let') continue;
    // The statement ends at its value's last token; the value starts after its '='. (The value's
    // own span would leave out an enclosing parenthesis.)
    const from = text.indexOf('=', s.name.span.offset + s.name.span.length) + 1;
    const to = s.span.offset + s.span.length;
    const v = values.get(s.name.name)!.value;
    out.set(s.name.name, {
      name: s.name.name,
      written: text.slice(from, to).trim(),
      shown: describeValue(v),
      isList: v.type === 'list',
      from,
      to,
    });
  }
  return out;
}

/** A value --vary may set: a number, a name, a string, or a list of integers. */
const VALUE =
  /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|"[^"\\\n]*"|\[\s*\d+(\s*,\s*\d+)*\s*\])$/;

export function checkValue(option: string, name: string, value: string): void {
  if (!VALUE.test(value)) {
    throw new UserError(
      `${option} ${name}: bad value '${value}': give a number, a name, a "string" or [i, j, ...]`,
    );
  }
}

export function checkName(option: string, name: string, sites: Map<string, LetSite>): LetSite {
  const site = sites.get(name);
  if (site) return site;
  const known = [...sites.keys()];
  const list = known.length
    ? ` (the spec's parameters: ${known.join(', ')})`
    : ' (the spec has no let parameters)';
  throw new UserError(`${option}: unknown parameter '${name}'${didYouMean(name, known)}${list}`);
}

/** The base text with each overridden let's value replaced, from the last to the first. */
export function designText(
  text: string,
  sites: Map<string, LetSite>,
  values: Readonly<Record<string, string>>,
): string {
  const edits = Object.entries(values)
    .map(([name, v]) => ({ site: sites.get(name)!, v }))
    .sort((a, b) => b.site.from - a.site.from);
  let out = text;
  for (const { site, v } of edits) out = `${out.slice(0, site.from)} ${v}${out.slice(site.to)}`;
  return out;
}
