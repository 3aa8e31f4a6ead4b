/**
 * The parts the linear-attention mixers (gla, hgrn2, retnet, linear_attn, deltanet, rwkv7) are
 * built from, each in one place: where a layer's weights and labels live, projections with fla's
 * short convolutions, the head layout of q/k/v, feature maps and other pointwise expressions, the
 * linear recurrence node, per-head l2 norms and the per-head output norm (with its gate). A mixer
 * file keeps only what is its own and composes these in its lowering.
 * Pointwise nodes themselves (`pointwiseOp`, `columns`) live in src/graph/blocks/common.ts, which
 * the older blocks share too (RWKV's token shift).
 */
import type { GraphBuilder } from '../graph/builder.ts';
import type { Dim } from '../graph/ir.ts';
import type {
  LinearRecurrenceAttrs,
  PointwiseBin,
  PointwiseExpr,
  PointwiseFn,
  PointwiseInput,
} from '../graph/ops.ts';
import { causalConv, columns, linear, mixerSublayer, pointwiseOp } from '../graph/blocks/common.ts';
import { layerPrefix } from '../import/names.ts';
import type { Issue, Namer } from '../spec/checks.ts';
import type { DslArg } from '../spec/dsl-value.ts';
import { opt, type ArgsOf } from '../spec/kind.ts';
import { posInt } from '../spec/schema-parts.ts';
import { int } from '../spec/values.ts';
import type { Activation, ModelIR } from '../spec/model.ts';

// ---------------------------------------------------------------------------------------------
// Where a layer's mixer names things.

/** Layer `layer`'s mixer: fla's weights under `prefix` (model.layers.<i>.attn), labels `label`. */
export interface MixerSite {
  layer: number;
  prefix: string;
  label: string;
}

/**
 * x + branch(norm(input)) for layer i with fla's layout: the pre-norm `model.layers.<i>
 * .input_layernorm`, the branch's weights under `model.layers.<i>.attn`, labels `l<i>.<tag>`.
 */
export function flaMixerSublayer(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  input: number,
  i: number,
  tag: string,
  branch: (h: number, at: MixerSite) => number,
): number {
  const at: MixerSite = { layer: i, prefix: `${layerPrefix(i)}.attn`, label: `l${i}.${tag}` };
  const norm = `${layerPrefix(i)}.input_layernorm`;
  return mixerSublayer(b, model, x, input, i, norm, at.label, (h) => branch(h, at));
}

/** fla's ShortConvolution: causal depthwise, kernel `kernel`, no bias, SiLU inside or none. */
export interface ShortConv {
  kernel: number;
  silu: boolean;
}

/**
 * fla's bias-free `<name>_proj` of the normed rows h, then (when `conv` is given) its short
 * convolution: weight `<name>_conv1d.weight` [width, kernel], state `conv.<layer>.<name>`.
 */
export function projection(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  at: MixerSite,
  name: string,
  width: number,
  conv: ShortConv | null = null,
): number {
  const label = `${at.label}.${name}`;
  const y = linear(b, h, `${at.prefix}.${name}_proj`, width, model.dim, false, label);
  if (conv === null) return y;
  const { kernel, silu } = conv;
  const w = b.param(`${at.prefix}.${name}_conv1d.weight`, [width, kernel]);
  const state = b.state(`conv.${at.layer}.${name}`, [kernel - 1, width]);
  return causalConv(b, y, w, null, state, width, kernel, silu, label);
}

// ---------------------------------------------------------------------------------------------
// The head layout of q, k and v (fla: num_heads, num_kv_heads, expand_k, expand_v).

/** Query (and state) heads, key/value heads each read by a group of query heads, head widths. */
export interface HeadLayout {
  heads: number;
  kvHeads: number;
  keyHeadDim: number;
  valueHeadDim: number;
}

