/**
 * The JSON Schema (YAML/JSON specs) and the DSL's parameter kinds state the same bounds: a number
 * the schema and the semantic checks accept must print as DSL that resolves back, and so must
 * not be one the DSL's `positive` / `int(min)` refuses. Each numeric field of every shipped spec
 * is set to values either side of the usual bounds (0, 1, 2, fractions, negatives).
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SpecError } from '../../grammar/diagnostics.ts';
import { firstModelIssue } from '../../src/spec/load-data.ts';
import { loadSpec } from '../../src/spec/load.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { printSpec } from '../../src/spec/print.ts';

const PROBES = [-1, 0, 0.5, 1, 1.5, 2, 3, Infinity];

type Path = (string | number)[];

/** Numeric and null leaves of a model, visiting only the first of each distinct layer. */
function numericPaths(model: ModelIR): Path[] {
  const paths: Path[] = [];
  const walk = (v: unknown, path: Path): void => {
    // null too: an optional number (window, softcap, dtMax, ...) left out by the spec.
    if (typeof v === 'number' || v === null) paths.push(path);
    else if (Array.isArray(v)) v.forEach((item, i) => walk(item, [...path, i]));
    else if (typeof v === 'object' && v !== null) {
      for (const [k, item] of Object.entries(v)) walk(item, [...path, k]);
    }
  };
  const seen = new Set<string>();
  for (const [k, v] of Object.entries(model)) {
    if (k !== 'layers') walk(v, [k]);
  }
  model.layers.forEach((layer, i) => {
    const shape = JSON.stringify({ ...layer, index: 0 });
    if (seen.has(shape)) return;
    seen.add(shape);
    walk(layer, ['layers', i]);
  });
  return paths;
}

function withValue(model: ModelIR, path: Path, value: number): ModelIR {
  const copy = structuredClone(model);
  let node: Record<string | number, unknown> = copy as unknown as Record<string, unknown>;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  node[path.at(-1)!] = value;
  return copy;
}

const SPECS = readdirSync('specs').filter((f) => f.endsWith('.strata'));

describe('schema and DSL bounds agree', () => {
  it.each(SPECS)('every number the schema accepts in %s prints as valid DSL', (file) => {
    const model = loadSpec(`specs/${file}`);
    const disagreements: string[] = [];
    for (const path of numericPaths(model)) {
      // A layer's index is its position, not a parameter.
      if (path.at(-1) === 'index') continue;
      for (const value of PROBES) {
        const probe = withValue(model, path, value);
        if (firstModelIssue(probe) !== null) continue;
        try {
          printSpec(probe);
        } catch (e) {
          if (!(e instanceof SpecError)) throw e;
          disagreements.push(`${path.join('.')} = ${value}: ${e.reason}`);
        }
      }
    }
    expect(disagreements).toEqual([]);
  });
});
