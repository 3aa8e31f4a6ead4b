/**
 * The prefill matmul on plain FMA units: workgroup tiles of BM×BN outputs, each thread an
 * RM×RN register block (groups of 4 rows / 4 columns spread across the tile, so the 32 lanes
 * of a warp read distinct vec4s of workgroup memory), x and w tiles staged K-major so the
 * inner loop is RM/4 + RN/4 vec4 loads for RM·RN FMAs. The next tile's global loads are issued
 * into registers before the current tile's arithmetic, so their latency hides behind it.
 */
import type { MatmulAttrs } from '../../../src/graph/ops.ts';
import type { KernelLaunch } from '../../kernel-ir.ts';
import type { DeviceCaps } from '../../../src/target.ts';
import {
  checkRowTiles,
  foldGrid,
  hash,
  preferTile,
  rowStats,
  rowStatsBytes,
  rowStatsDecls,
  tileRowCap,
  type Common,
} from './common.ts';
import { withHelpers } from '../wgsl-math.ts';

/** The tiled kernel's shape: BM rows × BN columns per workgroup, BK deep, RM×RN per thread. */
export interface MatmulTiling {
  BM: number;
  BN: number;
  BK: number;
  RM: number;
  RN: number;
  threads: number;
  workgroupBytes: number;
}

/**
 * Candidate (BM, BN, RM, RN), in order of preference. From the H200 sweep of 2026-12-04
 * (bench/matmul-sweep.ts, bench/results/2026-12-04-nvidia-h200-matmul-sweep.json): 128×64 tiles
 * of 8×4 per thread were fastest or within 3% on every shape (34.8 TFLOP/s at 4096³); 8×8
 * register blocks never won and 128×128×8×8 fell to 9.7 TFLOP/s at 4096³, so they are gone.
 */
export const TILE_SHAPES: ReadonlyArray<readonly [number, number, number, number]> = [
  [128, 64, 8, 4],
  [64, 64, 4, 4],
  [32, 64, 4, 4],
  [32, 32, 4, 4],
  [16, 32, 4, 4],
  [16, 16, 4, 4],
];

/** Register-blocked accumulators per thread above this spill on common GPUs. */
const MAX_ACC = 64;
/**
 * Fewest workgroups a tile should give before a smaller tile is preferred: about 1.5 per
 * multiprocessor of an H100/H200 (132). The sweep: at 192 workgroups (512×3072) the 128×64 tile
 * still beat 64×64 by 18%; at 128 (512×2048×8192) it lost to 64×64 by 13%.
 */
const MIN_WORKGROUPS = 192;

/** Whether the tile's grid fits the per-dimension workgroup limit (columns may fold into z). */
export function gridFits(
  a: MatmulAttrs,
  caps: DeviceCaps,
  maxT: number,
  BM: number,
  BN: number,
): boolean {
  const max = caps.maxWorkgroupsPerDimension;
  return Math.ceil(maxT / BM) <= max && Math.ceil(a.N / BN) <= max * max;
}

