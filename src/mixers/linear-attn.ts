/**
 * `linear_attn(...)`: linear attention as fla's LinearAttention computes it
 * (fla/layers/linear_attn.py, the linear_attn model type). Per layer:
 *   q = φ(q_proj x), k = φ(k_proj x), v = v_proj x    (kv heads repeated over groups of query heads)
 *   with norm_q / norm_k: q ← q / (Σ_head q + 1e-4), k likewise (per head, after φ)
 *   S_h ← S_h + k vᵀ,  o = S_hᵀ (q · key_head_dim^-0.5)
 *   with normalize (fla's norm_feature_map): o ← o / ((q · key_head_dim^-0.5) · Σ_{s≤t} k_s + 1e-10)
 *   out = o_proj(rmsnorm_per_head(o))
 * φ is elu1 (fla's 'elu': elu(x) + 1), relu or identity. fla's learnt feature maps (hedgehog,
 * t2r, elementwise_product, dpfp) are not supported: the importer refuses them by name.
 */
import { defineMixer } from './define.ts';
import {
  defaultHeadDim,
  headDims,
  headLayoutIssues,
  headRmsNorm,
  projectQkv,
  recurrence,
  type HeadLayout,
} from './linear-parts.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { linear, mixerSublayer } from '../graph/blocks/common.ts';
import type { PointwiseExpr } from '../graph/ops.ts';
import { plainMatmul } from '../graph/ops.ts';
import { layerPrefix } from '../import/names.ts';
import { defineKind, opt, req } from '../spec/kind.ts';
import { bool as boolSchema, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { bool, int, oneOf, positive } from '../spec/values.ts';

/** The feature maps strata computes: elu(x) + 1, max(x, 0), x. */
export const FEATURE_MAPS = ['elu1', 'relu', 'identity'] as const;
export type FeatureMap = (typeof FEATURE_MAPS)[number];

export interface LinearAttnSpec extends HeadLayout {
  kind: 'linear_attn';
  /** φ, applied to q and k after the projections. */
  featureMap: FeatureMap;
  /** Divide each head of φ(q) (normQ) / φ(k) (normK) by its sum + 1e-4 (fla's norm_q, norm_k). */
  normQ: boolean;
  normK: boolean;
  /** Divide the output by q · Σk + 1e-10 (fla's norm_feature_map): the running key sum is state. */
  normalize: boolean;
  /** eps of the per-head output RMSNorm. */
  normEps: number;
}

/** fla's constants: the sum norm's and the normaliser's epsilons. */
const SUM_EPS = 1e-4;
const NORMALIZER_EPS = 1e-10;

/** φ(t) over `width` columns; the identity map is no op at all. */
function featureMap(b: GraphBuilder, t: number, width: number, map: FeatureMap, label: string) {
  if (map === 'identity') return t;
  return b.op(
    {
      op: 'pointwise',
      width,
      inputs: { x: { perToken: true, cols: width, inner: width, repeat: 1 } },
      expr: { fn: map, x: { in: 'x' } },
    },
    `${label} feature map`,
    { x: t },
    { out: { name: `${label}.phi`, shape: ['T', width] } },
  ).out;
}

/**
 * t / (Σ_head t + 1e-4) for `heads` heads of `d` columns: the head sums are one matmul with a
 * constant [heads, heads·d] block of ones (row h has ones over head h's columns), then a pointwise
 * divide that reads each head's sum for its d columns.
 */
function sumNorm(b: GraphBuilder, t: number, heads: number, d: number, label: string): number {
  const width = heads * d;
  const ones = b.param(`linear_attn.head_sum.${heads}x${d}`, [heads, width], {
    kind: 'constant',
    values: Array.from({ length: heads * width }, (_, e) =>
      Math.floor(e / width) === Math.floor((e % width) / d) ? 1 : 0,
    ),
  });
  const sums = b.op(
    plainMatmul(heads, width),
    `${label} head sums`,
    { x: t, w: ones },
    {
      out: { name: `${label}.sum`, shape: ['T', heads] },
    },
  ).out;
  const expr: PointwiseExpr = {
    bin: 'div',
    a: { in: 'x' },
    b: { bin: 'add', a: { in: 's' }, b: { const: SUM_EPS } },
  };
  return b.op(
    {
      op: 'pointwise',
      width,
      inputs: {
        x: { perToken: true, cols: width, inner: width, repeat: 1 },
        s: { perToken: true, cols: heads, inner: 1, repeat: d },
      },
      expr,
    },
    `${label} sum norm`,
    { x: t, s: sums },
    { out: { name: `${label}.sumnorm`, shape: ['T', width] } },
  ).out;
}

const kindDef = defineKind({
  name: 'linear_attn',
  params: {
    feature_map: req(oneOf('feature map', FEATURE_MAPS)),
    heads: opt(int(1)),
    kv_heads: opt(int(1)),
    key_head_dim: opt(int(1)),
    value_head_dim: opt(int(1)),
    norm_q: opt(bool),
    norm_k: opt(bool),
    normalize: opt(bool),
    norm_eps: opt(positive),
  },
  // Defaults: fla's LinearAttentionConfig (4 heads, expand_k = expand_v = 1, no sum norms, no
  // normaliser, norm_eps 1e-6). Its default feature map (elementwise_product) is learnt and not
  // supported, so the DSL asks for one.
  build: (a, ctx, fail): LinearAttnSpec => {
    const heads = a.heads ?? 4;
    return {
      kind: 'linear_attn',
      heads,
      kvHeads: a.kv_heads ?? heads,
      keyHeadDim:
        a.key_head_dim ?? defaultHeadDim(ctx.dim, heads, 1, 'key_head_dim', (m) => fail(m)),
      valueHeadDim:
        a.value_head_dim ?? defaultHeadDim(ctx.dim, heads, 1, 'value_head_dim', (m) => fail(m)),
      featureMap: a.feature_map,
      normQ: a.norm_q ?? false,
      normK: a.norm_k ?? false,
      normalize: a.normalize ?? false,
      normEps: a.norm_eps ?? 1e-6,
    };
  },
  check: (s: LinearAttnSpec, n) => headLayoutIssues(s, n),
  toArgs: (s) =>
    s.kind !== 'linear_attn'
      ? null
      : [
          { name: 'feature_map', value: { name: s.featureMap } },
          { name: 'heads', value: s.heads },
          { name: 'kv_heads', value: s.kvHeads },
          { name: 'key_head_dim', value: s.keyHeadDim },
          { name: 'value_head_dim', value: s.valueHeadDim },
          { name: 'norm_q', value: s.normQ },
          { name: 'norm_k', value: s.normK },
          { name: 'normalize', value: s.normalize },
          { name: 'norm_eps', value: s.normEps },
        ],
});

export const linearAttn = defineMixer<LinearAttnSpec>({
  kind: kindDef,
  schema: object({
    kind: kind('linear_attn'),
    heads: posInt,
    kvHeads: posInt,
    keyHeadDim: posInt,
    valueHeadDim: posInt,
    featureMap: { enum: [...FEATURE_MAPS] },
    normQ: boolSchema,
    normK: boolSchema,
    normalize: boolSchema,
    normEps: posNumber,
  }),
  dims: (s) => {
    const sums = [s.normQ ? 'q' : '', s.normK ? 'k' : ''].filter(Boolean).join(', ');
    return (
      `${headDims(s)}, ${s.featureMap}` +
      (sums ? `, sum-norm ${sums}` : '') +
      (s.normalize ? ', normalized' : '')
    );
  },
  lower(b, model, x, i, s, input) {
    const P = `${layerPrefix(i)}.attn`;
    const L = `l${i}.linattn`;
    return mixerSublayer(b, model, x, input, i, `${layerPrefix(i)}.input_layernorm`, L, (h) => {
      const { q, k, v } = projectQkv(b, model, h, P, s, L);
      const qw = s.heads * s.keyHeadDim;
      const kw = s.kvHeads * s.keyHeadDim;
      let qf = featureMap(b, q, qw, s.featureMap, `${L}.q`);
      let kf = featureMap(b, k, kw, s.featureMap, `${L}.k`);
      if (s.normQ) qf = sumNorm(b, qf, s.heads, s.keyHeadDim, `${L}.q`);
      if (s.normK) kf = sumNorm(b, kf, s.kvHeads, s.keyHeadDim, `${L}.k`);
      const o = recurrence(
        b,
        s,
        { q: qf, k: kf, v },
        { decay: 'none', normalize: s.normalize, normEps: NORMALIZER_EPS },
        `linear_attn.${i}`,
        L,
      );
      const width = s.heads * s.valueHeadDim;
      const normed = headRmsNorm(b, o, width, s.valueHeadDim, s.normEps, `${P}.norm.weight`, L);
      return linear(b, normed, `${P}.o_proj`, model.dim, width, false, `${L}.o`);
    });
  },
});
