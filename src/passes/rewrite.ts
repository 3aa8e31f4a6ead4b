/**
 * A small mutable view of a Graph for rewrite passes: look up producers and
 * consumers, replace and remove nodes, then freeze back into a Graph with
 * nodes renumbered in order. Passes stay pure: they copy the graph first.
 */
import type { DType, Graph, GraphNode, ParamSource, Tensor } from '../graph/ir.ts';
import type { OpAttrs } from '../graph/ops.ts';

export class Rewriter {
  nodes: (GraphNode | null)[];
  tensors: Tensor[];
  /** Producer and consumer lists by tensor, rebuilt lazily after any mutation. */
  private index: { producer: Map<number, GraphNode>; consumers: Map<number, GraphNode[]> } | null =
    null;

  constructor(readonly graph: Graph) {
    this.nodes = graph.nodes.map((n) => ({
      ...n,
      inputs: { ...n.inputs },
      outputs: { ...n.outputs },
    }));
    this.tensors = graph.tensors.map((t) => ({ ...t }));
  }

  live(): GraphNode[] {
    return this.nodes.filter((n): n is GraphNode => n !== null);
  }

  // Passes ask these for every candidate node; a linear scan each time made compiling
  // a 64-layer model quadratic.
  private lookup() {
    if (this.index) return this.index;
    const producer = new Map<number, GraphNode>();
    const consumers = new Map<number, GraphNode[]>();
    for (const n of this.live()) {
      for (const t of Object.values(n.outputs)) if (!producer.has(t)) producer.set(t, n);
      for (const t of new Set(Object.values(n.inputs))) {
        const list = consumers.get(t);
        if (list) list.push(n);
        else consumers.set(t, [n]);
      }
    }
    return (this.index = { producer, consumers });
  }

  /** Keep the index current across a mutation instead of rebuilding it (fusions mutate often). */
  private unindex(n: GraphNode): void {
    if (!this.index) return;
    for (const t of Object.values(n.outputs)) {
      if (this.index.producer.get(t) === n) this.index.producer.delete(t);
    }
    for (const t of new Set(Object.values(n.inputs))) {
      const list = this.index.consumers.get(t);
      if (list) list.splice(list.indexOf(n), 1);
    }
  }

  private reindex(n: GraphNode): void {
    if (!this.index) return;
    // Producer order matters for in-place updates: the first writer in execution order produces
    // the tensor, so a later-placed second writer (a split chunk, a state update) does not take it.
    for (const t of Object.values(n.outputs)) {
      const first = this.index.producer.get(t);
      if (!first || this.nodes.indexOf(n) < this.nodes.indexOf(first))
        this.index.producer.set(t, n);
    }
    for (const t of new Set(Object.values(n.inputs))) {
      const list = this.index.consumers.get(t);
      if (list) list.push(n);
      else this.index.consumers.set(t, [n]);
    }
  }

  producer(t: number): GraphNode | undefined {
    return this.lookup().producer.get(t);
  }

  consumers(t: number): GraphNode[] {
    return [...(this.lookup().consumers.get(t) ?? [])];
  }

  /** The single consumer of t, or undefined when t has zero or several (or is a graph output). */
  soleConsumer(t: number): GraphNode | undefined {
    if (t === this.graph.logits || t === this.graph.token) return undefined;
    const c = this.consumers(t);
    return c.length === 1 ? c[0] : undefined;
  }

  remove(n: GraphNode): void {
    this.unindex(n);
    this.nodes[this.nodes.indexOf(n)] = null;
  }

  /** Replace node `old` in place (same position in execution order). */
  replace(
    old: GraphNode,
    attrs: OpAttrs,
    inputs: Record<string, number>,
    outputs: Record<string, number>,
    label: string,
  ): GraphNode {
    const n: GraphNode = { id: old.id, attrs, inputs, outputs, layer: old.layer, label };
    // A denoising-only node stays one when a fusion rewrites it; should it take in work that
    // runs in every step, checkDenoisingOnly (src/passes/denoising-only.ts) refuses the graph.
    if (old.denoising) n.denoising = true;
    this.unindex(old);
    this.nodes[this.nodes.indexOf(old)] = n;
    this.reindex(n);
    return n;
  }

  /** Insert a node right after `at`. */
  insertAfter(at: GraphNode, n: Omit<GraphNode, 'id'>): GraphNode {
    const node: GraphNode = { ...n, id: -1 };
    this.nodes.splice(this.nodes.indexOf(at) + 1, 0, node);
    this.reindex(node);
    return node;
  }

  /** Redirect every use of tensor `from` to `to`. */
  replaceUses(from: number, to: number): void {
    const users = this.index
      ? (this.index.consumers.get(from) ?? [])
      : this.live().filter((n) => Object.values(n.inputs).includes(from));
    for (const n of [...users]) {
      this.unindex(n);
      for (const k of Object.keys(n.inputs)) if (n.inputs[k] === from) n.inputs[k] = to;
      this.reindex(n);
    }
  }

  param(name: string, shape: number[], source: ParamSource, dtype: DType = 'f32'): number {
    const hit = this.tensors.find((t) => t.kind === 'param' && t.name === name);
    if (hit) return hit.id;
    const id = this.tensors.length;
    this.tensors.push({ id, name, shape, dtype, kind: 'param', source });
    return id;
  }

  /** A parameter concatenating the parameters `ts` in order, named their names joined by '+'. */
  concatParam(ts: number[], shape: number[]): number {
    const name = ts.map((t) => this.tensors[t].name).join('+');
    return this.param(name, shape, { kind: 'concat', parts: ts.map((t) => this.source(t)) });
  }

  activation(name: string, shape: Tensor['shape']): number {
    const id = this.tensors.length;
    this.tensors.push({ id, name, shape, dtype: 'f32', kind: 'activation' });
    return id;
  }

  source(t: number): ParamSource {
    const s = this.tensors[t].source;
    if (!s) throw new Error(`tensor ${this.tensors[t].name} is not a parameter`);
    return s;
  }

  finish(): Graph {
    const nodes = this.live().map((n, i) => ({ ...n, id: i }));
    return { ...this.graph, nodes, tensors: this.tensors };
  }
}
