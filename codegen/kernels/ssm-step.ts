/**
 * Mamba-1's fused decode middle (semantics: mamba1_step in src/ops/ssm.ts): x_proj, the dt/B/C
 * RMSNorms, dt_proj and the selective scan with its gate in one launch. Made for decode (one
 * token); a longer step runs its tokens one after another in the same launch (correct, slow:
 * prefill keeps the unfused chunked scan).
 *
 * WebGPU has no barrier across workgroups, and every channel's scan needs all of dt, B and C,
 * which reduce over every channel of x. So each workgroup computes x_proj (R = dtRank + 2·dState
 * rows over dInner) and the norms itself, into workgroup memory, and then runs dt_proj and the
 * scan for its own slice of channels. The x_proj work is repeated once per workgroup; the grid
 * is kept to at most MAX_GROUPS workgroups (each walks several channel passes) so the
 * repetition stays bounded while the scan and dt_proj still spread over that many cores. Where
 * x_proj is large the fusion leaves it to a matmul before (xProj false): the kernel then reads
 * its R outputs (input dbc) and uses one workgroup per CH channels.
 *
 * Layout: WG threads; x_proj runs RL lanes per row (coalesced along dInner), RP = WG / RL rows
 * at a time; the scan runs NL lanes per channel (striding over dState, as the plain decode scan
 * does), CH = WG / NL channels per pass. Every barrier sits in uniform control flow (loops of
 * constant trip count; the work, not the barrier, is conditional).
 */
import type { Mamba1StepAttrs } from '../../src/graph/ops.ts';
import { mamba1Step, mamba1StepPack, mamba1StepWorkgroupBytes } from '../../src/ops/ssm.ts';
import type { DeviceCaps } from '../../src/target.ts';
import { STEP_WGSL } from '../kernel-ir.ts';
import { nextPow2 } from './elementwise.ts';
import type { GeneratedOp, KernelGenerator } from './types.ts';
import { opBindings, wgslF32 } from './wgsl-builder.ts';
import { withHelpers } from './wgsl-math.ts';

/** Most workgroups the fused step uses: each repeats x_proj, so more of them cost more reads. */
export const MAX_GROUPS = 32;

