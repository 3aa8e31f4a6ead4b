/**
 * The GraphIR op set: each op's attributes and semantics. Its named inputs and outputs (shape,
 * dtype, in-place state) are declared once, by its definition beside the CPU reference in
 * src/ops/<family>.ts; a kernel generator names its bindings exactly like them, and the reference
 * takes and returns arrays under the same names. That shared naming is what lets the emitter bind
 * buffers and the interpreter run any graph, fused or not, without per-op glue.
 *
 * Shapes use two symbols resolved per step: T (tokens in the step) and L (logit
 * rows: the last L of T). Positions: row t of a step is absolute position pos + t.
 * Matrices are row-major; weights are [out, in] like HuggingFace's nn.Linear.
 */
import type { WeightType } from './dtype.ts';
import type { Activation, NormSpec } from '../spec/model.ts';
import type { BlockSparsePattern } from '../spec/kinds/sparsity.ts';

/**
 * out[t] = table[ids[t]] · scale. A node of a split table gathers only its rows and leaves the
 * other rows of out as they are.
 */
export interface EmbedAttrs {
  op: 'embed';
  vocab: number;
  dim: number;
  scale: number;
  /** This node gathers only ids in [rowStart, rowStart + rows) of the full table (split tables). */
  rowStart: number;
  rows: number;
  /** How the table is stored (src/graph/dtype.ts); gathered rows are f32 whatever it is. */
  tableType: WeightType;
}

/**
 * The l2 normalisation of linear-attention keys and queries: x · rsqrt(Σx² + eps) over each group,
 * with no mean, no division by the group size and no weight (FLA's and transformers' l2norm).
 */
export interface L2Norm {
  kind: 'l2';
  eps: number;
}

export interface NormAttrs {
  op: 'norm';
  norm: NormSpec | L2Norm;
  /** Elements per row. */
  width: number;
  /** Normalise each contiguous group of this many elements (width for a plain norm, headDim for qk-norm). */
  group: number;
  /** out = residual + norm(x): a sandwich post-norm with its residual add fused in. */
  residual: boolean;
  /**
   * w and b hold one value per column of the row ([width]) instead of one per group element
   * ([group]): GroupNorm's per-channel affine (RWKV-7's g_norm). Absent means false.
   */
  perChannel?: boolean;
  /**
   * Applied in a denoising step only (step.keys > 0, see AttentionAttrs.phased): an encoding
   * step multiplies x by the weight and nothing else (DiffusionGemma normalises the denoiser's
   * input, not the encoder's; its weight is all ones). rms only. Absent or false: always.
   */
  phased?: boolean;
  /**
   * RWKV's token shift of the normed rows fused in (the rwkv7-norm-shift fusion of a token_shift
   * reading this norm's out): input and output `state` [1, width] (read/write) and output `prev`
   * [T, width], with prev[0] = state (zeros at position 0), prev[t] = out[t − 1], and state =
   * out[T − 1] afterwards, as TokenShiftAttrs defines. Needs group = width and no residual; the
   * kernel takes decode steps only (maxT 1). Absent means false.
   */
  shift?: boolean;
}

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
  /**
   * The prologue norm normalises each group of this many columns of x on its own (the weight
   * still one per column, [K]): Mamba-2's gated RMSNorm over each B/C group once the SSD has
   * gated (src/passes/fuse-mamba2.ts). RMS only, decode (the GEMV) only. Absent: the whole row.
   */
  prologueGroup?: number;
  /**
   * The prologue's weight normW is one group's ([prologueGroup]), shared by every group (fla's
   * per-head output norm) instead of one per column. Needs prologueGroup. Absent: false.
   */
  prologueGroupWeight?: boolean;
  /**
   * After the prologue norm, x is multiplied by silu(gate) (input `gate` [T, K]): the gated
   * RMSNorm rmsnorm(o) · w · silu(z) before a linear mixer's o_proj (gated_norm with
   * normBeforeGate, src/passes/fuse-gated-norm.ts). Needs an rms prologue; decode (the GEMV)
   * only. Absent: false.
   */
  prologueGate?: boolean;
  /**
   * The gate is columns [offset, offset + K) of a wider [T, cols] input `gate` (gated DeltaNet's z
   * in its fused in_proj row, src/passes/fuse-linear.ts). Needs prologueGate. Absent: [T, K].
   */
  prologueGateCols?: { cols: number; offset: number };
  /** Add bias [N] (gated: [2N], gate half first). */
  bias: boolean;
  /** Gated: w is [2N, K], gate rows then up rows; y = act(x Wg + bg) * (x Wu + bu). */
  gated: boolean;
  /** Activation (gated: applied to the gate half; ungated: to the result). */
  act: Activation | null;
  /**
   * Multiply the result (after bias, activation and gating) by this before the residual add:
   * Granite's residual_multiplier folded in by the residual fusion, and the model's logit scale
   * on the LM head. 1 for none.
   */
  scale: number;
  /** Add residual [rows, N] after everything else. */
  residual: boolean;
  /** Write row r, column n to out[r * outStride + outOffset + n] (split LM heads); default N, 0. */
  outStride: number;
  outOffset: number;
  /**
   * Several matmuls of one x as one (the shared-input fusion): column counts of separate outputs
   * `out`, `out1`, `out2`, … (see splitOutput), summing to N; each output i is [rows, splits[i]].
   * null: the one output `out`.
   */
  splits: number[] | null;
  /**
   * QKV + RoPE + KV-append: columns [0, q) are q (rope applied, written to out [T, q]);
   * [q, q+kv) are k (rope applied, written to kcache row pos+t); [q+kv, q+2kv) are v (to vcache).
   * The rope tables and both caches have `capacity` rows (ring caches: ring.rows, k and v of
   * position p at cacheRow(ring, ring.rows, p)). Pairs are always 'interleaved'.
   */
  ropeKv: {
    qCols: number;
    kvCols: number;
    headDim: number;
    /** 0: attention without RoPE (src/passes/fuse-attn.ts): no rotation, no cos/sin inputs. */
    rotaryDim: number;
    capacity: number;
    /** Element type of both caches (see KvType); absent: 'f32'. */
    kvType?: KvType;
    /** Rows of both caches when they are rings (see KvRing); absent: `capacity` rows, row = pos. */
    ring?: { sink: number; rows: number } | null;
    /**
     * Batched decode (src/ops/batch.ts): row r is sequence r at step.pos, its k and v going to
     * slice r of caches that hold `batch` sequences' rows one after another. Absent: 1.
     */
    batch?: number;
  } | null;
  /**
   * Decode's causal depthwise conv on output columns [0, conv.channels), applied to each such
   * column's final value (Mamba's x half of in_proj; made by the conv-epilogue fusion): with
   * inputs convW [channels, kernel], convB [channels] when bias, and the conv state convState
   * [kernel − 1, channels] updated in place, column c becomes act(convB[c] + Σ_j convW[c, j] ·
   * u[j, c]) over u = [convState; y], as conv1d computes it, and the state keeps u's last
   * kernel − 1 rows. Rows run one after another (the reference takes any T; the GEMV kernel one).
   * Absent or null: none.
   */
  conv?: {
    channels: number;
    kernel: number;
    bias: boolean;
    silu: boolean;
    /**
     * Batched decode (src/ops/batch.ts): row r is sequence r, with its own slice of the state
     * (B slices of kernel − 1 rows); nothing carries across rows, which may then run in parallel.
     */
    batch?: number;
    /**
     * The conv's first output column (its channels are columns [offset, offset + channels));
     * needs no splits. Mamba-2's in_proj row z | x B C | dt convolves its middle. Absent: 0.
     */
    offset?: number;
    /**
     * Channel counts of consecutive conv states convState, convState1, … (see convStateName),
     * summing to channels: Mamba-2 keeps x's, B's and C's conv states apart. Absent: one state.
     */
    states?: number[];
    /**
     * The bias [channels] follows the weight in convW ([channels · kernel + channels]) instead
     * of coming as convB: one binding fewer. Needs bias. Absent: false.
     */
    packedBias?: boolean;
  } | null;
  /**
   * How w is stored (src/graph/dtype.ts): 'f16' two halves per u32 word, 'q8' and 'q4' codes
   * with an f16 scale per block of 32 along K. Its values are what src/ops/weight-storage.ts's
   * roundWeight makes of the f32 weights; products accumulate in f32 whatever the storage.
   */
  wType: WeightType;
  /**
   * 'f16': each row of x, after the prologue norm, is rounded to f16 before the products (what
   * tensor cores take); products of two f16 values are exact in f32, so only the summation
   * order differs between kernels. Needs wType 'f16'.
   */
  xType: 'f32' | 'f16';
  /**
   * x as the matmul loads it (the matmul-prologue fusion of a pointwise op such as RWKV's token
   * mix x + (shift − x)·μ): element (t, k) of the x the products read is this expression at
   * token t, column k. It reads the node's `x` input as `x` (a [T, cols] activation) and its
   * other inputs as `p_<name>` (activations [T, cols] or parameters [cols]). Needs rows 'T', no
   * norm prologue and no ropeKv. Absent or null: x is read as it is.
   */
  xMap?: FusedPointwise | null;
  /**
   * An expression applied to each output element (the matmul-epilogue fusion of a pointwise op
   * reading the result, such as a LoRA's tanh or sigmoid, or a gate). Order per element:
   * accumulate, + bias, act / gating, × scale, then this epilogue, then + residual, then the
   * write. The expression reads that value as input `y` (not listed in `inputs`) and its other
   * inputs as `e_<name>` (activations [T, cols] or parameters [cols]), at token r and output
   * column outOffset + c. Needs rows 'T', no splits and no ropeKv. Absent or null: none.
   */
  epilogue?: FusedPointwise | null;
  /**
   * One x map per split (the rwkv7-projections fusion: RWKV's six projections of one x and one
   * shifted x, each with its own mix μ, as one matmul): output column n of split i reads x as
   * splitXMaps[i] maps it. Each map names the inputs xMap names, with the same kinds and widths
   * (a parameter holding every split's vector reads its own range through `offset`); xMap must be
   * splitXMaps[0], so bindings and input rules stay xMap's. The decode GEMV only (maxT 1).
   * Absent or null: every split reads xMap.
   */
  splitXMaps?: FusedPointwise[] | null;
}

