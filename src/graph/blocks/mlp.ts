/** Lowering of a dense MLP sublayer (pre-norm, gated or plain, down projection, residual), unfused. */
import type { GraphBuilder } from '../builder.ts';
import type { MlpSpec, ModelIR } from '../../spec/model.ts';
import { mlpNames } from '../../import/names.ts';
import { linear, preNorm, residualAdd } from './common.ts';

export function lowerMlp(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  f: MlpSpec,
): number {
  const n = mlpNames(i);
  const L = `l${i}.mlp`;
  const h = preNorm(b, model, x, n.norm, L);
  const up = linear(b, h, n.up, f.hidden, model.dim, f.bias, `${L}.up`);
  let a: number;
  if (f.gated) {
    const gate = linear(b, h, n.gate, f.hidden, model.dim, f.bias, `${L}.gate`);
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
  const down = linear(b, a, n.down, model.dim, f.hidden, f.bias, `${L}.down`);
  return residualAdd(b, model, x, down, L);
}
