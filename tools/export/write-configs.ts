/**
 * Writes `strata export --hf` of every golden HF fixture design and every exportable spec in
 * specs/ (and Jamba-v0.1 at ratios 1, 3 and 15) into DIR/<name>/config.json, beside DIR/<name>/strata.json (the model type and strata's
 * parameter count), for check_hf_configs.py to load with transformers.
 *
 *   npx tsx tools/export/write-configs.ts DIR
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { importHfConfig } from '../../src/import/hf.ts';
import { readConfigJson } from '../../src/import/json.ts';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import { countParams } from '../../src/spec/params.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { ExportError, exportHfConfig, HF_EXPORT_TYPES } from '../../src/export/hf-config.ts';

const out = process.argv[2];
if (!out) throw new Error('usage: write-configs.ts DIR');
const designs: [string, ModelIR][] = [];
for (const type of HF_EXPORT_TYPES) {
  const text = readFileSync(`test/fixtures/hf/${type}/config.json`, 'utf8');
  const { config, origin } = readConfigJson(text, type);
  designs.push([`fixture-${type}`, importHfConfig(config as object, type, origin).model]);
}
for (const f of readdirSync('specs'))
  designs.push([f.replace(/\.strata$/, ''), loadSpec(`specs/${f}`)]);
// Explore designs: Jamba-v0.1 at other mamba:attention ratios (`strata explore --vary ratio=...`).
const jamba = readFileSync('specs/jamba-v0.1.strata', 'utf8');
for (const ratio of [1, 3, 15]) {
  const text = jamba.replace(/let ratio = .*/, `let ratio = ${ratio}`);
  designs.push([`jamba-v0.1-ratio${ratio}`, parseSpec(text, 'jamba-v0.1.strata')]);
}
for (const [name, model] of designs) {
  try {
    const e = exportHfConfig(model);
    mkdirSync(join(out, name), { recursive: true });
    writeFileSync(join(out, name, 'config.json'), e.text);
    const params = countParams(model).total;
    writeFileSync(
      join(out, name, 'strata.json'),
      JSON.stringify({ modelType: e.modelType, params }),
    );
    console.log(`${name}: ${e.modelType}`);
  } catch (err) {
    if (!(err instanceof ExportError)) throw err;
    console.log(`${name}: not exported (${err.message.split('\n')[0]})`);
  }
}
