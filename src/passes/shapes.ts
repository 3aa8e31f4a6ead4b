/**
 * Shape check: every node's inputs have the shapes its op expects. Run after
 * lowering and after every pass, so a rewrite that breaks a graph fails at
 * compile time with the node's name instead of producing wrong numbers.
 */
import type { Dim, Graph, GraphNode } from '../graph/ir.ts';
import { kvWriteWidth } from '../graph/ops.ts';
import { definitionFor } from '../ops/index.ts';
import { gatedNormWeightWidth } from '../ops/norm.ts';

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
    // Ops with a full definition declare their inputs; nothing here restates them.
    const def = definitionFor(a);
    if (def) {
      try {
        def.check(a);
      } catch (e) {
        throw new Error(`node '${n.label}': ${(e as Error).message}`);
      }
      const rules = def.inputs(a);
      for (const [name, r] of Object.entries(rules)) expect(g, n, name, r.shape);
      for (const name of Object.keys(n.inputs)) {
        if (!Object.hasOwn(rules, name)) {
          throw new Error(`node '${n.label}': input '${name}' is not an input of ${a.op} here`);
        }
      }
      continue;
    }
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
      case 'norm': {
        expect(g, n, 'x', ['T', a.width]);
        const params = [a.perChannel ? a.width : a.group];
        if (a.norm.kind !== 'l2') expect(g, n, 'w', params);
        if (a.norm.kind === 'layer' && a.norm.bias) expect(g, n, 'b', params);
        if (a.residual) expect(g, n, 'residual', ['T', a.width]);
        break;
      }
      case 'attention':
        expect(g, n, 'q', ['T', a.heads * a.headDim]);
        expect(g, n, 'kcache', [a.capacity, a.kvHeads * a.headDim]);
        expect(g, n, 'vcache', [a.capacity, a.kvHeads * a.vHeadDim]);
        break;
      case 'kv_write':
        expect(g, n, 'x', ['T', kvWriteWidth(a)]);
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
      case 'concat':
        expect(g, n, 'a', ['T', a.widthA]);
        expect(g, n, 'b', ['T', a.widthB]);
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
      case 'mul':
        expect(g, n, 'a', ['T', a.width]);
        expect(g, n, 'b', ['T', a.width]);
        break;
      case 'conv1d':
        expect(g, n, 'x', ['T', a.channels]);
        expect(g, n, 'w', [a.channels, a.kernel]);
        if (a.bias) expect(g, n, 'bias', [a.channels]);
        expect(g, n, 'state', [a.kernel - 1, a.channels]);
        break;
      case 'selective_scan':
        for (const k of ['x', 'dt', 'z']) expect(g, n, k, ['T', a.dInner]);
        for (const k of ['b', 'c']) expect(g, n, k, ['T', a.dState]);
        expect(g, n, 'aLog', [a.dInner, a.dState]);
        expect(g, n, 'd', [a.dInner]);
        expect(g, n, 'state', [a.dInner, a.dState]);
        break;
      case 'ssd':
        expect(g, n, 'x', ['T', a.heads * a.headDim]);
        expect(g, n, 'dt', ['T', a.heads]);
        for (const k of ['dtBias', 'aLog', 'd']) expect(g, n, k, [a.heads]);
        for (const k of ['b', 'c']) expect(g, n, k, ['T', a.groups * a.dState]);
        expect(g, n, 'state', [a.heads, a.headDim, a.dState]);
        break;
      case 'gated_norm':
        expect(g, n, 'x', ['T', a.width]);
        expect(g, n, 'z', ['T', a.width]);
        expect(g, n, 'w', [gatedNormWeightWidth(a)]);
        break;
      case 'moe_route':
        expect(g, n, 'logits', ['T', a.experts]);
        expect(g, n, 'load', [a.experts]);
        if (a.correctionBias) expect(g, n, 'bias', [a.experts]);
        break;
      case 'moe_group':
        expect(g, n, 'ids', ['T', a.topK]);
        break;
      case 'moe_matmul': {
        const rows = a.gated ? 2 * a.N : a.N;
        expect(g, n, 'x', a.input === 'token' ? ['T', a.K] : ['T', a.topK, a.K]);
        expect(g, n, 'w', [a.expertCount, rows, a.K]);
        if (a.bias) expect(g, n, 'bias', [a.expertCount, rows]);
        expect(g, n, 'ids', ['T', a.topK]);
        if (a.grouped) {
          expect(g, n, 'offsets', [a.experts + 1]);
          expect(g, n, 'order', ['T', a.topK]);
        }
        break;
      }
      case 'moe_combine':
        expect(g, n, 'y', ['T', a.topK, a.width]);
        expect(g, n, 'weights', ['T', a.topK]);
        if (a.residual) expect(g, n, 'residual', ['T', a.width]);
        if (a.shared) expect(g, n, 'shared', ['T', a.width]);
        if (a.sharedGate) expect(g, n, 'sharedGate', ['T', 1]);
        break;
    }
  }
}
