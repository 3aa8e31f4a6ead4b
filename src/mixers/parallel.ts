/**
 * `parallel(attn: attention(...), ssm: mamba2(...))`: Falcon-H1's hybrid layer, attention and a
 * Mamba-2 mixer on the same normed input, each with its own input and output multiplier, summed.
 * Its lowering: one pre-norm, then the two kinds' branches (attention.ts, mamba2.ts) on the same
 * normed input, each with its multipliers folded into its projections, both added to the
 * residual stream. Each branch keeps its own kind's weights (self_attn, mixer).
 */
import { preNorm, residualAdd } from '../graph/blocks/common.ts';
import { inputNormName } from '../import/names.ts';
import type { Issue } from '../spec/checks.ts';
import { defineKind, opt, req, toDslCall, type Family } from '../spec/kind.ts';
import { kind, object, posNumber } from '../spec/schema-parts.ts';
import { block, positive } from '../spec/values.ts';
import { attention, attentionBranch, type AttentionSpec } from './attention.ts';
import { defineMixer } from './define.ts';
import { mamba2, mamba2Branch, type Mamba2Spec } from './mamba2.ts';

/**
 * Attention and a Mamba-2 mixer side by side on the same normed input, summed (Falcon-H1's
 * hybrid layer): x + attnOutScale · attn(attnInScale · h) + ssmOutScale · ssm(ssmInScale · h)
 * with h = norm(x). Each branch keeps its own kind's tensors (self_attn, mixer); the layer has
 * one input norm.
 */
export interface ParallelSpec {
  kind: 'parallel';
  attn: AttentionSpec;
  ssm: Mamba2Spec;
  attnInScale: number;
  attnOutScale: number;
  ssmInScale: number;
  ssmOutScale: number;
}

// One kind per branch: the lowering sums exactly these two (their tensors live under
// self_attn and mixer, so they never collide).
const ATTN: Family<AttentionSpec> = {
  noun: 'attention branch',
  example: 'attention(...)',
  kinds: [attention.kind],
};
const SSM: Family<Mamba2Spec> = {
  noun: 'ssm branch',
  example: 'mamba2(...)',
  kinds: [mamba2.kind],
};

const kindDef = defineKind({
  name: 'parallel',
  params: {
    attn: req(block(ATTN)),
    ssm: req(block(SSM)),
    attn_in_scale: opt(positive),
    attn_out_scale: opt(positive),
    ssm_in_scale: opt(positive),
    ssm_out_scale: opt(positive),
  },
  build: (a, ctx): ParallelSpec => ({
    kind: 'parallel',
    attn: a.attn(ctx),
    ssm: a.ssm(ctx),
    attnInScale: a.attn_in_scale ?? 1,
    attnOutScale: a.attn_out_scale ?? 1,
    ssmInScale: a.ssm_in_scale ?? 1,
    ssmOutScale: a.ssm_out_scale ?? 1,
  }),
  // Each branch's own checks, blamed on the branch.
  check: (m: ParallelSpec, n) => {
    const within = (field: 'attn' | 'ssm', issues: Issue[]) =>
      issues.map((i) => ({ path: [field, ...i.path], message: i.message }));
    return [
      ...within('attn', attention.kind.check(m.attn, n)),
      ...within('ssm', mamba2.kind.check(m.ssm, n)),
    ];
  },
  toArgs: (s) =>
    s.kind !== 'parallel'
      ? null
      : [
          { name: 'attn', value: toDslCall(ATTN, s.attn).value },
          { name: 'ssm', value: toDslCall(SSM, s.ssm).value },
          { name: 'attn_in_scale', value: s.attnInScale },
          { name: 'attn_out_scale', value: s.attnOutScale },
          { name: 'ssm_in_scale', value: s.ssmInScale },
          { name: 'ssm_out_scale', value: s.ssmOutScale },
        ],
});

export const parallel = defineMixer<ParallelSpec>({
  kind: kindDef,
  schema: object({
    kind: kind('parallel'),
    attn: { $ref: '#/definitions/attention' },
    ssm: { $ref: '#/definitions/mamba2' },
    attnInScale: posNumber,
    attnOutScale: posNumber,
    ssmInScale: posNumber,
    ssmOutScale: posNumber,
  }),
  dims: (m) => `attention (${attention.dims(m.attn)}) + mamba2 (${mamba2.dims(m.ssm)})`,
  lower(b, model, x, i, m, input) {
    const L = `l${i}.parallel`;
    // Sandwich norms would need one post-norm over the two branches' sum; no model has both yet.
    if (model.postNorms)
      throw new Error(`layer ${i}: post_norms with a parallel mixer is not supported yet`);
    const h = preNorm(b, model, input, inputNormName(i), L);
    const ssm = mamba2Branch(b, model, h, i, m.ssm, m.ssmInScale, m.ssmOutScale);
    const attn = attentionBranch(b, model, h, i, m.attn, m.attnInScale, m.attnOutScale);
    // Two residual adds rather than one sum: the fusion pass folds each into its projection.
    const s = model.residualScale;
    return residualAdd(
      b,
      residualAdd(b, x, ssm, model.dim, `${L}.ssm`, s),
      attn,
      model.dim,
      `${L}.attn`,
      s,
    );
  },
});
