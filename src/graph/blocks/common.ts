/**
 * Helpers shared by block lowerings: the pre-sublayer norm, the sublayer's residual add (with
 * its sandwich post-norm when the model has them) and plain linear layers.
 */
import { patternCapacityError } from '../../ops/block-sparse.ts';
import type { GraphBuilder } from '../builder.ts';
import {
  plainMatmul,
  type KvRing,
  type KvWriteAttrs,
  type PointwiseExpr,
  type PointwiseInput,
  type RopeLayout,
} from '../ops.ts';
import type { Dim, ParamSource } from '../ir.ts';
import type { AttentionSpec, ModelIR, RopeSpec } from '../../spec/model.ts';
import { postNormNames } from '../../import/names.ts';

/**
 * The model's norm over `width`-wide rows (the model's dim unless given): the pre-norm of the
 * residual stream, the final norm, sandwich post-norms, and a shared block's norms (its input
 * norm reads 2·dim); `prefix` is the canonical norm name (without `.weight`).
 */
export function preNorm(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  prefix: string,
  label: string,
  width: number = model.dim,
): number {
  const inputs: Record<string, number> = { x, w: b.param(`${prefix}.weight`, [width]) };
  if (model.norm.kind === 'layer' && model.norm.bias) inputs.b = b.param(`${prefix}.bias`, [width]);
  return b.op(
    { op: 'norm', norm: model.norm, width, group: width, residual: false },
    `${label} norm`,
    inputs,
    { out: { name: `${label}.norm`, shape: ['T', width] } },
  ).out;
}

/**
 * Constant multipliers folded into a linear layer's parameters, y = x (w·W)ᵀ + b·bias: an input
 * multiplier scales the weight only ((s·x) Wᵀ + b), an output one both (s·(x Wᵀ + b)).
 */
export interface LinearScale {
  weight: number;
  bias: number;
}

export const UNSCALED: LinearScale = { weight: 1, bias: 1 };

/** Multiply the layer's input by `inScale` and its output by `outScale`. */
export function linearScale(inScale: number, outScale: number): LinearScale {
  return { weight: inScale * outScale, bias: outScale };
}

/** A parameter times `factor` (the parameter itself when the factor is 1). */
export function scaledParam(
  b: GraphBuilder,
  name: string,
  shape: Dim[],
  source: ParamSource,
  factor: number,
): number {
  if (factor === 1) return b.param(name, shape, source);
  return b.param(`${name}#x${factor}`, shape, { kind: 'scaled', of: source, factor });
}

/** y = x Wᵀ (+ b) for a canonical linear layer `prefix` of shape [N, K]. */
export function linear(
  b: GraphBuilder,
  x: number,
  prefix: string,
  N: number,
  K: number,
  bias: boolean,
  label: string,
  rows: 'T' | 'L' = 'T',
  scale: LinearScale = UNSCALED,
): number {
  const param = (name: string, shape: Dim[], factor: number) =>
    scaledParam(b, name, shape, b.weight(name, shape), factor);
  const w = param(`${prefix}.weight`, [N, K], scale.weight);
  const bv = bias ? param(`${prefix}.bias`, [N], scale.bias) : null;
  return matmul(b, x, w, bv, N, K, label, rows);
}

/**
 * Rows [start, start + count) of a canonical [rows, cols] weight (a [rows] vector when cols is
 * 1) as a parameter of its own.
 */
export function weightRows(
  b: GraphBuilder,
  name: string,
  rows: number,
  start: number,
  count: number,
  cols: number,
  factor = 1,
): number {
  const whole = b.weight(name, cols === 1 ? [rows] : [rows, cols]);
  const shape = cols === 1 ? [count] : [count, cols];
  const source: ParamSource = { kind: 'rows', of: whole, start, count, cols };
  return scaledParam(b, `${name}#rows${start}`, shape, source, factor);
}

/** Rows `offset + [0, count)` of each block of a per-head interleaved weight. */
export interface RowPart {
  offset: number;
  count: number;
}