/** The value a matmul epilogue expression reads as its input `y`. */
export const EPILOGUE_VALUE = 'y';

/** The name of a matmul's conv state i (MatmulAttrs.conv.states): `convState`, `convState1`, …. */
export function convStateName(i: number): string {
  return i === 0 ? 'convState' : `convState${i}`;
}

/** The name of a split matmul's output i: `out`, then `out1`, `out2`, …. */
export function splitOutput(i: number): string {
  return i === 0 ? 'out' : `out${i}`;
}

/** A matmul with nothing fused: what lowering emits and passes then enrich. */
export function plainMatmul(
  N: number,
  K: number,
  rows: 'T' | 'L' = 'T',
  bias = false,
): MatmulAttrs {
  return {
    op: 'matmul',
    N,
    K,
    rows,
    prologue: null,
    bias,
    gated: false,
    act: null,
    scale: 1,
    residual: false,
    outStride: N,
    outOffset: 0,
    splits: null,
    ropeKv: null,
    wType: 'f32',
    xType: 'f32',
  };
}

export interface RopeAttrs extends RopeLayout {
  op: 'rope';
  /**
   * Batched decode (compile --batch B, B > 1): the step's rows are B sequences at one shared
   * position, row s reading and writing its own slice s of every per-sequence state (src/ops/batch.ts).
   * Absent: rows are consecutive tokens of one sequence.
   */
  batch?: number;
  /** Rows (positions) of the cos/sin tables: the KV cache's capacity. */
  capacity: number;
}

/**
 * Element type of an attention KV cache. 'f16': two halves per u32 word (element e is half e & 1
 * of word e >> 1, the bytes of an f16 array); writers store each value rounded to the nearest f16
 * (ties to even) and readers widen it to f32, so only storage narrows: every sum stays f32.
 * Adjacent pairs share a word, so each writer writes whole pairs: row widths, head widths and
 * column ranges must be even.
 */
export type KvType = 'f32' | 'f16';

/** The cache element type of an op's attrs: absent means 'f32'. */
export function kvTypeOf(a: { kvType?: KvType } | null | undefined): KvType {
  return a?.kvType ?? 'f32';
}

/**
 * A ring-buffer KV cache (StreamingLLM's attention sinks plus a rolling window): rows [0, sink)
 * keep the first `sink` positions for good, and position j >= sink lives in row
 * sink + (j - sink) mod (rows - sink), overwriting whatever position was there. The cache's row
 * count stays fixed however far the positions run (see cacheRow in src/ops/attention.ts).
 * Keys are stored already rotated at their absolute positions, so nothing is re-rotated.
 */
export interface KvRing {
  sink: number;
}

/** The cache row of position j: j itself without a ring; see KvRing for the ring's rule. */
export function cacheRow(ring: KvRing | null | undefined, rows: number, j: number): number {
  if (!ring || j < ring.sink) return j;
  return ring.sink + ((j - ring.sink) % (rows - ring.sink));
}

