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
  add,
  constant,
  buildHeadLayout,
  HEAD_LAYOUT_PARAMS,
  HEAD_LAYOUT_SCHEMA,
  headLayoutArgs,
  div,
  featureMap,
  flaMixerSublayer,
  headDims,
  headLayoutIssues,
  layoutRecurrence,
  outputNorm,
  perHead,
  projectQkv,
  recurrence,
  ref,
  type FeatureMap as AnyFeatureMap,
  type HeadLayout,
} from './parts.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { columns, linear, pointwiseOp } from '../graph/blocks/common.ts';
import { plainMatmul } from '../graph/ops.ts';
import { defineKind, opt, req } from '../spec/kind.ts';
import { bool as boolSchema, kind, object, posNumber } from '../spec/schema-parts.ts';
import { bool, oneOf, positive } from '../spec/values.ts';

/** The feature maps strata computes: elu(x) + 1, max(x, 0), x. */
export const FEATURE_MAPS = [
  'elu1',
  'relu',
  'identity',
] as const satisfies readonly AnyFeatureMap[];
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
  return pointwiseOp(
    b,
    `${label}.sumnorm`,
    width,
    { x: [t, columns(width)], s: [sums, perHead(heads, d)] },
    div(ref('x'), add(ref('s'), constant(SUM_EPS))),
  );
}

const kindDef = defineKind({
  name: 'linear_attn',
  params: {
    feature_map: req(oneOf('feature map', FEATURE_MAPS)),
    ...HEAD_LAYOUT_PARAMS,
    norm_q: opt(bool),
    norm_k: opt(bool),
    normalize: opt(bool),
    norm_eps: opt(positive),
  },
  // Defaults: fla's LinearAttentionConfig (4 heads, expand_k = expand_v = 1, no sum norms, no
  // normaliser, norm_eps 1e-6). Its default feature map (elementwise_product) is learnt and not
  // supported, so the DSL asks for one.
  build: (a, ctx, fail): LinearAttnSpec => {
    return {
      kind: 'linear_attn',
      ...buildHeadLayout(a, ctx.dim, { heads: 4, expandK: 1, expandV: 1 }, fail),
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
          ...headLayoutArgs(s),
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
    ...HEAD_LAYOUT_SCHEMA,
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
  lower: (b, model, x, i, s, input) =>
    flaMixerSublayer(b, model, x, input, i, 'linattn', (h, at) => {
      const L = at.label;
      const { q, k, v } = projectQkv(b, model, h, at, s);
      let qf = featureMap(b, q, s.heads * s.keyHeadDim, s.featureMap, `${L}.q_map`);
      let kf = featureMap(b, k, s.kvHeads * s.keyHeadDim, s.featureMap, `${L}.k_map`);
      if (s.normQ) qf = sumNorm(b, qf, s.heads, s.keyHeadDim, `${L}.q`);
      if (s.normK) kf = sumNorm(b, kf, s.kvHeads, s.keyHeadDim, `${L}.k`);
      const o = recurrence(
        b,
        {
          ...layoutRecurrence(s),
          decay: 'none',
          update: 'add',
          normalize: s.normalize,
          normEps: NORMALIZER_EPS,
        },
        { q: qf, k: kf, v },
        `linear_attn.${i}`,
        L,
      );
      const width = s.heads * s.valueHeadDim;
      const weight = `${at.prefix}.norm.weight`;
      const normed = outputNorm(
        b,
        o,
        { weight, width, headDim: s.valueHeadDim, eps: s.normEps },
        L,
      );
      return linear(b, normed, `${at.prefix}.o_proj`, model.dim, width, false, `${L}.o`);
    }),
});
