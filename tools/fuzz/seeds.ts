/**
 * The real inputs mutation starts from: the specs in specs/, the YAML/JSON fixtures and the
 * ModelIR of every spec, and the HF config.json fixtures. Read once per thread.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePythonJson } from '../../src/import/json.ts';
import { parseSpec } from '../../src/spec/load.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface NamedText {
  name: string;
  text: string;
}

export interface NamedObject {
  name: string;
  value: unknown;
}

function filesIn(dir: string, ext: string): NamedText[] {
  return readdirSync(join(ROOT, dir))
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => ({ name: `${dir}/${f}`, text: readFileSync(join(ROOT, dir, f), 'utf8') }));
}

export interface Seeds {
  dsl: NamedText[];
  /** YAML/JSON spec texts as committed (anchors, comments, flow style). */
  data: NamedText[];
  /** The ModelIR of every seed spec, as plain data to mutate and write out. */
  models: NamedObject[];
  /** HF config.json texts and their parsed objects. */
  hfTexts: NamedText[];
  hf: NamedObject[];
}

let cached: Seeds | null = null;

export function loadSeeds(): Seeds {
  if (cached) return cached;
  const dsl = filesIn('specs', '.strata');
  const data = [
    ...filesIn('test/spec/fixtures', '.yaml'),
    ...filesIn('test/spec/fixtures', '.json'),
  ];
  const models = [...dsl, ...data].map((s) => ({
    name: s.name,
    // Through JSON so that the mutators get plain trees with no shared (YAML-anchored) nodes.
    value: JSON.parse(JSON.stringify(parseSpec(s.text, s.name))) as unknown,
  }));
  // transformers' and fla's fixture configs alike: the importers of both are fuzzed.
  const fixtureConfigs = ['test/fixtures/hf', 'test/fixtures/fla'].flatMap((root) =>
    readdirSync(join(ROOT, root))
      .sort()
      .map((d) => {
        const name = `${root}/${d}/config.json`;
        return { name, text: readFileSync(join(ROOT, name), 'utf8') };
      }),
  );
  const hfTexts = [...filesIn('test/fixtures/configs', '.json'), ...fixtureConfigs];
  const hf = hfTexts.map((t) => ({ name: t.name, value: parsePythonJson(t.text, t.name) }));
  cached = { dsl, data, models, hfTexts, hf };
  return cached;
}
