/**
 * `parallel(attn: attention(...), ssm: mamba2(...))`: Falcon-H1's hybrid layer, attention and a
 * Mamba-2 mixer on the same normed input, each with its own input and output multiplier, summed.
 */
import { checkParallel } from '../checks.ts';
import { defineKind, opt, req, toDslCall, type Family } from '../kind.ts';
import type { AttentionSpec, Mamba2Spec, ParallelSpec } from '../model.ts';
import { block, positive } from '../values.ts';
import { attention } from '../../mixers/attention.ts';
import { mamba2 } from '../../mixers/mamba2.ts';

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

export const parallel = defineKind({
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
  check: checkParallel,
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
