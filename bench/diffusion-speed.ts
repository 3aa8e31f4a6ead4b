/**
 * A quick speed check of the diffusion sampler's options (not issue 16's bench: no PyTorch peer,
 * random weights): a LLaDA-8B-shaped model cut to a few layers, a random prompt of 64 ids, 128
 * tokens in blocks of 32 over 128 steps; for each setting the wall time of one generation after
 * a warm-up one, and its forwards. Random weights give flat distributions, so a threshold rarely
 * fires here: its saving depends on a trained model's confidences.
 *   tsx bench/diffusion-speed.ts [layers=4] [--gpu-flags fast] [--out FILE]
 */
import { writeFileSync } from 'node:fs';
import { benchArgs, gpuFlags, whole } from './args.ts';
import { memorySource } from '../codegen/bundle.ts';
import { compileModel } from '../codegen/compile.ts';
import { diffusionGenerateGpu, type DiffusionPick } from '../runtime/diffusion.ts';
import { GpuModel } from '../runtime/model.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { randomWeights } from '../src/import/random-init.ts';
import type { DiffusionRun } from '../src/ops/diffusion.ts';
import { loadSpec } from '../src/spec/load.ts';
import type { DiffusionSpec } from '../src/spec/model.ts';

const { values, positionals } = benchArgs({
  'gpu-flags': { type: 'string' },
  out: { type: 'string' },
});
const layers = whole('layers', positionals[0], 4);
const model = loadSpec('specs/llada-8b.strata');
model.layers = model.layers.slice(0, layers);
const P = 64;
const base: DiffusionRun = { ...(model.diffusion as DiffusionSpec), seed: 1 };
const n = P + base.genLength;
const gpu = await acquire({ flags: gpuFlags(values['gpu-flags']) });
const t0 = performance.now();
const c = compileModel(model, { caps: gpu.caps, maxT: n, capacity: n, precision: 'f16' });
const gm = await GpuModel.load(gpu, memorySource(c, randomWeights(model, 0)));
console.log(
  `llada-8b shape, ${layers} layers, f16 weights: loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);
const prompt = Array.from({ length: P }, (_, i) => (i * 7919) % 126000);
// The host pick last: it reads every step's [canvas, vocab] logits back (97 MB a step at this
// shape), so on the H100 it had not finished one setting in the minute a device call had left.
const settings: [string, Partial<DiffusionRun>, DiffusionPick][] = [
  ['exact', {}, 'gpu'],
  ['prefix cache', { cache: 'prefix' }, 'gpu'],
  ['dual cache', { cache: 'dual' }, 'gpu'],
  ['dual cache, threshold 0.9', { cache: 'dual', threshold: 0.9 }, 'gpu'],
  ['exact', {}, 'host'],
];
const rows: unknown[] = [];
const out = values.out;
for (const [label, o, pick] of settings) {
  const run = { ...base, ...o };
  let forwards = 0;
  const seq = gm.newSequence();
  await diffusionGenerateGpu(seq, prompt, run, undefined, pick);
  const t = performance.now();
  await diffusionGenerateGpu(seq, prompt, run, () => void forwards++, pick);
  const s = (performance.now() - t) / 1000;
  const row = { label, pick, forwards, seconds: s, tokensPerSecond: base.genLength / s };
  rows.push(row);
  console.log(
    `${label.padEnd(26)} pick ${pick}: ${forwards} forwards, ${s.toFixed(2)} s, ${(base.genLength / s).toFixed(1)} tokens/s, ${((1000 * s) / forwards).toFixed(1)} ms a forward`,
  );
  seq.destroy();
  // After every setting, so a run cut short by the device call's limit keeps its rows.
  if (out) writeFileSync(out, JSON.stringify({ layers, prompt: P, ...base, rows }, null, 2));
}
gm.destroy();
