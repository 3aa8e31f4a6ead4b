/**
 * `mamba1(...)`: the Mamba-1 selective SSM mixer (HF MambaMixer). Per layer, on the normed input h:
 *   x, z = in_proj h                  (one [2·dInner, dim] projection, lowered as two matmuls
 *                                      over its row ranges)
 *   x = silu(conv(x))                 causal depthwise conv of d_conv taps
 *   dt, B, C = x_proj x               (three matmuls over its row ranges; Jamba's RMSNorms on
 *                                      each when inner_norm_eps is set)
 *   dt = dt_proj dt                   (always with its bias, which carries dt's initialisation)
 *   y = selective_scan(x, dt, A_log, B, C, D) · silu(z)   (softplus, decay, D skip and the gate
 *                                      inside the scan op)
 *   out = out_proj y
 * HF Mamba layers have no FFN: such a layer is x + mixer(norm(x)). State: conv.{i}
 * [dConv − 1, dInner] and ssm.{i} [dInner, dState]. Defaults follow MambaConfig; the inner width
 * can be given directly (d_inner) or as expand × dim.
 * Decode fuses this into three dispatches (src/passes/fuse.ts): in_proj with its norm and the
 * conv (conv-epilogue), x_proj + norms + dt_proj + scan + gate (mamba1-decode's mamba1_step;
 * x_proj as a matmul of its own when large), out_proj with the residual.
 */
