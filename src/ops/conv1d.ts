/**
 * Causal depthwise conv1d over time with a carried state (Mamba's conv before the scan,
 * LFM2's short conv). Per channel c, with u = [state rows (kernel−1, oldest first); x rows]:
 *   out[t, c] = act(bias[c] + Σ_j w[c, j] · u[t + j, c])
 * and afterwards state = the last kernel−1 rows of u, which for T < kernel−1 still
 * contains old state rows. HF's conv weight [channels, 1, kernel] is stored as
 * [channels, kernel]. At step.pos === 0 the incoming state is read as zeros.
 */
import type { Conv1dAttrs, Cost, StepShape } from '../graph/ops.ts';
import { activate } from './math.ts';
import { f32, inPlace, rule, type OpDefinition, type TensorRule } from './types.ts';

function need(name: string, arr: Float32Array, n: number): void {
  if (arr.length < n) throw new Error(`conv1d: ${name} has ${arr.length} elements, needs ${n}`);
}

export const conv1d: OpDefinition<Conv1dAttrs> = {
  check(a) {
    if (!Number.isInteger(a.channels) || a.channels < 1)
      throw new Error(`conv1d: channels must be a positive integer, got ${a.channels}`);
    // A kernel of 1 has no state; every model with a short conv uses 2..4.
    if (!Number.isInteger(a.kernel) || a.kernel < 2)
      throw new Error(`conv1d: kernel must be an integer >= 2, got ${a.kernel}`);
  },
  inputs(a) {
    const r: Record<string, TensorRule> = {
      x: rule(['T', a.channels]),
      w: rule([a.channels, a.kernel]),
    };
    if (a.bias) r.bias = rule([a.channels]);
    r.state = inPlace([a.kernel - 1, a.channels]);
    return r;
  },
  /** state: the last kernel−1 rows of [state; x], updated in place. */
  outputs: (a) => ({ out: rule(['T', a.channels]), state: inPlace([a.kernel - 1, a.channels]) }),
  reference(a, inputs, step) {
    conv1d.check(a);
    const C = a.channels;
    const K = a.kernel;
    const S = K - 1;
    const T = step.T;
    const x = f32(inputs, 'x');
    const w = f32(inputs, 'w');
    const state = f32(inputs, 'state');
    const bias = a.bias ? f32(inputs, 'bias') : undefined;
    need('x', x, T * C);
    need('w', w, C * K);
    need('state', state, S * C);
    if (bias) need('bias', bias, C);
    // u: S state rows (zeros for a new sequence) then the T input rows.
    const u = new Float32Array((S + T) * C);
    if (step.pos > 0) u.set(state.subarray(0, S * C));
    u.set(x.subarray(0, T * C), S * C);
    const out = new Float32Array(T * C);
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        let s = bias ? bias[c] : 0;
        for (let j = 0; j < K; j++) s += w[c * K + j] * u[(t + j) * C + c];
        out[t * C + c] = a.silu ? activate('silu', s) : s;
      }
    }
    state.set(u.subarray(T * C, (T + S) * C));
    return { out, state };
  },
  cost(a: Conv1dAttrs, step: StepShape): Cost {
    const n = step.T * a.channels;
    const stateBytes = 4 * (a.kernel - 1) * a.channels;
    const params = 4 * a.channels * (a.kernel + (a.bias ? 1 : 0));
    return {
      flops: n * (2 * a.kernel + (a.bias ? 1 : 0) + (a.silu ? 4 : 0)),
      bytesRead: 4 * n + params + stateBytes,
      bytesWritten: 4 * n + stateBytes,
    };
  },
};
