/**
 * MLA with the latent cache (absorbed projections) against the expanded cache, at DeepSeek-V3's
 * attention widths (heads 128, q_rank 1536, kv_rank 512, nope 128, rope 64, v 128, dim 7168):
 * one layer's MLA ops, each timed alone on its own buffers (timeLaunches, GPU timestamps), summed
 * per phase and context. Unfused graphs (src/graph/lower.ts), so both forms run the same kernels
 * for what they share. Usage (device machine): tsx bench/mla.ts [--out FILE]
 * Buffers hold zeros: f32 kernels here take the same time on any values.
 */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { parseSpec } from '../src/spec/load.ts';
import { lower } from '../src/graph/lower.ts';
import { shapeBytes } from '../src/graph/dtype.ts';
import { definitionFor } from '../src/ops/index.ts';
import { generatorFor } from '../codegen/kernels/index.ts';
import type { ModelIR } from '../src/spec/model.ts';
import type { MlaCache } from '../src/mixers/mla.ts';
import { timeLaunches } from './gpu-timer.ts';

const { values } = parseArgs({ options: { out: { type: 'string' } } });
const log = (m: string) => process.stderr.write(m + '\n');

const spec = (cache: MlaCache): ModelIR =>
  parseSpec(
    `model "v3-mla-layer" {
  vocab 256
  dim 7168
  max_context 40000
  norm rms(eps: 1e-6)
  mixer mla = mla(heads: 128, q_rank: 1536, kv_rank: 512, nope_dim: 128, rope_dim: 64, v_dim: 128,
                  rope: rope(scaling: yarn(factor: 40, original_max_positions: 4096, attention_factor: 1)),
                  scale: 0.1352337788608801, cache: ${cache})
  ffn   mlp = swiglu(hidden: 64)
  layers 1 x mla with ffn mlp
}`,
    'v3-mla-layer.strata',
  );

const CASES = [
  { name: 'prefill 4096', phase: 'prefill' as const, T: 4096, pos: 0, capacity: 4096 },
  { name: 'decode at 4k', phase: 'decode' as const, T: 1, pos: 4095, capacity: 4096 },
  { name: 'decode at 16k', phase: 'decode' as const, T: 1, pos: 16383, capacity: 16384 },
  { name: 'decode at 32k', phase: 'decode' as const, T: 1, pos: 32767, capacity: 32768 },
];

const gpu = await acquire();
log(`device: ${gpu.adapterInfo?.description ?? 'gpu'}`);
const rows: Record<string, unknown>[] = [];
for (const cache of ['latent', 'expanded'] as const) {
  const model = spec(cache);
  for (const c of CASES) {
    const g = lower(model, { phase: c.phase, maxT: c.T, capacity: c.capacity });
    const ops: { label: string; ms: number }[] = [];
    let error: string | null = null;
    let kvBytes = 0;
    for (const n of g.nodes.filter((x) => x.layer === 0 && x.label.startsWith('l0.mla'))) {
      const def = definitionFor(n.attrs);
      const bytes: Record<string, number> = {};
      for (const [name, r] of [
        ...Object.entries(def.inputs(n.attrs)),
        ...Object.entries(def.outputs(n.attrs)),
      ]) {
        bytes[name] = Math.max(4, shapeBytes(r.dtype, r.shape, c.T));
        if (n.attrs.op === 'attention' && (name === 'kcache' || name === 'vcache'))
          kvBytes += bytes[name];
      }
      const over = Object.entries(bytes).find(([, b]) => b > gpu.caps.maxStorageBindingBytes);
      if (over) {
        error = `${n.label}: ${over[0]} of ${over[1]} bytes exceeds one storage binding (${gpu.caps.maxStorageBindingBytes})`;
        break;
      }
      try {
        const gen = generatorFor(n.attrs)(n.attrs, { caps: gpu.caps, maxT: c.T });
        const t = await timeLaunches(
          gpu,
          gen.launches,
          { ...bytes, ...gen.scratch },
          { T: c.T, pos: c.pos, L: 1 },
          { reps: c.T === 1 ? 50 : 2, samples: 3 },
        );
        ops.push({ label: n.label, ms: t.gpuMs ?? t.wallMs });
      } catch (e) {
        error = `${n.label}: ${e instanceof Error ? e.message : String(e)}`;
        break;
      }
    }
    const ms = ops.reduce((s, o) => s + o.ms, 0);
    const attention = ops.find((o) => o.label.endsWith('attention'))?.ms ?? null;
    rows.push({
      cache,
      case: c.name,
      ms,
      attentionMs: attention,
      kvCacheMiB: kvBytes / 2 ** 20,
      error,
      ops,
    });
    log(
      `${cache} ${c.name}: ${error ? `ERROR ${error}` : `${ms.toFixed(3)} ms (attention ${attention?.toFixed(3)} ms)`}; cache ${(kvBytes / 2 ** 20).toFixed(0)} MiB`,
    );
  }
}
const out = JSON.stringify({ date: new Date().toISOString(), rows }, null, 2);
if (values.out) writeFileSync(values.out, out);
else console.log(out);
