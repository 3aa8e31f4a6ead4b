/**
 * How often Fast-dLLM's cached and threshold samplers give the exact LLaDA sampler's tokens
 * (issue 16: "report how often the output agrees with the exact sampler at each setting"): for
 * each block length, cache and threshold, the share of generated positions whose token equals
 * the exact sampler's (no cache, no threshold) on the same weights, prompt and seed.
 *
 * Where the two must agree (threshold 1, no cache) the tests assert it
 * (test/diffusion/fast.test.ts); elsewhere the rate is a property of the model, so it is measured
 * here rather than asserted. Random weights give near-uniform confidences, under which a
 * threshold never fires: --logit-scale (default 12) spreads them over (0, 1) as a trained
 * model's are.
 *   tsx bench/diffusion-agreement.ts [--spec specs/tiny-llada.strata] [--layers N]
 *     [--logit-scale 12] [--seeds 4] [--gpu-flags fast] [--out FILE]
 * Runs on any adapter (SwiftShader takes about a minute for the tiny spec).
 */
import { benchArgs, gpuFlags, whole, writeResult } from './args.ts';
import { memorySource } from '../codegen/bundle.ts';
import { compileModel } from '../codegen/compile.ts';
import { diffusionGenerateGpu } from '../runtime/diffusion.ts';
import { GpuModel } from '../runtime/model.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { randomWeights } from '../src/import/random-init.ts';
import type { DiffusionCache, DiffusionRun } from '../src/ops/diffusion.ts';
import { loadSpec } from '../src/spec/load.ts';
import type { DiffusionSpec } from '../src/spec/model.ts';

const { values } = benchArgs({
  spec: { type: 'string', default: 'specs/tiny-llada.strata' },
  layers: { type: 'string' },
  'logit-scale': { type: 'string', default: '12' },
  seeds: { type: 'string' },
  'gpu-flags': { type: 'string' },
  out: { type: 'string' },
});
const model = loadSpec(values.spec);
if (!model.diffusion || model.diffusion.kind !== 'llada')
  throw new Error(
    `${model.name}: not a LLaDA-style diffusion model (its spec has no llada section)`,
  );
if (values.layers) model.layers = model.layers.slice(0, whole('--layers', values.layers, 0));
model.logitScale = Number(values['logit-scale']);
if (!(model.logitScale > 0))
  throw new Error(`--logit-scale: ${values['logit-scale']} is not a positive number`);
const seeds = whole('--seeds', values.seeds, 4);
const base: DiffusionRun = { ...(model.diffusion as DiffusionSpec), seed: 1 };
const prompt = [5, 17, 200, 3, 42].map((t) => t % base.maskId);
const n = prompt.length + base.genLength;
const gpu = await acquire({ flags: gpuFlags(values['gpu-flags']) });
const c = compileModel(model, { caps: gpu.caps, maxT: n, capacity: n });
const gm = await GpuModel.load(gpu, memorySource(c, randomWeights(model, 7)));

const tokens = async (run: DiffusionRun): Promise<number[]> => {
  const seq = gm.newSequence();
  const out = await diffusionGenerateGpu(seq, prompt, run, undefined, 'gpu');
  seq.destroy();
  return [...out.subarray(prompt.length)];
};

const blocks = [base.genLength, base.blockLength, base.blockLength / 2].filter(
  (b, i, all) => Number.isInteger(b) && b >= 1 && base.genLength % b === 0 && all.indexOf(b) === i,
);
const rows: { blockLength: number; cache: DiffusionCache; threshold: number | null }[] = [];
for (const blockLength of blocks)
  for (const cache of ['none', 'prefix', 'dual'] as const)
    for (const threshold of [null, 0.9, 0.5])
      if (cache !== 'none' || threshold !== null) rows.push({ blockLength, cache, threshold });

console.log(
  `${model.name}: ${model.layers.length} layers, logit scale ${model.logitScale}, gen ${base.genLength}, steps ${base.steps}, ${seeds} seeds; tokens equal to the exact sampler's`,
);
const results: ((typeof rows)[number] & { same: number; total: number })[] = [];
for (const r of rows) {
  let same = 0;
  let total = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const run: DiffusionRun = { ...base, blockLength: r.blockLength, seed };
    const want = await tokens(run);
    const got = await tokens({ ...run, cache: r.cache, threshold: r.threshold });
    same += got.filter((t, i) => t === want[i]).length;
    total += want.length;
  }
  results.push({ ...r, same, total });
  console.log(
    `block ${String(r.blockLength).padStart(3)}  cache ${r.cache.padEnd(6)}  threshold ${String(r.threshold ?? '-').padEnd(3)}  ${same}/${total} (${((100 * same) / total).toFixed(1)}%)`,
  );
}
writeResult(values.out, 'bench/diffusion-agreement.ts', {
  model: model.name,
  layers: model.layers.length,
  logitScale: model.logitScale,
  seeds,
  rows: results,
});
gm.destroy();
