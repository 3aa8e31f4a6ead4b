/**
 * Lowering of a Mamba-2 sublayer (HF Mamba2Mixer): pre-norm; in_proj as five matmuls over its
 * row ranges (z, x, B, C, dt); a causal conv + SiLU on each of x, B and C (the conv over xBC is
 * depthwise, so it splits by channel ranges exactly); the SSD scan; the gated RMSNorm with z;
 * out_proj; residual. State: conv.{i}.x/.b/.c [dConv − 1, channels] and
 * ssm.{i} [heads, headDim, dState].
 */
import type { GraphBuilder } from '../builder.ts';
import type { Mamba2Spec, ModelIR } from '../../spec/model.ts';
import { mamba2Names, mamba2Widths } from '../../import/names.ts';
import { causalConv, linear, linearRows, preNorm, residualAdd, weightRows } from './common.ts';

/** The largest finite f32: "no upper clamp" for dt, as a number every kernel can write. */
export const F32_MAX = 3.4028234663852886e38;

export function lowerMamba2(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  m: Mamba2Spec,
): number {
  const n = mamba2Names(i);
  const L = `l${i}.mamba2`;
  const w = mamba2Widths(m);
  const gn = m.groups * m.dState;
  const h = preNorm(b, model, x, n.norm, L);
  const proj = (start: number, count: number, tag: string) =>
    linearRows(b, h, n.inProj, start, count, model.dim, m.projBias, `${L}.in_${tag}`);
  const z = proj(0, w.inner, 'z');
  // Channel ranges of the conv (x, B, C), which follow z in in_proj.
  const parts = [
    { tag: 'x', start: 0, count: w.inner },
    { tag: 'b', start: w.inner, count: gn },
    { tag: 'c', start: w.inner + gn, count: gn },
  ];
  const [xs, B, C] = parts.map(({ tag, start, count }) =>
    causalConv(
      b,
      proj(w.inner + start, count, tag),
      weightRows(b, `${n.conv}.weight`, start, count, m.dConv),
      m.convBias ? weightRows(b, `${n.conv}.bias`, start, count, 1) : null,
      b.state(`conv.${i}.${tag}`, [m.dConv - 1, count]),
      count,
      m.dConv,
      true,
      `${L}.${tag}`,
    ),
  );
  const dt = proj(w.inner + w.conv, m.heads, 'dt');
  const ssm = b.state(`ssm.${i}`, [m.heads, m.headDim, m.dState]);
  const y = b.op(
    {
      op: 'ssd',
      heads: m.heads,
      headDim: m.headDim,
      dState: m.dState,
      groups: m.groups,
      chunk: m.chunk,
      dtMin: m.dtMin,
      dtMax: m.dtMax ?? F32_MAX,
    },
    `${L} ssd`,
    {
      x: xs!,
      dt,
      dtBias: b.param(n.dtBias, [m.heads]),
      aLog: b.param(n.aLog, [m.heads]),
      b: B!,
      c: C!,
      d: b.param(n.d, [m.heads]),
      state: ssm,
    },
    { out: { name: `${L}.ssd`, shape: ['T', w.inner] }, state: ssm },
  ).out;
  const g = b.op(
    { op: 'gated_norm', width: w.inner, group: m.normGroup, eps: m.normEps },
    `${L} gated norm`,
    { x: y, z, w: b.param(`${n.gateNorm}.weight`, [w.inner]) },
    { out: { name: `${L}.gnorm`, shape: ['T', w.inner] } },
  ).out;
  const o = linear(b, g, n.outProj, model.dim, w.inner, m.projBias, `${L}.out`);
  return residualAdd(b, model, x, o, L);
}
