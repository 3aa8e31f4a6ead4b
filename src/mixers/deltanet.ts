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
import type { PointwiseExpr, PointwiseInput } from '../graph/ops.ts';
import { causalConv, linear, mixerSublayer } from '../graph/blocks/common.ts';
import { layerPrefix } from '../import/names.ts';
import type { Issue, Namer } from '../spec/checks.ts';
import { defineKind, opt } from '../spec/kind.ts';
import type { ModelIR } from '../spec/model.ts';
import { bool as boolSchema, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { bool, int, oneOf, orNone, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';

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

/** A per-head width of `total` split over `heads`, as fla's expand_k / expand_v of 1 give it. */
function split(
  total: number,
  heads: number,
  param: 'key_head_dim' | 'value_head_dim',
  fail: (message: string, param?: 'heads' | 'value_heads') => never,
): number {
  if (total % heads === 0) return total / heads;
  return fail(
    `${param} has no default here: dim ${total} is not a multiple of ${heads} heads; give ${param}`,
    param === 'key_head_dim' ? 'heads' : 'value_heads',
  );
}

function checkDeltaNet(m: DeltaNetSpec, n: Namer): Issue[] {
  const issues: Issue[] = [];
  if (m.valueHeads % m.heads !== 0) {
    issues.push({
      path: ['valueHeads'],
      message: `${n('valueHeads')} (${m.valueHeads}) must be a multiple of ${n('heads')} (${m.heads})`,
    });
  }
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
      a.key_head_dim ?? (gated ? 256 : split(ctx.dim, heads, 'key_head_dim', fail));
    const valueHeadDim =
      a.value_head_dim ??
      (gated ? 2 * keyHeadDim : split(ctx.dim, valueHeads, 'value_head_dim', fail));
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

/** Every column of a [T, cols] activation (or a [cols] parameter) read as it is. */
function columns(cols: number, perToken = true): PointwiseInput {
  return { perToken, cols, inner: cols, repeat: 1 };
}

function pointwise(
  b: GraphBuilder,
  inputs: Record<string, { tensor: number; map: PointwiseInput }>,
  expr: PointwiseExpr,
  width: number,
  label: string,
): number {
  return b.op(
    {
      op: 'pointwise',
      width,
      inputs: Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.map])),
      expr,
    },
    label,
    Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.tensor])),
    { out: { name: label, shape: ['T', width] } },
  ).out;
}

function act(b: GraphBuilder, x: number, fn: 'silu' | 'relu', width: number, label: string) {
  return b.op(
    { op: 'act', act: fn, width },
    `${label} ${fn}`,
    { x },
    {
      out: { name: `${label}.${fn}`, shape: ['T', width] },
    },
  ).out;
}

