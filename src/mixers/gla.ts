/**
 * `gla(...)`: gated linear attention (Yang et al. 2023), as fla's GatedLinearAttention layer
 * computes it (fla/layers/gla.py). Per token, with x the normed input:
 *   q = x W_q, k = x W_k, v = x W_v                 (k and v have kv_heads heads; optional short
 *                                                    conv + SiLU on each, optional feature map on
 *                                                    q and k)
 *   g = max(logsigmoid(W_g1 (W_g0 x) + b) / gate_normalizer, clamp_min)   one log-decay per key
 *                                                    channel of each kv head (low-rank gk_proj)
 *   S_h ← diag(exp g) S_h + k vᵀ,  o = S_hᵀ (q · key_head_dim^-0.5)      (linear_recurrence)
 *   out = o_proj(rmsnorm_per_head(o) · swish(g_proj x))   (without the output gate: no product)
 * Query head h reads kv head h / (heads / kv_heads): fla repeats k, v and the gate over each
 * group of query heads; the recurrence's head maps read them without materialising the repeat.
 * Defaults are fla's layer and config defaults (GLAConfig: heads 4, expand_k 0.5, expand_v 1).
 * The helpers below (pointwise nodes, the recurrence node, the per-head output norm) are shared
 * with hgrn2.ts, which runs the same recurrence.
 */
