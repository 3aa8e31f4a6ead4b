/**
 * `gated_deltanet(...)`: Qwen3-Next's gated DeltaNet linear-attention mixer. Defaults follow
 * transformers' Qwen3NextConfig (linear_num_key_heads 16, linear_num_value_heads 32,
 * linear_key_head_dim / linear_value_head_dim 128, linear_conv_kernel_dim 4).
 */
import { checkGatedDeltaNet } from '../checks.ts';
import { defineKind, opt } from '../kind.ts';
import type { GatedDeltaNetSpec } from '../model.ts';
import { int, positive } from '../values.ts';

export const gatedDeltaNet = defineKind({
  name: 'gated_deltanet',
  params: {
    key_heads: opt(int(1)),
    value_heads: opt(int(1)),
    key_head_dim: opt(int(1)),
    value_head_dim: opt(int(1)),
    d_conv: opt(int(1)),
    norm_eps: opt(positive),
  },
  build: (a): GatedDeltaNetSpec => ({
    kind: 'gated_deltanet',
    keyHeads: a.key_heads ?? 16,
    valueHeads: a.value_heads ?? 32,
    keyHeadDim: a.key_head_dim ?? 128,
    valueHeadDim: a.value_head_dim ?? 128,
    dConv: a.d_conv ?? 4,
    normEps: a.norm_eps ?? 1e-6,
  }),
  check: checkGatedDeltaNet,
  // Null for other mixer kinds: the printer asks every kind of the family.
  toArgs: (s) =>
    s.kind !== 'gated_deltanet'
      ? null
      : [
          { name: 'key_heads', value: s.keyHeads },
          { name: 'value_heads', value: s.valueHeads },
          { name: 'key_head_dim', value: s.keyHeadDim },
          { name: 'value_head_dim', value: s.valueHeadDim },
          { name: 'd_conv', value: s.dConv },
          { name: 'norm_eps', value: s.normEps },
        ],
});