/**
 * For each part in turn, its rows of every block of `stride` rows (`blocks` of them) of a
 * canonical [blocks·stride, cols] weight, concatenated: per-head interleaved projections
 * (Qwen3-Next's q/gate in q_proj, q/k/v/z per key head in in_proj_qkvz, b/a in in_proj_ba)
 * pulled apart into contiguous parts.
 */
export function weightRowBlocks(
  b: GraphBuilder,
  name: string,
  blocks: number,
  stride: number,
  parts: readonly RowPart[],
  cols: number,
  factor = 1,
): number {
  const rows = blocks * parts.reduce((n, p) => n + p.count, 0);
  const shape = cols === 1 ? [rows] : [rows, cols];
  const of = b.weight(name, cols === 1 ? [blocks * stride] : [blocks * stride, cols]);
  const tag = parts.map((p) => `${p.offset}.${p.count}`).join('+');
  return scaledParam(
    b,
    `${name}#blocks${stride}.${tag}`,
    shape,
    {
      kind: 'concat',
      parts: parts.flatMap((p) =>
        Array.from({ length: blocks }, (_, i) => ({
          kind: 'rows' as const,
          of,
          start: i * stride + p.offset,
          count: p.count,
          cols,
        })),
      ),
    },
    factor,
  );
}

/** A linear layer over weightRowBlocks: some parts of a per-head interleaved projection. */
export function linearRowBlocks(
  b: GraphBuilder,
  x: number,
  prefix: string,
  blocks: number,
  stride: number,
  parts: readonly RowPart[],
  K: number,
  bias: boolean,
  label: string,
  scale: LinearScale = UNSCALED,
): number {
  const N = blocks * parts.reduce((n, p) => n + p.count, 0);
  const w = weightRowBlocks(b, `${prefix}.weight`, blocks, stride, parts, K, scale.weight);
  const bv = bias
    ? weightRowBlocks(b, `${prefix}.bias`, blocks, stride, parts, 1, scale.bias)
    : null;
  return matmul(b, x, w, bv, N, K, label, 'T');
}

/**
 * One output range of a canonical linear layer `prefix` of `rows` outputs:
 * y = x W[start:start+count]ᵀ (+ b[...]). Fused input projections (Mamba's in_proj, LFM2's BCx)
 * lower to one of these per part, so no slice op is needed and each part lands in its own tensor.
 */
export function linearRows(
  b: GraphBuilder,
  x: number,
  prefix: string,
  rows: number,
  start: number,
  count: number,
  K: number,
  bias: boolean,
  label: string,
  scale: LinearScale = UNSCALED,
): number {
  const w = weightRows(b, `${prefix}.weight`, rows, start, count, K, scale.weight);
  const bv = bias ? weightRows(b, `${prefix}.bias`, rows, start, count, 1, scale.bias) : null;
  return matmul(b, x, w, bv, count, K, label, 'T');
}

function matmul(
  b: GraphBuilder,
  x: number,
  w: number,
  bias: number | null,
  N: number,
  K: number,
  label: string,
  rows: 'T' | 'L',
): number {
  const inputs: Record<string, number> = { x, w };
  if (bias !== null) inputs.bias = bias;
  const shape: Dim[] = [rows, N];
  return b.op(plainMatmul(N, K, rows, bias !== null), label, inputs, {
    out: { name: label, shape },
  }).out;
}

/**
 * A sublayer's output y joins the residual stream x: x + s·y, or x + s·norm(y) with the model's
 * sandwich norms (Gemma 2/3), `postNorm` naming that norm's weights; s is the model's residual
 * multiplier (Granite). The fusion passes fold the add into the post-norm or the matmul.
 */
/**
 * A mixer sublayer as the families lay it out: the pre-norm of `input` (the residual x, or x plus
 * a shared block's output), `branch` on the normed rows, then the residual add of layer i (with
 * its sandwich post-norm when the model has them).
 */
export function mixerSublayer(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  input: number,
  i: number,
  normPrefix: string,
  label: string,
  branch: (h: number) => number,
): number {
  const h = preNorm(b, model, input, normPrefix, label);
  return sublayerResidual(b, model, x, branch(h), postNormNames(i).mixer, label);
}

