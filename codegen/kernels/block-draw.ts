/**
 * Block diffusion's per-row draw on the GPU (semantics: drawToken in src/ops/block-diffusion.ts):
 * for each logits row, with the mask id excluded, the argmax at temperature 0; else the Gumbel
 * race z = l/T + g (the seeded noise of (seed, step, position, id)) over the nucleus of the
 * tempered softmax. One word a row comes back instead of a [rows, vocab] logits read: the host
 * draw cost about 28 ms a row at LLaDA's 126k vocab on the H100's host, more than a block's forward.
 *
 * The nucleus without a sort: the kept set is the largest prefix of the probabilities in
 * descending order (ties: lower id first) whose sum stays ≤ P, and at least the first. With
 * q = exp(l/T − max l/T) and S = Σ q, the mass strictly above a threshold x, A(x), falls as x
 * grows; a bisection on x's f32 bits finds the smallest x with A(x) ≤ P·S, and the smallest q at
 * or above it is v*, the last value the prefix reaches: every q > v* is kept, and of the ties at
 * v* the lowest ids, as many as still fit (t = ⌊(P·S − A(v*)) / v*⌋), found by a bisection on the
 * id bound. None fits only when v* is the largest q: then its lowest id alone, as the host keeps.
 *
 * The Step uniform: T rows, `seed`, `draw` the sampler's step, `temperature`, `topP` the nucleus
 * mass; `positions[row]` is row's canvas position (rows are the positions a step commits, not a
 * span). One workgroup a row (codegen/kernels/row-reduce.ts).
 *
 * Against the f64 host draw: the noise bits are the same; q, S and the sums go through f32, so a
 * row whose nucleus edge lies within f32 error of P (or whose two best noisy scores do) may keep
 * or pick differently; at temperature 0 the token is exact. A row holding a NaN or an Inf writes
 * NONFINITE_PICK (codegen/kernels/diffusion-pick.ts).
 */
import { withHelpers } from './wgsl-math.ts';
import { BETTER_WGSL, rowConstants, rowMain, rowWorkgroup, treeReduce } from './row-reduce.ts';
import { STEP_BINDING, STEP_WGSL, storageDecl, type KernelLaunch } from '../kernel-ir.ts';
import { wgReductionsWgsl } from './wg-reduce.ts';

/** Bisection rounds over an f32's bits in [0, 1.0]: 1.0 is 0x3f800000 < 2^30. */
const VALUE_ROUNDS = 31;