/** `many` is a multiple of `few` (head counts where each head of one serves a group of the other). */
export function headMultipleIssues<S, K extends keyof S & string>(
  s: S,
  n: Namer,
  many: K,
  few: K,
  blame: K = few,
): Issue[] {
  if ((s[many] as number) % (s[few] as number) === 0) return [];
  const message = `${n(many)} (${String(s[many])}) must be a multiple of ${n(few)} (${String(s[few])})`;
  return [{ path: [blame], message }];
}

/** The DSL parameters of a head layout (gla, retnet, linear_attn). */
export const HEAD_LAYOUT_PARAMS = {
  heads: opt(int(1)),
  kv_heads: opt(int(1)),
  key_head_dim: opt(int(1)),
  value_head_dim: opt(int(1)),
};

/** Its ModelIR fields' schema. */
export const HEAD_LAYOUT_SCHEMA = {
  heads: posInt,
  kvHeads: posInt,
  keyHeadDim: posInt,
  valueHeadDim: posInt,
};

/**
 * The layout from the DSL arguments and fla's config defaults: `heads`, kv_heads = heads, head
 * widths int(dim · expandK or expandV) / heads.
 */
export function buildHeadLayout(
  a: ArgsOf<typeof HEAD_LAYOUT_PARAMS>,
  dim: number,
  defaults: { heads: number; expandK: number; expandV: number },
  fail: (message: string) => never,
): HeadLayout {
  const heads = a.heads ?? defaults.heads;
  return {
    heads,
    kvHeads: a.kv_heads ?? heads,
    keyHeadDim:
      a.key_head_dim ?? defaultHeadDim(dim, defaults.expandK, heads, 'key_head_dim', fail),
    valueHeadDim:
      a.value_head_dim ?? defaultHeadDim(dim, defaults.expandV, heads, 'value_head_dim', fail),
  };
}

/** The layout as DSL arguments, for the printer. */
export function headLayoutArgs(s: HeadLayout): DslArg[] {
  return [
    { name: 'heads', value: s.heads },
    { name: 'kv_heads', value: s.kvHeads },
    { name: 'key_head_dim', value: s.keyHeadDim },
    { name: 'value_head_dim', value: s.valueHeadDim },
  ];
}

/** kvHeads divides heads (query head h reads key/value head h / (heads / kvHeads), as fla repeats). */
export function headLayoutIssues(s: HeadLayout, n: Namer): Issue[] {
  return headMultipleIssues(s, n, 'heads', 'kvHeads');
}

/**
 * A head width the DSL leaves out: int(dim · ratio) / heads (fla's expand_k / expand_v), which
 * must be whole; `headsParam` is the argument the error blames when it is not.
 */
export function defaultHeadDim<P extends string>(
  dim: number,
  ratio: number,
  heads: number,
  param: string,
  fail: (message: string, param?: P) => never,
  headsParam?: P,
): number {
  const total = Math.trunc(dim * ratio);
  if (total % heads !== 0) {
    const width = ratio === 1 ? `dim ${dim}` : `dim × ${ratio} = ${total}`;
    fail(`${param} (${width}) is not a multiple of heads ${heads}; give ${param}`, headsParam);
  }
  return total / heads;
}

/**
 * An attention-style head width the DSL leaves out (attention, nsa): dim / heads, which must be
 * whole (blamed on `heads`). Unlike defaultHeadDim (fla's expand ratios), there is no ratio.
 */
export function attentionHeadDim(
  dim: number,
  heads: number,
  fail: (message: string, param?: 'heads') => never,
): number {
  if (dim % heads !== 0) {
    fail(`dim ${dim} is not divisible by heads ${heads}; give head_dim explicitly`, 'heads');
  }
  return dim / heads;
}

/** "heads 8, kv_heads 2, key 256, value 512": the start of these mixers' table lines. */
export function headDims(s: HeadLayout): string {
  const kv = s.kvHeads === s.heads ? '' : `, kv_heads ${s.kvHeads}`;
  return `heads ${s.heads}${kv}, key ${s.keyHeadDim}, value ${s.valueHeadDim}`;
}