export function sublayerResidual(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  y: number,
  postNorm: string,
  label: string,
): number {
  const out = model.postNorms ? preNorm(b, model, y, postNorm, `${label}.post`) : y;
  return residualAdd(b, x, out, model.dim, label, model.residualScale);
}

/** x + scale · y. */
export function residualAdd(
  b: GraphBuilder,
  x: number,
  y: number,
  width: number,
  label: string,
  scale = 1,
): number {
  return b.op(
    { op: 'add', width, scale },
    `${label} residual`,
    { a: x, b: y },
    {
      out: { name: `${label}.res`, shape: ['T', width] },
    },
  ).out;
}

/**
 * Causal depthwise conv over time with its state `state` ([kernel − 1, channels], updated in
 * place). `w` is [channels, kernel]; `bias` [channels] or null.
 */
export function causalConv(
  b: GraphBuilder,
  x: number,
  w: number,
  bias: number | null,
  state: number,
  channels: number,
  kernel: number,
  silu: boolean,
  label: string,
): number {
  const inputs: Record<string, number> = { x, w, state };
  if (bias !== null) inputs.bias = bias;
  return b.op(
    { op: 'conv1d', channels, kernel, bias: bias !== null, silu },
    `${label} conv1d`,
    inputs,
    { out: { name: `${label}.conv`, shape: ['T', channels] }, state },
  ).out;
}

/** A pointwise input read column for column: an activation [T, cols], or a parameter [cols]. */
export const columns = (cols: number, perToken = true): PointwiseInput => ({
  perToken,
  cols,
  inner: cols,
  repeat: 1,
});

/** out[t, c] = expr over `inputs` (each a tensor and how column c reads it), [T, width]. */
export function pointwiseOp(
  b: GraphBuilder,
  label: string,
  width: number,
  inputs: Record<string, [number, PointwiseInput]>,
  expr: PointwiseExpr,
): number {
  const ids = Object.fromEntries(Object.entries(inputs).map(([n, [id]]) => [n, id]));
  const reads = Object.fromEntries(Object.entries(inputs).map(([n, [, r]]) => [n, r]));
  return b.op({ op: 'pointwise', width, inputs: reads, expr }, label, ids, {
    out: { name: label, shape: ['T', width] },
  }).out;
}

/**
 * RWKV's token-shift mixes of x [T, width]: prev = token_shift(x) (its one-row state updated in
 * place), then for each mix vector μ (a [width] parameter) x + (prev − x)·μ, the lerp from each
 * row towards its predecessor that fla writes as x.addcmul(shifted − x, μ).
 */
export function tokenShiftMixes(
  b: GraphBuilder,
  x: number,
  state: number,
  width: number,
  mixes: readonly { name: string; mu: number }[],
  label: string,
): number[] {
  const prev = b.op(
    { op: 'token_shift', width },
    `${label} token shift`,
    { x, state },
    {
      out: { name: `${label}.prev`, shape: ['T', width] },
      state,
    },
  ).out;
  const xIn = { in: 'x' } as const;
  const lerp: PointwiseExpr = {
    bin: 'add',
    a: xIn,
    b: { bin: 'mul', a: { bin: 'sub', a: { in: 'prev' }, b: xIn }, b: { in: 'mu' } },
  };
  return mixes.map(({ name, mu }) =>
    pointwiseOp(
      b,
      `${label}.mix_${name}`,
      width,
      { x: [x, columns(width)], prev: [prev, columns(width)], mu: [mu, columns(width, false)] },
      lerp,
    ),
  );
}

/**
 * The RoPE cos/sin tables of `a.rope` (null without RoPE) as derived parameters of the cache's
 * capacity: one pair per distinct rope, shared by every layer that uses it.
 */