/** Writes x's rows to cache rows pos .. pos+T-1, in place. */
export interface KvWriteAttrs {
  op: 'kv_write';
  /**
   * Batched decode (compile --batch B, B > 1): the step's rows are B sequences at one shared
   * position, row s reading and writing its own slice s of every per-sequence state (src/ops/batch.ts).
   * Absent: rows are consecutive tokens of one sequence.
   */
  batch?: number;
  /** Elements per cache row (kvHeads * headDim). */
  width: number;
  /** Rows in the cache. */
  capacity: number;
  /** null: x fills whole rows. Otherwise x fills one column range of every head (MLA's k). */
  columns: KvColumns | null;
  /** Element type of the cache (see KvType); absent: 'f32'. */
  kvType?: KvType;
  /** Ring-buffer rows (see KvRing): position j goes to cacheRow(ring, capacity, j); absent: row j. */
  ring?: KvRing | null;
}

/**
 * A cache row of `heads` heads, each width/heads wide: x's head h (head 0 for every h when
 * broadcast) goes to columns [h·width/heads + offset, + cols). MLA assembles each head's key from
 * its own k_nope and the k_pe all heads share with two such writes, so no concat op is needed.
 */
export interface KvColumns {
  heads: number;
  cols: number;
  offset: number;
  broadcast: boolean;
}

/** Columns of kv_write's x. */
export function kvWriteWidth(a: KvWriteAttrs): number {
  if (a.columns === null) return a.width;
  return a.columns.broadcast ? a.columns.cols : a.columns.heads * a.columns.cols;
}

export interface AttentionAttrs {
  op: 'attention';
  /**
   * Batched decode (compile --batch B, B > 1): the step's rows are B sequences at one shared
   * position, row s reading and writing its own slice s of every per-sequence state (src/ops/batch.ts).
   * Absent: rows are consecutive tokens of one sequence.
   */
  batch?: number;
  heads: number;
  kvHeads: number;
  /** Width of each q and k head. */
  headDim: number;
  /** Width of each v head and output head; equals headDim except in MLA (DeepSeek-V3: 192 vs 128). */
  vHeadDim: number;
  scale: number;
  /** Causal: query at position p sees keys 0..p; otherwise all keys 0..pos+T-1. */
  causal: boolean;
  /** Sliding window: keys in (p - window, p]; null for none. */
  window: number | null;
  /**
   * Block-causal (BD3-LM), with causal false: query p sees the keys of its own block of
   * blockCausal positions and of every earlier block, [0, (⌊p / B⌋ + 1)·B) ∩ [0, n); blocks are
   * aligned at position 0. B = 1 is causal; B ≥ n is bidirectional. Absent or null: none.
   */
  blockCausal?: number | null;
  /**
   * A mask that depends on the step's phase (DiffusionGemma), with causal true: a step with
   * step.keys = 0 encodes (the causal mask, and the window, as without it); a step with keys > 0
   * denoises: every query sees the keys [lo, max(pos + T, keys)), lo = pos − window + 1 (0 without
   * a window or below 0), the window anchored at the step's first position. The step's own K/V
   * are written either way; a denoiser that must not keep them rewinds. Absent or false: off.
   */
  phased?: boolean;
  softcap: number | null;
  /** A learned logit per head joins each softmax denominator (GPT-OSS attention sinks). */
  sinks: boolean;
  /** Cache rows. */
  capacity: number;
  /** Element type of both caches (see KvType); absent: 'f32'. */
  kvType?: KvType;
  /**
   * StreamingLLM's sink tokens: keys 0 .. sinkTokens-1 stay visible to every query besides its
   * window (needs causal and a window). Absent: 0.
   */
  sinkTokens?: number;
  /**
   * The caches are rings (see KvRing; ring.sink equals sinkTokens): position j is read from row
   * cacheRow(ring, capacity, j), and positions may run past `capacity`. Absent or null: row j.
   */
  ring?: KvRing | null;
  /**
   * Values are read from the key cache: head h's value is columns [vFromK, vFromK + vHeadDim) of
   * its kv head's key row, and there is no vcache input. MLA's latent cache with absorbed
   * projections (src/mixers/mla.ts): the normalised latent is both every head's key part and its
   * value, so it is stored once. Absent or null: values come from vcache.
   */
  vFromK?: number | null;
  /**
   * Longformer's global queries: queries at positions below globalQueries see every key the mask
   * without a window allows (their keys, 0 .. sinkTokens-1, are visible to every query). Only
   * bidirectional attention sets it: a causal query below it sees nothing past itself anyway.
   * Absent: 0.
   */
  globalQueries?: number;
  /**
   * A static block-sparse layout (src/ops/block-sparse.ts): a pair is visible only when the
   * layout keeps its (query block, key block); the kernel visits only kept blocks. Needs no
   * window, sink tokens or ring. Absent or null: dense.
   */
  blockSparse?: BlockSparsePattern | null;
}

/**
 * A matmul per head, each head with its own weight: out[t, h·N + n] = Σ_k x[t, h·K + k] ·
 * W_h[n, k] (wLayout 'nk', nn.Linear's [out, in]: w is [heads·N, K]) or Σ_k x[t, h·K + k] ·
 * W_h[k, n] (wLayout 'kn': w is [heads·K, N], the weight used as stored, without a transpose).
 * MLA's absorbed projections: q_nope · W_UK per head into the latent space ('kn', W_UK being
 * kv_b_proj's k rows), and the latent attention output · W_UVᵀ per head back out ('nk').
 */
export interface HeadMatmulAttrs {
  op: 'head_matmul';
  heads: number;
  /** Output columns per head. */
  N: number;
  /** Reduction length (input columns per head). */
  K: number;
  wLayout: 'nk' | 'kn';
  /**
   * How w is stored: 'f16' two halves per u32 word (--precision f16, and f16 too under q8 / q4:
   * this kernel reads no quantised blocks); products accumulate in f32. Absent: 'f32'.
   */
  wType?: 'f32' | 'f16';
}

/**
 * H2O (heavy-hitter oracle) attention over a KV cache of `budget` rows per kv head, for causal
 * decode at any context (src/ops/h2o.ts has the rule and why it is per kv head). Each kv head's
 * rows hold the keys (already rotated at their absolute positions) and values of the tokens it
 * keeps, and the `rows` state their positions and accumulated attention scores. Token p first takes a row: row p while
 * p < budget, else the row of the kept token with the smallest score (ties: the oldest) among
 * those that are neither sink tokens (position < sinkTokens) nor among the `recent` tokens before
 * p; then its queries attend over the kept rows and every kept row's score grows by the
 * probability the kv head's query heads gave it. A step of T tokens runs this token by token, so
 * a prefill equals the same tokens decoded one at a time.
 */
