/**
 * The table-driven core of the resolver. A kind (attention, swiglu, rms, rope, ...) is one entry:
 * its parameters with their types and whether they are required, a build function that applies
 * the defaults, the cross-field checks, and the inverse used by the printer. Argument handling
 * (unknown, duplicate, missing, ill-typed parameters) is written once here for every kind.
 */
import type { Arg, CallValue, Value } from '../../grammar/ast.ts';
import type { Span } from '../../grammar/diagnostics.ts';
import { didYouMean } from '../../grammar/suggest.ts';
import { dslNames, type Issue, type Namer } from './checks.ts';
import type { DslArg, DslValue } from './dsl-value.ts';
import { capIssues } from './limits.ts';

/** What a kind may depend on besides its own arguments. */
export interface KindContext {
  dim: number;
  /** Set for blocks nested in attention (rope's rotary_dim defaults to it). */
  headDim?: number;
}

export type Fail = (message: string, span: Span) => never;

export interface Env {
  fail: Fail;
  ctx: KindContext;
}

/**
 * How to read one AST value as a T. `name` is the parameter's name and `expects` the phrase
 * completing "<name> must be ..." in messages (a wrapper such as orNone widens it).
 */
export interface ValueType<T> {
  expects: string;
  read(v: Value, env: Env, name: string, expects?: string): T;
}

export interface Param<T, R extends boolean = boolean> {
  type: ValueType<T>;
  required: R;
}

export const req = <T>(type: ValueType<T>): Param<T, true> => ({ type, required: true });
export const opt = <T>(type: ValueType<T>): Param<T, false> => ({ type, required: false });

type Params = Record<string, Param<unknown>>;

/** The typed arguments a build function receives: optional parameters may be undefined. */
export type ArgsOf<P extends Params> = {
  [K in keyof P]: P[K] extends Param<infer V, true>
    ? V
    : P[K] extends Param<infer V, false>
      ? V | undefined
      : never;
};

export interface KindDef<T, P extends Params> {
  name: string;
  /** How messages refer to it; default `name(...)`. */
  label?: string;
  /** What its arguments are called in messages; default 'parameter'. */
  paramNoun?: string;
  params: P;
  /** Applies defaults. fail blames a parameter's argument, or the whole call. */
  build(
    a: ArgsOf<P>,
    ctx: KindContext,
    fail: (message: string, param?: keyof P & string) => never,
  ): T;
  check?(spec: T, n: Namer): Issue[];
  /**
   * Every parameter, by DSL name, that rebuilds spec with this kind; null when this kind cannot
   * express spec (e.g. swiglu for an ungated mlp).
   */
  toArgs(spec: T): DslArg[] | null;
}

export interface Kind<T> {
  readonly name: string;
  readonly paramNames: readonly string[];
  readonly supported: boolean;
  /** args as written (or merged with an override's); at is blamed for kind-level errors. */
  resolve(args: readonly Arg[], at: Span, env: Env): T;
  toArgs(spec: T): DslArg[] | null;
  /** The kind's cross-field checks (the YAML/JSON loader runs them on a spec of this kind). */
  check(spec: T, n: Namer): Issue[];
}

/** A set of interchangeable kinds, e.g. the mixers or the rope scalings. */
export interface Family<T> {
  /** 'mixer', 'ffn', 'norm', ... */
  noun: string;
  /** Shown when a value of the wrong shape is given. */
  example: string;
  kinds: readonly Kind<T>[];
}

function argNamed(args: readonly Arg[], name: string): Arg | undefined {
  return args.find((a) => a.name?.name === name);
}

/** The argument an IR path points at, descending into nested calls; the call itself if unset. */
function spanOfPath(path: readonly (string | number)[], args: readonly Arg[], at: Span): Span {
  let span = at;
  let scope: readonly Arg[] | null = args;
  for (const field of path) {
    const arg: Arg | undefined = scope ? argNamed(scope, dslNames(String(field))) : undefined;
    if (!arg) break;
    span = arg.span;
    scope = arg.value.type === 'call' ? arg.value.args : null;
  }
  return span;
}

