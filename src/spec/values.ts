/** Parameter types: how an AST value is read, and what a wrong one is told. */
import type { Value } from '../../grammar/ast.ts';
import { didYouMean } from '../../grammar/suggest.ts';
import { resolveCall, type Env, type Family, type KindContext, type ValueType } from './kind.ts';

/** A value as the user wrote it, for "got ..." in messages. */
export function describeValue(v: Value): string {
  switch (v.type) {
    case 'number':
      return v.text;
    case 'string':
      return JSON.stringify(v.value);
    case 'bool':
      return String(v.value);
    case 'none':
      return 'none';
    case 'call':
      return v.args ? `${v.kind.name}(...)` : v.kind.name;
    case 'list':
      return 'a list';
  }
}

type Reader<T> = (v: Value, env: Env, name: string, expects: string) => T;

function valueType<T>(expects: string, read: Reader<T>): ValueType<T> {
  return { expects, read: (v, env, name, shown = expects) => read(v, env, name, shown) };
}

function mismatch(env: Env, name: string, expects: string, v: Value): never {
  return env.fail(`${name} must be ${expects}, got ${describeValue(v)}`, v.span);
}

export function int(min: number): ValueType<number> {
  return valueType(`an integer of at least ${min}`, (v, env, name, expects) =>
    v.type === 'number' && Number.isSafeInteger(v.value) && v.value >= min
      ? v.value
      : mismatch(env, name, expects, v),
  );
}

/** A finite number greater than zero. */
export const positive: ValueType<number> = valueType(
  'a number greater than 0',
  (v, env, name, expects) =>
    v.type === 'number' && Number.isFinite(v.value) && v.value > 0
      ? v.value
      : mismatch(env, name, expects, v),
);

/** A finite number of at least zero. */
export const nonNegative: ValueType<number> = valueType(
  'a number of at least 0',
  (v, env, name, expects) =>
    v.type === 'number' && Number.isFinite(v.value) && v.value >= 0
      ? v.value
      : mismatch(env, name, expects, v),
);

export const bool: ValueType<boolean> = valueType('true or false', (v, env, name, expects) =>
  v.type === 'bool' ? v.value : mismatch(env, name, expects, v),
);

/** One of a fixed set of bare names, e.g. `act: relu2`. */
export function oneOf<T extends string>(noun: string, values: readonly T[]): ValueType<T> {
  const list = `one of ${values.join(', ')}`;
  return valueType(list, (v, env, name, expects) => {
    if (v.type !== 'call' || v.args !== null) return mismatch(env, name, expects, v);
    const found = values.find((x) => x === v.kind.name);
    if (found === undefined) {
      const hint = didYouMean(v.kind.name, values) || ` (expected ${list})`;
      return env.fail(`unknown ${noun} '${v.kind.name}'${hint}`, v.span);
    }
    return found;
  });
}

/** `none` reads as null; anything else as t. */
export function orNone<T>(t: ValueType<T>): ValueType<T | null> {
  return valueType(`${t.expects} or none`, (v, env, name, expects) =>
    v.type === 'none' ? null : t.read(v, env, name, expects),
  );
}

/**
 * A nested block such as `rope(theta: 1e6)`. Its build waits for the enclosing kind, which knows
 * the context (head_dim) the nested defaults depend on.
 */
export function block<T>(family: Family<T>): ValueType<(ctx: KindContext) => T> {
  return valueType(family.example, (v, env, name, expects) => {
    if (v.type !== 'call') return mismatch(env, name, expects, v);
    return (ctx: KindContext) => resolveCall(family, v, { ...env, ctx });
  });
}