/** The mixer on the normed input h, without the residual. */
function deltanetBranch(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  i: number,
  m: DeltaNetSpec,
): number {
  const p = `${layerPrefix(i)}.attn`;
  const L = `l${i}.deltanet`;
  const key = m.heads * m.keyHeadDim;
  const value = m.valueHeads * m.valueHeadDim;
  const proj = (name: string, width: number) =>
    linear(b, h, `${p}.${name}`, width, model.dim, false, `${L}.${name}`);

  // fla puts the SiLU inside the short conv (or on the projection without one); φ other than
  // silu comes after a conv without activation.
  const input = (name: 'q' | 'k' | 'v', width: number, silu: boolean): number => {
    const y = proj(`${name}_proj`, width);
    if (m.dConv === null) return silu ? act(b, y, 'silu', width, `${L}.${name}`) : y;
    const w = b.param(`${p}.${name}_conv1d.weight`, [width, m.dConv]);
    const state = b.state(`conv.${i}.${name}`, [m.dConv - 1, width]);
    return causalConv(b, y, w, null, state, width, m.dConv, silu, `${L}.${name}`);
  };
  const featureMap = (x: number, name: string): number => {
    const label = `${L}.${name}`;
    if (m.qkActivation === 'relu') return act(b, x, 'relu', key, label);
    if (m.qkActivation === 'elu1') {
      return pointwise(
        b,
        { x: { tensor: x, map: columns(key) } },
        { fn: 'elu1', x: { in: 'x' } },
        key,
        `${label}.elu1`,
      );
    }
    return x;
  };
  const l2 = (x: number, name: string): number =>
    b.op(
      {
        op: 'norm',
        norm: { kind: 'l2', eps: L2_EPS, unitOffset: false, bias: false },
        width: key,
        group: m.keyHeadDim,
        residual: false,
      },
      `${L} ${name} l2 norm`,
      { x },
      { out: { name: `${L}.${name}.l2`, shape: ['T', key] } },
    ).out;
  const qkSilu = m.qkActivation === 'silu';
  const q = l2(featureMap(input('q', key, qkSilu), 'q'), 'q');
  const k = l2(featureMap(input('k', key, qkSilu), 'k'), 'k');
  const v = input('v', value, true);

  const VH = m.valueHeads;
  const betaScale = m.allowNegEigval ? 2 : 1;
  const beta = m.useBeta
    ? pointwise(
        b,
        { b: { tensor: proj('b_proj', VH), map: columns(VH) } },
        betaScale === 1
          ? { fn: 'sigmoid', x: { in: 'b' } }
          : { bin: 'mul', a: { const: betaScale }, b: { fn: 'sigmoid', x: { in: 'b' } } },
        VH,
        `${L}.beta`,
      )
    : pointwise(b, {}, { const: betaScale }, VH, `${L}.beta`);

  const rule: Record<string, number> = { q, k, v, beta };
  if (m.decay === 'head') {
    rule.g = pointwise(
      b,
      {
        a: { tensor: proj('a_proj', VH), map: columns(VH) },
        A: { tensor: b.param(`${p}.A_log`, [VH]), map: columns(VH, false) },
        dt: { tensor: b.param(`${p}.dt_bias`, [VH]), map: columns(VH, false) },
      },
      {
        bin: 'mul',
        a: { fn: 'neg', x: { fn: 'exp', x: { in: 'A' } } },
        b: { fn: 'softplus', x: { bin: 'add', a: { in: 'a' }, b: { in: 'dt' } } },
      },
      VH,
      `${L}.decay`,
    );
  }
  const state = b.state(`delta.${i}`, [VH, m.keyHeadDim, m.valueHeadDim]);
  const o = b.op(
    {
      op: 'linear_recurrence',
      heads: VH,
      qHeads: m.heads,
      kHeads: m.heads,
      vHeads: VH,
      gateHeads: VH,
      keyDim: m.keyHeadDim,
      valueDim: m.valueHeadDim,
      // fla's default scale, K ** -0.5 of the key head width.
      scale: m.keyHeadDim ** -0.5,
      decay: m.decay,
      update: 'delta',
      normalize: false,
      normEps: 0,
    },
    `${L} delta rule`,
    { ...rule, state },
    { out: { name: `${L}.rule`, shape: ['T', value] }, state },
  ).out;

  // fla's o_norm: RMSNorm per value head with one [valueHeadDim] weight (FusedRMSNormGated with
  // the swish gate when use_gate).
  const normed = b.op(
    {
      op: 'norm',
      norm: { kind: 'rms', eps: m.normEps, unitOffset: false, bias: false },
      width: value,
      group: m.valueHeadDim,
      residual: false,
    },
    `${L} head norm`,
    { x: o, w: b.param(`${p}.o_norm.weight`, [m.valueHeadDim]) },
    { out: { name: `${L}.hnorm`, shape: ['T', value] } },
  ).out;
  const out = m.outputGate
    ? b.op(
        { op: 'glu', act: 'silu', width: value },
        `${L} output gate`,
        { gate: proj('g_proj', value), up: normed },
        { out: { name: `${L}.gated`, shape: ['T', value] } },
      ).out
    : normed;
  return linear(b, out, `${p}.o_proj`, model.dim, value, false, `${L}.out`);
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
    mixerSublayer(
      b,
      model,
      x,
      input,
      i,
      `${layerPrefix(i)}.input_layernorm`,
      `l${i}.deltanet`,
      (h) => deltanetBranch(b, model, h, i, m),
    ),
  // fla's initialisation: A = U(0, 16), dt = exp(U(log 1e-3, log 0.1)).
  init: {
    '.attn.A_log': [Math.log(1), Math.log(16)],
    '.attn.dt_bias': [invSoftplus(1e-3), invSoftplus(0.1)],
  },
});
