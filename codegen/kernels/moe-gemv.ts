// WGSL pieces shared by the MoE expert GEMVs (moe.ts's plain one, moe-fused.ts's routed and
// combined ones): TPC lanes per output column, CPW columns per workgroup, one partial sum per
// lane reduced in workgroup memory `red`. One place so the three kernels index and reduce alike.
import type { MoeMatmulAttrs } from '../../src/graph/ops.ts';
import { gemvUnits, rowLanes } from './matmul/gemv.ts';

/** Workgroup size of the GEMVs: a power of two up to 256. */
export function gemvWorkgroup(wgMax: number): number {
  return 2 ** Math.floor(Math.log2(Math.min(256, wgMax)));
}

/**
 * Workgroup size, lanes per column, columns per workgroup. A warp of 32 lanes a column, or
 * (matmul/gemv.ts warpFloor) as few as the device's narrower subgroup where a row of U load
 * units leaves fewer than 8 units a lane, as the dense GEMV's rule does.
 */
export function gemvShape(
  a: MoeMatmulAttrs,
  wgMax: number,
  warp: number,
): { WG: number; TPC: number; CPW: number } {
  const WG = gemvWorkgroup(wgMax);
  const TPC = Math.min(32, WG, rowLanes(gemvUnits(a), warp));
  return { WG, TPC, CPW: WG / TPC };
}

/** WGSL product of two x/w elements: `dot` for vec4 rows, `*` for scalars. */
function gemvDot(vec4: boolean): (p: string, q: string) => string {
  return vec4 ? (p, q) => `dot(${p}, ${q})` : (p, q) => `${p} * ${q}`;
}

/**
 * Load units per lane and loop step of the expert GEMVs (GemvShape.G of the dense GEMV, whose
 * H100 sweep of 2026-12-05 made q8 1.49x and q4 1.87x faster with G = 2): 2 for q8 and q4
 * rows of an even number of units, whose grouped reader binds the same u32 words as the
 * per-unit `load_w` the kernels also use; 1 otherwise (f16's grouped reader would bind
 * vec4<u32>, and its gain was 2%).
 */
export function expertGroup(a: MoeMatmulAttrs, vec4: boolean): number {
  return vec4 && (a.wType === 'q8' || a.wType === 'q4') && (a.K / 4) % 2 === 0 ? 2 : 1;
}

/**
 * One lane's loop over a row's U units, TPC lanes apart: for each [acc, row] of `rows`,
 * acc += Σ_k x(k) · w[row + k], with x(k) a WGSL expression of the unit index. With G = 2
 * (expertGroup) each step takes two consecutive units through load_wg.
 */
export function expertDotLoop(
  a: MoeMatmulAttrs,
  vec4: boolean,
  TPC: number,
  x: (k: string) => string,
  rows: Array<[string, string]>,
): string {
  const G = expertGroup(a, vec4);
  if (G === 1) {
    const dot = gemvDot(vec4);
    return `for (var k = lane; k < U; k += ${TPC}u) {
      let xv = ${x('k')};
      ${rows.map(([acc, row]) => `${acc} += ${dot('xv', `load_w(${row} + k)`)};`).join('\n      ')}
    }`;
  }
  const xs = Array.from({ length: G }, (_, g) => `xg${g}`);
  return `for (var kb = lane * ${G}u; kb < U; kb += ${TPC * G}u) {
      ${xs.map((v, g) => `let ${v} = ${x(g === 0 ? 'kb' : `(kb + ${g}u)`)};`).join('\n      ')}
      ${rows.map(([acc, row]) => `${acc} += load_wg(${row} + kb, ${xs.join(', ')});`).join('\n      ')}
    }`;
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
 * index) are known: column c's dot product with x row `x` (a WGSL expression of the unit index), reduced over
 * the lanes and written through `emit` to b_out[p * N + c].
 */
export function expertColumnWgsl(
  a: MoeMatmulAttrs,
  shape: { WG: number; TPC: number; CPW: number },
  vec4: boolean,
  x: (k: string) => string,
): string {
  const { WG, TPC, CPW } = shape;
  const rows: Array<[string, string]> = [['s', 'wr']];
  if (a.gated) rows.push(['su', '(wr + N * U)']);
  return `let lane = lid % ${TPC}u;
  let c = wid.x * ${CPW}u + lid / ${TPC}u;
  let wr = (e * WR + min(c, N - 1u)) * U;
  var s = 0.0;${a.gated ? '\n  var su = 0.0;' : ''}
  if (ok) {
    ${expertDotLoop(a, vec4, TPC, x, rows)}
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
