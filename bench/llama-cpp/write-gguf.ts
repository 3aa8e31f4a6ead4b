/**
 * Writes the GGUF files llama.cpp benchmarks, from exactly the weights strata's e2e bench loads
 * (bench/run.ts: randomWeights(loadSpec(spec), seed)), one per precision, then checks each file
 * with @huggingface/gguf (through strata's GGUF reader): the header must parse, import to the
 * same ModelIR, and give back sample tensors as strata stores them. Usage:
 *   tsx bench/llama-cpp/write-gguf.ts [--spec specs/llama-3.2-1b.strata] [--seed 0]
 *     [--types f32,f16,q8,q4] [--plan-only] --out DIR
 * Files: DIR/<model>-<F32|F16|Q8_0|Q4_0>.gguf. --plan-only writes nothing and prints the plan.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadSpec } from '../../src/spec/load.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { importGgufFile } from '../../src/import/gguf-file.ts';
import { roundWeight } from '../../src/ops/weight-storage.ts';
import { WEIGHT_TYPES, type WeightType } from '../../src/graph/dtype.ts';
import {
  GGUF_SUFFIX,
  modelDifference,
  planGguf,
  storedType,
  writeModelGgufs,
} from './gguf-model.ts';

const { values } = parseArgs({
  options: {
    spec: { type: 'string', default: 'specs/llama-3.2-1b.strata' },
    seed: { type: 'string', default: '0' },
    types: { type: 'string', default: 'f32,f16,q8,q4' },
    out: { type: 'string' },
    'plan-only': { type: 'boolean', default: false },
  },
});
const log = (m: string) => process.stderr.write(m + '\n');
const model = loadSpec(values.spec!);
const types = values.types!.split(',') as WeightType[];
for (const t of types)
  if (!WEIGHT_TYPES.includes(t))
    throw new Error(`--types: '${t}' is not one of ${WEIGHT_TYPES.join(', ')}`);

if (values['plan-only']) {
  for (const t of types) {
    const plan = planGguf(model, t);
    const counts: Record<string, number> = {};
    for (const x of plan.tensors) counts[x.type] = (counts[x.type] ?? 0) + 1;
    console.log(
      `${t}: ${plan.tensors.length} tensors (${JSON.stringify(counts)}), ${Object.keys(plan.metadata).length} keys`,
    );
  }
  process.exit(0);
}
if (!values.out) throw new Error('--out DIR is required');
mkdirSync(values.out, { recursive: true });
const files: Partial<Record<WeightType, string>> = {};
for (const t of types) files[t] = join(values.out, `${model.name}-${GGUF_SUFFIX[t]}.gguf`);
const weights = randomWeights(model, Number(values.seed));
const t0 = performance.now();
await writeModelGgufs(model, weights, files, log);
log(`written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

// Check: each file read back through @huggingface/gguf and strata's importer, with a few small
// tensors (q and k, whose rows were reordered, and an MLP matrix) compared bit for bit with
// what strata stores (test/bench/llama-cpp-gguf.test.ts compares every tensor on small models).
const last = model.layers.length - 1;
const probes = [
  'model.layers.0.self_attn.q_proj.weight',
  `model.layers.${last}.self_attn.k_proj.weight`,
  `model.layers.${last}.mlp.down_proj.weight`,
];
for (const t of types) {
  const g = await importGgufFile(files[t]!);
  const diff = modelDifference(g.model, model);
  if (diff) throw new Error(`${files[t]}: imports to a different ModelIR (${diff})`);
  for (const name of probes) {
    const shape = g.tensors.find((x) => x.name === name)!.shape;
    const want = roundWeight(storedType(model, name, shape, t), await weights(name), shape[1]);
    const got = await g.readTensorF32(name);
    for (let i = 0; i < want.length; i++)
      if (!Object.is(got[i], want[i]))
        throw new Error(`${files[t]}: ${name}[${i}] reads ${got[i]}, strata stores ${want[i]}`);
  }
  await g.close();
  log(`checked ${files[t]}: its ModelIR, and ${probes.length} tensors as strata stores them`);
}
