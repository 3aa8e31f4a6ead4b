/**
 * Lowering of a dense MLP sublayer (pre-norm, gated or plain, down projection, residual), unfused.
 * RWKV's channel mix (tokenShift) first mixes each normed row with its predecessor, carrying the
 * last row in the state `shift.ffn.{i}` [1, dim].
 */
import type { GraphBuilder } from '../builder.ts';
import type { MlpSpec, ModelIR } from '../../spec/model.ts';
import { mlpNames, postNormNames } from '../../import/names.ts';
import { linear, linearScale, preNorm, sublayerResidual, tokenShiftMixes } from './common.ts';

export function lowerMlp(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  f: MlpSpec,
): number {
  const n = mlpNames(i);
  const L = `l${i}.mlp`;
  let h = preNorm(b, model, x, n.norm, L);
  if (f.tokenShift) {
    const state = b.state(`shift.ffn.${i}`, [1, model.dim]);
    const mu = b.param(n.shift, [model.dim]);
    [h] = tokenShiftMixes(b, h, state, model.dim, [{ name: 'k', mu }], L);
  }
  const up = linear(b, h, n.up, f.hidden, model.dim, f.bias, `${L}.up`);
  let a: number;
  if (f.gated) {
    // muP multipliers fold into the gate and down projections (act(s·(x Wg + bg))).
    const gs = linearScale(1, f.gateScale ?? 1);
    const gate = linear(b, h, n.gate, f.hidden, model.dim, f.bias, `${L}.gate`, 'T', gs);
    a = b.op(
      { op: 'glu', act: f.act, width: f.hidden },
      `${L} ${f.act}-glu`,
      { gate, up },
      {
        out: { name: `${L}.glu`, shape: ['T', f.hidden] },
      },
    ).out;
  } else {
    a = b.op(
      { op: 'act', act: f.act, width: f.hidden },
      `${L} ${f.act}`,
      { x: up },
      {
        out: { name: `${L}.act`, shape: ['T', f.hidden] },
      },
    ).out;
  }
  const ds = linearScale(1, f.downScale ?? 1);
  const down = linear(b, a, n.down, model.dim, f.hidden, f.bias, `${L}.down`, 'T', ds);
  return sublayerResidual(b, model, x, down, postNormNames(i).ffn, L);
}
