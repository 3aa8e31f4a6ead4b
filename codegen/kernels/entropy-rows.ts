/**
 * entropy_rows (semantics and precision: src/ops/entropy-rows.ts): per logits row, the lowest-id
 * argmax, the Gumbel-max token at temperature t and the entropy of softmax(l / t), three words a
 * row, so that the entropy-bound sampler reads 12 bytes a row instead of the row's logits.
 *
 * One workgroup a row, one pass over it: each thread walks ids tid, tid + WG, … (ascending, so a
 * strict > keeps the lowest id of equal values) keeping the largest logit and its id, the best
 * noisy score l/t − log(−log u) and its id, and, for the entropy, an online maximum m of x = l/t
 * with S = Σ exp(x − m) and W = Σ exp(x − m)·(x − m), both rescaled when m grows:
 * moving to m' multiplies S by exp(m − m') and turns W into exp(m − m')·(W + S·(m − m')). A
 * halving tree merges threads the same way (ties to the lower id), and H = log S − W / S, which
 * keeps the shifted x small (no cancellation of two large terms). t = 0 is a uniform, so its
 * branch (argmax only, entropy 0) is uniform control flow.
 *
 * The noise is the diffusion pick's (codegen/kernels/diffusion-pick.ts): the PCG hashes of
 * (seed, draw, pos + row, id) in u32, the same bits as src/ops/diffusion.ts noiseBits. A thread
 * that sees no id (vocab < WG) holds m = −3e38 with S = W = 0, which the merge scales by
 * exp(−3e38 − M) = 0. A row holding a NaN or an Inf writes NONFINITE_ROW twice and a NaN.
 */
import type { EntropyRowsAttrs } from '../../src/graph/ops.ts';
import { ENTROPY_ROW_WORDS, entropyRows, NONFINITE_ROW } from '../../src/ops/entropy-rows.ts';
import type { KernelGenerator } from './types.ts';
import { opBindings } from './wgsl-builder.ts';
import { STEP_WGSL } from '../kernel-ir.ts';

export { ENTROPY_ROW_WORDS, NONFINITE_ROW } from '../../src/ops/entropy-rows.ts';

/** The largest power of two up to the device's workgroup size (256 at most) that vocab can use. */
function rowWorkgroup(vocab: number, maxWorkgroup: number): number {
  let wg = 1;
  while (wg * 2 <= Math.min(maxWorkgroup, 256) && wg < vocab) wg *= 2;
  return wg;
}

const RESERVED = ['V', 'WG', 'NONE', 'am', 'ai', 'gs', 'gi', 'mx', 'sm', 'wm', 'bad'];
const NONE = `0x${NONFINITE_ROW.toString(16)}u`;

export const entropyRowsKernel: KernelGenerator<EntropyRowsAttrs> = (a, ctx) => {
  entropyRows.check(a);
  const wg = rowWorkgroup(a.vocab, ctx.caps.maxInvocationsPerWorkgroup);
  const b = opBindings(a, [...RESERVED, 'pcg', 'unit_draw', 'is_nonfinite', 'better', 'main']);
  const code = /* wgsl */ `${STEP_WGSL}
${b.decls}
const V = ${a.vocab}u;
const WG = ${wg}u;
const NONE = ${NONE};
// Largest logit and its id; best noisy score and its id.
var<workgroup> am: array<f32, ${wg}>;
var<workgroup> ai: array<u32, ${wg}>;
var<workgroup> gs: array<f32, ${wg}>;
var<workgroup> gi: array<u32, ${wg}>;
// Online softmax statistics of x = l / t: maximum, Σ exp(x − m), Σ exp(x − m)·(x − m).
var<workgroup> mx: array<f32, ${wg}>;
var<workgroup> sm: array<f32, ${wg}>;
var<workgroup> wm: array<f32, ${wg}>;
var<workgroup> bad: array<u32, ${wg}>;

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

// ((bits >> 8) + 0.5) / 2^24 in (0, 1), as noiseUniform computes it.
fn unit_draw(bits: u32) -> f32 { return (f32(bits >> 8u) + 0.5) * (1.0 / 16777216.0); }

fn is_nonfinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }

// Whether (s, i) beats (sBest, iBest): a higher value, or an equal one at a lower id.
fn better(s: f32, i: u32, sBest: f32, iBest: u32) -> bool {
  return i != NONE && (iBest == NONE || s > sBest || (s == sBest && i < iBest));
}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let row = wid.x;
  if (row >= step.T) { return; }
  let base = row * V;
  let t = step.temperature;
  let hr = pcg(pcg(pcg(step.seed) ^ step.draw) ^ (step.pos + row));
  var lm = -3.0e38;
  var li = NONE;
  var best = -3.0e38;
  var bid = NONE;
  var m = -3.0e38;
  var s = 0.0;
  var w = 0.0;
  var nf = 0u;
  for (var v = tid; v < V; v += WG) {
    let l = logits[base + v];
    if (is_nonfinite(l)) { nf = 1u; }
    if (li == NONE || l > lm) { lm = l; li = v; }
    if (t > 0.0) {
      let x = l / t;
      let g = x - log(-log(unit_draw(pcg(hr ^ v))));
      if (bid == NONE || g > best) { best = g; bid = v; }
      if (x > m) {
        let k = exp(m - x);
        w = k * (w + s * (m - x));
        s = s * k + 1.0;
        m = x;
      } else {
        let d = x - m;
        let e = exp(d);
        s += e;
        w += e * d;
      }
    }
  }
  am[tid] = lm;
  ai[tid] = li;
  gs[tid] = best;
  gi[tid] = bid;
  mx[tid] = m;
  sm[tid] = s;
  wm[tid] = w;
  bad[tid] = nf;
  workgroupBarrier();
  for (var o = WG / 2u; o > 0u; o = o / 2u) {
    if (tid < o) {
      let j = tid + o;
      if (better(am[j], ai[j], am[tid], ai[tid])) { am[tid] = am[j]; ai[tid] = ai[j]; }
      if (better(gs[j], gi[j], gs[tid], gi[tid])) { gs[tid] = gs[j]; gi[tid] = gi[j]; }
      let M = max(mx[tid], mx[j]);
      let ka = exp(mx[tid] - M);
      let kb = exp(mx[j] - M);
      wm[tid] = ka * (wm[tid] + sm[tid] * (mx[tid] - M)) + kb * (wm[j] + sm[j] * (mx[j] - M));
      sm[tid] = sm[tid] * ka + sm[j] * kb;
      mx[tid] = M;
      bad[tid] = bad[tid] | bad[j];
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    let o = ${ENTROPY_ROW_WORDS}u * row;
    if (bad[0] != 0u) {
      stats[o] = NONE;
      stats[o + 1u] = NONE;
      stats[o + 2u] = 0x7fc00000u;
      return;
    }
    let argmax = ai[0];
    stats[o] = argmax;
    if (t > 0.0) {
      stats[o + 1u] = gi[0];
      stats[o + 2u] = bitcast<u32>(max(log(sm[0]) - wm[0] / sm[0], 0.0));
    } else {
      stats[o + 1u] = argmax;
      stats[o + 2u] = 0u;
    }
  }
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `entropy_rows_v${a.vocab}_wg${wg}`,
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
