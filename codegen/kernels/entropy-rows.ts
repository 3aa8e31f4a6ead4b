/**
 * entropy_rows (semantics, words and precision: src/ops/entropy-rows.ts): per logits row, the
 * lowest-id argmax, the Gumbel-max token at temperature t and the entropy of softmax(l / t), with
 * the words that let the host prove them equal to its f64 reference (ENTROPY_ROW_WORDS a row),
 * so that the entropy-bound sampler reads 28 bytes a row instead of the row's logits.
 *
 * One workgroup a row, one pass over it: each thread walks ids tid, tid + WG, … (ascending, so a
 * strict > keeps the lowest id of equal values) keeping
 *  - the largest logit and its id;
 *  - the best noisy score x − log(−log u) (x = l / t) and its id, and the best score of the other
 *    ids it saw (the runner-up); the largest |x|;
 *  - for the entropy, an online maximum m of x with so = Σ exp(x − m) over all ids but one
 *    maximum (S = 1 + so, kept apart so that a peaked row's S − 1 keeps its relative precision)
 *    and w = Σ exp(x − m)·(m − x) ≥ 0. Moving to a larger m' scales every old term by
 *    k = exp(m − m'), the old maximum's 1 joining so: so' = (so + 1)·k, w' = k·(w + S·(m' − m)).
 * A halving tree merges threads the same way (ties to the lower id; the larger maximum keeps its
 * own sums unscaled), and H = log1p(so) + w / S: two positive terms, no cancellation. log1p and
 * the −log u of the noise take their series near 0 and near u = 1, where WGSL's log (absolute
 * error 2^-21 around 1) would lose the small result's relative precision; u is exact in f32 for
 * u < 1/2, and 1 − u is for u ≥ 1/2 (so u → 1 never rounds to 1, which would give an infinite
 * score). t = 0 is a uniform, so its branch (argmax only) is uniform control flow.
 *
 * The noise is the diffusion pick's (codegen/kernels/diffusion-pick.ts): the PCG hashes of
 * (seed, draw, pos + row, id) in u32, the same bits as src/ops/diffusion.ts noiseBits. A thread
 * that sees no id (vocab < WG) holds m = −3e38 with so = −1 and w = 0: no terms, which the merge
 * scales by exp(−3e38 − M) = 0. A row holding a NaN or an Inf writes NONFINITE_ROW twice and NaNs.
 * The row loop, the tree and the tie rule are the per-row kernels' shared WGSL
 * (codegen/kernels/row-reduce.ts).
 */
import type { EntropyRowsAttrs } from '../../src/graph/ops.ts';
import {
  ENTROPY_ROW_WORDS,
  entropyRelError,
  entropyRows,
  NONFINITE_ROW,
  RowWord,
} from '../../src/ops/entropy-rows.ts';
import type { KernelGenerator } from './types.ts';
import { opBindings, wgslF32 } from './wgsl-builder.ts';
import { logSeries, withHelpers } from './wgsl-math.ts';
import { STEP_WGSL } from '../kernel-ir.ts';
import {
  BETTER_WGSL,
  ROW_NAMES,
  rowConstants,
  rowMain,
  rowWorkgroup,
  treeReduce,
} from './row-reduce.ts';

export { ENTROPY_ROW_WORDS, NONFINITE_ROW } from '../../src/ops/entropy-rows.ts';

const RESERVED = ['REL', 'am', 'ai', 'gs', 'gi', 'g2', 'ax', 'mx', 'so', 'wm', 'bad'];
const FUNCTIONS = ['log1p_small'];

