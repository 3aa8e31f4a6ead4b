/**
 * GPU sampling: one workgroup of SAMPLE_THREADS threads samples the last logits
 * row and writes the token to `token[0]` and `ids[0]`. Semantics and the exact
 * float order are in src/ops/sampling.ts, whose CPU reference mirrors this kernel
 * step by step (same chunks, same reduction tree, same scan, same bisection), so
 * any change here must be made there too.
 *
 * token[1] is a status word: 1 when the sampled row holds a NaN or an Inf (the model's
 * arithmetic broke), else 0. The argmax pass already reads every logit, so the check costs one
 * bit test per logit and no extra dispatch; the host reads it with the token and throws.
 * token[0] stays a valid id (< vocab) either way, since it is also the next step's input.
 *
 * Cost: a max pass, up to 32 counting passes (top-k), up to 32 mass passes
 * (top-p) and a final pass, each over the row from cache, by one workgroup.
 */
import type { SampleAttrs } from '../../src/graph/ops.ts';
import { SAMPLE_THREADS, SEARCH_STEPS } from '../../src/ops/sampling.ts';
import { withHelpers } from './wgsl-math.ts';
import { STEP_BINDING, STEP_WGSL, storageDecl, type KernelLaunch } from '../kernel-ir.ts';
import type { KernelGenerator } from './types.ts';