/** q, k and v of the normed rows h (q_proj, k_proj, v_proj), each with its short conv if any. */
export function projectQkv(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  at: MixerSite,
  s: HeadLayout,
  conv: ShortConv | null = null,
): { q: number; k: number; v: number } {
  return {
    q: projection(b, model, h, at, 'q', s.heads * s.keyHeadDim, conv),
    k: projection(b, model, h, at, 'k', s.kvHeads * s.keyHeadDim, conv),
    v: projection(b, model, h, at, 'v', s.kvHeads * s.valueHeadDim, conv),
  };
}

// ---------------------------------------------------------------------------------------------
// Pointwise expressions (evaluated by a pointwise node, or by the op the fusion folds it into).

export const ref = (name: string): PointwiseExpr => ({ in: name });
export const constant = (value: number): PointwiseExpr => ({ const: value });
export const fn = (f: PointwiseFn, x: PointwiseExpr): PointwiseExpr => ({ fn: f, x });
export const bin = (op: PointwiseBin, a: PointwiseExpr, b: PointwiseExpr): PointwiseExpr => ({
  bin: op,
  a,
  b,
});
export const add = (a: PointwiseExpr, b: PointwiseExpr) => bin('add', a, b);
export const sub = (a: PointwiseExpr, b: PointwiseExpr) => bin('sub', a, b);
export const mul = (a: PointwiseExpr, b: PointwiseExpr) => bin('mul', a, b);
export const div = (a: PointwiseExpr, b: PointwiseExpr) => bin('div', a, b);

/** A [T, heads] input read once per head: output column c reads column c / headDim. */
export const perHead = (heads: number, headDim: number): PointwiseInput => ({
  perToken: true,
  cols: heads,
  inner: 1,
  repeat: headDim,
});

/**
 * The feature maps φ of fla's linear-attention layers that strata computes (fla's names: swish
 * is silu, sqrelu relu2, gelu the tanh approximation, 'elu' in the feature-map modules elu1 =
 * elu(x) + 1); each mixer's DSL allows its own subset.
 */
export type FeatureMap =
  'identity' | 'relu' | 'relu2' | 'sigmoid' | 'logsigmoid' | 'silu' | 'elu1' | 'gelu_tanh';

/** φ(x) as an expression (fla's gelu: 0.5·x·(1 + tanh(0.79788456·x·(1 + 0.044715·x²)))). */
export function featureMapExpr(map: FeatureMap, x: PointwiseExpr): PointwiseExpr {
  switch (map) {
    case 'identity':
      return x;
    case 'relu2':
      return mul(fn('relu', x), fn('relu', x));
    case 'gelu_tanh': {
      const inner = mul(
        mul(constant(0.79788456), x),
        add(constant(1), mul(constant(0.044715), mul(x, x))),
      );
      return mul(mul(x, constant(0.5)), add(constant(1), fn('tanh', inner)));
    }
    default:
      return fn(map, x);
  }
}

/**
 * φ over the `width` columns of t, one pointwise node `<label>` (the recurrence-prologue fusion
 * folds it into the recurrence that reads it); the identity is no node at all.
 */
export function featureMap(
  b: GraphBuilder,
  t: number,
  width: number,
  map: FeatureMap,
  label: string,
): number {
  if (map === 'identity') return t;
  return pointwiseOp(b, label, width, { x: [t, columns(width)] }, featureMapExpr(map, ref('x')));
}

// ---------------------------------------------------------------------------------------------
// The recurrence and the norms around it.

/** A recurrence's shape and rule; head counts of q, k, v and gates default to `heads`. */
export type RecurrenceSpec = Pick<
  LinearRecurrenceAttrs,
  'heads' | 'keyDim' | 'valueDim' | 'decay' | 'update'
> &
  Partial<
    Pick<
      LinearRecurrenceAttrs,
      'qHeads' | 'kHeads' | 'vHeads' | 'gateHeads' | 'scale' | 'normalize' | 'normEps'
    >
  >;

