/**
 * The numbers `strata inspect --json` reports: what a compiled model costs per
 * step, counted from the graphs (deterministic, no timing): dispatches, FLOPs,
 * bytes, parameters, KV bytes per token, activation footprint.
 */
import type { CompiledModel } from '../../codegen/compile.ts';
import { stateBytes, weightBytesByType } from '../../codegen/compile.ts';
import { denoisingOnly } from '../../codegen/kernel-ir.ts';
import { shapeBytes, type DType } from '../graph/dtype.ts';
import type { Precision } from '../passes/precision.ts';
import type { Graph } from '../graph/ir.ts';
import { addCost, ZERO_COST, type Cost } from '../graph/ops.ts';
import { definitionFor } from '../ops/index.ts';
import { attention } from '../ops/attention.ts';
import { expectedTensors } from '../import/names.ts';
import { countParams } from '../spec/params.ts';

export interface PhaseReport {
  dispatches: number;
  /**
   * Of those, the launches of denoising-only nodes (grid symbol D: DiffusionGemma's
   * self-conditioning branch), which an encoding step skips; absent when there are none.
   */
  denoisingOnlyDispatches?: number;
  /** For a step of `tokens` tokens at position `pos`. */
  tokens: number;
  pos: number;
  flops: number;
  bytesRead: number;
  bytesWritten: number;
  activationBytes: number;
  activationBytesWithoutReuse: number;
}

/** What one layer keeps per sequence. */
export interface LayerStateReport {
  layer: number;
  mixer: string;
  /** KV-cache bytes each token adds (attention layers; 0 for fixed-size state). */
  kvBytesPerToken: number;
  /**
   * Rows a ring KV cache holds whatever the context (streaming attention: sink tokens + window
   * + maxT − 1; H2O eviction: its budget), so the layer's KV bytes stop growing there; null: a
   * row per position.
   */
  kvRows: number | null;
  /** Fixed-size recurrent state (conv and SSM states), independent of the context length. */
  stateBytes: number;
  /**
   * A block-sparse layer's attention FLOPs for a token decoded at the capacity, as a share of
   * the same layer dense (its cache still keeps every row). Absent: dense or not attention.
   */
  attentionDensity?: number;
}

/** One layer's FFN cost per decoded token, read off the decode graph. */
export interface FfnReport {
  layer: number;
  kind: 'mlp' | 'moe';
  /** Routed experts and how many each token uses (null for a dense MLP). */
  experts: number | null;
  topK: number | null;
  /** FLOPs of the FFN for one token: for MoE the router, the topK selected experts only, the
   * shared experts and the combine. */
  flopsPerToken: number;
}

export interface ModelReport {
  name: string;
  fused: boolean;
  parameters: number;
  /** Parameters one token uses (MoE layers count topK of their routed experts). */
  activeParameters: number;
  /** How weights are stored (compile's --precision). */
  precision: Precision;
  /** Bytes of every stored tensor of the bundle (weights, and tables compiled in). */
  parameterBytes: number;
  /** The same bytes by stored type: which weights each precision changed, and which it kept. */
  parameterBytesByType: Partial<Record<DType, number>>;
  /** FLOPs of one decode step (one token at position decode.pos), active experts only. */
  flopsPerToken: number;
  ffn: FfnReport[];
  /** KV-cache bytes per token, summed over the attention layers only. */
  kvBytesPerToken: number;
  /** Fixed-size recurrent state per sequence (conv + SSM states of all layers). */
  recurrentStateBytes: number;
  /** Everything a sequence holds: KV caches at capacity plus recurrent state. */
  stateBytesPerSequence: number;
  /** KV-cache bytes a sequence holds at a few contexts up to the capacity (see kvBytesAt). */
  kvBytesByContext: { context: number; bytes: number }[];
  /** Sequences a decode step of this build advances (compile --batch). */
  batch: number;
  /**
   * At the same contexts: a sequence's memory (KV at that context + recurrent state) and the
   * largest batch each of MEMORY_BUDGETS holds (see maxBatch).
   */
  batchFit: { context: number; bytesPerSequence: number; maxBatch: Record<string, number> }[];
  layers: LayerStateReport[];
  capacity: number;
  kernels: number;
  /**
   * Storage buffers one kernel may bind in this compile (its caps' maxStorageBuffersPerStage):
   * decode fusions that bind more stay separate dispatches (RWKV-7's projections and LoRA ups,
   * src/passes/fuse-rwkv7.ts), so dispatch counts hold for this budget.
   */
  storageBuffersPerKernel: number;
  dispatchesPerDecodeToken: number;
  prefill: PhaseReport;
  decode: PhaseReport;
  peakActivationBytes: number;
}