import type { GraphBuilder } from '../graph/builder.ts';
import type { PointwiseExpr, PointwiseInput } from '../graph/ops.ts';
import { causalConv, linear, mixerSublayer } from '../graph/blocks/common.ts';
import { layerPrefix } from '../import/names.ts';
import type { Issue, Namer } from '../spec/checks.ts';
import { defineKind, opt, type ValueType } from '../spec/kind.ts';
import type { ModelIR } from '../spec/model.ts';
import { bool, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { bool as boolValue, describeValue, int, oneOf, orNone, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';

/** The feature maps of fla's ACT2FN that strata computes (fla's names: swish, sqrelu, gelu). */
export const GLA_FEATURE_MAPS = [
  'relu',
  'sigmoid',
  'logsigmoid',
  'silu',
  'relu2',
  'gelu_tanh',
] as const;
export type GlaFeatureMap = (typeof GLA_FEATURE_MAPS)[number];

export interface GlaSpec {
  kind: 'gla';
  /** Query heads (and state heads). */
  heads: number;
  /** Heads of k, v and the key gate; divides heads (fla's num_kv_heads). */
  kvHeads: number;
  /** fla's head_k_dim = int(hidden · expand_k) / heads. */
  keyHeadDim: number;
  /** fla's head_v_dim = int(hidden · expand_v) / heads. */
  valueHeadDim: number;
  /** Applied to q and k after the projections (and conv); null for none. */
  featureMap: GlaFeatureMap | null;
  /** Kernel of the short convolutions (depthwise, causal, SiLU) on q, k and v; null: none. */
  dConv: number | null;
  /** Multiply the normed output by swish(g_proj x) (fla's use_output_gate). */
  outputGate: boolean;
  /** Inner width of the low-rank key-gate projection (fla's gate_low_rank_dim). */
  gateRank: number;
  /** The log-gate is logsigmoid(gk) divided by this (fla's gate_logit_normalizer). */
  gateNormalizer: number;
  /** Floor on the log-gate (≤ 0); null for none. */
  clampMin: number | null;
  /** Epsilon of the per-head output RMSNorm. */
  normEps: number;
}

// ---------------------------------------------------------------------------------------------
// Graph helpers shared by the linear-attention mixers here.

/** A pointwise input read column by column ([T, cols] activation). */
export function columns(cols: number): PointwiseInput {
  return { perToken: true, cols, inner: cols, repeat: 1 };
}

/** A [cols] parameter read column by column, the same row for every token. */
export function paramColumns(cols: number): PointwiseInput {
  return { perToken: false, cols, inner: cols, repeat: 1 };
}

export const ref = (name: string): PointwiseExpr => ({ in: name });
export const constant = (value: number): PointwiseExpr => ({ const: value });
export const fn = (f: Extract<PointwiseExpr, { fn: unknown }>['fn'], x: PointwiseExpr) =>
  ({ fn: f, x }) as PointwiseExpr;
export const bin = (
  op: Extract<PointwiseExpr, { bin: unknown }>['bin'],
  a: PointwiseExpr,
  b: PointwiseExpr,
) => ({ bin: op, a, b }) as PointwiseExpr;

/** One pointwise node: out [T, width] = expr over the named inputs. */
export function pointwiseNode(
  b: GraphBuilder,
  label: string,
  width: number,
  inputs: Record<string, { id: number; map: PointwiseInput }>,
  expr: PointwiseExpr,
): number {
  return b.op(
    {
      op: 'pointwise',
      width,
      inputs: Object.fromEntries(Object.entries(inputs).map(([n, i]) => [n, i.map])),
      expr,
    },
    label,
    Object.fromEntries(Object.entries(inputs).map(([n, i]) => [n, i.id])),
    { out: { name: label, shape: ['T', width] } },
  ).out;
}

/** The feature map as an expression of `x` (fla's gelu is the tanh approximation, its constants). */
export function featureMapExpr(map: GlaFeatureMap, x: PointwiseExpr): PointwiseExpr {
  switch (map) {
    case 'relu':
    case 'sigmoid':
    case 'logsigmoid':
    case 'silu':
      return fn(map, x);
    case 'relu2':
      return bin('mul', fn('relu', x), fn('relu', x));
    case 'gelu_tanh': {
      const inner = bin(
        'mul',
        bin('mul', constant(0.79788456), x),
        bin('add', constant(1), bin('mul', constant(0.044715), bin('mul', x, x))),
      );
      return bin('mul', bin('mul', x, constant(0.5)), bin('add', constant(1), fn('tanh', inner)));
    }
  }
}

/**
 * GLA's recurrence (decay per key channel, additive update) over `heads` state heads of
 * [keyDim, valueDim]; k, v and g have kvHeads heads, q has `heads`. Returns o [T, heads·valueDim].
 */
export function glaRecurrence(
  b: GraphBuilder,
  label: string,
  stateName: string,
  dims: { heads: number; kvHeads: number; keyDim: number; valueDim: number },
  q: number,
  k: number,
  v: number,
  g: number,
): number {
  const { heads, kvHeads, keyDim, valueDim } = dims;
  const state = b.state(stateName, [heads, keyDim, valueDim]);
  return b.op(
    {
      op: 'linear_recurrence',
      heads,
      qHeads: heads,
      kHeads: kvHeads,
      vHeads: kvHeads,
      gateHeads: kvHeads,
      keyDim,
      valueDim,
      // fla's default scale, computed as Python's `K ** -0.5`.
      scale: keyDim ** -0.5,
      decay: 'key',
      update: 'add',
      normalize: false,
      normEps: 0,
    },
    `${label} recurrence`,
    { q, k, v, g, state },
    { out: { name: `${label}.rec`, shape: ['T', heads * valueDim] }, state },
  ).out;
}

/** RMSNorm of each `group`-wide group of x [T, width] with one [group] weight `weight`. */
export function groupRmsNorm(
  b: GraphBuilder,
  x: number,
  weight: string,
  width: number,
  group: number,
  eps: number,
  label: string,
): number {
  return b.op(
    {
      op: 'norm',
      norm: { kind: 'rms', eps, unitOffset: false, bias: false },
      width,
      group,
      residual: false,
    },
    `${label} output norm`,
    { x, w: b.param(`${weight}.weight`, [group]) },
    { out: { name: `${label}.onorm`, shape: ['T', width] } },
  ).out;
}

/** fla's ShortConvolution on a projection: weight `<name>.weight` [channels, kernel], no bias. */
export function shortConv(
  b: GraphBuilder,
  x: number,
  name: string,
  state: string,
  channels: number,
  kernel: number,
  silu: boolean,
  label: string,
): number {
  return causalConv(
    b,
    x,
    b.param(`${name}.weight`, [channels, kernel]),
    null,
    b.state(state, [kernel - 1, channels]),
    channels,
    kernel,
    silu,
    label,
  );
}

// ---------------------------------------------------------------------------------------------
// The gla mixer.

function lowerGla(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  s: GlaSpec,
  input: number,
): number {
  const L = `l${i}.gla`;
  const P = `${layerPrefix(i)}.attn`;
  const dim = model.dim;
  const key = s.heads * s.keyHeadDim;
  const kvKey = s.kvHeads * s.keyHeadDim;
  const value = s.heads * s.valueHeadDim;
  const kvValue = s.kvHeads * s.valueHeadDim;
  return mixerSublayer(b, model, x, input, i, `${layerPrefix(i)}.input_layernorm`, L, (h) => {
    const project = (name: string, width: number) => {
      const y = linear(b, h, `${P}.${name}_proj`, width, dim, false, `${L}.${name}`);
      if (s.dConv === null) return y;
      return shortConv(
        b,
        y,
        `${P}.${name}_conv1d`,
        `conv.${i}.${name}`,
        width,
        s.dConv,
        true,
        `${L}.${name}`,
      );
    };
    let q = project('q', key);
    let k = project('k', kvKey);
    const v = project('v', kvValue);
    const featureMap = s.featureMap;
    if (featureMap !== null) {
      const map = (t: number, width: number, tag: string) =>
        pointwiseNode(
          b,
          `${L}.${tag}_map`,
          width,
          { x: { id: t, map: columns(width) } },
          featureMapExpr(featureMap, ref('x')),
        );
      q = map(q, key, 'q');
      k = map(k, kvKey, 'k');
    }
    // gk_proj = Sequential(Linear(dim → rank, no bias), Linear(rank → kv key width, bias)).
    const low = linear(b, h, `${P}.gk_proj.0`, s.gateRank, dim, false, `${L}.gk0`);
    const gk = linear(b, low, `${P}.gk_proj.1`, kvKey, s.gateRank, true, `${L}.gk1`);
    let logGate = bin('div', fn('logsigmoid', ref('gk')), constant(s.gateNormalizer));
    if (s.clampMin !== null) logGate = bin('max', logGate, constant(s.clampMin));
    const g = pointwiseNode(
      b,
      `${L}.gate`,
      kvKey,
      { gk: { id: gk, map: columns(kvKey) } },
      logGate,
    );
    const dims = {
      heads: s.heads,
      kvHeads: s.kvHeads,
      keyDim: s.keyHeadDim,
      valueDim: s.valueHeadDim,
    };
    const o = glaRecurrence(b, L, `gla.${i}`, dims, q, k, v, g);
    const normName = s.outputGate ? `${P}.g_norm_swish_gate` : `${P}.g_norm`;
    let y = groupRmsNorm(b, o, normName, value, s.valueHeadDim, s.normEps, L);
    if (s.outputGate) {
      const gate = linear(b, h, `${P}.g_proj`, value, dim, false, `${L}.g`);
      y = b.op(
        { op: 'glu', act: 'silu', width: value },
        `${L} output gate`,
        { gate, up: y },
        {
          out: { name: `${L}.gated`, shape: ['T', value] },
        },
      ).out;
    }
    return linear(b, y, `${P}.o_proj`, dim, value, false, `${L}.out`);
  });
}

/** A finite number ≤ 0 (a floor on a log-decay). */
const nonPositive: ValueType<number> = {
  expects: 'a number of at most 0',
  read(v, env, name, expects = 'a number of at most 0') {
    if (v.type === 'number' && Number.isFinite(v.value) && v.value <= 0) return v.value;
    return env.fail(`${name} must be ${expects}, got ${describeValue(v)}`, v.span);
  },
};

export function checkGla(s: GlaSpec, n: Namer): Issue[] {
  const issues: Issue[] = [];
  if (s.heads % s.kvHeads !== 0) {
    issues.push({
      path: ['kvHeads'],
      message: `${n('heads')} (${s.heads}) must be a multiple of ${n('kvHeads')} (${s.kvHeads})`,
    });
  }
  return issues;
}

/** Per-head width from fla's expand ratio: int(dim · expand) / heads, which must be whole. */
function headWidth(
  dim: number,
  expand: number,
  heads: number,
  what: string,
  fail: (message: string) => never,
): number {
  const total = Math.trunc(dim * expand);
  if (total % heads !== 0) {
    fail(`${what} (dim × ${expand} = ${total}) is not a multiple of heads ${heads}; give ${what}`);
  }
  return total / heads;
}

export const glaMixer = defineMixer<GlaSpec>({
  kind: defineKind({
    name: 'gla',
    params: {
      heads: opt(int(1)),
      kv_heads: opt(int(1)),
      key_head_dim: opt(int(1)),
      value_head_dim: opt(int(1)),
      feature_map: opt(orNone(oneOf('feature map', GLA_FEATURE_MAPS))),
      d_conv: opt(orNone(int(2))),
      output_gate: opt(boolValue),
      gate_rank: opt(int(1)),
      gate_normalizer: opt(positive),
      clamp_min: opt(orNone(nonPositive)),
      norm_eps: opt(positive),
    },
    build: (a, ctx, fail): GlaSpec => {
      const heads = a.heads ?? 4;
      return {
        kind: 'gla',
        heads,
        kvHeads: a.kv_heads ?? heads,
        // fla's expand_k 0.5 and expand_v 1.
        keyHeadDim: a.key_head_dim ?? headWidth(ctx.dim, 0.5, heads, 'key_head_dim', fail),
        valueHeadDim: a.value_head_dim ?? headWidth(ctx.dim, 1, heads, 'value_head_dim', fail),
        featureMap: a.feature_map ?? null,
        dConv: a.d_conv ?? null,
        outputGate: a.output_gate ?? true,
        gateRank: a.gate_rank ?? 16,
        gateNormalizer: a.gate_normalizer ?? 16,
        clampMin: a.clamp_min ?? null,
        // GLAConfig's norm_eps (the layer's own default, 1e-5, is never used by the model).
        normEps: a.norm_eps ?? 1e-6,
      };
    },
    check: checkGla,
    // Null for other mixer kinds: the printer asks every kind of the family.
    toArgs: (s) =>
      s.kind !== 'gla'
        ? null
        : [
            { name: 'heads', value: s.heads },
            { name: 'kv_heads', value: s.kvHeads },
            { name: 'key_head_dim', value: s.keyHeadDim },
            { name: 'value_head_dim', value: s.valueHeadDim },
            { name: 'feature_map', value: s.featureMap && { name: s.featureMap } },
            { name: 'd_conv', value: s.dConv },
            { name: 'output_gate', value: s.outputGate },
            { name: 'gate_rank', value: s.gateRank },
            { name: 'gate_normalizer', value: s.gateNormalizer },
            { name: 'clamp_min', value: s.clampMin },
            { name: 'norm_eps', value: s.normEps },
          ],
  }),
  schema: object({
    kind: kind('gla'),
    heads: posInt,
    kvHeads: posInt,
    keyHeadDim: posInt,
    valueHeadDim: posInt,
    featureMap: { enum: [...GLA_FEATURE_MAPS, null] },
    dConv: { type: ['integer', 'null'], minimum: 2 },
    outputGate: bool,
    gateRank: posInt,
    gateNormalizer: posNumber,
    clampMin: { type: ['number', 'null'], maximum: 0 },
    normEps: posNumber,
  }),
  dims: (s) =>
    `heads ${s.heads}, kv ${s.kvHeads}, key_head_dim ${s.keyHeadDim}, value_head_dim ${s.valueHeadDim}` +
    (s.dConv === null ? '' : `, d_conv ${s.dConv}`) +
    (s.featureMap === null ? '' : `, feature_map ${s.featureMap}`),
  lower: lowerGla,
});
