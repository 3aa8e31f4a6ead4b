/**
 * Issue 18's caps- and batch-driven decode fusions timed on one device (the GPU machine):
 * - rwkv: RWKV-7 at rwkv7-1.5b-world's dims (its first --layers of 24) decoded at each
 *   storage-buffer budget from WebGPU's 8 up to the device's, so one device times each graph
 *   (a later layer's time mix: 7 dispatches at 8, 6 at 10, 5 at 11 and more;
 *   src/passes/fuse-rwkv7.ts): greedy tokens/s after a short prompt, median of 3.
 * - moe: batched decode steps (B = 1, 4, 16, 64) of one-layer MoE models of three expert sizes,
 *   on the path src/passes/fuse-moe.ts picks (fused, or route + group + grouped kernels +
 *   combine), with its estimated rereads and the step's time, median of 3 runs of 16 steps.
 *   To time the fused path where the estimate refuses it, raise the budget in the device's copy
 *   first: sed -i 's/^export const MOE_INLINE_REREAD_BYTES = .*;/export const
 *   MOE_INLINE_REREAD_BYTES = Infinity;/' src/passes/fuse-moe.ts
 *
 *   tsx bench/fusion-budget.ts [--suites rwkv,moe] [--layers 4] [--out FILE] [--smoke]
 *
 * --smoke: one RWKV layer with a 256-token vocabulary, the tiny MoE at B = 1 and 16 (SwiftShader).
 */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { compileModel } from '../codegen/compile.ts';
import { memorySource } from '../codegen/bundle.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { BatchSequence } from '../runtime/batch.ts';
import type { GpuContext } from '../runtime/gpu.ts';
import { GpuModel } from '../runtime/model.ts';
import { randomWeights } from '../src/import/random-init.ts';
import { moeInlineRereadBytes } from '../src/passes/fuse-moe.ts';
import { loadSpec, parseSpec } from '../src/spec/load.ts';
import type { ModelIR } from '../src/spec/model.ts';
import { median } from './gpu-timer.ts';

const { values } = parseArgs({
  options: {
    suites: { type: 'string', default: 'rwkv,moe' },
    layers: { type: 'string', default: '4' },
    out: { type: 'string' },
    smoke: { type: 'boolean' },
  },
});
const smoke = values.smoke === true;
const log = (m: string) => process.stderr.write(m + '\n');

/** Token ids that are not all the same. */
const ids = (n: number, vocab: number, seed = 0) =>
  Array.from({ length: n }, (_, i) => (i * 7919 + 13 + seed * 31) % vocab);

async function benchRwkv(gpu: GpuContext) {
  const full = loadSpec('specs/rwkv7-1.5b-world.strata');
  const layers = smoke ? 1 : Number(values.layers);
  const model: ModelIR = {
    ...full,
    ...(smoke ? { vocab: 256 } : {}),
    layers: full.layers.slice(0, layers),
  };
  const weights = randomWeights(model, 0);
  const most = gpu.caps.maxStorageBuffersPerStage;
  const budgets = [...new Set([8, 10, most].filter((b) => b <= most))];
  const rows = [];
  for (const storage of budgets) {
    const caps = { ...gpu.caps, maxStorageBuffersPerStage: storage };
    const c = compileModel(model, { caps, capacity: 256 });
    const gm = await GpuModel.load(gpu, memorySource(c, weights));
    const steps = smoke ? 4 : 64;
    const rates: number[] = [];
    for (let rep = 0; rep < (smoke ? 1 : 4); rep++) {
      const times: number[] = [];
      for await (const _ of gm.newSequence().generate(ids(8, model.vocab), {
        maxTokens: steps + 1,
        temperature: 0,
      }))
        times.push(performance.now());
      // The first repetition warms pipelines and buffers.
      if (rep > 0 || smoke) rates.push((steps * 1000) / (times.at(-1)! - times[0]!));
    }
    gm.destroy();
    const row = {
      storageBuffers: storage,
      layers,
      dispatchesPerToken: c.phases.decode.dispatches.length,
      tokensPerSecond: median(rates),
    };
    log(`rwkv ${JSON.stringify(row)}`);
    rows.push(row);
  }
  return rows;
}