/**
 * The cost model's total for one step of T tokens at position pos (explore asks at any context);
 * `keys`: bidirectional attention also reads cached rows up to it (StepShape).
 */
export function graphCost(g: Graph, T: number, pos: number, keys = 0): Cost {
  let c = ZERO_COST;
  const step = { T, pos, L: 1, keys };
  for (const n of g.nodes) c = addCost(c, definitionFor(n.attrs).cost(n.attrs, step));
  return c;
}

/** Op inputs that are KV caches: they hold one row per position, the rest is fixed-size state. */
const KV_INPUTS = new Set(['cache', 'kcache', 'vcache']);
/** State inputs that are statistics (MoE expert-load counters), not model state. */
const STAT_INPUTS = new Set(['load']);

/** Memory budgets that explore and inspect size contexts and batches by, in bytes. */
export const MEMORY_BUDGETS: Readonly<Record<string, number>> = {
  '80GiB': 80 * 2 ** 30,
  '24GiB': 24 * 2 ** 30,
  '4GiB': 4 * 2 ** 30,
};

/**
 * The largest batch B with weights + B x (KV at `context` + recurrent state) within `budget`
 * (0 when the weights alone exceed it). Activations, which grow with B too but are small beside
 * the caches at long contexts, are left out, as explore's memory figures leave them out.
 */
export function maxBatch(
  budget: number,
  weights: number,
  layers: LayerStateReport[],
  state: number,
  context: number,
): number {
  const perSequence = kvBytesAt(layers, context) + state;
  return Math.max(0, Math.floor((budget - weights) / perSequence));
}

/**
 * Per-layer KV and recurrent state of one sequence, read off the decode graph (every state
 * tensor appears there; a batched build's hold `batch` sequences, so they are divided by it).
 */
export function layerStates(
  c: Pick<CompiledModel, 'model' | 'graphs'> & { batch?: number },
): LayerStateReport[] {
  const g = c.graphs.decode;
  const batch = c.batch ?? 1;
  const seen = new Set<number>();
  const out: LayerStateReport[] = c.model.layers.map((l) => ({
    layer: l.index,
    mixer: l.mixer ? l.mixer.kind : 'none',
    kvBytesPerToken: 0,
    kvRows: null,
    stateBytes: 0,
  }));
  // Ring caches (streaming attention) are the KV inputs of attention ops with a ring.
  const rings = new Set<number>();
  for (const n of g.nodes) {
    // H2O caches likewise hold their budget's rows.
    if ((n.attrs.op === 'attention' && n.attrs.ring) || n.attrs.op === 'h2o_attention') {
      rings.add(n.inputs.kcache);
      rings.add(n.inputs.vcache);
    }
  }
  for (const n of g.nodes) {
    if (n.layer === null) continue;
    if (n.attrs.op === 'attention' && n.attrs.blockSparse) {
      const step = { T: 1, pos: n.attrs.capacity - 1, L: 1 };
      const dense = attention.cost({ ...n.attrs, blockSparse: null }, step).flops;
      out[n.layer].attentionDensity = attention.cost(n.attrs, step).flops / dense;
    }
    for (const [name, id] of Object.entries(n.inputs)) {
      const t = g.tensors[id];
      if (t.kind !== 'state' || seen.has(id) || STAT_INPUTS.has(name)) continue;
      seen.add(id);
      const row = out[n.layer];
      // An H2O cache's positions and scores (its `rows` state) are per-row bookkeeping of its KV.
      const h2oRows = n.attrs.op === 'h2o_attention' && name === 'rows';
      // NSA's compressed caches grow by a row per block of tokens (src/ops/nsa.ts).
      if (n.attrs.op === 'nsa_compress' && (name === 'kcmp' || name === 'vcmp')) {
        row.kvBytesPerToken += shapeBytes(t.dtype, [t.shape[1]], 1) / n.attrs.block;
      } else if (KV_INPUTS.has(name) || h2oRows) {
        row.kvBytesPerToken += shapeBytes(t.dtype, [t.shape[1]], 1);
        if (rings.has(id)) row.kvRows = (t.shape[0] as number) / batch;
      } else row.stateBytes += shapeBytes(t.dtype, t.shape, 1) / batch;
    }
  }
  return out;
}