export function ropeTableParams(
  b: GraphBuilder,
  a: { rope: RopeSpec | null },
): { cos: number; sin: number } | null {
  if (!a.rope) return null;
  const key = JSON.stringify(a.rope);
  const shape = [b.capacity, a.rope.rotaryDim / 2];
  const tag = `rope.${hash(key)}`;
  return {
    cos: b.param(`${tag}.cos`, shape, {
      kind: 'rope_table',
      rope: a.rope,
      which: 'cos',
      capacity: b.capacity,
    }),
    sin: b.param(`${tag}.sin`, shape, {
      kind: 'rope_table',
      rope: a.rope,
      which: 'sin',
      capacity: b.capacity,
    }),
  };
}

/**
 * A rope node rotating the rows t ([T, heads·headDim]) by the tables of ropeTableParams, labelled
 * `${L} rope ${tag}` and named `${L}.${tag}rope`: how every mixer (attention, MLA, NSA, RetNet)
 * rotates its q and k.
 */
export function ropeNode(
  b: GraphBuilder,
  L: string,
  tables: { cos: number; sin: number },
  t: number,
  tag: string,
  layout: RopeLayout,
): number {
  return b.op(
    {
      op: 'rope',
      heads: layout.heads,
      headDim: layout.headDim,
      rotaryDim: layout.rotaryDim,
      pairs: layout.pairs,
      capacity: b.capacity,
    },
    `${L} rope ${tag}`,
    { x: t, cos: tables.cos, sin: tables.sin },
    { out: { name: `${L}.${tag}rope`, shape: ['T', layout.heads * layout.headDim] } },
  ).out;
}

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16);
}

/**
 * The cache of an attention layer: a row per position up to the capacity, or for streaming
 * attention (sinkTokens, StreamingLLM) a ring of sinkTokens + window + chunk − 1 rows (a prefill
 * chunk writes its keys before it reads them; see src/ops/attention.ts), unless that is no
 * smaller than the capacity.
 */
export function streamingCache(
  b: GraphBuilder,
  a: Pick<AttentionSpec, 'sinkTokens' | 'window'>,
): { rows: number; ring: KvRing | null; sinkTokens: number } {
  if (a.sinkTokens === null) return { rows: b.capacity, ring: null, sinkTokens: 0 };
  if (a.window === null) {
    throw new Error(`attention: sink_tokens ${a.sinkTokens} needs a window`);
  }
  const ringRows = a.sinkTokens + a.window + b.chunk - 1;
  if (!b.ringCaches || ringRows >= b.capacity) {
    return { rows: b.capacity, ring: null, sinkTokens: a.sinkTokens };
  }
  return { rows: ringRows, ring: { sink: a.sinkTokens }, sinkTokens: a.sinkTokens };
}

/**
 * attendOverCache for a layer with H2O eviction (src/ops/h2o.ts): q and k come rotated; k and v
 * go to the op itself, which picks their cache row (no kv_write). The caches hold evict.budget
 * rows whatever the capacity, beside each row's position and accumulated score per kv head.
 */
function heavyHitterAttention(
  b: GraphBuilder,
  a: AttentionSpec,
  i: number,
  L: string,
  qkv: { q: number; k: number; v: number },
  sinks: string | null,
  outName: string,
): number {
  const e = a.evict!;
  const where = `layer ${i}: attention evict h2o`;
  // A layer lowered alone to read back its weights (b.scratch) has no real capacity.
  if (e.budget > b.capacity && !b.scratch) {
    throw new Error(
      `${where}: budget ${e.budget} exceeds the KV capacity ${b.capacity} ` +
        `(compile with --capacity ${e.budget} or more, or give a budget of at most ${b.capacity})`,
    );
  }
  if (sinks !== null || a.window !== null || !a.causal) {
    throw new Error(`${where}: needs causal attention without a window or learned sinks`);
  }
  const kvCols = a.kvHeads * a.headDim;
  const kcache = b.state(`cache.k.${i}`, [e.budget, kvCols], b.kv);
  const vcache = b.state(`cache.v.${i}`, [e.budget, kvCols], b.kv);
  // Each row's position and score bits per kv head (src/ops/h2o.ts).
  const rows = b.state(`h2o.rows.${i}`, [e.budget, 2 * a.kvHeads], 'u32');
  return b.op(
    {
      op: 'h2o_attention',
      heads: a.heads,
      kvHeads: a.kvHeads,
      headDim: a.headDim,
      scale: a.scale,
      softcap: a.softcap,
      budget: e.budget,
      recent: e.recent,
      sinkTokens: a.sinkTokens ?? 0,
      kvType: b.kv,
    },
    `${L} h2o attention`,
    { ...qkv, kcache, vcache, rows },
    {
      out: { name: outName, shape: ['T', a.heads * a.headDim] },
      kcache,
      vcache,
      rows,
    },
  ).out;
}

