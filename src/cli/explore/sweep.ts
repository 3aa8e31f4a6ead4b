/**
 * The sweep: parameter values from `--vary name=v1,v2` or a YAML sweep file (the same content,
 * schema-checked), and their cartesian product.
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../command.ts';

export interface Axis {
  name: string;
  values: string[];
}

export interface SweepFile {
  vary?: Record<string, (number | string | number[])[]>;
  placement?: string;
  keep?: number;
  precision?: string[];
}

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    vary: {
      type: 'object',
      additionalProperties: {
        type: 'array',
        minItems: 1,
        items: {
          anyOf: [
            { type: 'number' },
            { type: 'string' },
            { type: 'array', items: { type: 'integer', minimum: 0 } },
          ],
        },
      },
    },
    placement: { type: 'string' },
    keep: { type: 'integer', minimum: 1 },
    precision: { type: 'array', items: { type: 'string' }, minItems: 1 },
  },
};

const validate = new Ajv({ allErrors: false }).compile<SweepFile>(SCHEMA);

/** `ratio=1,3,7`; a list value is written in brackets: `keep=[1,5],[2,6]`. */
export function parseVary(arg: string): Axis {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new UserError(`--vary must be NAME=V1,V2,..., got '${arg}'`);
  const name = arg.slice(0, eq);
  const values = arg.slice(eq + 1).match(/\[[^\]]*\]|[^,]+/g) ?? [];
  const cleaned = values.map((v) => v.trim()).filter((v) => v !== '');
  if (cleaned.length === 0) throw new UserError(`--vary ${name}: no values given`);
  return { name, values: cleaned };
}

function valueText(v: number | string | number[]): string {
  if (Array.isArray(v)) return `[${v.join(', ')}]`;
  return String(v);
}

export function readSweepFile(path: string): SweepFile & { axes: Axis[] } {
  let data: unknown;
  try {
    data = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`--sweep ${path}: ${(e as Error).message}`);
  }
  if (!validate(data)) {
    const err = validate.errors?.[0];
    throw new UserError(
      `--sweep ${path}: ${err?.instancePath || '(top level)'} ${err?.message ?? 'is invalid'}`,
    );
  }
  const axes = Object.entries(data.vary ?? {}).map(([name, vs]) => ({
    name,
    values: vs.map(valueText),
  }));
  return { ...data, axes };
}

/** Every combination, the first axis varying slowest. */
export function product(axes: readonly Axis[]): Record<string, string>[] {
  let out: Record<string, string>[] = [{}];
  for (const a of axes) out = out.flatMap((o) => a.values.map((v) => ({ ...o, [a.name]: v })));
  return out;
}
