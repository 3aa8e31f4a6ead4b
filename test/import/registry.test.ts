/**
 * The importer registry (src/import/registry.ts) is the one list of model types: hf.ts supports
 * exactly its types, each is listed once, and each has a fixture config that imports: a golden
 * fixture (test/fixtures/hf/<type>, test/fixtures/fla/<name>) or a released config
 * (test/fixtures/configs).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importHfConfig, SUPPORTED_MODEL_TYPES } from '../../src/import/hf.ts';
import { IMPORTERS } from '../../src/import/registry.ts';
import { fixtureConfig } from '../helpers/hf-config.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const TYPES = IMPORTERS.map((i) => i.modelType);

/** Types with no fixture config that imports, and why; an entry goes when its fixture lands. */
/** Types known to have no importable fixture yet, with the reason. */
const WITHOUT_FIXTURE: Record<string, string> = {
  nsa: 'fla runs NSA only through Triton kernels: make_fla_golden.py nsa on the GPU machine',
};

/** Every fixture config, as a path under test/fixtures. */
function fixtureConfigs(): string[] {
  const folders = (dir: string) =>
    readdirSync(join(FIXTURES, dir))
      .sort()
      .map((name) => join(dir, name, 'config.json'))
      .filter((path) => existsSync(join(FIXTURES, path)));
  const released = readdirSync(join(FIXTURES, 'configs'))
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => join('configs', name));
  return [...folders('hf'), ...folders('fla'), ...folders('diffusion'), ...released];
}

describe('importer registry', () => {
  it('lists each model_type once', () => {
    const twice = TYPES.filter((t, i) => TYPES.indexOf(t) !== i);
    expect(twice).toEqual([]);
  });

  it('is what hf.ts supports, in the same order', () => {
    expect(SUPPORTED_MODEL_TYPES).toEqual(TYPES);
  });

  it('says where each type comes from', () => {
    for (const i of IMPORTERS)
      expect(['transformers', 'fla', 'remote code'], i.modelType).toContain(i.origin);
  });

  it('has a fixture config that imports for every type', () => {
    const imports = new Set<string>();
    const refused: string[] = [];
    for (const path of fixtureConfigs()) {
      const config = fixtureConfig(path);
      // A quantized release counts as its dequantized checkpoint, as the importer tests read it.
      delete config.quantization_config;
      const type = config.model_type as string;
      // The golden test takes an HF fixture's folder name for its type.
      if (path.startsWith('hf')) expect(join('hf', type, 'config.json'), path).toBe(path);
      // Fixtures of a type no importer registers yet (one still on its branch) wait for it.
      if (!TYPES.includes(type)) continue;
      try {
        importHfConfig(config, path);
        imports.add(type);
      } catch (e) {
        if (!Object.hasOwn(WITHOUT_FIXTURE, type)) refused.push((e as Error).message);
      }
    }
    expect(refused).toEqual([]);
    const without = TYPES.filter((t) => !imports.has(t));
    expect(
      without,
      `model types without a fixture config that imports: ${without.join(', ')}`,
    ).toEqual(Object.keys(WITHOUT_FIXTURE));
  });
});
