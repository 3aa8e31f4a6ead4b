/**
 * `deltanet(...)`: fla's DeltaNet and Gated DeltaNet (fla/layers/delta_net.py and
 * gated_deltanet.py) as one mixer; Gated DeltaNet is `decay: head`. Per layer, on the normed
 * input x:
 *   q, k = φ(conv(q_proj x)), φ(conv(k_proj x))     `heads` key heads of keyHeadDim
 *   v    = silu(conv(v_proj x))                     `valueHeads` value heads of valueHeadDim
 *   conv: causal depthwise, no bias, SiLU inside it for v (and for q, k when φ is silu);
 *         without short convs the SiLU is applied to the projection directly
 *   q̂, k̂ = q, k / sqrt(Σ² + 1e-6) per key head      (fla's in-kernel l2 norm)
 *   β    = sigmoid(b_proj x) per value head, ×2 with allowNegEigval, 1 without useBeta
 *   g    = −exp(A_log) · softplus(a_proj x + dt_bias) per value head     (decay 'head' only)
 *   S_h ← exp(g)·S_h;  S_h ← S_h + β k̂ (v − S_hᵀ k̂)ᵀ;  o_h = S_hᵀ (q̂ / √keyHeadDim)
 *         value head h reads key head h / (valueHeads / heads), as fla's kernels do
 *   y    = o_proj(rmsnorm_per_value_head(o) · silu(g_proj x))   (the gate only with outputGate)
 * Weights keep fla's names under model.layers.<i>.attn, so the fla importers map them as they
 * are. Qwen3-Next's gated DeltaNet, with its fused in_proj_qkvz layout, is the kind
 * `gated_deltanet` (gated-deltanet.ts).
 */
