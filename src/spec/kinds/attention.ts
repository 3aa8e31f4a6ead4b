/** `attention(...)`: multi-head / grouped-query attention with optional rope, window, softcap and sinks. */
import { checkAttention } from '../checks.ts';
import { defineKind, opt, req, toDslCall } from '../kind.ts';
import type { AttentionSpec } from '../model.ts';
import { block, bool, int, orNone, positive } from '../values.ts';
import { defaultRope, ROPES } from './rope.ts';

export const attention = defineKind({
  name: 'attention',
  params: {
    heads: req(int(1)),
    kv_heads: opt(int(1)),
    head_dim: opt(int(1)),
    rope: opt(orNone(block(ROPES))),
    qk_norm: opt(bool),
    qkv_bias: opt(bool),
    out_bias: opt(bool),
    causal: opt(bool),
    window: opt(orNone(int(1))),
    scale: opt(positive),
    softcap: opt(orNone(positive)),
    sinks: opt(bool),
    output_gate: opt(bool),
  },
  build: (a, ctx, fail): AttentionSpec => {
    let headDim = a.head_dim;
    if (headDim === undefined) {
      if (ctx.dim % a.heads !== 0) {
        fail(
          `dim ${ctx.dim} is not divisible by heads ${a.heads}; give head_dim explicitly`,
          'heads',
        );
      }
      headDim = ctx.dim / a.heads;
    }
    return {
      kind: 'attention',
      heads: a.heads,
      kvHeads: a.kv_heads ?? a.heads,
      headDim,
      rope: a.rope === undefined ? defaultRope(headDim) : a.rope && a.rope({ ...ctx, headDim }),
      qkNorm: a.qk_norm ?? false,
      qkvBias: a.qkv_bias ?? false,
      outBias: a.out_bias ?? false,
      causal: a.causal ?? true,
      window: a.window ?? null,
      // ** rather than 1/Math.sqrt: the same rounding as PyTorch's head_dim ** -0.5.
      scale: a.scale ?? headDim ** -0.5,
      softcap: a.softcap ?? null,
      sinks: a.sinks ?? false,
      outputGate: a.output_gate ?? false,
    };
  },
  check: checkAttention,
  // Null for other mixer kinds: the printer asks every kind of the family.
  toArgs: (s) =>
    s.kind !== 'attention'
      ? null
      : [
          { name: 'heads', value: s.heads },
          { name: 'kv_heads', value: s.kvHeads },
          { name: 'head_dim', value: s.headDim },
          { name: 'rope', value: s.rope && toDslCall(ROPES, s.rope).value },
          { name: 'qk_norm', value: s.qkNorm },
          { name: 'qkv_bias', value: s.qkvBias },
          { name: 'out_bias', value: s.outBias },
          { name: 'causal', value: s.causal },
          { name: 'window', value: s.window },
          { name: 'scale', value: s.scale },
          { name: 'softcap', value: s.softcap },
          { name: 'sinks', value: s.sinks },
          { name: 'output_gate', value: s.outputGate },
        ],
});
