/**
 * The compiler's front door: ModelIR → per-phase graphs → passes → kernels.
 * Returns everything the bundle writer and the runtime need, plus the graphs
 * and pass logs for inspection and the CPU interpreter.
 */
import type { ModelIR } from '../src/spec/model.ts';
import type { Graph, ParamSource } from '../src/graph/ir.ts';
import { lower } from '../src/graph/lower.ts';
import { runPasses, type PassLogEntry } from '../src/passes/pipeline.ts';
import { emitPhase, type KernelTable, type PhaseProgram } from './emit.ts';
import type { Kernel } from './kernel-ir.ts';
import type { DeviceCaps } from '../src/target.ts';
import { usedTensors } from '../src/graph/ir.ts';
import { shapeBytes, type DType, type WeightType } from '../src/graph/dtype.ts';
import type { Precision } from '../src/passes/precision.ts';
import type { KvType } from '../src/graph/ops.ts';

export interface CompileOptions {
  caps: DeviceCaps;
  /**
   * Tokens per prefill step (longer prompts run in chunks). A batched build's prefill fills one
   * sequence's batch slot at a time, in steps of this many tokens too.
   */
  maxT?: number;
  /** KV cache rows per sequence. */
  capacity?: number;
  fuse?: boolean;
  /** How weights are stored (src/passes/precision.ts); f32 when absent. */
  precision?: Precision;
  /** Element type of the attention KV caches: 'f32' (default) or 'f16' (half the bytes). */
  kv?: KvType;
  /** Sequences one decode step advances (src/graph/lower.ts LowerOptions.batch); default 1. */
  batch?: number;
}

export interface ParamEntry {
  name: string;
  shape: number[];
  dtype: WeightType;
  source: ParamSource;
}

export interface StateEntry {
  name: string;
  shape: number[];
  dtype: DType;
  /** Batched builds: whole-run state every sequence adds to, not a slice per sequence. */
  shared?: true;
}

export interface CompiledModel {
  model: ModelIR;
  maxT: number;
  capacity: number;
  /** Sequences per decode step (1: a single-sequence build). */
  batch: number;
  fused: boolean;
  precision: Precision;
  caps: DeviceCaps;
  kernels: Kernel[];
  params: ParamEntry[];
  state: StateEntry[];
  phases: { prefill: PhaseProgram; decode: PhaseProgram };
  graphs: { prefill: Graph; decode: Graph };
  passLog: { prefill: PassLogEntry[]; decode: PassLogEntry[] };
}

export const DEFAULT_MAX_T = 64;
export const DEFAULT_CAPACITY = 2048;