import type { GraphBuilder } from '../graph/builder.ts';
import { causalConv, linear, linearRows, mixerSublayer } from '../graph/blocks/common.ts';
import { layerPrefix } from '../import/names.ts';
import { checkKernel } from '../spec/checks.ts';
import { defineKind, opt } from '../spec/kind.ts';
import type { ModelIR } from '../spec/model.ts';
import { bool as boolSchema, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { bool, int, orNone, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';

/**
 * Mamba-1 selective SSM mixer (HF MambaMixer): in_proj to x and the gate z, causal depthwise
 * conv + SiLU on x, x_proj to (dt, B, C), dt_proj, selective scan, gate, out_proj.
 */
export interface Mamba1Spec {
  kind: 'mamba1';
  /** Inner width (expand × dim). */
  dInner: number;
  dState: number;
  /** Conv kernel length (the conv state keeps dConv − 1 steps). */
  dConv: number;
  /** Rank of the dt projection. */
  dtRank: number;
  convBias: boolean;
  /** Bias on in_proj and out_proj. */
  projBias: boolean;
  /** Jamba's RMSNorms on dt, B and C after x_proj; null for none. */
  innerNorms: { eps: number } | null;
}

/** Mamba-1 mixer tensors (HF MambaMixer's names under `mixer`); the conv weight is [channels, kernel]. */
export function mamba1Names(i: number) {
  const p = `${layerPrefix(i)}.mixer`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    inProj: `${p}.in_proj`,
    conv: `${p}.conv1d`,
    xProj: `${p}.x_proj`,
    dtProj: `${p}.dt_proj`,
    outProj: `${p}.out_proj`,
    aLog: `${p}.A_log`,
    d: `${p}.D`,
    /** Jamba's inner RMSNorms. */
    dtNorm: `${p}.dt_layernorm`,
    bNorm: `${p}.b_layernorm`,
    cNorm: `${p}.c_layernorm`,
  };
}

type Fail = (message: string, param?: 'expand') => never;

/**
 * The inner width from an explicit width or `expand × dim` (not both: they could disagree), as
 * the HF config classes give it (mamba2 reads it too).
 */
export function innerWidth(
  explicit: number | undefined,
  widthName: string,
  expand: number | undefined,
  dim: number,
  fail: Fail,
): number {
  if (explicit !== undefined && expand !== undefined) {
    fail(`give ${widthName} or expand, not both`, 'expand');
  }
  return explicit ?? (expand ?? 2) * dim;
}

const kindDef = defineKind({
  name: 'mamba1',
  params: {
    d_state: opt(int(1)),
    d_conv: opt(int(1)),
    expand: opt(int(1)),
    d_inner: opt(int(1)),
    dt_rank: opt(int(1)),
    conv_bias: opt(bool),
    proj_bias: opt(bool),
    inner_norm_eps: opt(orNone(positive)),
  },
  build: (a, ctx, fail): Mamba1Spec => ({
    kind: 'mamba1',
    dInner: innerWidth(a.d_inner, 'd_inner', a.expand, ctx.dim, fail),
    dState: a.d_state ?? 16,
    dConv: a.d_conv ?? 4,
    // MambaConfig's time_step_rank "auto".
    dtRank: a.dt_rank ?? Math.ceil(ctx.dim / 16),
    convBias: a.conv_bias ?? true,
    projBias: a.proj_bias ?? false,
    innerNorms: a.inner_norm_eps ? { eps: a.inner_norm_eps } : null,
  }),
  check: (m: Mamba1Spec, n) => checkKernel('dConv', m.dConv, n),
  // Null for other mixer kinds: the printer asks every kind of the family.
  toArgs: (s) =>
    s.kind !== 'mamba1'
      ? null
      : [
          { name: 'd_inner', value: s.dInner },
          { name: 'd_state', value: s.dState },
          { name: 'd_conv', value: s.dConv },
          { name: 'dt_rank', value: s.dtRank },
          { name: 'conv_bias', value: s.convBias },
          { name: 'proj_bias', value: s.projBias },
          { name: 'inner_norm_eps', value: s.innerNorms && s.innerNorms.eps },
        ],
});

/** Mamba-1 on the normed input h, without the residual. */
function mamba1Branch(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  i: number,
  m: Mamba1Spec,
): number {
  const n = mamba1Names(i);
  const L = `l${i}.mamba`;
  const D = m.dInner;
  const xs = linearRows(b, h, n.inProj, 2 * D, 0, D, model.dim, m.projBias, `${L}.in_x`);
  const z = linearRows(b, h, n.inProj, 2 * D, D, D, model.dim, m.projBias, `${L}.in_z`);
  const conv = causalConv(
    b,
    xs,
    b.param(`${n.conv}.weight`, [D, m.dConv]),
    m.convBias ? b.param(`${n.conv}.bias`, [D]) : null,
    b.state(`conv.${i}`, [m.dConv - 1, D]),
    D,
    m.dConv,
    true,
    L,
  );
  const part = (start: number, count: number, tag: string, norm: string) => {
    const rows = m.dtRank + 2 * m.dState;
    const y = linearRows(b, conv, n.xProj, rows, start, count, D, false, `${L}.x_${tag}`);
    if (!m.innerNorms) return y;
    return b.op(
      {
        op: 'norm',
        norm: { kind: 'rms', eps: m.innerNorms.eps, unitOffset: false, bias: false },
        width: count,
        group: count,
        residual: false,
      },
      `${L} ${tag}-norm`,
      { x: y, w: b.param(`${norm}.weight`, [count]) },
      { out: { name: `${L}.${tag}norm`, shape: ['T', count] } },
    ).out;
  };
  const dtLow = part(0, m.dtRank, 'dt', n.dtNorm);
  const B = part(m.dtRank, m.dState, 'b', n.bNorm);
  const C = part(m.dtRank + m.dState, m.dState, 'c', n.cNorm);
  const dt = linear(b, dtLow, n.dtProj, D, m.dtRank, true, `${L}.dt`);
  const ssm = b.state(`ssm.${i}`, [D, m.dState]);
  const y = b.op(
    { op: 'selective_scan', dInner: D, dState: m.dState },
    `${L} selective scan`,
    {
      x: conv,
      dt,
      aLog: b.param(n.aLog, [D, m.dState]),
      b: B,
      c: C,
      d: b.param(n.d, [D]),
      z,
      state: ssm,
    },
    { out: { name: `${L}.scan`, shape: ['T', D] }, state: ssm },
  ).out;
  return linear(b, y, n.outProj, model.dim, D, m.projBias, `${L}.out`);
}

export const mamba1 = defineMixer<Mamba1Spec>({
  kind: kindDef,
  schema: object({
    kind: kind('mamba1'),
    dInner: posInt,
    dState: posInt,
    dConv: posInt,
    dtRank: posInt,
    convBias: boolSchema,
    projBias: boolSchema,
    innerNorms: { if: { type: 'null' }, else: object({ eps: posNumber }) },
  }),
  dims: (m) => `d_inner ${m.dInner}, d_state ${m.dState}, d_conv ${m.dConv}, dt_rank ${m.dtRank}`,
  lower: (b, model, x, i, m, input) =>
    mixerSublayer(b, model, x, input, i, mamba1Names(i).norm, `l${i}.mamba`, (h) =>
      mamba1Branch(b, model, h, i, m),
    ),
});