export const entropyRowsKernel: KernelGenerator<EntropyRowsAttrs> = (a, ctx) => {
  entropyRows.check(a);
  const wg = rowWorkgroup(a.vocab, ctx.caps.maxInvocationsPerWorkgroup);
  const b = opBindings(a, [...ROW_NAMES, ...RESERVED, ...FUNCTIONS]);
  const code = /* wgsl */ `${STEP_WGSL}
${b.decls}
${rowConstants(a.vocab, wg)}
// The entropy sums' relative error bound (src/ops/entropy-rows.ts entropyRelError).
const REL = ${wgslF32(entropyRelError(a.vocab))};
// Largest logit and its id; best noisy score, its id and the other ids' best; largest |l| / t.
var<workgroup> am: array<f32, ${wg}>;
var<workgroup> ai: array<u32, ${wg}>;
var<workgroup> gs: array<f32, ${wg}>;
var<workgroup> gi: array<u32, ${wg}>;
var<workgroup> g2: array<f32, ${wg}>;
var<workgroup> ax: array<f32, ${wg}>;
// Online softmax statistics of x = l / t: maximum, Σ exp(x − m) but one maximum, Σ exp(x − m)·(m − x).
var<workgroup> mx: array<f32, ${wg}>;
var<workgroup> so: array<f32, ${wg}>;
var<workgroup> wm: array<f32, ${wg}>;
var<workgroup> bad: array<u32, ${wg}>;

// log(1 + x) for 0 ≤ x < 1/4 by its series.
fn log1p_small(x: f32) -> f32 { return ${logSeries('x', -1)}; }


${BETTER_WGSL}

${rowMain(wg)}
  let t = step.temperature;
  let hr = pcg(pcg(pcg(step.seed) ^ step.draw) ^ (step.pos + row));
  var lm = -3.0e38;
  var li = NONE;
  var best = -3.0e38;
  var bid = NONE;
  var second = -3.0e38;
  var amax = 0.0;
  var m = -3.0e38;
  var s = -1.0;
  var w = 0.0;
  var nf = 0u;
  for (var v = tid; v < V; v += WG) {
    let l = logits[base + v];
    if (is_nonfinite(l)) { nf = 1u; }
    if (li == NONE || l > lm) { lm = l; li = v; }
    if (t > 0.0) {
      let x = l / t;
      amax = max(amax, abs(x));
      let g = x - log(neg_log_unit(pcg(hr ^ v)));
      if (bid == NONE || g > best) {
        second = best;
        best = g;
        bid = v;
      } else {
        second = max(second, g);
      }
      if (x > m) {
        let k = exp(m - x);
        w = k * (w + (s + 1.0) * (x - m));
        s = (s + 1.0) * k;
        m = x;
      } else {
        let d = m - x;
        let e = exp(-d);
        s += e;
        w += e * d;
      }
    }
  }
  am[tid] = lm;
  ai[tid] = li;
  gs[tid] = best;
  gi[tid] = bid;
  g2[tid] = second;
  ax[tid] = amax;
  mx[tid] = m;
  so[tid] = s;
  wm[tid] = w;
  bad[tid] = nf;
${treeReduce(`
    if (better(am[j], ai[j], am[tid], ai[tid])) { am[tid] = am[j]; ai[tid] = ai[j]; }
    if (better(gs[j], gi[j], gs[tid], gi[tid])) {
      g2[tid] = max(gs[tid], max(g2[tid], g2[j]));
      gs[tid] = gs[j];
      gi[tid] = gi[j];
    } else {
      g2[tid] = max(gs[j], max(g2[tid], g2[j]));
    }
    ax[tid] = max(ax[tid], ax[j]);
    let m1 = mx[tid];
    let m2 = mx[j];
    if (m1 >= m2) {
      let k = exp(m2 - m1);
      wm[tid] = wm[tid] + k * (wm[j] + (so[j] + 1.0) * (m1 - m2));
      so[tid] = so[tid] + (so[j] + 1.0) * k;
    } else {
      let k = exp(m1 - m2);
      wm[tid] = wm[j] + k * (wm[tid] + (so[tid] + 1.0) * (m2 - m1));
      so[tid] = so[j] + (so[tid] + 1.0) * k;
      mx[tid] = m2;
    }
    bad[tid] = bad[tid] | bad[j];`)}
  if (tid == 0u) {
    let o = ${ENTROPY_ROW_WORDS}u * row;
    if (bad[0] != 0u) {
      stats[o + ${RowWord.argmax}u] = NONE;
      stats[o + ${RowWord.token}u] = NONE;
      for (var i = 2u; i < ${ENTROPY_ROW_WORDS}u; i++) { stats[o + i] = 0x7fc00000u; }
      return;
    }
    let argmax = ai[0];
    stats[o + ${RowWord.argmax}u] = argmax;
    if (t > 0.0) {
      let sOther = so[0];
      let wOverS = wm[0] / (1.0 + sOther);
      var lp = 0.0;
      var near1 = 0.0;
      if (sOther < 0.25) { lp = log1p_small(sOther); } else { lp = log(1.0 + sOther); near1 = ${wgslF32(2 ** -20)}; }
      stats[o + ${RowWord.token}u] = gi[0];
      stats[o + ${RowWord.entropy}u] = bitcast<u32>(lp + wOverS);
      stats[o + ${RowWord.entropyError}u] = bitcast<u32>(REL * (sOther / (1.0 + sOther) + 2.0 * wOverS) + near1 + 1e-12);
      stats[o + ${RowWord.tokenLogit}u] = bitcast<u32>(logits[base + gi[0]]);
      stats[o + ${RowWord.runnerUp}u] = bitcast<u32>(g2[0]);
      stats[o + ${RowWord.maxScaled}u] = bitcast<u32>(ax[0]);
    } else {
      stats[o + ${RowWord.token}u] = argmax;
      stats[o + ${RowWord.entropy}u] = 0u;
      stats[o + ${RowWord.entropyError}u] = 0u;
      stats[o + ${RowWord.tokenLogit}u] = bitcast<u32>(logits[base + argmax]);
      stats[o + ${RowWord.runnerUp}u] = 0u;
      stats[o + ${RowWord.maxScaled}u] = 0u;
    }
  }
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `entropy_rows_v${a.vocab}_wg${wg}`,
          code: withHelpers(code),
          bindings: b.bindings,
          workgroupSize: [wg, 1, 1],
        },
        grid: [{ sym: 'T' }, 1, 1],
      },
    ],
    scratch: {},
  };
};