import type { GraphBuilder } from '../graph/builder.ts';
import { columns, linear, pointwiseOp } from '../graph/blocks/common.ts';
import type { Issue, Namer } from '../spec/checks.ts';
import { defineKind, opt } from '../spec/kind.ts';
import type { ModelIR } from '../spec/model.ts';
import { bool as boolSchema, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { bool, int, oneOf, orNone, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';
import {
  add,
  constant,
  defaultHeadDim,
  featureMap,
  flaMixerSublayer,
  fn,
  headL2Norm,
  headMultipleIssues,
  mul,
  outputNorm,
  projection,
  recurrence,
  ref,
  type MixerSite,
} from './parts.ts';

/** The feature map φ on q and k: fla's qk_activation ('elu' there is elu + 1). */
export type QkActivation = 'silu' | 'relu' | 'elu1' | 'identity';
const QK_ACTIVATIONS: readonly QkActivation[] = ['silu', 'relu', 'elu1', 'identity'];

export interface DeltaNetSpec {
  kind: 'deltanet';
  /** Key heads (q and k): fla's num_heads. */
  heads: number;
  /** Value heads (v, β, decay, output): Gated DeltaNet's num_v_heads; a multiple of heads. */
  valueHeads: number;
  keyHeadDim: number;
  valueHeadDim: number;
  /** Short conv kernel on q, k and v (fla's conv_size); null without them (use_short_conv false). */
  dConv: number | null;
  qkActivation: QkActivation;
  /** β = sigmoid(b_proj x); false: β = 1 and there is no b_proj. */
  useBeta: boolean;
  /** β × 2, so the transition I − βkkᵀ may have negative eigenvalues. */
  allowNegEigval: boolean;
  /** 'head': Gated DeltaNet's per-value-head decay from a_proj, A_log and dt_bias. */
  decay: 'none' | 'head';
  /** Multiply the normed output by silu(g_proj x) (fla's use_gate). */
  outputGate: boolean;
  /** eps of the per-head output RMSNorm (fla passes the config's norm_eps). */
  normEps: number;
}

/** fla's l2norm inside the delta-rule kernels: x / sqrt(Σx² + 1e-6) per head. */
const L2_EPS = 1e-6;

function checkDeltaNet(m: DeltaNetSpec, n: Namer): Issue[] {
  const issues = headMultipleIssues(m, n, 'valueHeads', 'heads', 'valueHeads');
  if (m.dConv !== null && m.dConv < 2) {
    issues.push({
      path: ['dConv'],
      message: `${n('dConv')} must be at least 2 (a causal conv over past steps) or none, got ${m.dConv}`,
    });
  }
  return issues;
}

export const deltanetKind = defineKind({
  name: 'deltanet',
  params: {
    heads: opt(int(1)),
    value_heads: opt(int(1)),
    key_head_dim: opt(int(1)),
    value_head_dim: opt(int(1)),
    d_conv: opt(orNone(int(1))),
    qk_activation: opt(oneOf('qk activation', QK_ACTIVATIONS)),
    use_beta: opt(bool),
    allow_neg_eigval: opt(bool),
    decay: opt(orNone(oneOf('decay', ['head'] as const))),
    output_gate: opt(bool),
    norm_eps: opt(positive),
  },
  // Defaults are fla's config classes': DeltaNetConfig (16 heads, expand_k = expand_v = 1, no
  // gate), or GatedDeltaNetConfig with decay: head (6 heads of 256, expand_v 2, gate).
  build: (a, ctx, fail): DeltaNetSpec => {
    const gated = a.decay === 'head';
    const heads = a.heads ?? (gated ? 6 : 16);
    const valueHeads = a.value_heads ?? heads;
    const keyHeadDim =
      a.key_head_dim ??
      (gated ? 256 : defaultHeadDim(ctx.dim, 1, heads, 'key_head_dim', fail, 'heads'));
    const valueHeadDim =
      a.value_head_dim ??
      (gated
        ? 2 * keyHeadDim
        : defaultHeadDim(ctx.dim, 1, valueHeads, 'value_head_dim', fail, 'value_heads'));
    return {
      kind: 'deltanet',
      heads,
      valueHeads,
      keyHeadDim,
      valueHeadDim,
      dConv: a.d_conv === undefined ? 4 : a.d_conv,
      qkActivation: a.qk_activation ?? 'silu',
      useBeta: a.use_beta ?? true,
      allowNegEigval: a.allow_neg_eigval ?? false,
      decay: gated ? 'head' : 'none',
      outputGate: a.output_gate ?? gated,
      normEps: a.norm_eps ?? 1e-6,
    };
  },
  check: checkDeltaNet,
  // Every parameter; the printer leaves out those the defaults (which depend on dim and decay)
  // would restore.
  toArgs: (s) =>
    s.kind !== 'deltanet'
      ? null
      : [
          { name: 'heads', value: s.heads },
          { name: 'value_heads', value: s.valueHeads },
          { name: 'key_head_dim', value: s.keyHeadDim },
          { name: 'value_head_dim', value: s.valueHeadDim },
          { name: 'd_conv', value: s.dConv },
          { name: 'qk_activation', value: { name: s.qkActivation } },
          { name: 'use_beta', value: s.useBeta },
          { name: 'allow_neg_eigval', value: s.allowNegEigval },
          { name: 'decay', value: s.decay === 'head' ? { name: 'head' } : null },
          { name: 'output_gate', value: s.outputGate },
          { name: 'norm_eps', value: s.normEps },
        ],
});

/** The mixer on the normed input h, without the residual. */
function deltanetBranch(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  at: MixerSite,
  m: DeltaNetSpec,
): number {
  const L = at.label;
  const key = m.heads * m.keyHeadDim;
  const value = m.valueHeads * m.valueHeadDim;
  const VH = m.valueHeads;

  // fla puts the SiLU inside the short conv (or on the projection without one); φ other than
  // silu comes after a conv without activation.
  const input = (name: 'q' | 'k' | 'v', width: number, silu: boolean): number => {
    if (m.dConv !== null) {
      return projection(b, model, h, at, name, width, { kernel: m.dConv, silu });
    }
    const y = projection(b, model, h, at, name, width);
    return silu ? featureMap(b, y, width, 'silu', `${L}.${name}_silu`) : y;
  };
  const qk = (name: 'q' | 'k'): number => {
    const silu = m.qkActivation === 'silu';
    const x = input(name, key, silu);
    const phi = silu ? x : featureMap(b, x, key, m.qkActivation, `${L}.${name}_map`);
    return headL2Norm(b, phi, key, m.keyHeadDim, L2_EPS, `${L}.${name}`);
  };
  const q = qk('q');
  const k = qk('k');
  const v = input('v', value, true);

  const betaScale = m.allowNegEigval ? 2 : 1;
  const beta = m.useBeta
    ? pointwiseOp(
        b,
        `${L}.beta`,
        VH,
        { b: [projection(b, model, h, at, 'b', VH), columns(VH)] },
        betaScale === 1
          ? fn('sigmoid', ref('b'))
          : mul(constant(betaScale), fn('sigmoid', ref('b'))),
      )
    : pointwiseOp(b, `${L}.beta`, VH, {}, constant(betaScale));

  const rule: Record<string, number> = { q, k, v, beta };
  if (m.decay === 'head') {
    rule.g = pointwiseOp(
      b,
      `${L}.decay`,
      VH,
      {
        a: [projection(b, model, h, at, 'a', VH), columns(VH)],
        A: [b.param(`${at.prefix}.A_log`, [VH]), columns(VH, false)],
        dt: [b.param(`${at.prefix}.dt_bias`, [VH]), columns(VH, false)],
      },
      mul(fn('neg', fn('exp', ref('A'))), fn('softplus', add(ref('a'), ref('dt')))),
    );
  }
  // Value head h reads key head h / (valueHeads / heads).
  const spec = {
    heads: VH,
    qHeads: m.heads,
    kHeads: m.heads,
    keyDim: m.keyHeadDim,
    valueDim: m.valueHeadDim,
    decay: m.decay,
    update: 'delta',
  } as const;
  const o = recurrence(b, spec, rule, `delta.${at.layer}`, L);

  // fla's o_norm: RMSNorm per value head with one [valueHeadDim] weight (FusedRMSNormGated with
  // the swish gate when use_gate).
  const out = outputNorm(
    b,
    o,
    {
      weight: `${at.prefix}.o_norm.weight`,
      width: value,
      headDim: m.valueHeadDim,
      eps: m.normEps,
      gate: m.outputGate ? { z: projection(b, model, h, at, 'g', value), act: 'silu' } : undefined,
    },
    L,
  );
  return linear(b, out, `${at.prefix}.o_proj`, model.dim, value, false, `${L}.out`);
}

/** softplus⁻¹(y) = y + log(1 − e^−y): fla draws dt_bias so that softplus(dt_bias) = dt. */
const invSoftplus = (y: number): number => y + Math.log(-Math.expm1(-y));

export const deltanet = defineMixer<DeltaNetSpec>({
  kind: deltanetKind,
  schema: object({
    kind: kind('deltanet'),
    heads: posInt,
    valueHeads: posInt,
    keyHeadDim: posInt,
    valueHeadDim: posInt,
    dConv: { type: ['integer', 'null'], minimum: 2 },
    qkActivation: { enum: [...QK_ACTIVATIONS] },
    useBeta: boolSchema,
    allowNegEigval: boolSchema,
    decay: { enum: ['none', 'head'] },
    outputGate: boolSchema,
    normEps: posNumber,
  }),
  dims: (s) => {
    const parts = [`heads ${s.heads}`];
    if (s.valueHeads !== s.heads) parts.push(`value_heads ${s.valueHeads}`);
    parts.push(`key ${s.keyHeadDim}`, `value ${s.valueHeadDim}`);
    parts.push(s.dConv === null ? 'no conv' : `d_conv ${s.dConv}`);
    if (s.qkActivation !== 'silu') parts.push(`qk ${s.qkActivation}`);
    if (!s.useBeta) parts.push('β 1');
    if (s.allowNegEigval) parts.push('neg eigval');
    if (s.decay === 'head') parts.push('gated');
    if (s.outputGate) parts.push('output gate');
    return parts.join(', ');
  },
  lower: (b, model, x, i, m, input) =>
    flaMixerSublayer(b, model, x, input, i, 'deltanet', (h, at) =>
      deltanetBranch(b, model, h, at, m),
    ),
  // fla's initialisation: A = U(0, 16), dt = exp(U(log 1e-3, log 0.1)).
  init: {
    '.attn.A_log': [Math.log(1), Math.log(16)],
    '.attn.dt_bias': [invSoftplus(1e-3), invSoftplus(0.1)],
  },
});
