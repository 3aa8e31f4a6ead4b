/**
 * MLA with the latent cache (absorbed projections) against the expanded cache, and the latent
 * cache under DeepSeek-V3.2's sparse attention (`latent+dsa`: indexer 64 heads of 128, top 2048;
 * its indexer's ops are in the sum, and its index key cache in the cache figure), at DeepSeek-V3's
 * attention widths (heads 128, q_rank 1536, kv_rank 512, nope 128, rope 64, v 128, dim 7168):
 * one layer's MLA ops, each timed alone on its own buffers (timeLaunches, GPU timestamps), summed
 * per phase and context. Unfused graphs (src/graph/lower.ts), so both forms run the same kernels
 * for what they share. Usage (device machine): tsx bench/mla.ts [--out FILE]
 * (--smoke: tiny contexts, to check here on SwiftShader that the script runs).
 * Buffers hold zeros: f32 kernels here take the same time on any values.
 */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { parseSpec } from '../src/spec/load.ts';
import { lower } from '../src/graph/lower.ts';
import type { ModelIR } from '../src/spec/model.ts';
import type { MlaCache } from '../src/mixers/mla.ts';
import { timeLayerOps } from './layer-ops.ts';

const { values } = parseArgs({
  options: { out: { type: 'string' }, smoke: { type: 'boolean' } },
});
const log = (m: string) => process.stderr.write(m + '\n');

const spec = (cache: MlaCache, index: string): ModelIR =>
  parseSpec(
    `model "v3-mla-layer" {
  vocab 256
  dim 7168
  max_context 40000
  norm rms(eps: 1e-6)
  mixer mla = mla(heads: 128, q_rank: 1536, kv_rank: 512, nope_dim: 128, rope_dim: 64, v_dim: 128,
                  rope: rope(scaling: yarn(factor: 40, original_max_positions: 4096, attention_factor: 1)),
                  scale: 0.1352337788608801, cache: ${cache}${index})
  ffn   mlp = swiglu(hidden: 64)
  layers 1 x mla with ffn mlp
}`,
    'v3-mla-layer.strata',
  );

const FULL = [
  { name: 'prefill 4096', phase: 'prefill' as const, T: 4096, pos: 0, capacity: 4096 },
  { name: 'decode at 4k', phase: 'decode' as const, T: 1, pos: 4095, capacity: 4096 },
  { name: 'decode at 16k', phase: 'decode' as const, T: 1, pos: 16383, capacity: 16384 },
  { name: 'decode at 32k', phase: 'decode' as const, T: 1, pos: 32767, capacity: 32768 },
];
const SMOKE = [
  { name: 'prefill 16', phase: 'prefill' as const, T: 16, pos: 0, capacity: 16 },
  { name: 'decode at 40', phase: 'decode' as const, T: 1, pos: 39, capacity: 40 },
];
const CASES = values.smoke ? SMOKE : FULL;
const DSA_TOPK = values.smoke ? 8 : 2048;

const VARIANTS: { name: string; cache: MlaCache; index: string }[] = [
  { name: 'latent', cache: 'latent', index: '' },
  { name: 'expanded', cache: 'expanded', index: '' },
  {
    name: 'latent+dsa',
    cache: 'latent',
    index: `, index: indexer(heads: 64, dim: 128, topk: ${DSA_TOPK})`,
  },
];
/** The ops whose kcache / vcache inputs are KV caches (the index keys included). */
const KV_OPS = new Set(['attention', 'sparse_attention', 'indexer_topk']);

const gpu = await acquire();
log(`device: ${gpu.adapterInfo?.description ?? 'gpu'}`);
const rows: Record<string, unknown>[] = [];
for (const { name: variant, cache, index } of VARIANTS) {
  const model = spec(cache, index);
  for (const c of CASES) {
    const g = lower(model, { phase: c.phase, maxT: c.T, capacity: c.capacity });
    // --smoke runs only the attention and indexer ops: SwiftShader takes minutes over the
    // 7168-wide projections.
    const timed = g.nodes.filter(
      (x) =>
        x.layer === 0 && x.label.startsWith('l0.mla') && (!values.smoke || KV_OPS.has(x.attrs.op)),
    );
    const { ops, ms, kvBytes, error } = await timeLayerOps(gpu, timed, c, {
      isKv: (n, name) => KV_OPS.has(n.attrs.op) && (name === 'kcache' || name === 'vcache'),
      quick: values.smoke === true,
    });
    const attention = ops.find((o) => o.label.endsWith('attention'))?.ms ?? null;
    const indexer = ops.find((o) => o.label.endsWith('indexer'))?.ms ?? null;
    rows.push({
      cache: variant,
      case: c.name,
      ms,
      attentionMs: attention,
      indexerMs: indexer,
      kvCacheMiB: kvBytes / 2 ** 20,
      error,
      ops,
    });
    log(
      `${variant} ${c.name}: ${error ? `ERROR ${error}` : `${ms.toFixed(3)} ms (attention ${attention?.toFixed(3)} ms${indexer === null ? '' : `, indexer ${indexer.toFixed(3)} ms`})`}; cache ${(kvBytes / 2 ** 20).toFixed(0)} MiB`,
    );
  }
}
const out = JSON.stringify({ date: new Date().toISOString(), rows }, null, 2);
if (values.out) writeFileSync(values.out, out);
else console.log(out);
