/**
 * softmax_rows (semantics and precision: src/ops/softmax-rows.ts): one workgroup a row. Each
 * thread walks ids tid, tid + WG, … keeping an online maximum and the sum of exp(x − max) of
 * x = logit / t (rescaled when the maximum grows), so the row is read twice: once for the
 * statistics, merged by a halving tree, and once to write exp(x − M) / S. At t = 0 (a uniform, so
 * the branch is uniform control flow) the tree keeps the largest logit and, among equal ones, the
 * lowest id, and the row is written as its one-hot.
 *
 * A thread that sees no id (vocab < WG) holds the maximum −3e38 with a sum of 0, which the merge
 * scales by exp(−3e38 − M) = 0: no NaN from (−∞) − (−∞). Rows past step.T are not touched, nor the
 * state's rows past T. The row loop, the tree and the tie rule are the per-row kernels' shared
 * WGSL (codegen/kernels/row-reduce.ts).
 */
import type { SoftmaxRowsAttrs } from '../../src/graph/ops.ts';
import { softmaxRows } from '../../src/ops/softmax-rows.ts';
import type { KernelGenerator } from './types.ts';
import { opBindings } from './wgsl-builder.ts';
import { STEP_WGSL } from '../kernel-ir.ts';
import {
  BETTER_WGSL,
  ROW_NAMES,
  rowConstants,
  rowMain,
  rowWorkgroup,
  treeReduce,
} from './row-reduce.ts';

export const softmaxRowsKernel: KernelGenerator<SoftmaxRowsAttrs> = (a, ctx) => {
  softmaxRows.check(a);
  if (ctx.maxT > a.rows)
    throw new Error(`softmax_rows: a step of up to ${ctx.maxT} rows writes a state of ${a.rows}`);
  const wg = rowWorkgroup(a.vocab, ctx.caps.maxInvocationsPerWorkgroup);
  const b = opBindings(a, [...ROW_NAMES, 'mx', 'sm', 'ix', 'merge']);
  const code = /* wgsl */ `${STEP_WGSL}
${b.decls}
${rowConstants(a.vocab, wg)}
var<workgroup> mx: array<f32, ${wg}>;
var<workgroup> sm: array<f32, ${wg}>;
var<workgroup> ix: array<u32, ${wg}>;

${BETTER_WGSL}

${rowMain(wg)}
  let t = step.temperature;
  if (t == 0.0) {
    // The one-hot limit: the largest logit, the lowest id among equals (ascending walk, strict >).
    var best = -3.0e38;
    var id = NONE;
    for (var v = tid; v < V; v += WG) {
      let l = logits[base + v];
      if (id == NONE || l > best) { best = l; id = v; }
    }
    mx[tid] = best;
    ix[tid] = id;
${treeReduce('if (better(mx[j], ix[j], mx[tid], ix[tid])) { mx[tid] = mx[j]; ix[tid] = ix[j]; }', '    ')}
    let top = ix[0];
    for (var v = tid; v < V; v += WG) { probs[base + v] = select(0.0, 1.0, v == top); }
    return;
  }
  var m = -3.0e38;
  var s = 0.0;
  for (var v = tid; v < V; v += WG) {
    let x = logits[base + v] / t;
    if (x > m) {
      s = s * exp(m - x) + 1.0;
      m = x;
    } else {
      s += exp(x - m);
    }
  }
  mx[tid] = m;
  sm[tid] = s;
${treeReduce(`
    let M = max(mx[tid], mx[j]);
    sm[tid] = sm[tid] * exp(mx[tid] - M) + sm[j] * exp(mx[j] - M);
    mx[tid] = M;`)}
  let M = mx[0];
  let S = sm[0];
  for (var v = tid; v < V; v += WG) { probs[base + v] = exp(logits[base + v] / t - M) / S; }
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `softmax_rows_v${a.vocab}_r${a.rows}_wg${wg}`,
          code,
          bindings: b.bindings,
          workgroupSize: [wg, 1, 1],
        },
        grid: [{ sym: 'T' }, 1, 1],
      },
    ],
    scratch: {},
  };
};
