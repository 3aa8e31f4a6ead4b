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
import {
  causalConv,
  linear,
  linearRows,
  linearScale,
  mixerSublayer,
  weightRows,
} from './common.ts';

/** The largest finite f32: "no upper clamp" for dt, as a number every kernel can write. */
export const F32_MAX = 3.4028234663852886e38;

export function lowerMamba2(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  m: Mamba2Spec,
  /** What the pre-norm reads when it is not the residual x (a shared block's output added). */
  input: number = x,
): number {
  return mixerSublayer(b, model, x, input, i, mamba2Names(i).norm, `l${i}.mamba2`, (h) =>
    mamba2Branch(b, model, h, i, m, 1, 1),
  );
}

/**
 * outScale · mamba2(inScale · h) for the normed input h, without the residual. The multipliers
 * and in_proj's part scales fold into in_proj's rows and out_proj.
 */
export function mamba2Branch(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  i: number,
  m: Mamba2Spec,
  inScale: number,
  outScale: number,
): number {
  const n = mamba2Names(i);
  const L = `l${i}.mamba2`;
  const w = mamba2Widths(m);
  const gn = m.groups * m.dState;
  const [zS, xS, bS, cS, dtS] = m.projScales ?? [1, 1, 1, 1, 1];
  const proj = (start: number, count: number, tag: string, part: number) =>
    linearRows(
      b,
      h,
      n.inProj,
      w.inProj,
      start,
      count,
      model.dim,
      m.projBias,
      `${L}.in_${tag}`,
      linearScale(inScale, part),
    );
  const z = proj(0, w.inner, 'z', zS);
  // Channel ranges of the conv (x, B, C), which follow z in in_proj.
  const parts = [
    { tag: 'x', start: 0, count: w.inner, part: xS },
    { tag: 'b', start: w.inner, count: gn, part: bS },
    { tag: 'c', start: w.inner + gn, count: gn, part: cS },
  ];
  const [xs, B, C] = parts.map(({ tag, start, count, part }) =>
    causalConv(
      b,
      proj(w.inner + start, count, tag, part),
      weightRows(b, `${n.conv}.weight`, w.conv, start, count, m.dConv),
      m.convBias ? weightRows(b, `${n.conv}.bias`, w.conv, start, count, 1) : null,
      b.state(`conv.${i}.${tag}`, [m.dConv - 1, count]),
      count,
      m.dConv,
      true,
      `${L}.${tag}`,
    ),
  );
  const dt = proj(w.inner + w.conv, m.heads, 'dt', dtS);
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
  const g =
    m.gateNorm === false
      ? // y · silu(z) without the norm (Falcon-H1's mamba_rms_norm: false).
        b.op(
          { op: 'glu', act: 'silu', width: w.inner },
          `${L} gate`,
          { gate: z, up: y },
          { out: { name: `${L}.gated`, shape: ['T', w.inner] } },
        ).out
      : b.op(
          {
            op: 'gated_norm',
            width: w.inner,
            group: m.normGroup,
            eps: m.normEps,
            normBeforeGate: m.normBeforeGate === true,
          },
          `${L} gated norm`,
          { x: y, z, w: b.param(`${n.gateNorm}.weight`, [w.inner]) },
          { out: { name: `${L}.gnorm`, shape: ['T', w.inner] } },
        ).out;
  const out = linearScale(1, outScale);
  return linear(b, g, n.outProj, model.dim, w.inner, m.projBias, `${L}.out`, 'T', out);
}
