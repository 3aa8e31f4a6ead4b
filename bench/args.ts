/**
 * Command-line options and result files of the bench scripts: node's parseArgs (an unknown
 * option is an error, not silently ignored), the checks every script repeated — a count that
 * must be a whole number, Dawn's flags — and the --out file every result carries its command in.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** The parsed options and positionals (strict: an option not in `options` throws). */
export function benchArgs<O extends Options>(options: O) {
  return parseArgs({ options, allowPositionals: true, strict: true });
}

/** A whole number ≥ min from an option or positional, or `fallback` when it is absent. */
export function whole(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${name}: ${JSON.stringify(value)} is not a whole number ≥ ${min}`);
  return n;
}

/** --gpu-flags as acquire() takes them: comma-separated, 'fast' expanding to Dawn's toggles. */
export function gpuFlags(value: string | undefined): string[] {
  return value ? value.split(',') : [];
}

/**
 * Write a bench's result file (when --out was given): the command that made it, the date, and
 * the script's own fields. Scripts call it after each row where a cut run should keep what it
 * measured.
 */
export function writeResult(
  out: string | undefined,
  script: string,
  fields: Record<string, unknown>,
): void {
  if (!out) return;
  const command = `tsx ${script} ${process.argv.slice(2).join(' ')}`.trim();
  const doc = { command, date: new Date().toISOString(), ...fields };
  writeFileSync(out, JSON.stringify(doc, null, 1) + '\n');
}
