/**
 * Causal depthwise conv1d with carried state (semantics: src/ops/conv1d.ts), one launch
 * for prefill and decode alike.
 *
 * A thread owns one channel and a run of TB consecutive tokens, with the kernel−1 inputs
 * before its first token in a sliding register window, so each x element is read about
 * once. TB >= kernel−1, so only the thread of a channel's first run ever reads the old
 * state (rows t < kernel−1 of u = [state; x]); that same thread writes the new state after
 * its outputs, which orders every read of a channel's old state before its overwrite
 * without a second launch or scratch. At step.pos == 0 the old state reads as zeros.
 */
import type { Conv1dAttrs } from '../../src/graph/ops.ts';
import { conv1d } from '../../src/ops/conv1d.ts';
import { STEP_WGSL, type KernelLaunch } from '../kernel-ir.ts';
import type { KernelGenerator } from './types.ts';
import { FLAT_MAIN_WGSL, streamWorkgroup } from './elementwise.ts';
import { actExpr, withHelpers } from './wgsl-math.ts';
import { opBindings } from './wgsl-builder.ts';

/** Tokens per thread in prefill: enough to amortise the window's refill, small enough for parallelism. */
const PREFILL_RUN = 8;

export const conv1dKernel: KernelGenerator<Conv1dAttrs> = (a, { caps, maxT }) => {
  conv1d.check(a);
  const C = a.channels;
  const K = a.kernel;
  const S = K - 1;
  // Batched (a.batch): row t is sequence t at step.pos with its own state slice, so a thread
  // owns one (row, channel) and shifts that slice itself: nothing carries across rows.
  const batched = (a.batch ?? 1) > 1;
  const tb = batched ? 1 : Math.max(S, maxT === 1 ? 1 : PREFILL_RUN);
  const wg = streamWorkgroup(caps);
  // Threads: ceil(T / TB) runs × C channels, folded into y when x would pass the limit.
  const maxGroups = Math.ceil((Math.ceil(maxT / tb) * C) / wg);
  const ySplit = Math.max(1, Math.ceil(maxGroups / caps.maxWorkgroupsPerDimension));
  if (ySplit > caps.maxWorkgroupsPerDimension)
    throw new Error(`conv1d: ${maxT} x ${C} needs more workgroups than the device allows`);

  const { bindings, decls } = opBindings(a, [
    ...['C', 'K', 'S', 'TB', 'WG', 'main', 'wid', 'nwg', 'lid', 'i'],
    ...['c', 't0', 'T', 'fresh', 'wk', 'win', 'old', 'j', 'r', 't1', 't', 'xv', 's', 'ur', 'sb'],
  ]);
  const body = `  let c = i % C;
  let t0 = (i / C) * TB;
  let T = step.T;
  if (t0 >= T) { return; }
  let fresh = step.pos == 0u;
  var wk: array<f32, K>;
  for (var j = 0u; j < K; j++) { wk[j] = w[c * K + j]; }
  // win[j] = u[t0 + j]: the S inputs before token t0 (u = [state; x]).
  var win: array<f32, S>;
  var old: array<f32, S>;
  for (var j = 0u; j < S; j++) {
    let r = t0 + j;
    if (r < S) {
      old[j] = select(state[r * C + c], 0.0, fresh);
      win[j] = old[j];
    } else {
      win[j] = x[(r - S) * C + c];
    }
  }
  let t1 = min(t0 + TB, T);
  for (var t = t0; t < t1; t++) {
    let xv = x[t * C + c];
    var s = ${a.bias ? 'bias[c]' : '0.0'} + wk[S] * xv;
    for (var j = 0u; j < S; j++) { s += wk[j] * win[j]; }
    out[t * C + c] = ${a.silu ? actExpr('silu', 's') : 's'};
    for (var j = 0u; j + 1u < S; j++) { win[j] = win[j + 1u]; }
    win[S - 1u] = xv;
  }
  // New state: u rows T .. T+S-1. Only the first run's thread (t0 == 0) read old state, into old[].
  if (t0 == 0u) {
    for (var r = 0u; r < S; r++) {
      let ur = T + r;
      if (ur < S) {
        state[r * C + c] = old[ur];
      } else {
        state[r * C + c] = x[(ur - S) * C + c];
      }
    }
  }
}
`;
  const batchedBody = `  let c = i % C;
  let t = i / C;
  if (t >= step.T) { return; }
  let fresh = step.pos == 0u;
  let sb = t * S * C;
  let xv = x[t * C + c];
  var s = ${a.bias ? 'bias[c]' : '0.0'} + w[c * K + S] * xv;
  for (var j = 0u; j < S; j++) { s += w[c * K + j] * select(state[sb + j * C + c], 0.0, fresh); }
  out[t * C + c] = ${a.silu ? actExpr('silu', 's') : 's'};
  for (var j = 0u; j + 1u < S; j++) {
    state[sb + j * C + c] = select(state[sb + (j + 1u) * C + c], 0.0, fresh);
  }
  state[sb + (S - 1u) * C + c] = xv;
}
`;
  const code = `${STEP_WGSL}
${decls}
const C: u32 = ${C}u;
const K: u32 = ${K}u;
const S: u32 = ${S}u;
const TB: u32 = ${tb}u;
const WG: u32 = ${wg}u;

${FLAT_MAIN_WGSL}
${batched ? batchedBody : body}`;
  const launch: KernelLaunch = {
    kernel: {
      name: `conv1d_c${C}_k${K}${a.bias ? '_b' : ''}${a.silu ? '_silu' : ''}_tb${tb}_wg${wg}${batched ? '_batched' : ''}`,
      code: withHelpers(code),
      bindings,
      workgroupSize: [wg, 1, 1],
    },
    grid: [{ sym: 'T', mul: C, add: (tb - 1) * C, div: tb * wg * ySplit }, ySplit, 1],
  };
  return { launches: [launch], scratch: {} };
};
