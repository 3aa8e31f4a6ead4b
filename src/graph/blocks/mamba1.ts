/**
 * Lowering of a Mamba-1 sublayer (HF MambaMixer): pre-norm; in_proj as two matmuls over its row
 * ranges (x, gate z); causal conv + SiLU on x; x_proj as three (dt, B, C), with Jamba's RMSNorms
 * on each when present; dt_proj with its bias; the selective scan (softplus, decay, D skip and
 * SiLU(z) gate inside); out_proj; residual. HF Mamba layers have no FFN: the layer is
 * x + mixer(norm(x)). State: conv.{i} [dConv − 1, dInner] and ssm.{i} [dInner, dState].
 */
import type { GraphBuilder } from '../builder.ts';
import type { Mamba1Spec, ModelIR } from '../../spec/model.ts';
import { mamba1Names } from '../../import/names.ts';
import { causalConv, linear, linearRows, mixerSublayer } from './common.ts';

export function lowerMamba1(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  m: Mamba1Spec,
  /** What the pre-norm reads when it is not the residual x (a shared block's output added). */
  input: number = x,
): number {
  return mixerSublayer(b, model, x, input, i, mamba1Names(i).norm, `l${i}.mamba`, (h) =>
    mamba1Branch(b, model, h, i, m),
  );
}

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
