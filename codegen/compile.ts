/**
 * The compiler's front door: ModelIR → per-phase graphs → passes → kernels.
 * Returns everything the bundle writer and the runtime need, plus the graphs
 * and pass logs for inspection and the CPU interpreter.
 */
import type { ModelIR } from '../src/spec/model.ts';
import type { DType, Graph, ParamSource } from '../src/graph/ir.ts';
import { lower } from '../src/graph/lower.ts';
import { runPasses, type PassLogEntry } from '../src/passes/pipeline.ts';
import { emitPhase, type KernelTable, type PhaseProgram } from './emit.ts';
import type { Kernel } from './kernel-ir.ts';
import type { DeviceCaps } from '../src/target.ts';
import { usedTensors } from '../src/graph/ir.ts';
import { shapeBytes } from '../src/graph/dtype.ts';
import type { KvType } from '../src/graph/ops.ts';

export interface CompileOptions {
  caps: DeviceCaps;
  /** Tokens per prefill step (longer prompts run in chunks). */
  maxT?: number;
  /** KV cache rows per sequence. */
  capacity?: number;
  fuse?: boolean;
  /** Element type of the attention KV caches: 'f32' (default) or 'f16' (half the bytes). */
  kv?: KvType;
}

export interface ParamEntry {
  name: string;
  shape: number[];
  source: ParamSource;
}

export interface CompiledModel {
  model: ModelIR;
  maxT: number;
  capacity: number;
  fused: boolean;
  caps: DeviceCaps;
  kernels: Kernel[];
  params: ParamEntry[];
  state: { name: string; shape: number[] }[];
  phases: { prefill: PhaseProgram; decode: PhaseProgram };
  graphs: { prefill: Graph; decode: Graph };
  passLog: { prefill: PassLogEntry[]; decode: PassLogEntry[] };
}

export const DEFAULT_MAX_T = 64;
export const DEFAULT_CAPACITY = 2048;

export function compileModel(model: ModelIR, opts: CompileOptions): CompiledModel {
  const maxT = opts.maxT ?? DEFAULT_MAX_T;
  const capacity = opts.capacity ?? Math.min(model.maxContext, DEFAULT_CAPACITY);
  if (capacity > model.maxContext) {
    throw new Error(`capacity ${capacity} exceeds the model's max_context ${model.maxContext}`);
  }
  const fuse = opts.fuse ?? true;
  const kernels: KernelTable = new Map();
  const run = (phase: 'prefill' | 'decode') => {
    const lowered = lower(model, { phase, maxT, capacity, kv: opts.kv ?? 'f32' });
    const { graph, log } = runPasses(lowered, { caps: opts.caps, fuse });
    return { graph, log, program: emitPhase(graph, opts.caps, kernels) };
  };
  const prefill = run('prefill');
  const decode = run('decode');
  const params = new Map<string, ParamEntry>();
  const state = new Map<string, number[]>();
  for (const g of [prefill.graph, decode.graph]) {
    for (const t of usedTensors(g)) {
      if (t.kind === 'param')
        params.set(t.name, { name: t.name, shape: t.shape as number[], source: t.source! });
      if (t.kind === 'state') state.set(t.name, t.shape as number[]);
    }
  }
  return {
    model,
    maxT,
    capacity,
    fused: fuse,
    caps: opts.caps,
    kernels: [...kernels.values()],
    params: [...params.values()],
    state: [...state].map(([name, shape]) => ({ name, shape })),
    phases: { prefill: prefill.program, decode: decode.program },
    graphs: { prefill: prefill.graph, decode: decode.graph },
    passLog: { prefill: prefill.log, decode: decode.log },
  };
}

/**
 * Bytes of one sequence's state: each state tensor at its element type (an f16 KV cache takes
 * half of an f32 one), which the graphs' tensors carry.
 */
export function stateBytes(c: Pick<CompiledModel, 'state' | 'graphs'>): number {
  const dtypes = new Map<string, DType>();
  for (const g of [c.graphs.prefill, c.graphs.decode])
    for (const t of g.tensors) if (t.kind === 'state') dtypes.set(t.name, t.dtype);
  return c.state.reduce((n, s) => n + shapeBytes(dtypes.get(s.name) ?? 'f32', s.shape, 1), 0);
}
