/**
 * Lowering of LFM2's gated short convolution: pre-norm; in_proj as three matmuls over its row
 * ranges (B, C, x); B·x through a causal depthwise conv without activation; C·conv; out_proj;
 * residual. State: conv.{i} [lCache − 1, dim].
 */
import type { GraphBuilder } from '../builder.ts';
import type { ModelIR, ShortConvSpec } from '../../spec/model.ts';
import { shortConvNames } from '../../import/names.ts';
import { causalConv, linear, linearRows, mixerSublayer } from './common.ts';

export function lowerShortConv(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  m: ShortConvSpec,
  /** What the pre-norm reads when it is not the residual x (a shared block's output added). */
  input: number = x,
): number {
  return mixerSublayer(b, model, x, input, i, shortConvNames(i).norm, `l${i}.conv`, (h) =>
    shortConvBranch(b, model, h, i, m),
  );
}

/** The gated short convolution on the normed input h, without the residual. */
function shortConvBranch(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  i: number,
  m: ShortConvSpec,
): number {
  const n = shortConvNames(i);
  const L = `l${i}.conv`;
  const d = model.dim;
  const proj = (k: number, tag: string) =>
    linearRows(b, h, n.inProj, 3 * d, k * d, d, d, m.bias, `${L}.in_${tag}`);
  const mul = (a: number, c: number, tag: string) =>
    b.op(
      { op: 'mul', width: d },
      `${L} ${tag}`,
      { a, b: c },
      {
        out: { name: `${L}.${tag}`, shape: ['T', d] },
      },
    ).out;
  const gB = proj(0, 'b');
  const gC = proj(1, 'c');
  const xs = proj(2, 'x');
  const conv = causalConv(
    b,
    mul(gB, xs, 'bx'),
    b.param(`${n.conv}.weight`, [d, m.lCache]),
    m.bias ? b.param(`${n.conv}.bias`, [d]) : null,
    b.state(`conv.${i}`, [m.lCache - 1, d]),
    d,
    m.lCache,
    false,
    L,
  );
  return linear(b, mul(gC, conv, 'cy'), n.outProj, d, d, m.bias, `${L}.out`);
}