export const sampleKernel: KernelGenerator<SampleAttrs> = (a, { caps }) => {
  if (!Number.isInteger(a.vocab) || a.vocab < 1)
    throw new Error(`sample: vocab must be a positive integer`);
  if (caps.maxInvocationsPerWorkgroup < SAMPLE_THREADS || caps.maxWorkgroupSizeX < SAMPLE_THREADS) {
    throw new Error(`sample: needs ${SAMPLE_THREADS} invocations per workgroup`);
  }
  const chunk = Math.ceil(a.vocab / SAMPLE_THREADS);
  const batched = (a.batch ?? 1) > 1;
  const code = `${STEP_WGSL}
${storageDecl(1, 'logits', 'read')}
${storageDecl(2, 'token', 'read_write', 'u32')}
${storageDecl(3, 'ids', 'read_write', 'u32')}
const V: u32 = ${a.vocab}u;
const NT: u32 = ${SAMPLE_THREADS}u;
const CHUNK: u32 = ${chunk}u;
const STEPS: u32 = ${SEARCH_STEPS}u;
const NONE: u32 = 0xffffffffu;

var<workgroup> red_f: array<f32, NT>;
var<workgroup> red_u: array<u32, NT>;
var<workgroup> nonfinite: atomic<u32>;

// Order-preserving key of an f32, with -0 mapped to +0.
fn okey(x: f32) -> u32 {
  var b = bitcast<u32>(x);
  if (b == 0x80000000u) { b = 0u; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}


// Reductions begin with a barrier so that readers of the previous result are done.
fn sum_f(v: f32, lid: u32) -> f32 {
  workgroupBarrier();
  red_f[lid] = v;
  workgroupBarrier();
  for (var h = NT / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { red_f[lid] = red_f[lid] + red_f[lid + h]; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&red_f[0]);
}

fn sum_u(v: u32, lid: u32) -> u32 {
  workgroupBarrier();
  red_u[lid] = v;
  workgroupBarrier();
  for (var h = NT / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { red_u[lid] = red_u[lid] + red_u[lid + h]; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&red_u[0]);
}

fn min_u(v: u32, lid: u32) -> u32 {
  workgroupBarrier();
  red_u[lid] = v;
  workgroupBarrier();
  for (var h = NT / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { red_u[lid] = min(red_u[lid], red_u[lid + h]); }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&red_u[0]);
}

fn prob(l: f32, m: f32, inv_t: f32) -> f32 {
  return select(exp((l - m) * inv_t), 1.0, l == m);
}

// Sequential sum over this thread's chunk of p for tokens with key >= tau.
fn chunk_mass(base: u32, lo: u32, hi: u32, tau: u32, m: f32, inv_t: f32) -> f32 {
  var s = 0.0;
  for (var i = lo; i < hi; i++) {
    let l = logits[base + i];
    if (okey(l) >= tau) { s = s + prob(l, m, inv_t); }
  }
  return s;
}

@compute @workgroup_size(NT)
${
  batched
    ? `fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  // Batched: workgroup s samples sequence s's row, seeded seed + s.
  let row = wid.x;
  let base = row * V;`
    : `fn main(@builtin(local_invocation_index) lid: u32) {
  let base = (max(step.L, 1u) - 1u) * V;`
}
  let lo = min(lid * CHUNK, V);
  let hi = min(lo + CHUNK, V);

  // Workgroup memory may be left uninitialised (Dawn's disable_workgroup_init): clear the flag
  // before the barrier that precedes every atomicOr.
  if (lid == 0u) { atomicStore(&nonfinite, 0u); }
  // Argmax, lowest index on ties; an empty chunk reports NONE.
  var best = 0.0;
  var besti = NONE;
  var bad = false;
  if (lo < hi) {
    best = logits[base + lo];
    besti = lo;
    bad = is_nonfinite(best);
    for (var i = lo + 1u; i < hi; i++) {
      let l = logits[base + i];
      bad = bad || is_nonfinite(l);
      if (l > best) { best = l; besti = i; }
    }
  }
  workgroupBarrier();
  if (bad) { atomicOr(&nonfinite, 1u); }
  red_f[lid] = best;
  red_u[lid] = besti;
  workgroupBarrier();
  for (var h = NT / 2u; h > 0u; h >>= 1u) {
    if (lid < h) {
      let bv = red_f[lid + h];
      let bi = red_u[lid + h];
      let av = red_f[lid];
      let ai = red_u[lid];
      if (bi != NONE && (ai == NONE || bv > av || (bv == av && bi < ai))) {
        red_f[lid] = bv;
        red_u[lid] = bi;
      }
    }
    workgroupBarrier();
  }
  let m = workgroupUniformLoad(&red_f[0]);
  let argmax = workgroupUniformLoad(&red_u[0]);
  var tok = argmax;

  if (step.temperature > 0.0) {
    let inv_t = 1.0 / step.temperature;
    let max_key = okey(m);
    var tau = 0u;
    let k = step.topK;
    if (k > 0u && k < V) {
      var klo = 0u;
      var khi = max_key;
      for (var it = 0u; it < STEPS; it++) {
        if (klo >= khi) { break; }
        let d = khi - klo;
        let mid = klo + (d >> 1u) + (d & 1u);
        var c = 0u;
        for (var i = lo; i < hi; i++) {
          if (okey(logits[base + i]) >= mid) { c = c + 1u; }
        }
        if (sum_u(c, lid) >= k) { klo = mid; } else { khi = mid - 1u; }
      }
      tau = klo;
    }
    if (step.topP < 1.0) {
      let mass_goal = step.topP * sum_f(chunk_mass(base, lo, hi, tau, m, inv_t), lid);
      var plo = tau;
      var phi = max_key;
      for (var it = 0u; it < STEPS; it++) {
        if (plo >= phi) { break; }
        let d = phi - plo;
        let mid = plo + (d >> 1u) + (d & 1u);
        if (sum_f(chunk_mass(base, lo, hi, mid, m, inv_t), lid) >= mass_goal) { plo = mid; } else { phi = mid - 1u; }
      }
      tau = plo;
    }

    // Hillis-Steele inclusive scan of the chunk masses.
    workgroupBarrier();
    red_f[lid] = chunk_mass(base, lo, hi, tau, m, inv_t);
    workgroupBarrier();
    for (var off = 1u; off < NT; off <<= 1u) {
      var prev = 0.0;
      if (lid >= off) { prev = red_f[lid - off]; }
      workgroupBarrier();
      if (lid >= off) { red_f[lid] = red_f[lid] + prev; }
      workgroupBarrier();
    }
    var c = 0.0;
    if (lid > 0u) { c = red_f[lid - 1u]; }
    let total = workgroupUniformLoad(&red_f[NT - 1u]);
    let u = f32(pcg(step.draw ^ pcg(step.seed${batched ? ' + row' : ''})) >> 8u) * (1.0 / 16777216.0);
    let r = u * total;
    var cand = NONE;
    for (var i = lo; i < hi; i++) {
      let l = logits[base + i];
      if (okey(l) >= tau) {
        c = c + prob(l, m, inv_t);
        if (c > r) { cand = i; break; }
      }
    }
    let pick = min_u(cand, lid);
    if (pick != NONE) { tok = pick; }
  }
  // The reductions since the atomicOr all end in barriers, so every thread's flag is in.
  let status = atomicLoad(&nonfinite);
  if (lid == 0u) {
    ${batched ? 'token[2u * row] = tok;\n    token[2u * row + 1u] = status;\n    ids[row] = tok;' : 'token[0] = tok;\n    token[1] = status;\n    ids[0] = tok;'}
  }
}
`;
  const launch: KernelLaunch = {
    kernel: {
      name: `sample_v${a.vocab}${batched ? '_batched' : ''}`,
      code: withHelpers(code),
      bindings: [
        STEP_BINDING,
        { name: 'logits', access: 'read' },
        { name: 'token', access: 'read_write' },
        { name: 'ids', access: 'read_write' },
      ],
      workgroupSize: [SAMPLE_THREADS, 1, 1],
    },
    grid: [batched ? { sym: 'T' } : 1, 1, 1],
  };
  return { launches: [launch], scratch: {} };
};
