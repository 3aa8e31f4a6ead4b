/**
 * Shape check: every node's inputs have the shapes its op expects. Run after
 * lowering and after every pass, so a rewrite that breaks a graph fails at
 * compile time with the node's name instead of producing wrong numbers.
 */
import type { Dim, Graph, GraphNode } from '../graph/ir.ts';

function expect(g: Graph, n: GraphNode, input: string, shape: Dim[]): void {
  const id = n.inputs[input];
  if (id === undefined) throw new Error(`node '${n.label}': missing input '${input}'`);
  const got = g.tensors[id].shape;
  const same = got.length === shape.length && got.every((d, i) => d === shape[i]);
  if (!same) {
    throw new Error(`node '${n.label}': input '${input}' has shape [${got}], expected [${shape}]`);
  }
}

export function checkShapes(g: Graph): void {
  for (const n of g.nodes) {
    const a = n.attrs;
    switch (a.op) {
      case 'matmul': {
        expect(g, n, 'x', ['T', a.K]);
        const rows = a.gated ? 2 * a.N : a.N;
        expect(g, n, 'w', [rows, a.K]);
        if (a.bias) expect(g, n, 'bias', [rows]);
        if (a.prologue) expect(g, n, 'normW', [a.K]);
        if (a.residual) expect(g, n, 'residual', [a.rows, a.N]);
        break;
      }
      case 'norm':
        expect(g, n, 'x', ['T', a.width]);
        expect(g, n, 'w', [a.group]);
        break;
      case 'attention':
        expect(g, n, 'q', ['T', a.heads * a.headDim]);
        expect(g, n, 'kcache', [a.capacity, a.kvHeads * a.headDim]);
        expect(g, n, 'vcache', [a.capacity, a.kvHeads * a.headDim]);
        break;
      case 'kv_write':
        expect(g, n, 'x', ['T', a.width]);
        expect(g, n, 'cache', [a.capacity, a.width]);
        break;
      case 'rope':
        expect(g, n, 'x', ['T', a.heads * a.headDim]);
        break;
      case 'embed':
        expect(g, n, 'table', [a.rows, a.dim]);
        break;
      case 'add':
        expect(g, n, 'a', ['T', a.width]);
        expect(g, n, 'b', ['T', a.width]);
        break;
      case 'glu':
        expect(g, n, 'gate', ['T', a.width]);
        expect(g, n, 'up', ['T', a.width]);
        break;
      case 'act':
        expect(g, n, 'x', ['T', a.width]);
        break;
      case 'softcap':
        expect(g, n, 'x', [a.rows, a.width]);
        break;
      case 'sample':
        expect(g, n, 'logits', ['L', a.vocab]);
        break;
    }
  }
}
