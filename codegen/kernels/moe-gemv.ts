// WGSL pieces shared by the MoE expert GEMVs (moe.ts's plain one, moe-fused.ts's routed and
// combined ones): TPC lanes per output column, CPW columns per workgroup, one partial sum per
// lane reduced in workgroup memory `red`. One place so the three kernels index and reduce alike.
import type { MoeMatmulAttrs } from '../../src/graph/ops.ts';

/** Workgroup size of the GEMVs: a power of two up to 256. */
export function gemvWorkgroup(wgMax: number): number {
  return 2 ** Math.floor(Math.log2(Math.min(256, wgMax)));
}

/** Workgroup size, lanes per column, columns per workgroup. */
export function gemvShape(wgMax: number): { WG: number; TPC: number; CPW: number } {
  const WG = gemvWorkgroup(wgMax);
  const TPC = Math.min(32, WG);
  return { WG, TPC, CPW: WG / TPC };
}

/** WGSL product of two x/w elements: `dot` for vec4 rows, `*` for scalars. */
export function gemvDot(vec4: boolean): (p: string, q: string) => string {
  return vec4 ? (p, q) => `dot(${p}, ${q})` : (p, q) => `${p} * ${q}`;
}

/**
 * Tree reduction of each column's TPC lane sums in `red` (and of the up half at red[WG..]
 * when gated); lane 0 of each column ends holding the total.
 */
export function laneReduceWgsl(TPC: number, WG: number, gated: boolean): string {
  return `for (var h = ${TPC / 2}u; h > 0u; h = h >> 1u) {
    if (lane < h) {
      red[lid] += red[lid + h];${gated ? `\n      red[${WG}u + lid] += red[${WG}u + lid + h];` : ''}
    }
    workgroupBarrier();
  }`;
}

/**
 * Body of an expert-slot GEMV after `ok` (this slot's expert is on this shard) and `e` (its local
 * index) are known: column c's dot product with x row `xv` (a WGSL expression of k), reduced over
 * the lanes and written through `emit` to b_out[p * N + c].
 */
export function expertColumnWgsl(
  a: MoeMatmulAttrs,
  shape: { WG: number; TPC: number; CPW: number },
  vec4: boolean,
  xv: string,
): string {
  const { WG, TPC, CPW } = shape;
  const dot = gemvDot(vec4);
  return `let lane = lid % ${TPC}u;
  let c = wid.x * ${CPW}u + lid / ${TPC}u;
  let wr = (e * WR + min(c, N - 1u)) * U;
  var s = 0.0;${a.gated ? '\n  var su = 0.0;' : ''}
  if (ok) {
    for (var k = lane; k < U; k += ${TPC}u) {
      let xv = ${xv};
      s += ${dot('xv', 'load_w(wr + k)')};${a.gated ? `\n      su += ${dot('xv', 'load_w(wr + N * U + k)')};` : ''}
    }
  }
  red[lid] = s;${a.gated ? `\n  red[${WG}u + lid] = su;` : ''}
  workgroupBarrier();
  ${laneReduceWgsl(TPC, WG, a.gated)}
  if (ok && lane == 0u && c < N) {
    b_out[p * N + c] = emit(e, c, red[lid], ${a.gated ? `red[${WG}u + lid]` : '0.0'});
  }`;
}

/** Kernel name of an expert GEMV: its shape, vector width, features and variant tags. */
export function gemvName(
  shape: { TPC: number; CPW: number },
  vec4: boolean,
  features: string,
  tags: string[],
): string {
  const t = tags.filter(Boolean).join('_');
  return `moe_matmul_gemv${shape.CPW}x${shape.TPC}${vec4 ? '_v4' : ''}_${features}${t ? `_${t}` : ''}`;
}