export function compileModel(model: ModelIR, opts: CompileOptions): CompiledModel {
  const batch = opts.batch ?? 1;
  const maxT = opts.maxT ?? DEFAULT_MAX_T;
  const capacity = opts.capacity ?? Math.min(model.maxContext, DEFAULT_CAPACITY);
  if (capacity > model.maxContext) {
    throw new Error(`capacity ${capacity} exceeds the model's max_context ${model.maxContext}`);
  }
  // Batched decode advances each sequence one token a step; a diffusion sampler's steps are
  // whole canvases, so a batched diffusion bundle would decode it left to right, silently wrong.
  if (batch > 1 && model.diffusion) {
    throw new Error(
      `batch ${batch}: batched decode is autoregressive, and ${model.name} is a ${model.diffusion.kind} diffusion model (its sampler has no batched form); compile it with batch 1`,
    );
  }
  const fuse = opts.fuse ?? true;
  const precision = opts.precision ?? 'f32';
  const kernels: KernelTable = new Map();
  const passes = (phase: 'prefill' | 'decode', keepF32: ReadonlySet<string>) => {
    // A batched build's prefill is one sequence's (batch 1): it fills one batch slot at a time
    // from that slot's own prompt, on state buffers of one sequence that the runtime then copies
    // into the slot (runtime/batch.ts), so slots prefill apart and the others keep their state.
    // Its decode step advances every slot (LowerOptions.batch). Both size ring caches by maxT.
    const lowered = lower(model, {
      phase,
      maxT,
      capacity,
      kv: opts.kv ?? 'f32',
      batch: phase === 'prefill' ? 1 : batch,
    });
    return runPasses(lowered, { caps: opts.caps, fuse, precision, keepF32 });
  };
  // Both phases bind one copy of each weight. A weight one phase reads through a kernel that
  // takes f32 only (a decode fusion such as a low-rank gate computed inside the recurrence) while
  // the other reads it through a matmul, which would narrow it, stays f32 in both.
  let pre = passes('prefill', new Set());
  let dec = passes('decode', new Set());
  const keep = wideInOnePhase(pre.graph, dec.graph);
  if (keep.size > 0) {
    pre = passes('prefill', keep);
    dec = passes('decode', keep);
  }
  const prefill = { ...pre, program: emitPhase(pre.graph, opts.caps, kernels) };
  const decode = { ...dec, program: emitPhase(dec.graph, opts.caps, kernels) };
  const params = new Map<string, ParamEntry>();
  const state = new Map<string, StateEntry>();
  // Both phases bind one copy of each weight and state buffer, so they must agree on its type.
  const agree = (what: string, name: string, had: DType | undefined, dtype: DType) => {
    if (had !== undefined && had !== dtype)
      throw new Error(`${what} ${name} is ${had} in one phase and ${dtype} in the other`);
  };
  // A batched build's decode states hold every slot, its prefill graph's one slot of them
  // (GraphBuilder.state: the first dimension times the batch), except whole-run state that
  // every sequence adds to (MoE load counters, SHARED_STATE_OPS), the same in both.
  const decodeStates = new Map<string, readonly number[]>();
  for (const t of usedTensors(decode.graph))
    if (t.kind === 'state') decodeStates.set(t.name, t.shape as number[]);
  const shared = new Set<string>();
  for (const g of [prefill.graph, decode.graph]) {
    for (const t of usedTensors(g)) {
      let shape = t.shape as number[];
      if (t.kind === 'param') {
        if (t.dtype === 'u32') throw new Error(`parameter ${t.name} is u32`);
        agree('parameter', t.name, params.get(t.name)?.dtype, t.dtype);
        params.set(t.name, { name: t.name, shape, dtype: t.dtype, source: t.source! });
      }
      if (t.kind === 'state') {
        agree('state', t.name, state.get(t.name)?.dtype, t.dtype);
        if (batch > 1 && g === prefill.graph) {
          const whole = decodeStates.get(t.name);
          if (!whole)
            throw new Error(`state ${t.name} of a batched build is not in its decode step`);
          if (whole.join() === shape.join()) shared.add(t.name);
          else shape = shape.map((d, i) => (i === 0 ? d * batch : d));
        }
        // Ring caches (streaming attention) are sized in each phase by the same prefill chunk.
        const had = state.get(t.name)?.shape;
        if (had && had.join() !== shape.join()) {
          throw new Error(
            `state ${t.name} is [${had.join(', ')}] in one phase and [${shape.join(', ')}] in the other`,
          );
        }
        state.set(t.name, { name: t.name, shape, dtype: t.dtype });
      }
    }
  }
  for (const name of shared) state.set(name, { ...state.get(name)!, shared: true });
  return {
    model,
    maxT,
    capacity,
    batch,
    fused: fuse,
    precision,
    caps: opts.caps,
    kernels: [...kernels.values()],
    params: [...params.values()],
    state: [...state.values()],
    phases: { prefill: prefill.program, decode: decode.program },
    graphs: { prefill: prefill.graph, decode: decode.graph },
    passLog: { prefill: prefill.log, decode: decode.log },
  };
}

/** Parameters that are f32 in one phase's graph and narrower in the other's. */
function wideInOnePhase(a: Graph, b: Graph): Set<string> {
  const types = (g: Graph) =>
    new Map(usedTensors(g).flatMap((t) => (t.kind === 'param' ? [[t.name, t.dtype]] : [])));
  const [ta, tb] = [types(a), types(b)];
  const keep = new Set<string>();
  for (const [name, dtype] of ta) {
    const other = tb.get(name);
    if (other !== undefined && other !== dtype && (dtype === 'f32' || other === 'f32'))
      keep.add(name);
  }
  return keep;
}

export function stateBytes(c: Pick<CompiledModel, 'state'>): number {
  return c.state.reduce((n, s) => n + shapeBytes(s.dtype, s.shape, 1), 0);
}

/** Bytes of the stored weights, by type. */
export function weightBytesByType(
  c: Pick<CompiledModel, 'params'>,
): Partial<Record<DType, number>> {
  const out: Partial<Record<DType, number>> = {};
  for (const p of c.params) out[p.dtype] = (out[p.dtype] ?? 0) + shapeBytes(p.dtype, p.shape, 1);
  return out;
}