export function defineKind<T, P extends Params>(def: KindDef<T, P>): Kind<T> {
  const label = def.label ?? `${def.name}(...)`;
  const noun = def.paramNoun ?? 'parameter';
  const names = Object.keys(def.params);
  return {
    name: def.name,
    paramNames: names,
    supported: true,
    toArgs: (spec) => def.toArgs(spec),
    check: (spec, n) => def.check?.(spec, n) ?? [],
    resolve(args, at, env) {
      const got = new Map<string, unknown>();
      const seen = new Map<string, Arg>();
      for (const arg of args) {
        if (!arg.name) {
          const hint = names[0] ? ` such as '${names[0]}: ...'` : '';
          return env.fail(`${label} takes named ${noun}s${hint}`, arg.span);
        }
        const name = arg.name.name;
        // Own properties only: 'constructor' or '__proto__' must read as unknown, not as
        // Object.prototype's members.
        const param = Object.hasOwn(def.params, name) ? def.params[name] : undefined;
        if (!param) {
          return env.fail(
            `unknown ${noun} '${name}' for ${label}${didYouMean(name, names)}`,
            arg.name.span,
          );
        }
        // A map of the arguments seen so far keeps a long argument list linear.
        const earlier = seen.get(name);
        if (earlier) {
          const first = earlier.name!.span;
          return env.fail(
            `${noun} '${name}' is given twice (first at ${first.line}:${first.col})`,
            arg.name.span,
          );
        }
        seen.set(name, arg);
        got.set(name, param.type.read(arg.value, env, name));
      }
      for (const name of names) {
        if (def.params[name]!.required && !got.has(name)) {
          return env.fail(`${label} needs '${name}'`, at);
        }
      }
      const fail = (message: string, param?: string): never =>
        env.fail(message, (param && argNamed(args, param)?.span) || at);
      const spec = def.build(Object.fromEntries(got) as ArgsOf<P>, env.ctx, fail);
      // Caps first: the other checks may compare values (top_k with experts) that a cap explains.
      const issue = capIssues(spec, dslNames)[0] ?? def.check?.(spec, dslNames)[0];
      if (issue) env.fail(issue.message, spanOfPath(issue.path, args, at));
      return spec;
    },
  };
}

/** A kind the language reserves but the compiler cannot build yet: resolving it is an error. */
export function futureKind<T>(name: string, noun: string): Kind<T> {
  return {
    name,
    paramNames: [],
    supported: false,
    resolve: (_args, at, env) => env.fail(`${noun} kind '${name}' is not supported yet`, at),
    toArgs: () => null,
    check: () => [],
  };
}

/** The kind a call names in a family, failing with a suggestion when there is none. */
export function findKind<T>(family: Family<T>, call: CallValue, env: Env): Kind<T> {
  const kind = family.kinds.find((k) => k.name === call.kind.name);
  if (kind) return kind;
  const names = family.kinds.map((k) => k.name);
  return env.fail(
    `unknown ${family.noun} kind '${call.kind.name}'${didYouMean(call.kind.name, names)}`,
    call.kind.span,
  );
}

/** Resolves a call of a family's kind: `attention(heads: 4)` or a bare `rope`. */
export function resolveCall<T>(family: Family<T>, call: CallValue, env: Env): T {
  return findKind(family, call, env).resolve(call.args ?? [], call.kind.span, env);
}

/** A spec as the DSL call that rebuilds it with the first kind able to express it. */
export function toDslCall<T>(family: Family<T>, spec: T): { kind: Kind<T>; value: DslValue } {
  for (const kind of family.kinds) {
    const args = kind.toArgs(spec);
    if (args) return { kind, value: { kind: kind.name, args } };
  }
  throw new Error(`no ${family.noun} kind can express ${JSON.stringify(spec)}`);
}