/** The recurrence shape of a head layout: q per query head, k and v per key/value head. */
export function layoutRecurrence(s: HeadLayout) {
  return {
    heads: s.heads,
    kHeads: s.kvHeads,
    vHeads: s.kvHeads,
    keyDim: s.keyHeadDim,
    valueDim: s.valueHeadDim,
  };
}

/**
 * The linear recurrence (src/ops/linear-recurrence.ts) over its state `stateName` [heads, keyDim,
 * valueDim (+1 with the normaliser)]; the scale defaults to fla's keyDim^-0.5. `inputs` are q, k,
 * v and what the rule reads (g, beta, a, b). Returns o [T, heads·valueDim].
 */
export function recurrence(
  b: GraphBuilder,
  spec: RecurrenceSpec,
  inputs: Record<string, number>,
  stateName: string,
  label: string,
): number {
  const { heads, keyDim, valueDim } = spec;
  const attrs: LinearRecurrenceAttrs = {
    op: 'linear_recurrence',
    qHeads: heads,
    kHeads: heads,
    vHeads: heads,
    gateHeads: heads,
    // fla's default scale, computed as Python's `K ** -0.5`.
    scale: keyDim ** -0.5,
    normalize: false,
    normEps: 0,
    ...spec,
  };
  const state = b.state(stateName, [heads, keyDim, valueDim + (attrs.normalize ? 1 : 0)]);
  return b.op(
    attrs,
    `${label} recurrence`,
    { ...inputs, state },
    {
      out: { name: `${label}.rec`, shape: ['T', heads * valueDim] },
      state,
    },
  ).out;
}

/** x / sqrt(Σx² + eps) over each `group` columns of x [T, width] (q/k per key head; no weight). */
export function headL2Norm(
  b: GraphBuilder,
  x: number,
  width: number,
  group: number,
  eps: number,
  label: string,
): number {
  return b.op(
    { op: 'norm', norm: { kind: 'l2', eps }, width, group, residual: false },
    `${label} l2 norm`,
    { x },
    { out: { name: `${label}.l2`, shape: ['T', width] } },
  ).out;
}

/** The output norm of a recurrence: per-head RMSNorm, and fla's output gate when there is one. */
export interface OutputNorm {
  /** Canonical weight name (with `.weight`): one [headDim] weight shared by every head. */
  weight: string;
  width: number;
  /** Columns per head; the width for one norm over the whole row (HGRN2). */
  headDim: number;
  eps: number;
  /** The normed rows times act(gate) (fla's FusedRMSNormGated, swish unless configured). */
  gate?: { z: number; act: Activation };
}

/**
 * RMSNorm over each head of o with the shared [headDim] weight, times act(z) with a gate: with
 * SiLU (fla's swish, every default) one gated_norm dispatch whose weight is that group weight,
 * otherwise a norm then a glu.
 */
export function outputNorm(b: GraphBuilder, o: number, n: OutputNorm, label: string): number {
  const { width, headDim: group, eps } = n;
  const w = b.param(n.weight, [group]);
  const out = (name: string) => ({
    out: { name: `${label}.${name}`, shape: ['T', width] as Dim[] },
  });
  if (n.gate?.act === 'silu') {
    return b.op(
      { op: 'gated_norm', width, group, eps, normBeforeGate: true, groupWeight: true },
      `${label} gated norm`,
      { x: o, z: n.gate.z, w },
      out('gnorm'),
    ).out;
  }
  const normed = b.op(
    {
      op: 'norm',
      norm: { kind: 'rms', eps, unitOffset: false, bias: false },
      width,
      group,
      residual: false,
    },
    `${label} head norm`,
    { x: o, w },
    out('hnorm'),
  ).out;
  if (!n.gate) return normed;
  return b.op(
    { op: 'glu', act: n.gate.act, width },
    `${label} output gate`,
    { gate: n.gate.z, up: normed },
    out('gated'),
  ).out;
}
