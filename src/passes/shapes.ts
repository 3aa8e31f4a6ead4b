/**
 * Shape check: every node's inputs and outputs are the tensors its op definition
 * (src/ops/<family>.ts) declares, in shape and dtype, and state it updates in place is one
 * tensor read and written. Run after lowering and after every pass, so a rewrite that breaks a
 * graph fails at compile time with the node's name instead of producing wrong numbers.
 */
import type { Graph, GraphNode } from '../graph/ir.ts';
import { definitionFor } from '../ops/index.ts';
import type { TensorRule } from '../ops/types.ts';

function expect(g: Graph, n: GraphNode, side: 'input' | 'output', name: string, r: TensorRule) {
  const id = (side === 'input' ? n.inputs : n.outputs)[name];
  if (id === undefined) throw new Error(`node '${n.label}': missing ${side} '${name}'`);
  const t = g.tensors[id];
  const same = t.shape.length === r.shape.length && t.shape.every((d, i) => d === r.shape[i]);
  if (!same) {
    throw new Error(
      `node '${n.label}': ${side} '${name}' has shape [${t.shape}], expected [${r.shape}]`,
    );
  }
  if (t.dtype !== r.dtype) {
    throw new Error(
      `node '${n.label}': ${side} '${name}' has dtype ${t.dtype}, expected ${r.dtype}`,
    );
  }
}

export function checkShapes(g: Graph): void {
  for (const n of g.nodes) {
    const a = n.attrs;
    const def = definitionFor(a);
    try {
      def.check(a);
    } catch (e) {
      throw new Error(`node '${n.label}': ${(e as Error).message}`);
    }
    const rules = { input: def.inputs(a), output: def.outputs(a) };
    for (const side of ['input', 'output'] as const) {
      const declared = rules[side];
      for (const [name, r] of Object.entries(declared)) expect(g, n, side, name, r);
      for (const name of Object.keys(side === 'input' ? n.inputs : n.outputs)) {
        if (!Object.hasOwn(declared, name)) {
          throw new Error(`node '${n.label}': ${side} '${name}' is not an ${side} of ${a.op} here`);
        }
      }
    }
    // State updated in place: the input and the output of its name are one tensor.
    for (const [name, r] of Object.entries(rules.input)) {
      if (r.access !== 'read_write') continue;
      if (n.outputs[name] !== n.inputs[name]) {
        throw new Error(
          `node '${n.label}': input '${name}' is updated in place, so output '${name}' must be the same tensor`,
        );
      }
    }
  }
}
