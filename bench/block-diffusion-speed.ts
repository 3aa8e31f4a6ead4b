/**
 * The block-diffusion (BD3-LM) sampler beside LLaDA's exact sampler on the same weights (its
 * PyTorch peer is bench/diffusion_peer.py's bd3lm settings: bd3lms's sampler on these weights
 * and settings; bench/report.ts pairs the rows): a LLaDA-8B-shaped
 * model cut to a few layers, its attention made block-causal over blocks of --block (16), a
 * random prompt of 64 ids, 128 generated tokens. Rows: LLaDA exact (128 full forwards over the
 * canvas, blocks of 32, GPU pick) on the bidirectional model; bd3lm first-hitting (a forward of
 * one block against the exact cache per token) and ddpm with 4 steps a block (at most 4
 * forwards a block) on the block-causal one, each with its draws on the host (logits read back)
 * and on the GPU (--pick gpu: only tokens come back). Wall time of one generation after a
 * warm-up one.
 *   tsx bench/block-diffusion-speed.ts [layers=4] [--block 16] [--gpu-flags fast] [--out FILE]
 *     [--spec specs/tiny-llada.strata]   (a smoke run on SwiftShader)
 *     [--no-llada]   (bd3lm rows only: one model load, about a minute less at 4 layers, for a
 *                     run whose bench/diffusion-speed.ts already timed LLaDA exact)
 */
import { writeFileSync } from 'node:fs';
import { benchArgs, gpuFlags, whole } from './args.ts';
import { memorySource } from '../codegen/bundle.ts';
import { compileModel } from '../codegen/compile.ts';
import { blockDiffusionGenerateGpu } from '../runtime/block-diffusion.ts';
import { diffusionGenerateGpu, type DiffusionPick } from '../runtime/diffusion.ts';
import { GpuModel } from '../runtime/model.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { randomWeights } from '../src/import/random-init.ts';
import type { BlockDiffusionRun } from '../src/ops/block-diffusion.ts';
import type { DiffusionRun } from '../src/ops/diffusion.ts';
import { loadSpec } from '../src/spec/load.ts';
import type { BlockDiffusionSpec, DiffusionSpec, ModelIR } from '../src/spec/model.ts';

const { values, positionals } = benchArgs({
  block: { type: 'string' },
  spec: { type: 'string', default: 'specs/llada-8b.strata' },
  'no-llada': { type: 'boolean', default: false },
  'gpu-flags': { type: 'string' },
  out: { type: 'string' },
});
const layers = whole('layers', positionals[0], 4);
const B = whole('--block', values.block, 16);
// --spec specs/tiny-llada.strata: a smoke run on SwiftShader.
const llada = loadSpec(values.spec);
llada.layers = llada.layers.slice(0, layers);
const d = llada.diffusion as DiffusionSpec;
// The same weights with block-causal attention and a bd3lm section.
const section: BlockDiffusionSpec = {
  kind: 'bd3lm',
  maskId: d.maskId,
  genLength: d.genLength,
  blockLength: B,
  steps: B,
  sampler: 'first_hitting',
  temperature: 1,
  nucleusP: 0.9,
};
const bd3lm: ModelIR = {
  ...llada,
  layers: llada.layers.map((l) =>
    l.mixer?.kind === 'attention' ? { ...l, mixer: { ...l.mixer, blockCausal: B } } : l,
  ),
  diffusion: section,
};
const P = 64;
const n = P + d.genLength;
const gpu = await acquire({ flags: gpuFlags(values['gpu-flags']) });
const load = async (m: ModelIR) => {
  const c = compileModel(m, { caps: gpu.caps, maxT: n, capacity: n, precision: 'f16' });
  return GpuModel.load(gpu, memorySource(c, randomWeights(m, 0)));
};
const prompt = Array.from({ length: P }, (_, i) => (i * 7919) % (d.maskId - 1));
const rows: unknown[] = [];
const time = async (label: string, gen: (count: () => void) => Promise<unknown>) => {
  await gen(() => {});
  let forwards = 0;
  const t = performance.now();
  await gen(() => void forwards++);
  const s = (performance.now() - t) / 1000;
  rows.push({ label, forwards, seconds: s, tokensPerSecond: d.genLength / s });
  console.log(
    `${label.padEnd(34)} ${forwards} forwards, ${s.toFixed(2)} s, ${(d.genLength / s).toFixed(1)} tokens/s, ${((1000 * s) / forwards).toFixed(1)} ms a forward`,
  );
};
console.log(`${llada.name} shape, ${layers} layers, f16 weights, prompt ${P}, gen ${d.genLength}`);
if (!values['no-llada']) {
  const a = await load(llada);
  const exact: DiffusionRun = { ...d, seed: 1 };
  const sa = a.newSequence();
  await time(`llada exact (blocks of ${d.blockLength}, ${d.steps} steps)`, (count) =>
    diffusionGenerateGpu(sa, prompt, exact, count, 'gpu'),
  );
  sa.destroy();
  a.destroy();
}
const b = await load(bd3lm);
const base: BlockDiffusionRun = { ...section, seed: 1 };
// Each sampler with its draws on the host (the committed rows' logits read back) and on the GPU
// (codegen/kernels/block-draw.ts: only tokens come back).
const settings: [string, Partial<BlockDiffusionRun>, DiffusionPick][] = [
  [`bd3lm first-hitting (blocks of ${B})`, {}, 'host'],
  [`bd3lm first-hitting (blocks of ${B}), GPU draw`, {}, 'gpu'],
  [`bd3lm ddpm, 4 steps a block`, { sampler: 'ddpm', steps: 4 }, 'host'],
  [`bd3lm ddpm, 4 steps a block, GPU draw`, { sampler: 'ddpm', steps: 4 }, 'gpu'],
];
for (const [label, o, pick] of settings) {
  const sb = b.newSequence();
  await time(label, (count) =>
    blockDiffusionGenerateGpu(
      sb,
      prompt,
      { ...base, ...o },
      (c) => {
        if (c.forward) count();
      },
      pick,
    ),
  );
  sb.destroy();
}
const out = values.out;
if (out) writeFileSync(out, JSON.stringify({ layers, prompt: P, block: B, rows }, null, 2));
b.destroy();