export interface H2oAttentionAttrs {
  op: 'h2o_attention';
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  softcap: number | null;
  /** Cache rows: the most tokens each kv head keeps. */
  budget: number;
  /** The most recent tokens before the current one are never evicted. */
  recent: number;
  /** Positions 0 .. sinkTokens-1 are never evicted. */
  sinkTokens: number;
  /** Element type of both caches (see KvType; f16 needs an even headDim); absent: 'f32'. */
  kvType?: KvType;
  /** Batched decode (src/ops/batch.ts): B sequences, each its own budget rows and scores. */
  batch?: number;
}

/**
 * NSA (native sparse attention, DeepSeek 2025; semantics and fla's rules in src/ops/nsa.ts), in
 * fla's form: one block size l serves compression (mean pooling, stride l) and selection.
 * nsa_compress: after kv_write, each token of the step that completes a block (position p with
 * (p + 1) % block = 0) writes that block's mean key and value to row (p + 1) / block − 1 of the
 * compressed caches kcmp / vcmp [blocks, kvHeads·headDim] (blocks = ceil(capacity / block)).
 */
export interface NsaCompressAttrs {
  op: 'nsa_compress';
  kvHeads: number;
  headDim: number;
  block: number;
  /** Rows of kcache / vcache. */
  capacity: number;
  /** Batched decode (src/ops/batch.ts): B sequences, each its own caches and compressed rows. */
  batch?: number;
}

/** What NSA's two attention branches share (src/mixers/nsa.ts builds both from one object). */
export interface NsaAttentionShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  block: number;
  select: number;
  capacity: number;
  /** Batched decode (src/ops/batch.ts): B sequences, each its own caches and block picks. */
  batch?: number;
}

/**
 * NSA's compressed branch and block selection: query p attends over the complete compressed
 * blocks (out, zero when there is none), and for each kv head picks the `select` blocks of
 * highest importance (the mean over the group's query heads of their compressed attention
 * probabilities; blocks 0, p/block − 1 and p/block always count as 1), written to picks
 * [T, kvHeads·select] best first, padded with NSA_NO_BLOCK.
 */
export interface NsaCompressedAttrs extends NsaAttentionShape {
  op: 'nsa_compressed';
}

/** NSA's selected branch: query p attends over the keys ≤ p of the blocks nsa_compressed picked. */
export interface NsaSelectedAttrs extends NsaAttentionShape {
  op: 'nsa_selected';
}

/**
 * DeepSeek sparse attention's lightning indexer (DeepSeek-V3.2, src/ops/indexer.ts): for the
 * query at position p, key position j <= p scores
 *   I(p, j) = Σ_h w[t, h] · weightScale · relu(scale · q[t, h] · k[j]),
 * with one key per position (kcache, [capacity, dim], shared by the index heads), and `sel` lists
 * the min(topk, p + 1) best positions in ascending order (ties: the lower position), padded with
 * 0xffffffff.
 */
export interface IndexerTopkAttrs {
  op: 'indexer_topk';
  /** Index heads. */
  heads: number;
  /** Width of each index q head and of the index key. */
  dim: number;
  /** Positions kept per query. */
  topk: number;
  /** Inside the relu: dim^-0.5 (HF softmax_scale). */
  scale: number;
  /** On each head weight: heads^-0.5. */
  weightScale: number;
  /** Cache rows. */
  capacity: number;
  /** Element type of the index key cache (see KvType; f16 needs an even dim); absent: 'f32'. */
  kvType?: KvType;
  /** Batched decode (src/ops/batch.ts): B sequences, each its own index keys and top-k. */
  batch?: number;
}

/**
 * Attention restricted to listed positions (DeepSeek sparse attention): query t attends to the
 * cache rows sel[t, 0..topk) (entries of 0xffffffff are empty), the list indexer_topk gives, in
 * its order. Otherwise as `attention` with causal true, no window, softcap or sinks: GQA by
 * heads / kvHeads, vHeadDim, vFromK (MLA's latent cache), kvType.
 */
export interface SparseAttentionAttrs {
  op: 'sparse_attention';
  heads: number;
  kvHeads: number;
  headDim: number;
  vHeadDim: number;
  scale: number;
  /** Entries of sel per query. */
  topk: number;
  capacity: number;
  kvType?: KvType;
  vFromK?: number | null;
  /** Batched decode (src/ops/batch.ts): B sequences; row t's sel lists rows of its own cache. */
  batch?: number;
}

/** The residual add: out = a + scale · b (scale: the model's residual multiplier, usually 1). */
export interface AddAttrs {
  op: 'add';
  width: number;
  scale: number;
  /**
   * a + scale·b in a denoising step (step.keys > 0), a in an encoding step, where b is not read:
   * its producer (a denoising-only node, GraphNode.denoising) did not run.
   */
  phased?: boolean;
}

/**
 * Row-wise concatenation: out[t] = [a[t], b[t]] (Zamba2's shared block reads the residual stream
 * and the original embeddings side by side, normalised together).
 */
export interface ConcatAttrs {
  op: 'concat';
  widthA: number;
  widthB: number;
  /**
   * Concatenate per group instead of per row: a and b are each `groups` equal groups, and
   * out[t] = [a_0, b_0, a_1, b_1, …] (MLA's absorbed query: each head's latent part, then its
   * rope part). Absent: 1, the plain row concatenation.
   */
  groups?: number;
}

/** out = act(x). */
export interface ActAttrs {
  op: 'act';
  act: Activation;
  width: number;
}

/** The gated linear unit: out = act(gate) · up. */
export interface GluAttrs {
  op: 'glu';
  act: Activation;
  width: number;
}

/** out = cap · tanh(x / cap) over rows T (or the L logit rows). */
export interface SoftcapAttrs {
  op: 'softcap';
  cap: number;
  width: number;
  rows: 'T' | 'L';
}

/**
 * out = the first T rows of a [rows, width] state: a per-step input the host writes into a state
 * buffer (DiffusionGemma's self-conditioning probabilities, written before a denoising step), read
 * as the step's activation. Needs T <= rows.
 */
export interface StateRowsAttrs {
  op: 'state_rows';
  rows: number;
  width: number;
}

/**
 * probs[r] = softmax(logits[r] / t) for the step's T rows, into the first T rows of a [rows,
 * vocab] state (the rest untouched); t is the Step uniform's temperature, and t = 0 gives the
 * one-hot of the lowest-id argmax (the limit). DiffusionGemma's self-conditioning input, written
 * on the GPU from the denoising step's logits (src/ops/softmax-rows.ts, runtime/entropy-diffusion.ts).
 */
export interface SoftmaxRowsAttrs {
  op: 'softmax_rows';
  rows: number;
  vocab: number;
}

/**
 * The entropy-bound sampler's per-row statistics of the step's T rows of logits [T, vocab]: per
 * row the lowest-id argmax, the drawn token (argmax of l/t plus the seeded Gumbel noise of
 * (seed, draw, row, id); the argmax at t = 0) and the entropy of softmax(l / t) (0 at t = 0), as
 * ENTROPY_ROW_WORDS u32 words (src/ops/entropy-rows.ts); t, seed and draw from the Step uniform.
 * Run after DiffusionGemma's denoising step (runtime/entropy-diffusion.ts), so the host reads
 * these words instead of the logits.
 */