export function blockDrawKernel(vocab: number, maskId: number, maxWorkgroup = 256): KernelLaunch {
  if (!Number.isInteger(vocab) || vocab < 1)
    throw new Error(`block draw: vocab must be an integer of at least 1, got ${vocab}`);
  if (!Number.isInteger(maskId) || maskId < 0 || maskId >= vocab)
    throw new Error(`block draw: mask id ${maskId} is not a token of the vocab (${vocab})`);
  const wg = rowWorkgroup(vocab, maxWorkgroup);
  // Rounds of the id bisection over [0, V].
  const idRounds = Math.ceil(Math.log2(vocab + 1)) + 1;
  const code = `${STEP_WGSL}
${storageDecl(1, 'logits', 'read')}
${storageDecl(2, 'positions', 'read', 'u32')}
${storageDecl(3, 'picks', 'read_write', 'u32')}
${rowConstants(vocab, wg)}
const MASK = ${maskId}u;
var<workgroup> fa: array<f32, ${wg}>;
var<workgroup> ua: array<u32, ${wg}>;
var<workgroup> ib: array<u32, ${wg}>;

${BETTER_WGSL}

${wgReductionsWgsl('fa')}
/** The workgroup's sum of n (wg_sum's u32 twin: WGSL has no generic functions). */
fn wg_count(n: u32, tid: u32) -> u32 {
  ua[tid] = n;
${treeReduce('ua[tid] = ua[tid] + ua[j];')}
  let s = ua[0];
  workgroupBarrier();
  return s;
}

${rowMain(wg)}
  let t = step.temperature;
  let P = step.topP;
  let hr = pcg(pcg(pcg(step.seed) ^ step.draw) ^ positions[row]);
  // The argmax without the mask id (lowest id on ties), and whether every logit is finite.
  var best = -3.0e38;
  var bid = NONE;
  var nf = 0u;
  for (var v = tid; v < V; v += WG) {
    let l = logits[base + v];
    if (is_nonfinite(l)) { nf = 1u; }
    if (v != MASK && (bid == NONE || l > best)) { best = l; bid = v; }
  }
  fa[tid] = best;
  ib[tid] = bid;
  ua[tid] = nf;
${treeReduce(`
    if (better(fa[j], ib[j], fa[tid], ib[tid])) { fa[tid] = fa[j]; ib[tid] = ib[j]; }
    ua[tid] = ua[tid] | ua[j];`)}
  let top = ib[0];
  let lmax = fa[0];
  let bad = workgroupUniformLoad(&ua[0]);
  if (bad != 0u || t <= 0.0) {
    if (tid == 0u) { picks[row] = select(top, NONE, bad != 0u); }
    return;
  }
  workgroupBarrier();
  let zmax = lmax / t;
  // The tempered probabilities' sum S (q = exp(l/T − max), mask excluded).
  var part = 0.0;
  for (var v = tid; v < V; v += WG) {
    if (v != MASK) { part += exp(logits[base + v] / t - zmax); }
  }
  let S = wg_sum(part, tid);
  // Nucleus: v* and the id bound B below which its ties are kept (see the header). P >= 1
  // keeps every id: v* = 0 with no id bound.
  var vstar = 0.0;
  var bound = V;
  if (P < 1.0) {
    var lo = 0u;
    var hi = 0x3f800000u;
    for (var r = 0u; r < ${VALUE_ROUNDS}u; r++) {
      let mid = (lo + hi) / 2u;
      let x = bitcast<f32>(mid);
      var a = 0.0;
      for (var v = tid; v < V; v += WG) {
        let q = exp(logits[base + v] / t - zmax);
        if (v != MASK && q > x) { a += q; }
      }
      let fits = wg_sum(a, tid) <= P * S;
      hi = select(hi, mid, fits && lo < hi);
      lo = select(lo, mid + 1u, !fits && lo < hi);
    }
    let x0 = bitcast<f32>(lo);
    // v*: the smallest q at or above x0.
    var m = 3.0e38;
    for (var v = tid; v < V; v += WG) {
      let q = exp(logits[base + v] / t - zmax);
      if (v != MASK && q >= x0) { m = min(m, q); }
    }
    fa[tid] = m;
${treeReduce('fa[tid] = min(fa[tid], fa[j]);')}
    vstar = fa[0];
    workgroupBarrier();
    var above = 0.0;
    var n = 0u;
    var c = 0u;
    for (var v = tid; v < V; v += WG) {
      let q = exp(logits[base + v] / t - zmax);
      if (v != MASK && q > vstar) { above += q; n += 1u; }
      if (v != MASK && q == vstar) { c += 1u; }
    }
    let A = wg_sum(above, tid);
    let N = wg_count(n, tid);
    let C = wg_count(c, tid);
    // Ties that still fit; at least one id when nothing above v* does.
    var keep = min(C, u32(max(0.0, floor((P * S - A) / vstar))));
    if (N + keep == 0u) { keep = 1u; }
    // The id bound: the smallest B with keep ties below it.
    var blo = 0u;
    var bhi = V;
    for (var r = 0u; r < ${idRounds}u; r++) {
      let mid = (blo + bhi) / 2u;
      var k = 0u;
      for (var v = tid; v < mid; v += WG) {
        if (v != MASK && exp(logits[base + v] / t - zmax) == vstar) { k += 1u; }
      }
      let enough = wg_count(k, tid) >= keep;
      bhi = select(bhi, mid, enough && blo < bhi);
      blo = select(blo, mid + 1u, !enough && blo < bhi);
    }
    bound = blo;
  }
  // The Gumbel race over the kept ids (lowest id on ties).
  var zb = -3.0e38;
  var zi = NONE;
  for (var v = tid; v < V; v += WG) {
    if (v == MASK) { continue; }
    let l = logits[base + v];
    let q = exp(l / t - zmax);
    if (q > vstar || (q == vstar && v < bound)) {
      let z = l / t - log(neg_log_unit(pcg(hr ^ v)));
      if (zi == NONE || z > zb) { zb = z; zi = v; }
    }
  }
  fa[tid] = zb;
  ib[tid] = zi;
${treeReduce('if (better(fa[j], ib[j], fa[tid], ib[tid])) { fa[tid] = fa[j]; ib[tid] = ib[j]; }')}
  if (tid == 0u) { picks[row] = ib[0]; }
}
`;
  return {
    kernel: {
      name: `block_draw_v${vocab}_m${maskId}_wg${wg}`,
      code: withHelpers(code),
      bindings: [
        STEP_BINDING,
        { name: 'logits', access: 'read' },
        { name: 'positions', access: 'read' },
        { name: 'picks', access: 'read_write' },
      ],
      workgroupSize: [wg, 1, 1],
    },
    grid: [{ sym: 'T' }, 1, 1],
  };
}
