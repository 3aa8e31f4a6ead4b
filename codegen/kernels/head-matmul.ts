/**
 * The per-head matmul (semantics: src/ops/head-matmul.ts), products summed in f32.
 *
 * Decode and short steps (maxT < TILED_MIN_T): one thread per output element (t, h, n), n
 * fastest, summing its head's K products in order. Under wLayout 'kn' neighbouring threads read
 * neighbouring weights at every k (coalesced); under 'nk' each thread walks its own weight row.
 * Each weight is read once per token, which is all decode needs.
 *
 * Prefill: that reads every weight once per token from the caches, and MLA's absorbed prefill
 * at 4096 tokens spent 135 ms there on the H100 (0.5 TFLOP/s). The tiled kernel gives a
 * workgroup one head and a 64-token × 64-column tile, stages 16-deep slices of x and of the
 * head's weight in workgroup memory (both loads coalesced, in either layout) and keeps 4 × 4
 * sums a thread in registers, so each staged weight serves 64 tokens.
 */
import type { HeadMatmulAttrs } from '../../src/graph/ops.ts';
import { headMatmul } from '../../src/ops/head-matmul.ts';
import { STEP_WGSL } from '../kernel-ir.ts';
import { opBindings } from './wgsl-builder.ts';
import { weightBinding } from './weight-load.ts';
import type { KernelGenerator } from './types.ts';
import { FLAT_MAIN_WGSL, flatGrid, streamWorkgroup } from './elementwise.ts';

/** Steps of at least this many tokens take the tiled kernel. */
export const TILED_MIN_T = 16;
/** Tokens and columns of a tiled workgroup's tile; depth of each staged slice. */
const BT = 64;
const BN = 64;
const BK = 16;

export const headMatmulKernel: KernelGenerator<HeadMatmulAttrs> = (a, ctx) => {
  headMatmul.check(a);
  return ctx.maxT >= TILED_MIN_T && ctx.caps.maxInvocationsPerWorkgroup >= 256
    ? tiledHeadMatmul(a, ctx)
    : flatHeadMatmul(a, ctx);
};

/** The weight binding and reader, and the index of element (n, k) of head h's weight. */
function headWeight(a: HeadMatmulAttrs) {
  const f16 = (a.wType ?? 'f32') === 'f16';
  // An f16 weight is read through the one weight reader (codegen/kernels/weight-load.ts).
  const wb = weightBinding(f16 ? 'f16' : 'f32', a.heads * a.N * a.K, false);
  const at = (h: string, n: string, k: string) =>
    a.wLayout === 'nk' ? `((${h}) * N + ${n}) * K + ${k}` : `((${h}) * K + ${k}) * N + ${n}`;
  return { f16, wb, at };
}