export interface EntropyRowsAttrs {
  op: 'entropy_rows';
  vocab: number;
}

/**
 * Samples a token from the last row of logits [L, vocab] (semantics in src/ops/sampling.ts) and
 * writes it to token[0] and to ids[0], the next step's input. Reads temperature, topK, topP,
 * seed and draw from the Step uniform.
 */
export interface SampleAttrs {
  op: 'sample';
  /**
   * Batched decode (compile --batch B, B > 1): the step's rows are B sequences at one shared
   * position, row s reading and writing its own slice s of every per-sequence state (src/ops/batch.ts).
   * Absent: rows are consecutive tokens of one sequence.
   */
  batch?: number;
  vocab: number;
}

/** out = a · b, elementwise. */
export interface MulAttrs {
  op: 'mul';
  width: number;
}

/*
 * Recurrent state (conv1d, selective_scan, ssd, linear_recurrence): state reset rule. When step.pos === 0 the
 * incoming state is treated as all zeros (a new sequence), in the references and the kernels
 * alike, so the runtime never has to clear state buffers; the state written at the end of
 * the step is always valid.
 */

/**
 * Causal depthwise conv1d over time with carried state (Mamba's and LFM2's short conv).
 * With u = [state rows (kernel−1, oldest first); x rows]:
 *   out[t, c] = act(bias[c] + Σ_j w[c, j] · u[t + j, c])
 * and afterwards state = the last kernel−1 rows of u (for T < kernel−1 that keeps some old
 * state rows). HF's conv weight [channels, 1, kernel] is stored as [channels, kernel].
 */
export interface Conv1dAttrs {
  op: 'conv1d';
  /**
   * Batched decode (compile --batch B, B > 1): the step's rows are B sequences at one shared
   * position, row s reading and writing its own slice s of every per-sequence state (src/ops/batch.ts).
   * Absent: rows are consecutive tokens of one sequence.
   */
  batch?: number;
  channels: number;
  kernel: number;
  bias: boolean;
  /** Apply SiLU after the bias (Mamba); false for LFM2's short conv. */
  silu: boolean;
}

/**
 * Mamba-1 selective scan, per channel d and state n:
 *   δ = softplus(dt[t,d]) (identity above 20, like the references), A = −exp(A_log[d,n])
 *   h[d,n] ← exp(δ·A) · h[d,n] + δ · B[t,n] · x[t,d];  y[t,d] = Σ_n h[d,n] · C[t,n]
 *   out[t,d] = (y + D[d] · x[t,d]) · silu(z[t,d])
 * dt already includes dt_proj's bias.
 */
export interface SelectiveScanAttrs {
  op: 'selective_scan';
  /**
   * Batched decode (compile --batch B, B > 1): the step's rows are B sequences at one shared
   * position, row s reading and writing its own slice s of every per-sequence state (src/ops/batch.ts).
   * Absent: rows are consecutive tokens of one sequence.
   */
  batch?: number;
  dInner: number;
  dState: number;
}

/**
 * Mamba-1's decode middle in one op (made by the mamba1-decode fusion, src/passes/fuse.ts):
 * on the conv output x [T, dInner] it computes
 *   dbc = x_proj x                      (R = dtRank + 2·dState rows: dt, B, C)
 *   dt, B, C = rms(dt), rms(B), rms(C)  (Jamba's inner norms, when normEps is set)
 *   δ_in = dt_proj dt + dt_bias
 * and then the selective scan with its gate exactly as selective_scan does. Every parameter is
 * one flat packed tensor `w` (MAMBA1_STEP_PACK gives the offsets), so the kernel binds five
 * storage buffers.
 */
export interface Mamba1StepAttrs {
  op: 'mamba1_step';
  /**
   * Batched decode (compile --batch B, B > 1): the step's rows are B sequences at one shared
   * position, row s reading and writing its own slice s of every per-sequence state (src/ops/batch.ts).
   * Absent: rows are consecutive tokens of one sequence.
   */
  batch?: number;
  dInner: number;
  dState: number;
  dtRank: number;
  /** eps of the RMSNorms on dt, B and C (no bias, no unit offset); null for none. */
  normEps: number | null;
  /**
   * true: x_proj runs inside the op (its weight leads the pack). false: x_proj's result comes in
   * as input `dbc` [T, R] from a matmul of its own, and the pack starts at dt_proj: every
   * workgroup of the one-launch kernel repeats x_proj, which costs more than a dispatch once its
   * weight is large (src/passes/fuse.ts, MAMBA1_STEP_XPROJ_BYTES).
   */
  xProj: boolean;
}

/**
 * Mamba-2 SSD (state-space duality), per head h (head dim p, state n, group g = h / (heads/groups)):
 *   δ = clamp(softplus(dt[t,h] + dtBias[h]), dtMin, dtMax), a = −exp(aLog[h])
 *   S[h,p,n] ← exp(δ·a) · S[h,p,n] + δ · x[t,h,p] · B[t,g,n];  y[t,h,p] = Σ_n S[h,p,n] · C[t,g,n]
 *   out[t,h,p] = y + D[h] · x[t,h,p]       (the gated norm is a separate op)
 * Kernels use the chunked SSD algorithm with `chunk` tokens per chunk.
 */
export interface SsdAttrs {
  op: 'ssd';
  /**
   * Batched decode (compile --batch B, B > 1): the step's rows are B sequences at one shared
   * position, row s reading and writing its own slice s of every per-sequence state (src/ops/batch.ts).
   * Absent: rows are consecutive tokens of one sequence.
   */
  batch?: number;
  heads: number;
  headDim: number;
  dState: number;
  groups: number;
  chunk: number;
  dtMin: number;
  dtMax: number;
  /**
   * dtBias, aLog and d come as one input `p` [3·heads] (in that order): the ssd-decode fusion
   * packs them so the one-launch decode kernel binds 7 storage buffers, within WebGPU's default
   * 8 (unpacked it needs 9 and falls back to the chunked launches). Decode (one token) only.
   * Absent: false.
   */
  packed?: boolean;
  /**
   * Decode's fused form (the mamba2-decode fusion, src/passes/fuse-mamba2.ts): x, dt, B and C
   * are column ranges of one input `inrow` [T, cols] (Mamba-2's in_proj output after its conv)
   * starting at these columns, and with `z` the output is gated, out = (y + D·x) · silu(z[t]),
   * z read from `inrow` too. Needs packed. Absent: x, dt, b and c are inputs of their own.
   */
  row?: SsdRow;
}

