/**
 * GraphIR: a dataflow graph of tensor ops with static shapes (up to the step
 * symbols T and L) for one phase. Nodes are in execution order. Activations are
 * written once; state tensors (KV caches) are mutable and are named as both an
 * input and an output of the ops that update them, which makes every state
 * effect explicit for scheduling and memory planning.
 */
import type { OpAttrs } from './ops.ts';
import type { RopeSpec } from '../spec/model.ts';
import { shapeBytes, type DType } from './dtype.ts';

export type { DType } from './dtype.ts';

export type Dim = number | 'T' | 'L';
export type TensorKind = 'param' | 'state' | 'input' | 'activation' | 'output';

/** How a parameter tensor is made from the model's canonical weights. */
export type ParamSource =
  | { kind: 'weight'; name: string }
  | { kind: 'concat'; parts: ParamSource[] }
  /** Permute rows inside each head of `headDim` rows: HF rotate_half order → interleaved pairs. */
  | { kind: 'rope_interleave'; of: ParamSource; headDim: number; rotaryDim: number; cols: number }
  | { kind: 'rope_table'; rope: RopeSpec; which: 'cos' | 'sin'; capacity: number }
  /** Rows [start, start+count) of a [rows, cols] tensor (splits over the binding-size limit). */
  | { kind: 'rows'; of: ParamSource; start: number; count: number; cols: number }
  /**
   * Every element times a constant: muP multipliers folded into the weights they follow or
   * precede (y = s · (x W + b) is x (sW) + sb), so they cost no op at run time.
   */
  | { kind: 'scaled'; of: ParamSource; factor: number }
  /**
   * The transpose of a [rows, cols] tensor, [cols, rows]: a table read the other way round
   * (DiffusionGemma's self-conditioning multiplies probabilities by the embedding table, a
   * matmul whose weight is the table's transpose).
   */
  | { kind: 'transposed'; of: ParamSource; rows: number; cols: number }
  /**
   * Numbers the spec determines and no checkpoint stores: RetNet's fixed per-head log decays,
   * the block-of-ones matrix that sums each head of linear attention's q. Computed at compile
   * time like the RoPE tables, never looked up among the weights.
   */
  | { kind: 'constant'; values: readonly number[] }
  /**
   * Within each of `heads` consecutive blocks of `headRows` rows, the row ranges [start,
   * start+count) in the order given: MLA takes k_nope and v apart from kv_b_proj's per-head rows
   * and moves q's rotary part to the front of each head.
   */
  | {
      kind: 'head_rows';
      of: ParamSource;
      heads: number;
      headRows: number;
      ranges: { start: number; count: number }[];
      cols: number;
    };

export interface Tensor {
  id: number;
  /** Unique, readable name: weight name for params, `cache.k.3` for state, `l3.attn.q` for activations. */
  name: string;
  shape: Dim[];
  dtype: DType;
  kind: TensorKind;
  /** Params only. */
  source?: ParamSource;
}

export interface GraphNode {
  id: number;
  attrs: OpAttrs;
  /** Op input name → tensor id. */
  inputs: Record<string, number>;
  /** Op output name → tensor id (a state tensor for in-place updates). */
  outputs: Record<string, number>;
  /** Layer index, or null for embedding/head nodes. */
  layer: number | null;
  /** What the node computes, for inspect output. */
  label: string;
  /**
   * Runs in denoising steps only (step keys > 0; DiffusionGemma's self-conditioning branch): in
   * an encoding step it is skipped (its launches count rows in grid symbol D), so its outputs
   * hold nothing there. src/passes/denoising-only.ts checks that only nodes of the same kind, or
   * the phased operand of a phased add, read them, and that it writes no state.
   */
  denoising?: true;
}

export type Phase = 'prefill' | 'decode';

export interface Graph {
  phase: Phase;
  /** Largest T a step of this phase takes (1 for decode). */
  maxT: number;
  /** KV cache rows. */
  capacity: number;
  tensors: Tensor[];
  nodes: GraphNode[];
  /** Token ids [T] u32. */
  ids: number;
  /** Logits [L, vocab]. */
  logits: number;
  /** Sampled token [1] u32. */
  token: number;
}

export function elementCount(shape: Dim[], maxT: number): number {
  return shape.reduce<number>((n, d) => n * (typeof d === 'number' ? d : maxT), 1);
}

export function tensorBytes(t: Tensor, maxT: number): number {
  return shapeBytes(t.dtype, t.shape, maxT);
}

/** Consumers of each tensor: node ids in order. */
export function consumers(g: Graph): Map<number, GraphNode[]> {
  const m = new Map<number, GraphNode[]>();
  for (const n of g.nodes) {
    for (const t of Object.values(n.inputs)) {
      const list = m.get(t) ?? [];
      list.push(n);
      m.set(t, list);
    }
  }
  return m;
}

export function producers(g: Graph): Map<number, GraphNode> {
  const m = new Map<number, GraphNode>();
  for (const n of g.nodes) for (const t of Object.values(n.outputs)) if (!m.has(t)) m.set(t, n);
  return m;
}

/** Tensors some node reads or writes (passes leave replaced tensors behind; ids stay array indices). */
export function usedTensors(g: Graph): Tensor[] {
  const used = new Set<number>([g.ids, g.logits, g.token]);
  for (const n of g.nodes) {
    for (const t of Object.values(n.inputs)) used.add(t);
    for (const t of Object.values(n.outputs)) used.add(t);
  }
  return g.tensors.filter((t) => used.has(t.id));
}

export function tensorById(g: Graph): Map<number, Tensor> {
  return new Map(g.tensors.map((t) => [t.id, t]));
}
