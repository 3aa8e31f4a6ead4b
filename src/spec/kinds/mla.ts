/** `mla(...)`: DeepSeek-V2/V3 multi-head latent attention (see MlaSpec in model.ts). */
import { checkMla } from '../checks.ts';
import { defineKind, opt, req, toDslCall } from '../kind.ts';
import type { MlaSpec } from '../model.ts';
import { block, bool, int, oneOf, orNone, positive } from '../values.ts';
import { defaultRope, ROPES } from './rope.ts';

const PAIRS: readonly MlaSpec['ropePairs'][] = ['interleaved', 'half'];

/** HF's DeepseekV3RMSNorm default, which the latent norms keep whatever rms_norm_eps says. */
export const MLA_LATENT_EPS = 1e-6;

export const mla = defineKind({
  name: 'mla',
  params: {
    heads: req(int(1)),
    q_rank: opt(orNone(int(1))),
    kv_rank: req(int(1)),
    nope_dim: req(int(1)),
    rope_dim: req(int(2)),
    v_dim: req(int(1)),
    rope: opt(block(ROPES)),
    rope_pairs: opt(oneOf('rope pairing', PAIRS)),
    bias: opt(bool),
    latent_eps: opt(positive),
    scale: opt(positive),
  },
  build: (a, ctx): MlaSpec => ({
    kind: 'mla',
    heads: a.heads,
    qRank: a.q_rank ?? null,
    kvRank: a.kv_rank,
    nopeDim: a.nope_dim,
    ropeDim: a.rope_dim,
    vHeadDim: a.v_dim,
    // The rope block sees the rope dims as its head: rotary_dim defaults to rope_dim.
    rope: a.rope ? a.rope({ ...ctx, headDim: a.rope_dim }) : defaultRope(a.rope_dim),
    ropePairs: a.rope_pairs ?? 'interleaved',
    bias: a.bias ?? false,
    latentEps: a.latent_eps ?? MLA_LATENT_EPS,
    // ** as PyTorch's qk_head_dim ** -0.5 rounds.
    scale: a.scale ?? (a.nope_dim + a.rope_dim) ** -0.5,
  }),
  check: checkMla,
  toArgs: (s) =>
    s.kind !== 'mla'
      ? null
      : [
          { name: 'heads', value: s.heads },
          { name: 'q_rank', value: s.qRank },
          { name: 'kv_rank', value: s.kvRank },
          { name: 'nope_dim', value: s.nopeDim },
          { name: 'rope_dim', value: s.ropeDim },
          { name: 'v_dim', value: s.vHeadDim },
          { name: 'rope', value: toDslCall(ROPES, s.rope).value },
          { name: 'rope_pairs', value: { name: s.ropePairs } },
          { name: 'bias', value: s.bias },
          { name: 'latent_eps', value: s.latentEps },
          { name: 'scale', value: s.scale },
        ],
});