/** Where an SSD's inputs sit in its one input row (SsdAttrs.row); z null: no gate. */
export interface SsdRow {
  cols: number;
  x: number;
  b: number;
  c: number;
  dt: number;
  z: number | null;
}

/**
 * Mamba-2's gated RMSNorm: out = rmsnorm_per_group(x · silu(z)) · w, groups of `group` elements;
 * normBeforeGate: out = rmsnorm_per_group(x) · w · silu(z) (HF's norm_before_gate=True, and
 * fla's FusedRMSNormGated on the heads of a linear-attention output).
 */
export interface GatedNormAttrs {
  op: 'gated_norm';
  width: number;
  group: number;
  eps: number;
  normBeforeGate: boolean;
  /**
   * w is one [group] weight shared by every group (fla's per-head output norm) instead of one
   * weight per column of the row ([width], Mamba-2's). Absent means false.
   */
  groupWeight?: boolean;
}

/**
 * The linear recurrence every linear-attention family runs (the survey's unified form; semantics,
 * CPU reference and cost in src/ops/linear-recurrence.ts). Per state head h (of `heads`), with
 * S_h [keyDim, valueDim] (plus a normaliser column z when `normalize`) and the head of each input
 * chosen by headOf(h, X) = floor(h / (heads / X)) for that input's head count X:
 *   decay:  S ← D_t S   with D_t = diag(exp(g)): g ≤ 0 a natural-log decay, one per head
 *           ('fixed': g [gateHeads], constant over time, RetNet's log γ; 'head': g [T, gateHeads],
 *           Mamba-2 / gated DeltaNet) or one per key dimension ('key': g [T, gateHeads·keyDim],
 *           GLA, HGRN2, RWKV-7); 'none': D = I
 *   update: 'add'   S ← S + k vᵀ                                  (linear attention, GLA, RetNet)
 *           'delta' S ← S + β k (v − Sᵀk)ᵀ on the decayed S        (DeltaNet, gated DeltaNet)
 *           'dplr'  S ← D S_{t−1} + a (bᵀ S_{t−1}) + k vᵀ          (RWKV-7: a = kk·α, b = −kk)
 *   out_t = S_tᵀ (scale · q_t), and with `normalize` divided by (scale · q_t)·z_t + normEps, where
 *   z_t = D_t z_{t−1} + k_t is the running key sum (fla's normalised linear attention).
 * Feature maps, gates, l2 norms and β are computed by the ops before it (pointwise, norm), which
 * the fusion pass may fold into it; the recurrence itself has no activation.
 */
export interface LinearRecurrenceAttrs {
  op: 'linear_recurrence';
  /**
   * Batched decode (compile --batch B, B > 1): the step's rows are B sequences at one shared
   * position, row s reading and writing its own slice s of every per-sequence state (src/ops/batch.ts).
   * Absent: rows are consecutive tokens of one sequence.
   */
  batch?: number;
  /** State heads; out has this many heads of valueDim. */
  heads: number;
  /** Heads of q, k, v and of the per-head gates (g, beta, a, b); each divides heads. */
  qHeads: number;
  kHeads: number;
  vHeads: number;
  gateHeads: number;
  keyDim: number;
  valueDim: number;
  /** Multiplier on q (usually keyDim^-0.5; 1 for RWKV-7). */
  scale: number;
  decay: 'none' | 'fixed' | 'head' | 'key';
  update: 'add' | 'delta' | 'dplr';
  /** Keep a running key sum z as an extra state column and divide out by q·z + normEps. */
  normalize: boolean;
  normEps: number;
  /** Work folded in from the ops that computed q, k, g and beta (the fusion pass); absent: none. */
  prologue?: RecurrencePrologue;
  /**
   * RWKV-7's key preparation and output correction, fused in (the rwkv7-recurrence fusion; see
   * src/mixers/rwkv7.ts): k is the raw key and a the in-context rate (sigmoid applied); there is
   * no b; the parameter input `rwkv` holds k_k, k_a, r_k ([heads·keyDim] each), then the group
   * norm's weight and bias ([heads·valueDim] each). Per token and head, with q (r) as loaded:
   *   kk = l2norm(k·k_k, kkEps),  k ← k·(1 + (a − 1)·k_a),  a ← kk·a,  b = −kk
   * run the dplr update with those, and write
   *   out = LayerNorm_head(o, normEps)·w + bias + (Σ_i q_i·k_i·r_k_i)·v
   * Needs update 'dplr', decay 'key', one head count for all inputs, no batch and no l2 or rope
   * prologue; a head's value columns in one workgroup. Absent or null: none.
   */
  rwkv7?: {
    kkEps: number;
    normEps: number;
    /**
     * The decay's and in-context rate's LoRA up-projections fused in too (the rwkv7-lora-up
     * fusion): inputs w_d [T, decayRank] and a_d [T, aRank] (the down-projections' outputs)
     * replace g and a, and `rwkv` continues with W_w [heads·keyDim, decayRank], b_w, W_a
     * [heads·keyDim, aRank], b_a; then g = −e^(−0.5)·sigmoid(W_w·tanh(w_d) + b_w) and
     * a = sigmoid(W_a·a_d + b_a) (a head's rows are its workgroup's alone). Needs no prologue.
     * With vRank (a later RWKV-7 layer's value residual, v_lora): inputs v_first [T, heads·
     * valueDim] and v_d [T, vRank] too, `rwkv` continuing with W_v [heads·valueDim, vRank], b_v,
     * and the v every use reads is v + (v_first − v)·sigmoid(W_v·v_d + b_v).
     */
    lora?: { decayRank: number; aRank: number; vRank?: number } | null;
  } | null;
}

/** Inputs of a linear recurrence that a fused prologue may compute. */
export type PrologueInput = 'q' | 'k' | 'v' | 'g' | 'beta';

/** A pointwise op's expression, evaluated by the op it was folded into (PointwiseAttrs less width). */
export interface FusedPointwise {
  inputs: Record<string, PointwiseInput>;
  expr: PointwiseExpr;
}

/**
 * What the recurrence-prologue fusion folds into a linear recurrence, done as its kernel loads
 * the inputs, so decode pays one dispatch for the recurrence and the gates, feature maps and
 * l2 norms before it.
 */
