/**
 * Writes the e2e suite's weights (bench/run.ts: randomWeights(loadSpec(spec), seed)) as a
 * HuggingFace checkpoint (hf-checkpoint.ts) for bench/ort/export_onnx.py, then reads it back
 * through strata's importer: the same ModelIR, and three tensors equal bit for bit.
 * With --config-only, writes just DIR/config.json: bench/ort/build.sh packs that for the GPU
 * machine, where export_onnx.py --random-seed builds the same weights itself (random_init.py).
 * Usage: tsx bench/ort/write-hf.ts [--spec specs/llama-3.2-1b.strata] [--seed 0] [--config-only]
 *   --out DIR
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadSpec } from '../../src/spec/load.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { exportHfConfig } from '../../src/export/hf-config.ts';
import { checkHfCheckpoint, writeHfCheckpoint } from './hf-checkpoint.ts';

const { values } = parseArgs({
  options: {
    spec: { type: 'string', default: 'specs/llama-3.2-1b.strata' },
    seed: { type: 'string', default: '0' },
    out: { type: 'string' },
    'config-only': { type: 'boolean', default: false },
  },
});
if (!values.out) throw new Error('--out DIR is required');
const model = loadSpec(values.spec!);
if (values['config-only']) {
  mkdirSync(values.out, { recursive: true });
  writeFileSync(join(values.out, 'config.json'), exportHfConfig(model).text);
  process.exit(0);
}
const weights = randomWeights(model, Number(values.seed));
const t0 = performance.now();
const { configType, bytes } = await writeHfCheckpoint(model, weights, values.out);
const last = model.layers.length - 1;
await checkHfCheckpoint(model, weights, values.out, [
  'model.layers.0.self_attn.q_proj.weight',
  `model.layers.${last}.mlp.down_proj.weight`,
  'model.norm.weight',
]);
process.stderr.write(
  `write-hf: ${values.out} (${configType}, ${(bytes / 1e9).toFixed(3)} GB) written and checked in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
);
