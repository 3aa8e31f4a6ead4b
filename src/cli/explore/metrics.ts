/**
 * A design's figures, from the cost model only (no device): compile at nominal caps, take
 * `strata inspect`'s report, and derive memory at each context, the longest context each memory
 * budget holds, and roofline time estimates.
 */
import { compileModel } from '../../../codegen/compile.ts';
import type { KvType } from '../../graph/ops.ts';
import type { Precision } from '../../passes/precision.ts';
import type { ModelIR } from '../../spec/model.ts';
import { NOMINAL_CAPS } from '../../target.ts';
import { graphCost, kvBytesAt, maxBatch, report } from '../report.ts';
import { stepSeconds, type Roofline } from './roofline.ts';

export interface CompileSettings {
  precision: Precision;
  kv: KvType;
  capacity?: number;
  maxT?: number;
}

export interface FigureSettings {
  contexts: readonly number[];
  batch: number;
  /** Memory budgets in bytes, by name ('80GiB'). */
  budgets: Readonly<Record<string, number>>;
  roofline: Roofline;
}

export interface StepEstimate {
  flops: number;
  bytes: number;
  seconds: number;
  tokensPerSecond: number;
}

export interface Figures {
  precision: Precision;
  kv: KvType;
  parameters: number;
  activeParameters: number;
  /** Stored weight bytes at this precision. */
  parameterBytes: number;
  kvBytesPerToken: number;
  recurrentStateBytes: number;
  /** The inspect report's steps: prefill of `tokens` tokens, one decode token at `pos`. */
  prefill: { tokens: number; flops: number; bytes: number; dispatches: number } & StepEstimate;
  decode: { pos: number; flops: number; bytes: number; dispatches: number };
  /** Weights + batch x (KV x context + state), by context. */
  memoryAt: Record<string, number>;
  /** One decode token (batch 1) with `context` tokens cached, by context. */
  decodeAt: Record<string, StepEstimate>;
  /**
   * Longest context at the batch size that fits each budget; null when KV never grows (no
   * attention, or only streaming attention's ring caches).
   */
  maxContext: Record<string, number | null>;
  /**
   * Largest batch each budget holds at each context (weights + B x (KV + state); report.ts
   * maxBatch), by budget then context: where a smaller cache turns into more sequences a step.
   */
  maxBatch: Record<string, Record<string, number>>;
}

export function compileFigures(model: ModelIR, c: CompileSettings, f: FigureSettings): Figures {
  const compiled = compileModel(model, {
    caps: NOMINAL_CAPS,
    precision: c.precision,
    kv: c.kv,
    capacity: c.capacity,
    maxT: c.maxT,
  });
  const r = report(compiled);
  const weights = r.parameterBytes;
  const state = r.recurrentStateBytes;
  const kv = r.kvBytesPerToken;
  const step = (flops: number, bytes: number, dispatches: number, tokens: number): StepEstimate => {
    const seconds = stepSeconds(f.roofline, bytes, flops, dispatches);
    return { flops, bytes, seconds, tokensPerSecond: tokens / seconds };
  };
  const prefillBytes = r.prefill.bytesRead + r.prefill.bytesWritten;
  const memoryAt: Record<string, number> = {};
  const decodeAt: Record<string, StepEstimate> = {};
  // Ring caches (streaming attention) stop growing at their rows: KV at a context is per layer.
  const growing = r.layers.reduce((n, l) => n + (l.kvRows === null ? l.kvBytesPerToken : 0), 0);
  const ringBytes = r.layers.reduce((n, l) => n + l.kvBytesPerToken * (l.kvRows ?? 0), 0);
  for (const ctx of f.contexts) {
    memoryAt[ctx] = weights + f.batch * (kvBytesAt(r.layers, ctx) + state);
    // The cost model at position ctx: attention reads ctx cached rows, the rest is unchanged.
    const cost = graphCost(compiled.graphs.decode, 1, ctx);
    decodeAt[ctx] = step(cost.flops, cost.bytesRead + cost.bytesWritten, r.decode.dispatches, 1);
  }
  const maxContext: Record<string, number | null> = {};
  for (const [name, budget] of Object.entries(f.budgets)) {
    // Counting full rings (an upper bound on their bytes at any context).
    const perSequence = (budget - weights) / f.batch - state - ringBytes;
    maxContext[name] =
      perSequence < 0 ? 0 : growing === 0 ? null : Math.floor(perSequence / growing);
  }
  const batches: Record<string, Record<string, number>> = {};
  for (const [name, budget] of Object.entries(f.budgets)) {
    batches[name] = Object.fromEntries(
      f.contexts.map((ctx) => [ctx, maxBatch(budget, weights, r.layers, state, ctx)]),
    );
  }
  return {
    precision: r.precision,
    kv: c.kv,
    parameters: r.parameters,
    activeParameters: r.activeParameters,
    parameterBytes: weights,
    kvBytesPerToken: kv,
    recurrentStateBytes: state,
    prefill: {
      tokens: r.prefill.tokens,
      dispatches: r.prefill.dispatches,
      ...step(r.prefill.flops, prefillBytes, r.prefill.dispatches, r.prefill.tokens),
    },
    decode: {
      pos: r.decode.pos,
      flops: r.decode.flops,
      bytes: r.decode.bytesRead + r.decode.bytesWritten,
      dispatches: r.decode.dispatches,
    },
    memoryAt,
    decodeAt,
    maxContext,
    maxBatch: batches,
  };
}