export interface RecurrencePrologue {
  /**
   * Inputs computed instead of read: column c of q, k, g or beta at token t is the expression at
   * (t, c) over the recurrence inputs its `inputs` name (they replace it among the recurrence's
   * inputs; expressions may share one, as gated DeltaNet's β and g share b|a).
   */
  exprs: Partial<Record<PrologueInput, FusedPointwise>>;
  /**
   * Then q and/or k (those in `of`) are rotated as the rope op with pairs 'half' rotates them:
   * the first rotaryDim columns of each key head, at positions pos + t, from the inputs rope_cos
   * and rope_sin ([capacity, rotaryDim / 2], the rope tables). RetNet's q and k.
   */
  rope?: RecurrenceRope;
  /** Then each key head's row of q or k is l2-normalised with this eps (the l2 norm op's). */
  l2: Partial<Record<'q' | 'k', number>>;
  /**
   * An expression input computed, not read: value (t, c) of input `name` (read by the
   * expressions as any other, its column map giving c) is b[c] + Σ_r w[c, r] · x[t, r] over
   * the bindings `<name>_x` [T, rank], `<name>_w` [cols, rank] and `<name>_b` [cols] (when
   * bias): GLA's low-rank gate's second projection (src/passes/fuse-linear.ts). Absent: none.
   */
  lowRank?: RecurrenceLowRank;
}

export interface RecurrenceLowRank {
  name: string;
  rank: number;
  /** Columns of the computed input (those of the matmul it replaces). */
  cols: number;
  bias: boolean;
}

export interface RecurrenceRope {
  of: ('q' | 'k')[];
  rotaryDim: number;
  /** Rows of the tables. */
  capacity: number;
}

/** An elementwise expression over named inputs (see PointwiseAttrs). */
export type PointwiseExpr =
  | { in: string }
  | { const: number }
  | { fn: PointwiseFn; x: PointwiseExpr }
  | { bin: PointwiseBin; a: PointwiseExpr; b: PointwiseExpr };
export type PointwiseFn =
  | 'neg'
  | 'exp'
  | 'log'
  | 'log1p'
  | 'sqrt'
  | 'tanh'
  | 'sigmoid'
  | 'logsigmoid'
  | 'softplus'
  | 'silu'
  | 'relu'
  | 'elu1';
export type PointwiseBin = 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' | 'logaddexp';

/**
 * How output column c of a pointwise op reads an input: column offset + floor(c / (inner·repeat))·inner +
 * c mod inner of a [T, cols] activation (perToken) or a [cols] parameter. inner = cols, repeat = 1
 * reads column c; inner = 1, repeat = d reads c / d (a per-head value over its d columns); inner = d,
 * repeat = r repeats each head of d columns r times (kv heads shared by query heads). offset reads
 * a column range of a wider tensor (gated DeltaNet's b and a, two halves of one projection).
 */
export interface PointwiseInput {
  perToken: boolean;
  cols: number;
  inner: number;
  repeat: number;
  /** First column read; absent means 0. */
  offset?: number;
}

/**
 * out[t, c] = expr evaluated at (t, c): the gates and feature maps of the linear-attention
 * families (GLA's logsigmoid(x)/16, gated DeltaNet's −exp(A)·softplus(a + dt_bias), elu+1, β =
 * sigmoid(b)) as one op kind, so one CPU evaluator and one WGSL emitter serve them all and the
 * fusion pass can fold them into the op that reads them.
 */
export interface PointwiseAttrs {
  op: 'pointwise';
  width: number;
  inputs: Record<string, PointwiseInput>;
  expr: PointwiseExpr;
}

/**
 * RWKV's token shift: each row's predecessor in its sequence. out[t] = x[t − 1] for t ≥ 1 and
 * out[0] = state, the last row of the previous step (zeros at pos 0, by the state reset rule);
 * afterwards state = x[T − 1]. The mixes that read it (x + (out − x)·μ) are pointwise ops.
 */
export interface TokenShiftAttrs {
  op: 'token_shift';
  /**
   * Batched decode (compile --batch B, B > 1): the step's rows are B sequences at one shared
   * position, row s reading and writing its own slice s of every per-sequence state (src/ops/batch.ts).
   * Absent: rows are consecutive tokens of one sequence.
   */
  batch?: number;
  width: number;
}

/**
 * The sum of each contiguous group of `group` columns: out[t, j] = Σ_i x[t, j·group + i], one
 * column per head (RWKV-7's per-head r·k·r_k before it scales v). f64 accumulation.
 */
export interface GroupSumAttrs {
  op: 'group_sum';
  width: number;
  group: number;
}

/**
 * Mixture-of-experts router: the top-k experts of each token and their weights, from router
 * logits [T, experts] (the router matmul's output, GPT-OSS's router bias included).
 * - scoring 'softmax': p = softmax(logits) over all experts; the k largest are selected (ranked by
 *   logit, which orders them like p); weight p (normalize false: Jamba, Qwen3-MoE without
 *   norm_topk_prob) or p / Σ_selected p (normalize: Mixtral, Qwen3-MoE with norm_topk_prob, and
 *   GPT-OSS, whose softmax over the k selected logits is the same number).
 * - scoring 'sigmoid' (DeepSeek-V3): s = sigmoid(logits); selection ranks s + bias (the correction
 *   bias, used for selection only). Group-limited when groups > 1: experts form `groups` equal
 *   groups, each scored by the sum of its two best ranked values; only the `topkGroups` best groups
 *   compete and every other expert ranks with value 0 (HF DeepseekV3TopkRouter's masked_fill).
 *   Weight s (normalize: s / (Σ_selected s + 1e-20)).
 * Weights are then multiplied by `scale` (routed_scaling_factor). Ties rank the lower expert index
 * first: torch.topk's CPU rule with torch.use_deterministic_algorithms(True), whose comparator
 * breaks ties by index (aten TopKImpl.h); in PyTorch's default mode the order of exact ties comes
 * from std::nth_element / std::sort and is unspecified, though small rows come out lowest index
 * first in practice. ids of a token are in rank order, best first.
 * `load` counts routed tokens per expert over the sequence's life (for `strata run --stats`).
 */
export interface MoeRouteAttrs {
  op: 'moe_route';
  experts: number;
  topK: number;
  scoring: 'softmax' | 'sigmoid';
  normalize: boolean;
  scale: number;
  /** Input `bias` [experts] is added to the selection ranking only (sigmoid scoring). */
  correctionBias: boolean;
  /** Group-limited selection (sigmoid scoring); 1 and 1 for none. */
  groups: number;
  topkGroups: number;
  /**
   * Input `expertScale` [experts]: each selected weight, after normalisation and `scale`, is
   * multiplied by its expert's entry (Gemma 4's per_expert_scale). Absent: false.
   */
  expertScale?: boolean;
}

/**
 * Groups the step's (token, k) pairs by expert, the schedule the grouped expert matmul runs:
 * pair p = t*topK + j goes to expert ids[p]. order lists the pairs expert by expert (ascending p
 * within an expert), offsets[e] is where expert e's run starts (offsets[experts] = T*topK), and
 * counts[e] its length (0 for an expert no token chose).
 */
export interface MoeGroupAttrs {
  op: 'moe_group';
  experts: number;
  topK: number;
}