function tilingOf(
  a: MatmulAttrs,
  caps: DeviceCaps,
  [BM, BN, RM, RN]: readonly [number, number, number, number],
): MatmulTiling | null {
  const inv = Math.min(caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
  const threads = (BM / RM) * (BN / RN);
  const wTiles = a.gated ? 2 : 1;
  if (threads > inv || RM * RN * wTiles > MAX_ACC) return null;
  for (const BK of [16, 8]) {
    const bytes = 4 * BK * (BM + wTiles * BN) + rowStatsBytes(a, BM, threads);
    if (bytes <= caps.maxWorkgroupStorageBytes)
      return { BM, BN, BK, RM, RN, threads, workgroupBytes: bytes };
  }
  return null;
}

/**
 * The tile for this matmul: among the shapes the device's invocation, workgroup-memory and
 * register limits allow, with BM no taller than maxT needs (a 16-token prefill gains nothing
 * from 64-row tiles), the first that still gives MIN_WORKGROUPS workgroups; else the one that
 * gives the most.
 */
export function matmulTiling(a: MatmulAttrs, caps: DeviceCaps, maxT: number): MatmulTiling {
  const rowCap = tileRowCap(maxT);
  const fits = TILE_SHAPES.filter(([BM, BN]) => BM <= rowCap && gridFits(a, caps, maxT, BM, BN))
    .map((s) => tilingOf(a, caps, s))
    .filter((t): t is MatmulTiling => t !== null);
  if (!fits.length) {
    throw new Error(
      `matmul: no tile fits maxComputeInvocationsPerWorkgroup = ${caps.maxInvocationsPerWorkgroup} and ` +
        `maxComputeWorkgroupStorageSize = ${caps.maxWorkgroupStorageBytes}`,
    );
  }
  return preferTile(
    fits.map((t) => ({ t, minGroups: MIN_WORKGROUPS })),
    maxT,
    a.N,
  );
}

/** The tiling for one of TILE_SHAPES, for benchmarks that compare shapes; null if it does not fit. */
export function tilingFor(
  a: MatmulAttrs,
  caps: DeviceCaps,
  shape: readonly [number, number, number, number],
): MatmulTiling | null {
  return tilingOf(a, caps, shape);
}

export function tiledLaunch(
  a: MatmulAttrs,
  c: Common,
  caps: DeviceCaps,
  maxT: number,
  t: MatmulTiling = matmulTiling(a, caps, maxT),
): KernelLaunch {
  const { BM, BN, BK, RM, RN, threads: NT } = t;
  const GM = RM / 4;
  const GN = RN / 4;
  const TX = BN / RN;
  const tiles = Math.ceil(a.N / BN);
  const { gx, gz } = foldGrid(tiles, caps, 'matmul');
  checkRowTiles(maxT, BM, caps);

  // Each thread fetches 4 consecutive k of one row per load (one vec4 read from global memory)
  // into a register, and after the barrier scatters it into the K-major tile, so the inner loop
  // reads one vec4 of 4 rows (x) or 4 columns (w) per k.
  interface Staged {
    dst: string;
    reg: string;
    rows: number;
    load: (m: string) => string;
  }
  const staged: Staged[] = [
    { dst: 'xs', reg: 'px', rows: BM, load: (m) => `load_x(row0 + ${m}, k, ${m})` },
    { dst: 'ws', reg: 'pw', rows: BN, load: (m) => `load_w(col0 + ${m}, col0 + ${m} < N, k)` },
  ];
  if (a.gated)
    staged.push({
      dst: 'wus',
      reg: 'pu',
      rows: BN,
      load: (m) => `load_w(N + col0 + ${m}, col0 + ${m} < N, k)`,
    });
  const units = (s: Staged) => s.rows * (BK / 4);
  const loadsPer = (s: Staged) => Math.ceil(units(s) / NT);
  const regDecls = staged
    .flatMap((s) =>
      Array.from({ length: loadsPer(s) }, (_, l) => `var ${s.reg}${l} = vec4<f32>(0.0);`),
    )
    .join('\n  ');
  const fetch = staged
    .flatMap((s) =>
      Array.from({ length: loadsPer(s) }, (_, l) => {
        const i = `lid + ${l * NT}u`;
        return `{
      let i = ${i};
      let m = i / ${BK / 4}u;
      let k = kb + (i % ${BK / 4}u) * 4u;
      ${units(s) % NT === 0 ? '' : `if (i < ${units(s)}u) `}{ ${s.reg}${l} = ${s.load('m')}; }
    }`;
      }),
    )
    .join('\n    ');
  const store = staged
    .flatMap((s) =>
      Array.from({ length: loadsPer(s) }, (_, l) => {
        const r4 = s.rows / 4;
        const v = `${s.reg}${l}`;
        return `{
      let i = lid + ${l * NT}u;
      ${units(s) % NT === 0 ? '' : `if (i < ${units(s)}u) `}{
        let m = i / ${BK / 4}u;
        let d = (i % ${BK / 4}u) * ${4 * r4}u + m / 4u;
        let e = m % 4u;
        ${s.dst}[d][e] = ${v}.x;
        ${s.dst}[d + ${r4}u][e] = ${v}.y;
        ${s.dst}[d + ${2 * r4}u][e] = ${v}.z;
        ${s.dst}[d + ${3 * r4}u][e] = ${v}.w;
      }
    }`;
      }),
    )
    .join('\n    ');

  // 4 consecutive k of one row of x (normalised, and rounded when xType is f16) or w; zeros past
  // K or outside the matrix.
  const normed = (v: string, k: string): string => {
    const n = a.prologue ? `norm_x(${v}, ${k}, smean[m], srstd[m])` : v;
    return a.xType === 'f16' ? `round_x(${n})` : n;
  };
  const four = (f: (kj: string) => string): string =>
    ['x', 'y', 'z', 'w']
      .map((q, j) => {
        const kj = j ? `k + ${j}u` : 'k';
        const set = `v.${q} = ${f(kj)};`;
        return j ? `if (${kj} < K) { ${set} }` : set;
      })
      .join('\n  ');
  const loaders = c.vec4
    ? `
fn load_x(r: u32, k: u32, m: u32) -> vec4<f32> {
  if (r >= ${c.nRows} || k >= K) { return vec4<f32>(0.0); }
  return ${normed(c.xUnit(`${c.rowBase} + r`, 'k / 4u'), 'k / 4u')};
}
fn load_w(row: u32, ok: bool, k: u32) -> vec4<f32> {
  if (!ok || k >= K) { return vec4<f32>(0.0); }
  return load_wu(row * U + k / 4u);
}`
    : `
fn load_x(r: u32, k: u32, m: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (r >= ${c.nRows} || k >= K) { return v; }
  let base = (${c.rowBase} + r) * K;
  ${four((kj) => normed(a.xMap ? c.xUnit(`${c.rowBase} + r`, kj) : `b_x[base + ${kj}]`, kj))}
  return v;
}
fn load_w(row: u32, ok: bool, k: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (!ok || k >= K) { return v; }
  let base = row * K;
  ${four((kj) => `load_wu(base + ${kj})`)}
  return v;
}`;

  const comp = ['x', 'y', 'z', 'w'];
  const rows = Array.from({ length: RM }, (_, r) => r);
  const colGroups = Array.from({ length: GN }, (_, h) => h);
  const accDecl = rows
    .flatMap((r) =>
      colGroups.map(
        (h) =>
          `var a${r}_${h} = vec4<f32>(0.0);${a.gated ? ` var u${r}_${h} = vec4<f32>(0.0);` : ''}`,
      ),
    )
    .join('\n  ');
  const operands = [
    ...Array.from(
      { length: GM },
      (_, g) => `let xa${g} = xs[kk * ${BM / 4}u + ${(g * BM) / GM / 4}u + ty];`,
    ),
    ...colGroups.map((h) => `let wb${h} = ws[kk * ${BN / 4}u + ${(h * BN) / GN / 4}u + tx];`),
    ...(a.gated
      ? colGroups.map((h) => `let wu${h} = wus[kk * ${BN / 4}u + ${(h * BN) / GN / 4}u + tx];`)
      : []),
  ];
  const fma = rows.flatMap((r) =>
    colGroups.map((h) => {
      const xv = `xa${Math.floor(r / 4)}.${comp[r % 4]}`;
      return `a${r}_${h} += ${xv} * wb${h};${a.gated ? ` u${r}_${h} += ${xv} * wu${h};` : ''}`;
    }),
  );

  const stores = rows
    .map((r) => {
      const body = colGroups
        .map((h) => {
          const col = `col0 + ${(h * BN) / GN}u + tx * 4u`;
          const acc = `a${r}_${h}`;
          if (a.ropeKv) {
            return `{
        let c = ${col};
        if (c < N) { emit_pair(r, c, ${acc}.x, ${acc}.y); }
        if (c + 2u < N) { emit_pair(r, c + 2u, ${acc}.z, ${acc}.w); }
      }`;
          }
          return `{
        let c = ${col};
        ${comp
          .map(
            (q, j) =>
              `if (c + ${j}u < N) { emit(r, c + ${j}u, ${acc}.${q}${a.gated ? `, u${r}_${h}.${q}` : ''}); }`,
          )
          .join('\n        ')}
      }`;
        })
        .join('\n      ');
      return `{
    let r = row0 + ${(Math.floor(r / 4) * BM) / GM}u + ty * 4u + ${r % 4}u;
    if (r < nRows) {
      ${body}
    }
  }`;
    })
    .join('\n  ');

  const code = `${c.header}
const TILES: u32 = ${tiles}u;
var<workgroup> xs: array<vec4<f32>, ${BK * (BM / 4)}>;
var<workgroup> ws: array<vec4<f32>, ${BK * (BN / 4)}>;
${a.gated ? `var<workgroup> wus: array<vec4<f32>, ${BK * (BN / 4)}>;` : ''}
${rowStatsDecls(a, BM, NT)}
${loaders}

@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.z * ${gx}u + wid.x;
  if (tile >= TILES) { return; }
  let nRows = ${c.nRows};
  let rowBase = ${c.rowBase};
  let row0 = wid.y * ${BM}u;
  let col0 = tile * ${BN}u;
  let tx = lid % ${TX}u;
  let ty = lid / ${TX}u;
  ${rowStats(a, c, BM, NT)}
  ${accDecl}
  ${regDecls}
  {
    let kb = 0u;
    ${fetch}
  }
  for (var k0 = 0u; k0 < K; k0 += ${BK}u) {
    ${store}
    workgroupBarrier();
    if (k0 + ${BK}u < K) {
      let kb = k0 + ${BK}u;
      ${fetch}
    }
    for (var kk = 0u; kk < ${BK}u; kk++) {
      ${operands.join('\n      ')}
      ${fma.join('\n      ')}
    }
    workgroupBarrier();
  }
  ${stores}
}
`;
  const name = `matmul_t${BM}x${BN}x${BK}_r${RM}x${RN}${c.features}_${hash(code)}`;
  return {
    kernel: { name, code: withHelpers(code), bindings: c.bindings, workgroupSize: [NT, 1, 1] },
    grid: [gx, { sym: a.rows, div: BM }, gz],
  };
}
