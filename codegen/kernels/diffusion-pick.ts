/**
 * The masked-diffusion sampler's per-row pick on the GPU (semantics: pickRow in
 * src/ops/diffusion.ts): for each logits row, the candidate x0 = argmax(l + T·g) with the seeded
 * Gumbel noise g of (seed, step, position, id), and its confidence (from the un-noised logits:
 * the candidate's softmax probability, the top two probabilities' difference for `margin`,
 * Σ p·log(p + 1e-10) for `entropy`; or the `random` remasking's uniform draw). Two words a row
 * come back instead of a [rows, vocab] logits read: the token and the confidence's f32 bits.
 *
 * The Step uniform carries the pick: T rows, `pos` the canvas position of row 0, `seed`, `draw`
 * the sampler's step index, `temperature`. One workgroup a row; each thread walks ids tid,
 * tid + WG, … (ascending, so a strict > keeps the lowest id of a tie), then a tree reduction
 * prefers the higher score, then the lower id (torch.argmax's tie rule). The row loop, the tree
 * and the tie rule are the per-row kernels' shared WGSL (codegen/kernels/row-reduce.ts).
 *
 * Against the f64 host pick: the noise bits and the uniform (24 bits, exact in f32) are the same;
 * the Gumbel term goes through f32 logs, so at temperature > 0 a row whose two best noisy scores
 * lie within f32 error may pick the other; at temperature 0 the token is exact. Confidence: f32
 * softmax, relative error ~1e-6; `random` confidences are exact. A row holding a NaN or an Inf
 * writes token NONFINITE_PICK.
 */
import { withHelpers } from './wgsl-math.ts';
import { BETTER_WGSL, rowConstants, rowMain, rowWorkgroup, treeReduce } from './row-reduce.ts';
import { STEP_BINDING, STEP_WGSL, storageDecl, type KernelLaunch } from '../kernel-ir.ts';
import type { Remasking } from '../../src/ops/diffusion.ts';

/** The WGSL that sets `conf` in thread 0, once M (max), m2 (second), sm[0] (Σ exp) are known. */
const CONFIDENCE: Record<Remasking, string> = {
  low_confidence: 'let conf = exp(logits[base + token] - M) / sm[0];',
  random: 'let conf = unit_draw(pcg(hr ^ CONFIDENCE_STREAM));',
  margin: 'let conf = (1.0 - exp(m2[0] - M)) / sm[0];',
  entropy: 'let conf = en[0];',
};

/** Kernel name parts (low_confidence keeps its earlier name, `conf`). */
const KERNEL_SUFFIX: Record<Remasking, string> = {
  low_confidence: 'conf',
  random: 'random',
  margin: 'margin',
  entropy: 'entropy',
};

/** The token word of a row whose logits were not all finite. */
export const NONFINITE_PICK = 0xffffffff;

/** Words per row in the picks buffer: token, confidence (f32 bits). */
export const PICK_WORDS = 2;

export function diffusionPickKernel(
  vocab: number,
  remasking: Remasking,
  maxWorkgroup = 256,
): KernelLaunch {
  if (!Number.isInteger(vocab) || vocab < 1)
    throw new Error(`diffusion pick: vocab must be an integer of at least 1, got ${vocab}`);
  if (!Object.hasOwn(CONFIDENCE, remasking))
    throw new Error(`diffusion pick: unknown remasking ${String(remasking)}`);
  const entropy = remasking === 'entropy';
  const wg = rowWorkgroup(vocab, maxWorkgroup);
  const code = `${STEP_WGSL}
${storageDecl(1, 'logits', 'read')}
${storageDecl(2, 'picks', 'read_write', 'u32')}
${rowConstants(vocab, wg)}
// The random remasking's confidence draw takes this id slot (src/ops/diffusion.ts).
const CONFIDENCE_STREAM = 0xffffffffu;
var<workgroup> bs: array<f32, ${wg}>;
var<workgroup> bi: array<u32, ${wg}>;
var<workgroup> mx: array<f32, ${wg}>;
// The second largest logit, a tie with the largest counted (margin).
var<workgroup> m2: array<f32, ${wg}>;
var<workgroup> sm: array<f32, ${wg}>;
${entropy ? `var<workgroup> en: array<f32, ${wg}>;` : ''}
var<workgroup> bad: array<u32, ${wg}>;


${BETTER_WGSL}

${rowMain(wg)}
  let hr = pcg(pcg(pcg(step.seed) ^ step.draw) ^ (step.pos + row));
  let t = step.temperature;
  var best = -3.0e38;
  var bid = NONE;
  var m = -3.0e38;
  var s2 = -3.0e38;
  var nf = 0u;
  for (var v = tid; v < V; v += WG) {
    let l = logits[base + v];
    if (is_nonfinite(l)) { nf = 1u; }
    s2 = max(s2, min(m, l));
    m = max(m, l);
    var s = l;
    if (t > 0.0) { s = l - t * log(neg_log_unit(pcg(hr ^ v))); }
    if (bid == NONE || s > best) { best = s; bid = v; }
  }
  bs[tid] = best;
  bi[tid] = bid;
  mx[tid] = m;
  m2[tid] = s2;
  bad[tid] = nf;
${treeReduce(`
    if (better(bs[j], bi[j], bs[tid], bi[tid])) { bs[tid] = bs[j]; bi[tid] = bi[j]; }
    m2[tid] = max(min(mx[tid], mx[j]), max(m2[tid], m2[j]));
    mx[tid] = max(mx[tid], mx[j]);
    bad[tid] = bad[tid] | bad[j];`)}
  let M = mx[0];
  var sum = 0.0;
  for (var v = tid; v < V; v += WG) { sum += exp(logits[base + v] - M); }
  sm[tid] = sum;
${treeReduce('sm[tid] = sm[tid] + sm[j];')}
${
  entropy
    ? `  let S = sm[0];
  var h = 0.0;
  for (var v = tid; v < V; v += WG) {
    let p = exp(logits[base + v] - M) / S;
    h += p * log(p + 1e-10);
  }
  workgroupBarrier();
  en[tid] = h;
${treeReduce('en[tid] = en[tid] + en[j];')}`
    : ''
}
  if (tid == 0u) {
    let token = bi[0];
    ${CONFIDENCE[remasking]}
    picks[2u * row] = select(token, NONE, bad[0] != 0u);
    picks[2u * row + 1u] = bitcast<u32>(conf);
  }
}
`;
  return {
    kernel: {
      name: `diffusion_pick_v${vocab}_${KERNEL_SUFFIX[remasking]}_wg${wg}`,
      code: withHelpers(code),
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