/** One MoE FFN after an attention layer: dim, experts, top-k, expert hidden size. */
const moeLayer = (dim: number, experts: number, topK: number, hidden: number) =>
  parseSpec(
    `model "moe-${dim}-${experts}x${hidden}-top${topK}" {
  vocab 256
  dim ${dim}
  max_context 512
  norm rms(eps: 1e-6)
  mixer attn = attention(heads: ${dim / 64}, kv_heads: ${dim / 256}, rope: none)
  ffn moe = moe(experts: ${experts}, top_k: ${topK}, expert: swiglu(hidden: ${hidden}))
  layers 1 x [attn] with ffn moe
}`,
    'moe-layer.strata',
  );

async function benchMoe(gpu: GpuContext) {
  const subjects: Array<[string, ModelIR]> = [
    ['jamba-tiny-moe', loadSpec('specs/jamba-tiny-moe.strata')],
    ...(smoke
      ? []
      : ([
          // bench/peers.py's Jamba-style hybrid's experts; a Qwen3-30B-A3B-shaped layer.
          ['dim 1024, 16 experts x 2048, top 2', moeLayer(1024, 16, 2, 2048)],
          ['dim 2048, 128 experts x 768, top 8', moeLayer(2048, 128, 8, 768)],
        ] as Array<[string, ModelIR]>)),
  ];
  const rows = [];
  for (const [label, model] of subjects) {
    const weights = randomWeights(model, 0);
    for (const B of smoke ? [1, 16] : [1, 4, 16, 64]) {
      const c = compileModel(model, { caps: gpu.caps, capacity: 128, batch: B });
      const dec = c.graphs.decode.nodes;
      const fused = dec.some((n) => n.attrs.op === 'moe_matmul' && !!n.attrs.route);
      const unfused = compileModel(model, { caps: gpu.caps, capacity: 128, batch: 1, fuse: false });
      const [gu, down] = unfused.graphs.decode.nodes.flatMap((n) =>
        n.attrs.op === 'moe_matmul' ? [n.attrs] : [],
      );
      const gm = await GpuModel.load(gpu, memorySource(c, weights));
      const batch = new BatchSequence(gm);
      const steps = smoke ? 2 : 16;
      const runs: number[] = [];
      for (let rep = 0; rep < (smoke ? 1 : 4); rep++) {
        batch.reset();
        let feed = ids(B, model.vocab, rep);
        const t0 = performance.now();
        for (let k = 0; k < steps; k++) feed = Array.from((await batch.step(feed)).tokens);
        if (rep > 0 || smoke) runs.push((performance.now() - t0) / steps);
      }
      batch.destroy();
      gm.destroy();
      const row = {
        model: label,
        batch: B,
        path: fused ? 'fused' : 'grouped',
        dispatchesPerStep: c.phases.decode.dispatches.length,
        rereadMiB: moeInlineRereadBytes(gu, down, B, 0) / 2 ** 20,
        stepMs: median(runs),
      };
      log(`moe ${JSON.stringify(row)}`);
      rows.push(row);
    }
  }
  return rows;
}

const gpu = await acquire({});
const out: Record<string, unknown> = {
  date: new Date().toISOString(),
  device: `${gpu.adapterInfo.vendor} ${gpu.adapterInfo.description}`.trim(),
  maxStorageBuffersPerStage: gpu.caps.maxStorageBuffersPerStage,
};
const runners: Record<string, () => Promise<unknown>> = {
  rwkv: () => benchRwkv(gpu),
  moe: () => benchMoe(gpu),
};
for (const name of values.suites!.split(',')) {
  if (!runners[name]) throw new Error(`unknown suite '${name}' (known: rwkv, moe)`);
  out[name] = await runners[name]();
  if (values.out) writeFileSync(values.out, JSON.stringify(out, null, 1));
}
if (!values.out) console.log(JSON.stringify(out, null, 1));
process.exit(0);
