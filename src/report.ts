/**
 * The numbers `strata inspect --json` reports: what a compiled model costs per
 * step, counted from the graphs (deterministic, no timing): dispatches, FLOPs,
 * bytes, parameters, KV bytes per token, activation footprint.
 */
import type { CompiledModel } from './compile.ts';
import { stateBytes } from './compile.ts';
import type { Graph } from './graph/ir.ts';
import { addCost, ZERO_COST, type Cost } from './graph/ops.ts';
import { referenceFor } from './ops/index.ts';
import { expectedTensors } from './import/names.ts';

export interface PhaseReport {
  dispatches: number;
  /** For a step of `tokens` tokens at position `pos`. */
  tokens: number;
  pos: number;
  flops: number;
  bytesRead: number;
  bytesWritten: number;
  activationBytes: number;
  activationBytesWithoutReuse: number;
}

export interface ModelReport {
  name: string;
  fused: boolean;
  parameters: number;
  parameterBytes: number;
  kvBytesPerToken: number;
  stateBytesPerSequence: number;
  capacity: number;
  kernels: number;
  dispatchesPerDecodeToken: number;
  prefill: PhaseReport;
  decode: PhaseReport;
  peakActivationBytes: number;
}

function graphCost(g: Graph, T: number, pos: number): Cost {
  let c = ZERO_COST;
  for (const n of g.nodes) c = addCost(c, referenceFor(n.attrs).cost(n.attrs, { T, pos, L: 1 }));
  return c;
}

export function report(c: CompiledModel): ModelReport {
  const phase = (name: 'prefill' | 'decode'): PhaseReport => {
    const g = c.graphs[name];
    const p = c.phases[name];
    const tokens = g.maxT;
    const pos = name === 'decode' ? Math.floor(c.capacity / 2) : 0;
    const cost = graphCost(g, tokens, pos);
    return {
      dispatches: p.dispatches.length,
      tokens,
      pos,
      ...cost,
      activationBytes: p.slots.reduce((a, b) => a + b, 0),
      activationBytesWithoutReuse: p.unplannedBytes,
    };
  };
  const parameters = expectedTensors(c.model).reduce(
    (n, t) => n + t.shape.reduce((a, b) => a * b, 1),
    0,
  );
  const kvBytesPerToken = c.state
    .filter((s) => s.name.startsWith('cache.'))
    .reduce((n, s) => n + s.shape[1] * 4, 0);
  const prefill = phase('prefill');
  const decode = phase('decode');
  return {
    name: c.model.name,
    fused: c.fused,
    parameters,
    parameterBytes: parameters * 4,
    kvBytesPerToken,
    stateBytesPerSequence: stateBytes(c),
    capacity: c.capacity,
    kernels: c.kernels.length,
    dispatchesPerDecodeToken: decode.dispatches,
    prefill,
    decode,
    peakActivationBytes: Math.max(prefill.activationBytes, decode.activationBytes),
  };
}