/** KV-cache bytes at `context` tokens: a row per token, up to a ring cache's rows. */
export function kvBytesAt(layers: LayerStateReport[], context: number): number {
  return layers.reduce((n, l) => n + l.kvBytesPerToken * Math.min(context, l.kvRows ?? context), 0);
}

/** Contexts for the KV-against-context figures: 1K, 4K, 16K, … below the capacity, and it. */
function reportContexts(capacity: number): number[] {
  const out: number[] = [];
  for (let c = 1024; c < capacity; c *= 4) out.push(c);
  out.push(capacity);
  return out;
}

/**
 * Each FFN's FLOPs for one decoded token: the decode graph's nodes of that layer that the FFN
 * lowerings label `l<i>.mlp` / `l<i>.moe` (fusion keeps the prefix).
 */
export function ffnReports(c: Pick<CompiledModel, 'model' | 'graphs' | 'capacity'>): FfnReport[] {
  const g = c.graphs.decode;
  const step = { T: 1, pos: Math.floor(c.capacity / 2), L: 1 };
  const out: FfnReport[] = [];
  for (const l of c.model.layers) {
    const f = l.ffn;
    if (!f) continue;
    const prefix = new RegExp(`^l${l.index}\\.(mlp|moe)\\b`);
    let flops = 0;
    for (const n of g.nodes) {
      if (n.layer === l.index && prefix.test(n.label))
        flops += definitionFor(n.attrs).cost(n.attrs, step).flops;
    }
    out.push({
      layer: l.index,
      kind: f.kind,
      experts: f.kind === 'moe' ? f.experts : null,
      topK: f.kind === 'moe' ? f.topK : null,
      flopsPerToken: flops,
    });
  }
  return out;
}

export function report(c: CompiledModel): ModelReport {
  const phase = (name: 'prefill' | 'decode'): PhaseReport => {
    const g = c.graphs[name];
    const p = c.phases[name];
    const tokens = g.maxT;
    const pos = name === 'decode' ? Math.floor(c.capacity / 2) : 0;
    const cost = graphCost(g, tokens, pos);
    const denoising = p.dispatches.filter((d) => denoisingOnly(d.grid)).length;
    return {
      dispatches: p.dispatches.length,
      ...(denoising > 0 ? { denoisingOnlyDispatches: denoising } : {}),
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
  const byType = weightBytesByType(c);
  const layers = layerStates(c);
  const kvBytesPerToken = layers.reduce((n, l) => n + l.kvBytesPerToken, 0);
  const recurrentStateBytes = layers.reduce((n, l) => n + l.stateBytes, 0);
  const parameterBytes = Object.values(byType).reduce((a, b) => a + b, 0);
  const prefill = phase('prefill');
  const decode = phase('decode');
  return {
    name: c.model.name,
    fused: c.fused,
    parameters,
    activeParameters: countParams(c.model).active,
    precision: c.precision,
    parameterBytes,
    parameterBytesByType: byType,
    // A batched build's decode step is one token of each of its sequences.
    flopsPerToken: decode.flops / c.batch,
    ffn: ffnReports(c),
    kvBytesPerToken,
    recurrentStateBytes,
    stateBytesPerSequence: stateBytes(c) / c.batch,
    kvBytesByContext: reportContexts(c.capacity).map((context) => ({
      context,
      bytes: kvBytesAt(layers, context),
    })),
    batch: c.batch,
    batchFit: reportContexts(c.capacity).map((context) => ({
      context,
      bytesPerSequence: kvBytesAt(layers, context) + recurrentStateBytes,
      maxBatch: Object.fromEntries(
        Object.entries(MEMORY_BUDGETS).map(([name, budget]) => [
          name,
          maxBatch(budget, parameterBytes, layers, recurrentStateBytes, context),
        ]),
      ),
    })),
    layers,
    capacity: c.capacity,
    kernels: c.kernels.length,
    storageBuffersPerKernel: c.caps.maxStorageBuffersPerStage,
    dispatchesPerDecodeToken: decode.dispatches,
    prefill,
    decode,
    peakActivationBytes: Math.max(prefill.activationBytes, decode.activationBytes),
  };
}