const tiledHeadMatmul: KernelGenerator<HeadMatmulAttrs> = (a, { caps, maxT }) => {
  const { heads: H, N, K } = a;
  const { f16, wb, at } = headWeight(a);
  const { bindings, decls } = opBindings(
    a,
    ['load_w', 'H', 'N', 'K', 'BT', 'BN', 'BK', 'xs', 'ws', 'main', 'wid', 'lid', 'acc'],
    [],
    { w: wb },
  );
  // Staged loads: 1024 elements of each slice over 256 threads. x rows (t, h) are K long;
  // for 'nk' the weight's k runs fastest in memory, for 'kn' its n.
  const wStage =
    a.wLayout === 'nk' ? `let n = i / BK; let k = i % BK;` : `let k = i / BN; let n = i % BN;`;
  const code = `${STEP_WGSL}
${decls}
const H: u32 = ${H}u;
const N: u32 = ${N}u;
const K: u32 = ${K}u;
const BT: u32 = ${BT}u;
const BN: u32 = ${BN}u;
const BK: u32 = ${BK}u;
${wb.load('load_w', 'w')}
var<workgroup> xs: array<array<f32, ${BK}>, ${BT}>;
var<workgroup> ws: array<array<f32, ${BN}>, ${BK}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.z;
  let t0 = wid.y * BT;
  let n0 = wid.x * BN;
  // This thread's sums: tokens ty + 16r, columns tx + 16c of the tile (r, c < 4).
  let ty = lid / 16u;
  let tx = lid % 16u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < K; k0 += BK) {
    for (var i = lid; i < BT * BK; i += 256u) {
      let t = i / BK;
      let k = i % BK;
      var v = 0.0;
      if (t0 + t < step.T && k0 + k < K) { v = x[((t0 + t) * H + h) * K + k0 + k]; }
      xs[t][k] = v;
    }
    for (var i = lid; i < BK * BN; i += 256u) {
      ${wStage}
      var v = 0.0;
      if (n0 + n < N && k0 + k < K) { v = load_w(${at('h', 'n0 + n', 'k0 + k')}); }
      ws[k][n] = v;
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      var wv: array<f32, 4>;
      for (var c = 0u; c < 4u; c++) { wv[c] = ws[k][tx + 16u * c]; }
      for (var r = 0u; r < 4u; r++) {
        let xv = xs[ty + 16u * r][k];
        for (var c = 0u; c < 4u; c++) { acc[r][c] += xv * wv[c]; }
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    let t = t0 + ty + 16u * r;
    if (t >= step.T) { continue; }
    for (var c = 0u; c < 4u; c++) {
      let n = n0 + tx + 16u * c;
      if (n < N) { out[(t * H + h) * N + n] = acc[r][c]; }
    }
  }
}
`;
  const rowTiles = Math.ceil(maxT / BT);
  if (rowTiles > caps.maxWorkgroupsPerDimension || H > caps.maxWorkgroupsPerDimension)
    throw new Error(
      `head_matmul: ${maxT} tokens × ${H} heads need ${rowTiles} × ${H} workgroups, over maxComputeWorkgroupsPerDimension ${caps.maxWorkgroupsPerDimension}`,
    );
  return {
    launches: [
      {
        kernel: {
          name: `head_matmul_tiled_${a.wLayout}${f16 ? '_w16' : ''}_h${H}n${N}k${K}`,
          code,
          bindings,
          workgroupSize: [256, 1, 1],
        },
        grid: [Math.ceil(N / BN), { sym: 'T', mul: 1, div: BT }, H],
      },
    ],
    scratch: {},
  };
};

const flatHeadMatmul: KernelGenerator<HeadMatmulAttrs> = (a, { caps, maxT }) => {
  const { heads: H, N, K } = a;
  const wg = streamWorkgroup(caps);
  const { f16, wb, at } = headWeight(a);
  const { bindings, decls } = opBindings(
    a,
    [
      'load_w',
      'H',
      'N',
      'K',
      'WG',
      'main',
      'wid',
      'nwg',
      'lid',
      'i',
      'n',
      'th',
      'k',
      's',
      'xo',
      'w_at',
    ],
    [],
    { w: wb },
  );
  // Element (n, k) of head th % H's weight.
  const wAt = `load_w(${at('th % H', 'n', 'k')})`;
  const code = `${STEP_WGSL}
${decls}
const H: u32 = ${H}u;
const N: u32 = ${N}u;
const K: u32 = ${K}u;
const WG: u32 = ${wg}u;
${wb.load('load_w', 'w')}

${FLAT_MAIN_WGSL}
  if (i >= step.T * H * N) { return; }
  // th = t·H + h: the (token, head) row; x's head row starts at th·K.
  let th = i / N;
  let n = i % N;
  let xo = th * K;
  var s = 0.0;
  for (var k = 0u; k < K; k++) { s += x[xo + k] * ${wAt}; }
  out[i] = s;
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `head_matmul_${a.wLayout}${f16 ? '_w16' : ''}_h${H}n${N}k${K}_wg${wg}`,
          code,
          bindings,
          workgroupSize: [wg, 1, 1],
        },
        grid: flatGrid('T', H * N, maxT, wg, caps),
      },
    ],
    scratch: {},
  };
};