/**
 * The attention core that every lowering with a KV cache shares: RoPE on the projected q and k,
 * k and v appended to layer i's own cache, attention over that cache. `sinks` names the per-head
 * sink logits' param (null: none); `outName` names the result.
 */
export function attendOverCache(
  b: GraphBuilder,
  a: AttentionSpec,
  i: number,
  L: string,
  qkv: { q: number; k: number; v: number },
  sinks: string | null,
  outName: string,
): number {
  const kvCols = a.kvHeads * a.headDim;
  let { q, k } = qkv;
  const tables = ropeTableParams(b, a);
  if (a.rope && tables) {
    const rope = (t: number, heads: number, tag: string) =>
      ropeNode(b, L, tables, t, tag, {
        heads,
        headDim: a.headDim,
        rotaryDim: a.rope!.rotaryDim,
        pairs: 'half',
      });
    q = rope(q, a.heads, 'q');
    k = rope(k, a.kvHeads, 'k');
  }
  if (a.evict) return heavyHitterAttention(b, a, i, L, { q, k, v: qkv.v }, sinks, outName);
  // Global tokens (Longformer) are sink tokens every query sees; causal, that is the whole
  // rule (the same ring), bidirectional, their queries also see every key (no ring then).
  const keySinks = { sinkTokens: a.global ?? a.sinkTokens, window: a.window };
  const { rows, ring, sinkTokens } = a.causal
    ? streamingCache(b, keySinks)
    : { rows: b.capacity, ring: null, sinkTokens: keySinks.sinkTokens ?? 0 };
  const pattern = a.pattern ?? null;
  const bad = pattern && !b.scratch ? patternCapacityError(pattern, b.capacity) : null;
  if (bad) throw new Error(`layer ${i}: attention pattern ${pattern!.kind}: ${bad}`);
  const kcache = b.state(`cache.k.${i}`, [rows, kvCols], b.kv);
  const vcache = b.state(`cache.v.${i}`, [rows, kvCols], b.kv);
  const write: KvWriteAttrs = {
    op: 'kv_write',
    width: kvCols,
    capacity: rows,
    columns: null,
    kvType: b.kv,
    ...(ring ? { ring } : {}),
  };
  b.op(write, `${L} k-append`, { x: k, cache: kcache }, { cache: kcache });
  b.op(write, `${L} v-append`, { x: qkv.v, cache: vcache }, { cache: vcache });
  return b.op(
    {
      op: 'attention',
      heads: a.heads,
      kvHeads: a.kvHeads,
      headDim: a.headDim,
      vHeadDim: a.headDim,
      scale: a.scale,
      causal: a.causal,
      ...(a.blockCausal ? { blockCausal: a.blockCausal } : {}),
      ...(a.phased ? { phased: true } : {}),
      window: a.window,
      softcap: a.softcap,
      sinks: sinks !== null,
      capacity: rows,
      kvType: b.kv,
      ...(sinkTokens > 0 ? { sinkTokens } : {}),
      ...(ring ? { ring, sinkTokens } : {}),
      ...(a.global && !a.causal ? { globalQueries: a.global } : {}),
      ...(pattern ? { blockSparse: pattern } : {}),
    },
    `${L} attention`,
    sinks === null
      ? { q, kcache, vcache }
      : { q, kcache, vcache, sinks: b.param(sinks, [a.heads]) },
    { out: { name: outName, shape: ['T', a.heads * a.headDim] } },
  ).out;
}