/**
 * The routed experts' projections for the selected (token, expert) pairs only:
 * out[p] = f(x[row(p)] · W[ids[p]]ᵀ + b[ids[p]]) for p = t*topK + j, where row(p) is t
 * (input 'token': x is [T, K]) or p (input 'pair': x is [T*topK, K], the previous projection's
 * out). w is [expertCount, N (or 2N gated: each expert's gate rows then up rows), K], bias likewise
 * [expertCount, N or 2N]. f: gated: act(g) * u, or with `clamp` GPT-OSS's clamped SwiGLU
 * g' = min(g, limit), u' = clamp(u, −limit, limit), y = g'·σ(alpha·g')·(u' + 1); ungated: act(y).
 * The node holds experts [expertStart, expertStart + expertCount) (weights split over bindings);
 * rows of other experts' pairs are left as they are. `grouped` nodes also take the moe_group
 * schedule (order, offsets), which changes nothing in the result: it lets prefill kernels share
 * each expert's weight tiles between its tokens. Decode reads only its k experts' weights.
 */
export interface MoeMatmulAttrs {
  op: 'moe_matmul';
  /** All experts of the layer (ids range). */
  experts: number;
  topK: number;
  N: number;
  K: number;
  input: 'token' | 'pair';
  gated: boolean;
  act: Activation | null;
  clamp: { limit: number; alpha: number } | null;
  bias: boolean;
  grouped: boolean;
  expertStart: number;
  expertCount: number;
  /**
   * How w is stored, as a matmul's wType (blocks of q8 / q4 run along K within one expert's
   * row); products accumulate in f32 whatever the storage. Biases stay f32.
   */
  wType: WeightType;
  /**
   * Decode fusions (src/passes/fuse-moe.ts), absent or null when none. `prologue` (input
   * 'token'): x is the sublayer's input before its norm, which the kernel applies as it loads x
   * (inputs normW [K], normB [K] for a biased LayerNorm), as a matmul's norm prologue does.
   */
  prologue?: NormSpec | null;
  /** Routing in the kernel (input 'token', see MoeInlineRoute). */
  route?: MoeInlineRoute | null;
  /** The combine in the kernel (input 'pair', see MoeInlineCombine). */
  combine?: MoeInlineCombine | null;
  /**
   * w (and bias) hold m = sharedExperts more experts after the routed ones: the shared expert's
   * MLP (the routed experts' gating and activation, m times their hidden size) cut into m experts
   * of hidden columns cH..(c+1)H. The lowering (src/graph/blocks/moe.ts) stores them there for
   * every phase, so the decode fusion's weights are the prefill's; routed pairs never select them.
   * Absent or 0: none.
   */
  sharedExperts?: number;
  /**
   * Decode fusion: every token also computes those m experts as its pairs topK … topK + m − 1
   * (expert experts + c at slot topK + c), so pair p = t·(topK + m) + j and x ('pair') and out
   * are [T, topK + m, ·]; ungrouped only. The combine weighs those slots by sigmoid(sharedGate[t])
   * (or 1) as moe_combine weighs its shared input: their sum is the shared MLP's output. ids and
   * weights stay [T, topK].
   */
  sharedSlots?: boolean;
}

/**
 * moe_route folded into the expert projection that first reads its ids: the node takes the router
 * logits [T, experts] (and routeBias [experts] when correctionBias, expertScale [experts] when
 * expertScale) instead of ids, routes each token as moe_route does, and writes ids and weights
 * [T, topK] as outputs for the next projection. `load`: it also counts the routed tokens per
 * expert (moe_route's in-place `load`). Only a node holding expert 0 routes; the later parts of
 * a split projection read its ids.
 */
export type MoeInlineRoute = Omit<MoeRouteAttrs, 'op' | 'experts' | 'topK'> & { load: boolean };

/**
 * moe_combine folded into the down projection (input 'pair'): out is [T, N], out[t] =
 * residual[t] + scale·(Σ_j weights[t, j]·y[t·topK + j] + g[t]·shared[t]) with y this node's
 * products, as moe_combine defines it. A split projection's first part (expertStart 0) adds the
 * residual and shared terms and its experts' pairs; each later part adds scale·(its experts'
 * pairs) to out in place. `load`: the node counts the routed tokens per expert (first part only).
 */
export type MoeInlineCombine = Omit<MoeCombineAttrs, 'op' | 'topK' | 'width'> & {
  load: boolean;
};

/**
 * Weighted sum of each token's expert outputs back in token order, plus shared experts and the
 * residual: out[t] = residual[t] + scale·(Σ_j weights[t, j]·y[t*topK + j] + g[t]·shared[t]), where
 * g is sigmoid(sharedGate[t]) (Qwen3-Next's shared_expert_gate) or 1, and scale the model's
 * residual multiplier (Granite; 1 for most).
 */
export interface MoeCombineAttrs {
  op: 'moe_combine';
  topK: number;
  width: number;
  scale: number;
  residual: boolean;
  shared: boolean;
  sharedGate: boolean;
}

export type OpAttrs =
  | EmbedAttrs
  | NormAttrs
  | MatmulAttrs
  | RopeAttrs
  | KvWriteAttrs
  | AttentionAttrs
  | H2oAttentionAttrs
  | NsaCompressAttrs
  | NsaCompressedAttrs
  | NsaSelectedAttrs
  | IndexerTopkAttrs
  | SparseAttentionAttrs
  | AddAttrs
  | ConcatAttrs
  | ActAttrs
  | GluAttrs
  | SoftcapAttrs
  | StateRowsAttrs
  | SoftmaxRowsAttrs
  | EntropyRowsAttrs
  | SampleAttrs
  | MulAttrs
  | Conv1dAttrs
  | SelectiveScanAttrs
  | Mamba1StepAttrs
  | SsdAttrs
  | GatedNormAttrs
  | LinearRecurrenceAttrs
  | PointwiseAttrs
  | TokenShiftAttrs
  | GroupSumAttrs
  | MoeRouteAttrs
  | MoeGroupAttrs
  | MoeMatmulAttrs
  | MoeCombineAttrs
  | HeadMatmulAttrs;

export type OpName = OpAttrs['op'];

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
  /**
   * Bidirectional attention sees keys [0, max(pos + T, keys)): cached rows after the step's own
   * (a diffusion sampler's dual cache recomputes a block against the K/V of what follows it).
   * Absent or 0: [0, pos + T). Causal attention ignores it.
   */
  keys?: number;
  /** Read by the `sample` reference only; absent means greedy. */
  sampling?: SamplingShape;
  /**
   * A batched step (src/ops/batch.ts) whose sequences sit at different positions: row s is at
   * pos + rowPos[s] (codegen/kernel-ir.ts ROW_POS). Absent: every row at pos.
   */
  rowPos?: readonly number[];
}
