/**
 * NSA (src/mixers/nsa.ts) against dense attention at Llama-3.2-1B's attention widths (heads 32,
 * kv heads 8, head_dim 64, dim 2048; NSA with fla's blocks of 64, 16 selected, window 512):
 * one layer's mixer ops (projections included), each timed alone on its own buffers
 * (timeLaunches, GPU timestamps), summed per phase and context, with the layer's KV-cache bytes
 * (NSA: the full cache plus the compressed one). Unfused graphs (src/graph/lower.ts), so both
 * run the same projection kernels. Usage (device machine): tsx bench/nsa.ts [--out FILE];
 * --quick runs one decode at 1k only, to check the script runs (SwiftShader takes minutes even so).
 * Buffers hold zeros: the kernels do the same work on any values (NSA's selection still keeps
 * `select` blocks of `block` keys, all visible), so times hold, outputs do not.
 */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { parseSpec } from '../src/spec/load.ts';
import { lower } from '../src/graph/lower.ts';
import type { ModelIR } from '../src/spec/model.ts';
import { timeLayerOps } from './layer-ops.ts';

const { values } = parseArgs({
  options: { out: { type: 'string' }, quick: { type: 'boolean', default: false } },
});
const log = (m: string) => process.stderr.write(m + '\n');

const MIXERS = {
  nsa: 'nsa(heads: 32, kv_heads: 8, head_dim: 64, block: 64, select: 16, window: 512, rope_theta: 500000)',
  dense: 'attention(heads: 32, kv_heads: 8, head_dim: 64)',
};

const spec = (mixer: string): ModelIR =>
  parseSpec(
    `model "layer" {
  vocab 256
  dim 2048
  max_context 131072
  norm rms(eps: 1e-5)
  mixer m = ${mixer}
  ffn mlp = swiglu(hidden: 64)
  layers 1 x m with ffn mlp
}`,
    'layer.strata',
  );

const CASES = values.quick
  ? [{ name: 'decode at 1k', phase: 'decode' as const, T: 1, pos: 1023, capacity: 1024 }]
  : [
      { name: 'prefill 4096', phase: 'prefill' as const, T: 4096, pos: 0, capacity: 4096 },
      { name: 'decode at 4k', phase: 'decode' as const, T: 1, pos: 4095, capacity: 4096 },
      { name: 'decode at 32k', phase: 'decode' as const, T: 1, pos: 32767, capacity: 32768 },
      { name: 'decode at 128k', phase: 'decode' as const, T: 1, pos: 131071, capacity: 131072 },
    ];

/** Caches: attention's and NSA's KV inputs (the compressed ones too). */
const KV = new Set(['kcache', 'vcache', 'kcmp', 'vcmp']);

const gpu = await acquire();
log(`device: ${gpu.adapterInfo?.description ?? 'gpu'}`);
const rows: Record<string, unknown>[] = [];
for (const [kind, mixer] of Object.entries(MIXERS)) {
  const model = spec(mixer);
  for (const c of CASES) {
    const g = lower(model, { phase: c.phase, maxT: c.T, capacity: c.capacity });
    const prefix = kind === 'nsa' ? 'l0.nsa' : 'l0.attn';
    const nodes = g.nodes.filter((x) => x.layer === 0 && x.label.startsWith(prefix));
    const { ops, ms, kvBytes, error } = await timeLayerOps(gpu, nodes, c, {
      isKv: (_, name) => KV.has(name),
      quick: values.quick,
    });
    rows.push({ mixer: kind, case: c.name, ms, kvCacheMiB: kvBytes / 2 ** 20, error, ops });
    log(
      `${kind} ${c.name}: ${error ? `ERROR ${error}` : `${ms.toFixed(3)} ms`}; ` +
        `KV ${(kvBytes / 2 ** 20).toFixed(1)} MiB; ` +
        ops.map((o) => `${o.label.replace(/^l0\.\w+[ .]?/, '')} ${o.ms.toFixed(3)}`).join(', '),
    );
  }
}
const out = JSON.stringify({ date: new Date().toISOString(), rows }, null, 2);
if (values.out) writeFileSync(values.out, out);
else console.log(out);
