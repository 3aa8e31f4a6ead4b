/**
 * One layer's ops timed one by one (bench/mla.ts, bench/nsa.ts): each node of `nodes` gets its
 * kernel's launches on buffers of its own shapes (zeros: f32 kernels take the same time on any
 * values), timed by GPU timestamps where the device has them. KV bytes count each cache input once.
 */
import type { GpuContext } from '../runtime/gpu.ts';
import type { GraphNode } from '../src/graph/ir.ts';
import { shapeBytes } from '../src/graph/dtype.ts';
import { definitionFor } from '../src/ops/index.ts';
import { generatorFor } from '../codegen/kernels/index.ts';
import { timeLaunches } from './gpu-timer.ts';

export interface LayerCase {
  T: number;
  pos: number;
}

export interface LayerTiming {
  ops: { label: string; ms: number }[];
  /** Sum of the ops' times. */
  ms: number;
  kvBytes: number;
  /** The first op that could not run (a binding over the limit, a kernel error); then ops stop. */
  error: string | null;
}

export async function timeLayerOps(
  gpu: GpuContext,
  nodes: GraphNode[],
  c: LayerCase,
  opts: { isKv: (n: GraphNode, input: string) => boolean; quick: boolean },
): Promise<LayerTiming> {
  const ops: LayerTiming['ops'] = [];
  const seen = new Set<number>();
  let kvBytes = 0;
  let error: string | null = null;
  for (const n of nodes) {
    const def = definitionFor(n.attrs);
    const bytes: Record<string, number> = {};
    for (const [name, r] of [
      ...Object.entries(def.inputs(n.attrs)),
      ...Object.entries(def.outputs(n.attrs)),
    ]) {
      bytes[name] = Math.max(4, shapeBytes(r.dtype, r.shape, c.T));
      const id = n.inputs[name];
      if (opts.isKv(n, name) && id !== undefined && !seen.has(id)) {
        seen.add(id);
        kvBytes += bytes[name];
      }
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
        opts.quick ? { reps: 1, samples: 1 } : { reps: c.T === 1 ? 50 : 2, samples: 3 },
      );
      ops.push({ label: n.label, ms: t.gpuMs ?? t.wallMs });
    } catch (e) {
      error = `${n.label}: ${e instanceof Error ? e.message : String(e)}`;
      break;
    }
  }
  return { ops, ms: ops.reduce((s, o) => s + o.ms, 0), kvBytes, error };
}
