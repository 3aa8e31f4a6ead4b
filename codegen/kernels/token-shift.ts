/**
 * Token shift (semantics: src/ops/token-shift.ts): one thread per element, out[t] = x[t − 1].
 * The thread of row 0 of a column is the only one that touches that column's state: it reads
 * the old value (zero at pos 0) and then writes x[T − 1], so no read can see the new state.
 *
 * Batched (a.batch): row t is sequence t, whose predecessor is row t of the state (its slice), so
 * every thread reads its own state element and then overwrites it with its own x.
 */
import type { TokenShiftAttrs } from '../../src/graph/ops.ts';
import { tokenShift } from '../../src/ops/token-shift.ts';
import { STEP_WGSL } from '../kernel-ir.ts';
import { opBindings } from './wgsl-builder.ts';
import type { KernelGenerator } from './types.ts';
import { FLAT_MAIN_WGSL, flatGrid, streamWorkgroup } from './elementwise.ts';

export const tokenShiftKernel: KernelGenerator<TokenShiftAttrs> = (a, { caps, maxT }) => {
  tokenShift.check(a);
  const wg = streamWorkgroup(caps);
  const batched = (a.batch ?? 1) > 1;
  const { bindings, decls } = opBindings(a, ['W', 'WG', 'i', 'wid', 'nwg', 'lid', 'main']);
  const body = batched
    ? `  out[i] = select(state[i], 0.0, step.pos == 0u);
  state[i] = x[i];`
    : `  if (i < W) {
    out[i] = select(state[i], 0.0, step.pos == 0u);
    state[i] = x[(step.T - 1u) * W + i];
  } else {
    out[i] = x[i - W];
  }`;
  const code = `${STEP_WGSL}
${decls}
const W: u32 = ${a.width}u;
const WG: u32 = ${wg}u;

${FLAT_MAIN_WGSL}
  if (i >= step.T * W) { return; }
${body}
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `token_shift_w${a.width}_wg${wg}${batched ? '_batched' : ''}`,
          code,
          bindings,
          workgroupSize: [wg, 1, 1],
        },
        grid: flatGrid('T', a.width, maxT, wg, caps),
      },
    ],
    scratch: {},
  };
};
