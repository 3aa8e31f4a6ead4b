/**
 * CPU interpreter for GraphIR: runs any graph (fused or not) with the op
 * references. The ground truth the GPU runtime is tested against.
 */
import type { Graph } from './ir.ts';
import { elementCount, usedTensors } from './ir.ts';
import { materialize, type WeightProvider } from './params.ts';
import { definitionFor } from '../ops/index.ts';
import type { Arrays, HostArray } from '../ops/types.ts';

/** Persistent per-sequence state (KV caches) by state tensor name. */
export type CpuState = Map<string, Float32Array | Uint32Array>;

export class Interpreter {
  private constructor(
    readonly graph: Graph,
    private readonly params: Map<number, Float32Array>,
  ) {}

  static async create(graph: Graph, weights: WeightProvider): Promise<Interpreter> {
    const params = new Map<number, Float32Array>();
    for (const t of usedTensors(graph)) {
      if (t.kind !== 'param' || !t.source) continue;
      const data = await materialize(t.source, weights);
      const want = elementCount(t.shape, graph.maxT);
      if (data.length !== want) {
        throw new Error(
          `param ${t.name}: materialised ${data.length} elements, shape [${t.shape}] needs ${want}`,
        );
      }
      params.set(t.id, data);
    }
    return new Interpreter(graph, params);
  }

  newState(): CpuState {
    const s: CpuState = new Map();
    for (const t of usedTensors(this.graph)) {
      if (t.kind !== 'state') continue;
      const n = elementCount(t.shape, this.graph.maxT);
      // u32 state (H2O's slot positions, MoE load counts) holds integers past f32's 2^24.
      s.set(t.name, t.dtype === 'u32' ? new Uint32Array(n) : new Float32Array(n));
    }
    return s;
  }

  /**
   * One step over `ids` at absolute position `pos`; returns the last L rows of logits and the
   * sampled token. `keys`: bidirectional attention also sees cached rows up to it (StepShape).
   */
  step(
    ids: Uint32Array,
    pos: number,
    L: number,
    state: CpuState,
    keys?: number,
    /** A batched step's rows at pos + rowPos[s] (StepShape.rowPos); absent: all at pos. */
    rowPos?: readonly number[],
  ): { logits: Float32Array; token: number } {
    const g = this.graph;
    const T = ids.length;
    if (T < 1 || T > g.maxT) throw new Error(`${g.phase}: T = ${T} outside [1, ${g.maxT}]`);
    if (L < 1 || L > T) throw new Error(`L = ${L} outside [1, T = ${T}]`);
    const values = new Map<number, HostArray>();
    for (const t of usedTensors(g)) {
      if (t.kind === 'param') values.set(t.id, this.params.get(t.id)!);
      if (t.kind === 'state') values.set(t.id, state.get(t.name)!);
    }
    const idsCopy = new Uint32Array(ids);
    values.set(g.ids, idsCopy);
    const step = {
      T,
      pos,
      L,
      ...(keys === undefined ? {} : { keys }),
      ...(rowPos === undefined ? {} : { rowPos }),
    };
    const encoding = !((keys ?? 0) > 0);
    for (const node of g.nodes) {
      // A denoising-only node is skipped in an encoding step, as the runtime skips its launches;
      // its outputs hold NaN, so that a reader it should not have shows in the logits.
      if (node.denoising && encoding) {
        for (const id of Object.values(node.outputs)) {
          const t = g.tensors[id];
          if (t.kind === 'activation' && t.dtype === 'f32')
            values.set(id, new Float32Array(elementCount(t.shape, T)).fill(NaN));
        }
        continue;
      }
      const inputs: Arrays = {};
      for (const [k, id] of Object.entries(node.inputs)) {
        let v = values.get(id);
        // An activation a node updates in place before anything wrote it (the first part of a
        // split embedding table fills its rows of `out` and leaves the rest to the other parts)
        // starts as zeros, as a fresh buffer does; any other missing input is a broken graph.
        if (!v && node.outputs[k] === id && g.tensors[id].kind === 'activation') {
          const t = g.tensors[id];
          v =
            t.dtype === 'u32'
              ? new Uint32Array(elementCount(t.shape, T))
              : new Float32Array(elementCount(t.shape, T));
          values.set(id, v);
        }
        if (!v)
          throw new Error(
            `node ${node.label}: input '${k}' (tensor ${g.tensors[id].name}) has no value`,
          );
        inputs[k] = v;
      }
      const out = definitionFor(node.attrs).reference(node.attrs, inputs, step);
      for (const [k, id] of Object.entries(node.outputs)) {
        const v = out[k];
        if (!v) throw new Error(`node ${node.label}: reference returned no output '${k}'`);
        const t = g.tensors[id];
        if (t.kind === 'state') {
          const dst = state.get(t.name)!;
          if (v !== dst) dst.set(v);
        } else {
          values.set(id, v);
        }
      }
    }
    const logits = values.get(g.logits) as Float32Array;
    const token = values.get(g.token) as Uint32Array;
    const vocab = g.tensors[g.logits].shape[1] as number;
    return { logits: logits.slice(0, L * vocab), token: token[0] };
  }
}
