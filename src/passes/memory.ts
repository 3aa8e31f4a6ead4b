/**
 * Liveness-based buffer reuse for activations: each activation lives from the
 * node that first writes it to the last node that touches it; activations whose
 * lifetimes do not overlap share a buffer (greedy first fit by size, largest
 * first). Params, state, ids and outputs get their own buffers.
 */
import type { Graph } from '../graph/ir.ts';
import { tensorBytes } from '../graph/ir.ts';

export interface MemoryPlan {
  /** Activation tensor id → slot index. */
  slotOf: Map<number, number>;
  /** Bytes of each slot. */
  slotBytes: number[];
  /** Sum of slot bytes: the phase's activation footprint. */
  activationBytes: number;
  /** What the footprint would be with one buffer per activation. */
  unplannedBytes: number;
}

export function planMemory(g: Graph): MemoryPlan {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  g.nodes.forEach((n, i) => {
    for (const t of [...Object.values(n.inputs), ...Object.values(n.outputs)]) {
      if (g.tensors[t].kind !== 'activation') continue;
      if (!first.has(t)) first.set(t, i);
      last.set(t, i);
    }
  });
  const ids = [...first.keys()].sort(
    (a, b) => tensorBytes(g.tensors[b], g.maxT) - tensorBytes(g.tensors[a], g.maxT) || a - b,
  );
  const slotBytes: number[] = [];
  const slotBusy: [number, number][][] = [];
  const slotOf = new Map<number, number>();
  let unplannedBytes = 0;
  for (const t of ids) {
    const bytes = tensorBytes(g.tensors[t], g.maxT);
    unplannedBytes += bytes;
    const span: [number, number] = [first.get(t)!, last.get(t)!];
    let slot = slotBusy.findIndex((spans) => spans.every(([s, e]) => e < span[0] || s > span[1]));
    if (slot < 0) {
      slot = slotBusy.length;
      slotBusy.push([]);
      slotBytes.push(0);
    }
    slotBusy[slot].push(span);
    slotBytes[slot] = Math.max(slotBytes[slot], bytes);
    slotOf.set(t, slot);
  }
  return {
    slotOf,
    slotBytes,
    activationBytes: slotBytes.reduce((a, b) => a + b, 0),
    unplannedBytes,
  };
}