function prevPow2(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

/** Threads per workgroup: 256, or the device's largest power of two below that. */
export function mamba1StepThreads(caps: DeviceCaps): number {
  return prevPow2(Math.min(256, caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX));
}

/** WGSL summing red[lid] over groups of `g` consecutive lanes (a power of two) into the first. */
function reduceLanes(g: string, lane: string): string {
  return `for (var off = ${g} / 2u; off > 0u; off >>= 1u) {
      if (${lane} < off) { red[lid] += red[lid + off]; }
      workgroupBarrier();
    }`;
}

/**
 * The launch; `channelsPerGroup` (a multiple of the channels one pass covers) overrides the
 * grid rule, for tests that need several workgroups and several passes on small shapes.
 */
export function mamba1StepOp(
  a: Mamba1StepAttrs,
  caps: DeviceCaps,
  maxT: number,
  channelsPerGroup?: number,
): GeneratedOp {
  mamba1Step.check(a);
  if (!Number.isInteger(maxT) || maxT < 1) throw new Error(`mamba1_step: bad maxT ${maxT}`);
  const { dInner: D, dState: N, dtRank } = a;
  const pk = mamba1StepPack(a);
  const R = pk.R;
  const WG = mamba1StepThreads(caps);
  const bytes = mamba1StepWorkgroupBytes(a, WG);
  if (bytes > caps.maxWorkgroupStorageBytes)
    throw new Error(
      `mamba1_step: dt_rank + 2·d_state = ${R} needs ${bytes} bytes of workgroup memory, the device allows ${caps.maxWorkgroupStorageBytes}`,
    );
  const NL = Math.min(nextPow2(N), 32, WG);
  const CH = WG / NL;
  const RL = Math.min(32, WG);
  const RP = WG / RL;
  const chunks = Math.ceil(D / CH);
  // With x_proj inside, each workgroup repeats it: at most MAX_GROUPS of them. Without, a
  // workgroup only re-reads x_proj's R outputs, so one pass each spreads the scan widest.
  const passes = channelsPerGroup
    ? Math.ceil(channelsPerGroup / CH)
    : a.xProj
      ? Math.ceil(chunks / Math.min(chunks, MAX_GROUPS))
      : 1;
  if (channelsPerGroup && channelsPerGroup % CH !== 0)
    throw new Error(`mamba1_step: channelsPerGroup must be a multiple of ${CH}`);
  const CPG = passes * CH;
  const groups = Math.ceil(D / CPG);
  const b = opBindings(a, [
    'main',
    'red',
    'proj',
    'rstd',
    'lid',
    'wid',
    't',
    'xt',
    'rl',
    'lane',
    'sb',
  ]);
  const norms =
    a.normEps === null
      ? ''
      : `
  // The RMSNorms of dt, B and C: one thread sums each segment's squares.
  if (lid < 3u) {
    let lo = select(select(DTR + N, DTR, lid == 1u), 0u, lid == 0u);
    let hi = select(select(R, DTR + N, lid == 1u), DTR, lid == 0u);
    var ss = 0.0;
    for (var r = lo; r < hi; r++) { ss += proj[r] * proj[r]; }
    rstd[lid] = inverseSqrt(ss / f32(hi - lo) + ${wgslF32(a.normEps)});
  }
  workgroupBarrier();
  for (var r = lid; r < R; r += WG) {
    let s = select(select(2u, 1u, r < DTR + N), 0u, r < DTR);
    proj[r] = proj[r] * rstd[s] * w[NORMS + r];
  }
  workgroupBarrier();`;
  // x_proj: RL lanes per row, RP rows at a time; or its rows as the matmul before wrote them.
  const xProjWgsl = `for (var r0 = 0u; r0 < R; r0 += RP) {
    let row = r0 + lid / RL;
    var acc = 0.0;
    if (row < R) {
      for (var j = rl; j < D; j += RL) { acc += w[row * D + j] * x[xt + j]; }
    }
    red[lid] = acc;
    workgroupBarrier();
    ${reduceLanes('RL', 'rl')}
    if (rl == 0u && row < R) { proj[row] = red[lid]; }
    workgroupBarrier();
  }`;
  const dbcLoadWgsl = `for (var r = lid; r < R; r += WG) { proj[r] = dbc[t * R + r]; }
  workgroupBarrier();`;
  // Batched (a.batch): row t is sequence t with its own state slice (sb), all at step.pos, so
  // no row carries state to the next; one-sequence kernels keep their text.
  const batched = (a.batch ?? 1) > 1;
  const sj = batched ? 'sb + j' : 'j';
  const eps = a.normEps === null ? '' : `_e${String(a.normEps).replace(/[^0-9a-z]/gi, '_')}`;
  const code = `${STEP_WGSL}
${b.decls}
const D: u32 = ${D}u;
const N: u32 = ${N}u;
const DTR: u32 = ${dtRank}u;
const R: u32 = ${R}u;
const WG: u32 = ${WG}u;
const NL: u32 = ${NL}u;
const CH: u32 = ${CH}u;
const RL: u32 = ${RL}u;
const RP: u32 = ${RP}u;
const PASSES: u32 = ${passes}u;
const WDT: u32 = ${pk.wdt}u;
const DTB: u32 = ${pk.dtBias}u;
const ALOG: u32 = ${pk.aLog}u;
const DSKIP: u32 = ${pk.d}u;
const NORMS: u32 = ${pk.norms}u;
var<workgroup> red: array<f32, WG>;
var<workgroup> proj: array<f32, R>;
var<workgroup> rstd: array<f32, 3>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rl = lid % RL;
  let lane = lid % NL;
  // Tokens one after another (decode has one): a thread keeps the same channel and state
  // elements for every token, so the state it carries is its own.
  ${batched ? '{ let t = wid.y; // a batched step: workgroup row y is sequence y' : 'for (var t = 0u; t < step.T; t++) {'}
  let xt = t * D;
  ${a.xProj ? xProjWgsl : dbcLoadWgsl}
${norms}
  // dt_proj and the scan, CH channels per pass.
  let fresh = step.pos == 0u${batched ? `;\n  let sb = t * D * N;` : ' && t == 0u;'}
  for (var p = 0u; p < PASSES; p++) {
    let ch = (wid.x * PASSES + p) * CH + lid / NL;
    let ok = ch < D;
    var acc = 0.0;
    if (ok) {
      for (var j = lane; j < DTR; j += NL) { acc += w[WDT + ch * DTR + j] * proj[j]; }
    }
    red[lid] = acc;
    workgroupBarrier();
    ${reduceLanes('NL', 'lane')}
    var dl = 0.0;
    if (ok) { dl = softplus(red[lid - lane] + w[DTB + ch]); }
    workgroupBarrier();
    var y = 0.0;
    var xv = 0.0;
    if (ok) {
      xv = x[xt + ch];
      let dx = dl * xv;
      for (var n = lane; n < N; n += NL) {
        let j = ch * N + n;
        let hn = exp(-dl * exp(w[ALOG + j])) * select(state[${sj}], 0.0, fresh) + dx * proj[DTR + n];
        state[${sj}] = hn;
        y += hn * proj[DTR + N + n];
      }
    }
    red[lid] = y;
    workgroupBarrier();
    ${reduceLanes('NL', 'lane')}
    if (ok && lane == 0u) { out[xt + ch] = (red[lid] + w[DSKIP + ch] * xv) * silu(z[xt + ch]); }
    workgroupBarrier();
  }
  }
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `mamba1_step_d${D}_n${N}_r${dtRank}${eps}${a.xProj ? '' : '_dbc'}_p${passes}_g${groups}${batched ? '_batched' : ''}`,
          code: withHelpers(code),
          bindings: b.bindings,
          workgroupSize: [WG, 1, 1],
        },
        // Batched: the sequences are independent, so each gets its own row of workgroups.
        grid: [groups, batched ? { sym: 'T' } : 1, 1],
      },
    ],
    scratch: {},
  };
}

export const mamba1StepKernel: KernelGenerator<Mamba1StepAttrs> = (a, ctx) =>
  mamba1StepOp(a, ctx.caps, ctx.maxT);
