/**
 * The GraphIR op set. Each op has named inputs and outputs; a kernel generator
 * names its bindings exactly like the op's inputs/outputs, and the reference in
 * src/ops/<family>.ts takes and returns arrays under the same names. That shared
 * naming is what lets the emitter bind buffers and the interpreter run any graph,
 * fused or not, without per-op glue.
 *
 * Shapes use two symbols resolved per step: T (tokens in the step) and L (logit
 * rows: the last L of T). Positions: row t of a step is absolute position pos + t.
 * Matrices are row-major; weights are [out, in] like HuggingFace's nn.Linear.
 */
import type { Activation, NormSpec } from '../spec/model.ts';

export interface EmbedAttrs {
  op: 'embed';
  vocab: number;
  dim: number;
  scale: number;
  /** This node gathers only ids in [rowStart, rowStart + rows) of the full table (split tables). */
  rowStart: number;
  rows: number;
}
// inputs: ids [T] u32, table [rows, dim]; outputs: out [T, dim]
// (when rowStart > 0 or rows < vocab: out is read_write and rows outside the range are left as they are)

export interface NormAttrs {
  op: 'norm';
  norm: NormSpec;
  /** Elements per row. */
  width: number;
  /** Normalise each contiguous group of this many elements (width for a plain norm, headDim for qk-norm). */
  group: number;
}
// inputs: x [T, width], w [group], b [group] (layer norm with bias); outputs: out [T, width]

/** RoPE tables: cos/sin [maxContext, rotaryDim/2], row p for absolute position p. */
export interface RopeLayout {
  heads: number;
  headDim: number;
  rotaryDim: number;
  /**
   * 'half': pairs (i, i + rotaryDim/2) as in HF's rotate_half.
   * 'interleaved': pairs (2i, 2i+1); used after the fusion pass permutes q/k weight rows so that
   * a thread that owns consecutive columns owns whole pairs. q·k is unchanged by the permutation.
   */
  pairs: 'half' | 'interleaved';
}

export interface MatmulAttrs {
  op: 'matmul';
  /** Output columns (per half when gated). */
  N: number;
  /** Reduction length. */
  K: number;
  /** 'T': all rows of x; 'L': only the last L rows (LM head). Output has that many rows. */
  rows: 'T' | 'L';
  /** Normalise each row of x with this norm before multiplying (inputs normW [K], normB [K]). */
  prologue: NormSpec | null;
  /** Add bias [N] (gated: [2N], gate half first). */
  bias: boolean;
  /** Gated: w is [2N, K], gate rows then up rows; y = act(x Wg + bg) * (x Wu + bu). */
  gated: boolean;
  /** Activation (gated: applied to the gate half; ungated: to the result). */
  act: Activation | null;
  /** Add residual [rows, N] after everything else. */
  residual: boolean;
  /** Write row r, column n to out[r * outStride + outOffset + n] (split LM heads); default N, 0. */
  outStride: number;
  outOffset: number;
  /**
   * QKV + RoPE + KV-append: columns [0, q) are q (rope applied, written to out [T, q]);
   * [q, q+kv) are k (rope applied, written to kcache row pos+t); [q+kv, q+2kv) are v (to vcache).
   * Inputs cos, sin, kcache, vcache; outputs out, kcache, vcache. Pairs are always 'interleaved'.
   */
  ropeKv: { qCols: number; kvCols: number; headDim: number; rotaryDim: number } | null;
}
// inputs: x [T, K], w [N or 2N, K], bias?, residual?, normW?, normB?, cos?, sin?, kcache?, vcache?
// outputs: out [rows, outStride], and kcache/vcache when ropeKv

export interface RopeAttrs extends RopeLayout {
  op: 'rope';
}
// inputs: x [T, heads*headDim], cos, sin; outputs: out [T, heads*headDim]

export interface KvWriteAttrs {
  op: 'kv_write';
  /** Elements per cache row (kvHeads * headDim). */
  width: number;
  /** Rows in the cache. */
  capacity: number;
}
// inputs: x [T, width], cache [capacity, width]; outputs: cache (rows pos..pos+T-1 written in place)

export interface AttentionAttrs {
  op: 'attention';
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  /** Causal: query at position p sees keys 0..p; otherwise all keys 0..pos+T-1. */
  causal: boolean;
  /** Sliding window: keys in (p - window, p]; null for none. */
  window: number | null;
  softcap: number | null;
  capacity: number;
}
// inputs: q [T, heads*headDim], kcache [capacity, kvHeads*headDim], vcache (same); outputs: out [T, heads*headDim]

export interface AddAttrs {
  op: 'add';
  width: number;
}
// inputs: a [T, width], b [T, width]; outputs: out

export interface ActAttrs {
  op: 'act';
  act: Activation;
  width: number;
}
// inputs: x; outputs: out

export interface GluAttrs {
  op: 'glu';
  act: Activation;
  width: number;
}
// inputs: gate [T, width], up [T, width]; outputs: out = act(gate) * up

export interface SoftcapAttrs {
  op: 'softcap';
  cap: number;
  width: number;
  rows: 'T' | 'L';
}
// inputs: x; outputs: out = cap * tanh(x / cap)

export interface SampleAttrs {
  op: 'sample';
  vocab: number;
}
// inputs: logits [L, vocab] (the last row is sampled); outputs: token [1] u32, also written to ids[0]
// Reads temperature, topK, topP, seed and draw from the Step uniform.

export type OpAttrs =
  | EmbedAttrs
  | NormAttrs
  | MatmulAttrs
  | RopeAttrs
  | KvWriteAttrs
  | AttentionAttrs
  | AddAttrs
  | ActAttrs
  | GluAttrs
  | SoftcapAttrs
  | SampleAttrs;

export type OpName = OpAttrs['op'];

/** Which outputs of an op update one of its inputs in place (state such as KV caches). */
export function inPlaceOutputs(a: OpAttrs): Record<string, string> {
  if (a.op === 'kv_write') return { cache: 'cache' };
  if (a.op === 'matmul' && a.ropeKv) return { kcache: 'kcache', vcache: 'vcache' };
  if (a.op === 'embed' && (a.rowStart > 0 || a.rows < a.vocab)) return {};
  return {};
}

/** FLOPs and bytes of one op for one step; used by inspect and the fusion reports. */
export interface Cost {
  flops: number;
  bytesRead: number;
  bytesWritten: number;
}

export const ZERO_COST: Cost = { flops: 0, bytesRead: 0, bytesWritten: 0 };

export function addCost(a: Cost, b: Cost): Cost {
  return {
    flops: a.flops + b.flops,
    bytesRead: a.bytesRead + b.bytesRead,
    bytesWritten: a.bytesWritten + b.bytesWritten,
  };
}

/** The Step uniform's sampling fields (same shape as codegen's SamplingParams). */
export interface SamplingShape {
  seed: number;
  draw: number;
  /** 0 = off. */
  topK: number;
  /** 0 = greedy. */
  temperature: number;
  /** 1 = off. */
  topP: number;
}

/** Symbol values for one step, as seen by references and cost functions. */
export interface StepShape {
  T: number;
  pos: number;
  L: number;
  /** Read by the `sample` reference only; absent means greedy. */
  sampling?: SamplingShape;
}
