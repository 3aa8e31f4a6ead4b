/** Incremental construction of a Graph; block lowerings use it and nothing else. */
import type { KvType, OpAttrs } from './ops.ts';
import type { Dim, DType, Graph, GraphNode, ParamSource, Phase, Tensor } from './ir.ts';

export class GraphBuilder {
  readonly tensors: Tensor[] = [];
  readonly nodes: GraphNode[] = [];
  private readonly params = new Map<string, number>();
  private readonly states = new Map<string, number>();
  private readonly carriedValues = new Map<string, number>();
  /**
   * The checkpoint weights the lowering reads, each with its whole shape, in the order it first
   * reads them: a parameter that is a weight declares it, and a lowering that reads part of one
   * (rows of a fused projection) declares it through weight(). A mixer's canonical weight names
   * and shapes are read back from here (src/mixers/define.ts), not listed a second time.
   */
  readonly weights = new Map<string, number[]>();
  layer: number | null = null;
  /**
   * Set when one layer is lowered alone to read back its weights
   * (src/mixers/define.ts): what an earlier layer would carry is then a stand-in input.
   */
  scratch = false;

  constructor(
    readonly phase: Phase,
    readonly maxT: number,
    readonly capacity: number,
    /** Element type of the attention KV caches the lowerings create (see KvType). */
    readonly kv: KvType = 'f32',
    /**
     * The largest prefill chunk, in both phases: streaming attention's ring caches (KvRing) are
     * shared by both and keep chunk − 1 rows beyond sinks + window (src/ops/attention.ts).
     */
    readonly chunk: number = maxT,
    /**
     * false: streaming layers keep a cache row per position up to the capacity, under the same
     * mask (the reference the ring caches are tested against).
     */
    readonly ringCaches: boolean = true,
  ) {}

  tensor(name: string, shape: Dim[], kind: Tensor['kind'], dtype: DType = 'f32'): number {
    const id = this.tensors.length;
    this.tensors.push({ id, name, shape, dtype, kind });
    return id;
  }

  /**
   * The checkpoint weight `name`, whose whole shape is `shape`, as the source of a parameter that
   * reads part of it (or all of it, scaled). Every read of one weight must agree on its shape.
   */
  weight(name: string, shape: readonly Dim[]): ParamSource {
    const whole = shape.map((d) => {
      if (typeof d !== 'number') throw new Error(`weight '${name}': its shape uses '${d}'`);
      return d;
    });
    const had = this.weights.get(name);
    if (!had) this.weights.set(name, whole);
    else if (had.join() !== whole.join()) {
      throw new Error(
        `weight '${name}' is read as [${had.join(', ')}] and as [${whole.join(', ')}]`,
      );
    }
    return { kind: 'weight', name };
  }

  /** A parameter; the same name always gives the same tensor. A weight source declares it. */
  param(name: string, shape: Dim[], source: ParamSource = { kind: 'weight', name }): number {
    const hit = this.params.get(name);
    if (hit !== undefined) return hit;
    if (source.kind === 'weight') this.weight(source.name, shape);
    const id = this.tensor(name, shape, 'param');
    this.tensors[id].source = source;
    this.params.set(name, id);
    return id;
  }

  /** A state tensor; the same name always gives the same tensor (which must have this dtype). */
  state(name: string, shape: Dim[], dtype: DType = 'f32'): number {
    const hit = this.states.get(name);
    if (hit !== undefined) {
      if (this.tensors[hit].dtype !== dtype)
        throw new Error(`state '${name}' is ${this.tensors[hit].dtype} and ${dtype}`);
      return hit;
    }
    const id = this.tensor(name, shape, 'state', dtype);
    this.states.set(name, id);
    return id;
  }

  /**
   * Leave an activation for later layers of the same step under `name` (RWKV-7's v_first: the
   * first RWKV-7 layer's values, which every later one mixes into its own).
   */
  carry(name: string, id: number): void {
    this.carriedValues.set(name, id);
  }

  /** What an earlier layer of this step carried under `name` (see carry). */
  carried(name: string, shape: Dim[]): number {
    const hit = this.carriedValues.get(name);
    if (hit !== undefined) return hit;
    if (!this.scratch) {
      throw new Error(`layer ${this.layer}: no earlier layer of this step carries '${name}'`);
    }
    return this.tensor(name, shape, 'input');
  }

  /**
   * Add a node. `outputs` maps each output name to a new activation (name and shape) or to an
   * existing tensor id (in-place state updates).
   */
  op(
    attrs: OpAttrs,
    label: string,
    inputs: Record<string, number>,
    outputs: Record<string, { name: string; shape: Dim[]; dtype?: DType } | number>,
  ): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(outputs)) {
      out[k] = typeof v === 'number' ? v : this.tensor(v.name, v.shape, 'activation', v.dtype);
    }
    this.nodes.push({
      id: this.nodes.length,
      attrs,
      inputs,
      outputs: out,
      layer: this.layer,
      label,
    });
    return out;
  }

  finish(ids: number, logits: number, token: number): Graph {
    for (const id of [logits, token]) this.tensors[id].kind = 'output';
    return {
      phase: this.phase,
      maxT: this.maxT,
      capacity: this.capacity,
      tensors: this.tensors,
      nodes: this.nodes,
      ids,
      logits,
      token,
    };
  }
}
