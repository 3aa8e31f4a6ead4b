/** Incremental construction of a Graph; block lowerings use it and nothing else. */
import type { KvType, OpAttrs } from './ops.ts';
import type { Dim, DType, Graph, GraphNode, ParamSource, Phase, Tensor } from './ir.ts';
import { BATCHED_OPS, SHARED_STATE_OPS } from '../ops/batch.ts';

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
  /** Nodes added while set run in denoising steps only (GraphNode.denoising). */
  denoising = false;
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
    /**
     * Sequences per decode step (compile --batch): above 1 the step's rows are sequences, every
     * per-sequence state holds `batch` slices, and op() marks the ops that index them by row.
     */
    readonly batch: number = 1,
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

  /**
   * A state tensor; the same name always gives the same tensor (which must have this dtype).
   * `shape` is one sequence's; a batched step keeps `batch` of them, one after another.
   */
  state(name: string, shape: Dim[], dtype: DType = 'f32'): number {
    const hit = this.states.get(name);
    if (hit !== undefined) {
      if (this.tensors[hit].dtype !== dtype)
        throw new Error(`state '${name}' is ${this.tensors[hit].dtype} and ${dtype}`);
      return hit;
    }
    const [first, ...rest] = shape;
    const rows =
      this.batch > 1 && typeof first === 'number' ? [first * this.batch, ...rest] : shape;
    const id = this.tensor(name, rows, 'state', dtype);
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
    if (this.batch > 1) attrs = this.batched(attrs, label, inputs);
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
      ...(this.denoising ? { denoising: true as const } : {}),
    });
    return out;
  }

  /**
   * A batched step's attrs: ops that read the position or a per-sequence state learn the batch
   * (src/ops/batch.ts); one that keeps state without a batched kernel is an error here, at the
   * layer that has it, rather than B sequences silently sharing one state.
   */
  private batched(attrs: OpAttrs, label: string, inputs: Record<string, number>): OpAttrs {
    if (Object.hasOwn(BATCHED_OPS, attrs.op)) return { ...attrs, batch: this.batch } as OpAttrs;
    if (SHARED_STATE_OPS.includes(attrs.op)) return attrs;
    const state = Object.values(inputs).find((t) => this.tensors[t].kind === 'state');
    if (state === undefined) return attrs;
    const where = this.layer === null ? label : `layer ${this.layer} (${label})`;
    throw new Error(
      `${where}: batched decode (--batch ${this.batch}) has no kernel for ${attrs.op}, which ` +
        `keeps state '${this.tensors[state].name}'; batched ops: ${Object.keys(BATCHED_OPS).join(', ')}`,
    );
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
