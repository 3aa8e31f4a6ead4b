/**
 * RWKV's token shift (semantics in src/graph/ops.ts, TokenShiftAttrs): every row's predecessor,
 * with the last row of the previous step carried in a one-row state. RWKV-7 mixes each row with
 * it before its projections (time mixing) and its FFN (channel mixing); the mixes themselves are
 * pointwise ops.
 */
import type { TokenShiftAttrs } from '../graph/ops.ts';
import { f32, rule, type OpDefinition } from './types.ts';

export const tokenShift: OpDefinition<TokenShiftAttrs> = {
  check(a) {
    if (!Number.isInteger(a.width) || a.width < 1) {
      throw new Error(`token_shift: width must be a positive integer, got ${a.width}`);
    }
  },
  inputs: (a) => ({ x: rule(['T', a.width]), state: rule([1, a.width], 'read_write') }),
  outputs: (a) => ({ out: rule(['T', a.width]), state: rule([1, a.width], 'read_write') }),
  reference(a, inputs, step) {
    tokenShift.check(a);
    const W = a.width;
    const x = f32(inputs, 'x');
    const state = f32(inputs, 'state');
    if (x.length < step.T * W || state.length < W) {
      throw new Error(`token_shift: x needs ${step.T * W} elements and state ${W}`);
    }
    const out = new Float32Array(step.T * W);
    // State reset rule (src/graph/ops.ts): a new sequence's first row has a zero predecessor.
    if (step.pos > 0) out.set(state.subarray(0, W));
    out.set(x.subarray(0, (step.T - 1) * W), W);
    if (step.T > 0) state.set(x.subarray((step.T - 1) * W, step.T * W));
    return { out, state };
  },
  cost(a, step) {
    return {
      flops: 0,
      bytesRead: 4 * (step.T + 1) * a.width,
      bytesWritten: 4 * (step.T + 1) * a.width,
    };
  },
};
