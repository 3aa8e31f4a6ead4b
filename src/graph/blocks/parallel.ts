/**
 * Lowering of a parallel sublayer (Falcon-H1's hybrid layer): one pre-norm, then attention and
 * Mamba-2 on the same normed input, each with its multipliers folded into its projections, both
 * added to the residual stream.
 */
import type { GraphBuilder } from '../builder.ts';
import type { ModelIR, ParallelSpec } from '../../spec/model.ts';
import { attentionBranch, attentionNames } from '../../mixers/attention.ts';
import { preNorm, residualAdd } from './common.ts';
import { mamba2Branch } from '../../mixers/mamba2.ts';

export function lowerParallel(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  m: ParallelSpec,
  /** What the pre-norm reads when it is not the residual x (a shared block's output added). */
  input: number = x,
): number {
  const L = `l${i}.parallel`;
  // Sandwich norms would need one post-norm over the two branches' sum; no model has both yet.
  if (model.postNorms)
    throw new Error(`layer ${i}: post_norms with a parallel mixer is not supported yet`);
  const h = preNorm(b, model, input, attentionNames(i).norm, L);
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
}
