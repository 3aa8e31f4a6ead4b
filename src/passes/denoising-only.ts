/**
 * Denoising-only nodes (GraphNode.denoising: DiffusionGemma's self-conditioning branch, whose
 * input is zero in an encoding step) are skipped in encoding steps: the runtime records none of
 * their launches (grid symbol D, codegen/kernel-ir.ts) and the interpreter runs none of their
 * references. That is only right when nothing an encoding step uses depends on them, which this
 * check makes a compile-time error rather than a stale read:
 *  - every reader of a denoising-only node's output is denoising-only too, or a phased add
 *    reading it as `b` (a + b in denoising steps, a alone in encoding steps: AddAttrs.phased);
 *  - a denoising-only node writes no state (a skipped write would change what later steps see)
 *    and not the graph's logits or token.
 */
import type { Graph } from '../graph/ir.ts';

export function checkDenoisingOnly(g: Graph): void {
  const skipped = new Map<number, string>();
  for (const n of g.nodes) {
    if (!n.denoising) continue;
    for (const id of Object.values(n.outputs)) {
      const t = g.tensors[id];
      if (t.kind === 'state' || id === g.logits || id === g.token)
        throw new Error(
          `node '${n.label}' runs in denoising steps only but writes ${t.kind === 'state' ? `state '${t.name}'` : `the graph's ${id === g.logits ? 'logits' : 'token'}`}, which an encoding step would then miss`,
        );
      skipped.set(id, n.label);
    }
  }
  for (const n of g.nodes) {
    if (n.denoising) continue;
    for (const [k, id] of Object.entries(n.inputs)) {
      const from = skipped.get(id);
      if (from === undefined) continue;
      if (n.attrs.op === 'add' && n.attrs.phased && k === 'b') continue;
      throw new Error(
        `node '${n.label}' runs in every step but reads '${g.tensors[id].name}' (input '${k}') from '${from}', which runs in denoising steps only: an encoding step would read a stale value`,
      );
    }
  }
}
