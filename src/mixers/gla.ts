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
 */
import type { GraphBuilder } from '../graph/builder.ts';
import { columns, linear, pointwiseOp } from '../graph/blocks/common.ts';
import { defineKind, opt, type ValueType } from '../spec/kind.ts';
import type { ModelIR } from '../spec/model.ts';
import { bool, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { bool as boolValue, describeValue, int, oneOf, orNone, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';
import {
  bin,
  constant,
  buildHeadLayout,
  HEAD_LAYOUT_PARAMS,
  HEAD_LAYOUT_SCHEMA,
  headLayoutArgs,
  div,
  featureMap,
  flaMixerSublayer,
  fn,
  headLayoutIssues,
  layoutRecurrence,
  outputNorm,
  projection,
  projectQkv,
  recurrence,
  ref,
  type FeatureMap,
  type HeadLayout,
} from './parts.ts';

/** The feature maps of fla's ACT2FN that strata computes (fla's names: swish, sqrelu, gelu). */
export const GLA_FEATURE_MAPS = [
  'relu',
  'sigmoid',
  'logsigmoid',
  'silu',
  'relu2',
  'gelu_tanh',
] as const satisfies readonly FeatureMap[];
export type GlaFeatureMap = (typeof GLA_FEATURE_MAPS)[number];

/**
 * heads: query (and state) heads; kvHeads: heads of k, v and the key gate, dividing heads (fla's
 * num_kv_heads); keyHeadDim, valueHeadDim: fla's int(hidden · expand_k or expand_v) / heads.
 */
export interface GlaSpec extends HeadLayout {
  kind: 'gla';
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

function lowerGla(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  s: GlaSpec,
  input: number,
): number {
  const kvKey = s.kvHeads * s.keyHeadDim;
  const value = s.heads * s.valueHeadDim;
  return flaMixerSublayer(b, model, x, input, i, 'gla', (h, at) => {
    const L = at.label;
    const conv = s.dConv === null ? null : { kernel: s.dConv, silu: true };
    let { q, k, v } = projectQkv(b, model, h, at, s, conv);
    if (s.featureMap !== null) {
      q = featureMap(b, q, s.heads * s.keyHeadDim, s.featureMap, `${L}.q_map`);
      k = featureMap(b, k, kvKey, s.featureMap, `${L}.k_map`);
    }
    // gk_proj = Sequential(Linear(dim → rank, no bias), Linear(rank → kv key width, bias)).
    const low = linear(b, h, `${at.prefix}.gk_proj.0`, s.gateRank, model.dim, false, `${L}.gk0`);
    const gk = linear(b, low, `${at.prefix}.gk_proj.1`, kvKey, s.gateRank, true, `${L}.gk1`);
    let logGate = div(fn('logsigmoid', ref('gk')), constant(s.gateNormalizer));
    if (s.clampMin !== null) logGate = bin('max', logGate, constant(s.clampMin));
    const g = pointwiseOp(b, `${L}.gate`, kvKey, { gk: [gk, columns(kvKey)] }, logGate);
    const o = recurrence(
      b,
      { ...layoutRecurrence(s), gateHeads: s.kvHeads, decay: 'key', update: 'add' },
      { q, k, v, g },
      `gla.${i}`,
      L,
    );
    const y = outputNorm(
      b,
      o,
      {
        weight: `${at.prefix}.${s.outputGate ? 'g_norm_swish_gate' : 'g_norm'}.weight`,
        width: value,
        headDim: s.valueHeadDim,
        eps: s.normEps,
        gate: s.outputGate
          ? { z: projection(b, model, h, at, 'g', value), act: 'silu' }
          : undefined,
      },
      L,
    );
    return linear(b, y, `${at.prefix}.o_proj`, model.dim, value, false, `${L}.out`);
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

export const glaMixer = defineMixer<GlaSpec>({
  kind: defineKind({
    name: 'gla',
    params: {
      ...HEAD_LAYOUT_PARAMS,
      feature_map: opt(orNone(oneOf('feature map', GLA_FEATURE_MAPS))),
      d_conv: opt(orNone(int(2))),
      output_gate: opt(boolValue),
      gate_rank: opt(int(1)),
      gate_normalizer: opt(positive),
      clamp_min: opt(orNone(nonPositive)),
      norm_eps: opt(positive),
    },
    build: (a, ctx, fail): GlaSpec => ({
      kind: 'gla',
      ...buildHeadLayout(a, ctx.dim, { heads: 4, expandK: 0.5, expandV: 1 }, fail),
      featureMap: a.feature_map ?? null,
      dConv: a.d_conv ?? null,
      outputGate: a.output_gate ?? true,
      gateRank: a.gate_rank ?? 16,
      gateNormalizer: a.gate_normalizer ?? 16,
      clampMin: a.clamp_min ?? null,
      // GLAConfig's norm_eps (the layer's own default, 1e-5, is never used by the model).
      normEps: a.norm_eps ?? 1e-6,
    }),
    check: (s: GlaSpec, n) => headLayoutIssues(s, n),
    // Null for other mixer kinds: the printer asks every kind of the family.
    toArgs: (s) =>
      s.kind !== 'gla'
        ? null
        : [
            ...headLayoutArgs(s),
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
    ...HEAD_LAYOUT_SCHEMA,
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
