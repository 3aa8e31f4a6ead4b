/**
 * The masked-diffusion sampler's per-row pick on the GPU (semantics: pickRow in
 * src/ops/diffusion.ts): for each logits row, the candidate x0 = argmax(l + T·g) with the seeded
 * Gumbel noise g of (seed, step, position, id), and its confidence (softmax probability of the
 * un-noised logits, or the `random` remasking's uniform draw). Two words a row come back instead
 * of a [rows, vocab] logits read: the token and the confidence's f32 bits.
 *
 * The Step uniform carries the pick: T rows, `pos` the canvas position of row 0, `seed`, `draw`
 * the sampler's step index, `temperature`. One workgroup a row; each thread walks ids tid,
 * tid + WG, … (ascending, so a strict > keeps the lowest id of a tie), then a tree reduction
 * prefers the higher score, then the lower id (torch.argmax's tie rule).
 *
 * Against the f64 host pick: the noise bits and the uniform (24 bits, exact in f32) are the same;
 * the Gumbel term goes through f32 logs, so at temperature > 0 a row whose two best noisy scores
 * lie within f32 error may pick the other; at temperature 0 the token is exact. Confidence: f32
 * softmax, relative error ~1e-6; `random` confidences are exact. A row holding a NaN or an Inf
 * writes token NONFINITE_PICK.
 */
import { STEP_BINDING, STEP_WGSL, storageDecl, type KernelLaunch } from '../kernel-ir.ts';

/** The token word of a row whose logits were not all finite. */
export const NONFINITE_PICK = 0xffffffff;

/** Words per row in the picks buffer: token, confidence (f32 bits). */
export const PICK_WORDS = 2;

export function diffusionPickKernel(
  vocab: number,
  remasking: 'low_confidence' | 'random',
  maxWorkgroup = 256,
): KernelLaunch {
  if (!Number.isInteger(vocab) || vocab < 1)
    throw new Error(`diffusion pick: vocab must be an integer of at least 1, got ${vocab}`);
  let wg = 1;
  while (wg * 2 <= Math.min(maxWorkgroup, 256) && wg < vocab) wg *= 2;
  const code = `${STEP_WGSL}
${storageDecl(1, 'logits', 'read')}
${storageDecl(2, 'picks', 'read_write', 'u32')}
const V = ${vocab}u;
const WG = ${wg}u;
const NONE = 0xffffffffu;
// The random remasking's confidence draw takes this id slot (src/ops/diffusion.ts).
const CONFIDENCE_STREAM = 0xffffffffu;
var<workgroup> bs: array<f32, ${wg}>;
var<workgroup> bi: array<u32, ${wg}>;
var<workgroup> mx: array<f32, ${wg}>;
var<workgroup> sm: array<f32, ${wg}>;
var<workgroup> bad: array<u32, ${wg}>;

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

// (bits >> 8 + 0.5) / 2^24: in (0, 1) and exact in f32, as noiseUniform computes it.
fn unit_draw(bits: u32) -> f32 { return (f32(bits >> 8u) + 0.5) * (1.0 / 16777216.0); }

fn is_nonfinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let row = wid.x;
  if (row >= step.T) { return; }
  let base = row * V;
  let hr = pcg(pcg(pcg(step.seed) ^ step.draw) ^ (step.pos + row));
  let t = step.temperature;
  var best = -3.0e38;
  var bid = NONE;
  var m = -3.0e38;
  var nf = 0u;
  for (var v = tid; v < V; v += WG) {
    let l = logits[base + v];
    if (is_nonfinite(l)) { nf = 1u; }
    m = max(m, l);
    var s = l;
    if (t > 0.0) { s = l - t * log(-log(unit_draw(pcg(hr ^ v)))); }
    if (bid == NONE || s > best) { best = s; bid = v; }
  }
  bs[tid] = best;
  bi[tid] = bid;
  mx[tid] = m;
  bad[tid] = nf;
  workgroupBarrier();
  for (var o = WG / 2u; o > 0u; o = o / 2u) {
    if (tid < o) {
      let j = tid + o;
      let take = bi[j] != NONE && (bi[tid] == NONE || bs[j] > bs[tid] || (bs[j] == bs[tid] && bi[j] < bi[tid]));
      if (take) { bs[tid] = bs[j]; bi[tid] = bi[j]; }
      mx[tid] = max(mx[tid], mx[j]);
      bad[tid] = bad[tid] | bad[j];
    }
    workgroupBarrier();
  }
  let M = mx[0];
  var sum = 0.0;
  for (var v = tid; v < V; v += WG) { sum += exp(logits[base + v] - M); }
  sm[tid] = sum;
  workgroupBarrier();
  for (var o = WG / 2u; o > 0u; o = o / 2u) {
    if (tid < o) { sm[tid] = sm[tid] + sm[tid + o]; }
    workgroupBarrier();
  }
  if (tid == 0u) {
    let token = bi[0];
    ${
      remasking === 'random'
        ? 'let conf = unit_draw(pcg(hr ^ CONFIDENCE_STREAM));'
        : 'let conf = exp(logits[base + token] - M) / sm[0];'
    }
    picks[2u * row] = select(token, NONE, bad[0] != 0u);
    picks[2u * row + 1u] = bitcast<u32>(conf);
  }
}
`;
  return {
    kernel: {
      name: `diffusion_pick_v${vocab}_${remasking === 'random' ? 'random' : 'conf'}_wg${wg}`,
      code,
      bindings: [
        STEP_BINDING,
        { name: 'logits', access: 'read' },
        { name: 'picks', access: 'read_write' },
      ],
      workgroupSize: [wg, 1, 1],
    },
    grid: [{ sym: 'T' }, 1, 1],
  };
}
