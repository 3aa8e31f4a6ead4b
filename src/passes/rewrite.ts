/**
 * A small mutable view of a Graph for rewrite passes: look up producers and
 * consumers, replace and remove nodes, then freeze back into a Graph with
 * nodes renumbered in order. Passes stay pure: they copy the graph first.
 */
import type { Graph, GraphNode, ParamSource, Tensor } from '../graph/ir.ts';
import type { OpAttrs } from '../graph/ops.ts';

export class Rewriter {
  nodes: (GraphNode | null)[];
  tensors: Tensor[];

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

  producer(t: number): GraphNode | undefined {
    return this.live().find((n) => Object.values(n.outputs).includes(t));
  }

  consumers(t: number): GraphNode[] {
    return this.live().filter((n) => Object.values(n.inputs).includes(t));
  }

  /** The single consumer of t, or undefined when t has zero or several (or is a graph output). */
  soleConsumer(t: number): GraphNode | undefined {
    if (t === this.graph.logits || t === this.graph.token) return undefined;
    const c = this.consumers(t);
    return c.length === 1 ? c[0] : undefined;
  }

  remove(n: GraphNode): void {
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
    this.nodes[this.nodes.indexOf(old)] = n;
    return n;
  }

  /** Insert a node right after `at`. */
  insertAfter(at: GraphNode, n: Omit<GraphNode, 'id'>): GraphNode {
    const node: GraphNode = { ...n, id: -1 };
    this.nodes.splice(this.nodes.indexOf(at) + 1, 0, node);
    return node;
  }

  /** Redirect every use of tensor `from` to `to`. */
  replaceUses(from: number, to: number): void {
    for (const n of this.live()) {
      for (const k of Object.keys(n.inputs)) if (n.inputs[k] === from) n.inputs[k] = to;
    }
  }

  param(name: string, shape: number[], source: ParamSource): number {
    const hit = this.tensors.find((t) => t.kind === 'param' && t.name === name);
    if (hit) return hit.id;
    const id = this.tensors.length;
    this.tensors.push({ id, name, shape, dtype: 'f32', kind: 'param', source });
    return id;
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
