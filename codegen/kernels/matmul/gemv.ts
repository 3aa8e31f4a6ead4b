/**
 * The decode matmul (one row of x): a GEMV where a group of TPC threads reduces C whole weight
 * rows with coalesced (vec4 where K allows) reads and a workgroup tree reduction. Decode is
 * bound by the bytes of w, so f16 weights (unpacked in registers) halve its time.
 */
import type { MatmulAttrs } from '../../../src/graph/ops.ts';
import type { KernelLaunch } from '../../kernel-ir.ts';
import type { DeviceCaps } from '../../../src/target.ts';
import { common, foldGrid, hash } from './common.ts';
import type { WeightType } from '../../../src/graph/dtype.ts';
import { withHelpers } from '../wgsl-math.ts';

function pow2Floor(n: number): number {
  return 2 ** Math.floor(Math.log2(n));
}

/**
 * A GEMV shape: TPC threads share C weight rows; each thread takes G consecutive load units
 * (4 elements each when K % 4 === 0) per loop step, so a q4 thread with G = 8 reads a whole
 * 32-element block (16 bytes of codes, one scale) at once where G = 1 reads 2 bytes.
 */
export interface GemvShape {
  TPC: number;
  C: number;
  G: number;
}

/** One weight type's line of the GEMV rule (GEMV_RULE). */
export interface GemvRule {
  G: number;
  maxTPC: number;
  C: number;
}

/**
 * The rule, per weight type: G load units per thread and step, at most maxTPC threads per row
 * (fewer when the row is short: about 8 units per thread, at least a warp), C rows per thread
 * group. Each type's line is what to change to the sweep's winner (bench/matmul-sweep.ts
 * --wtypes … --groups 1,2,4,8 measures G × TPC × C). From the H200 sweep of 2026-12-04
 * (bench/results/2026-12-04-nvidia-h200-gemv-sweep.json, G = 1 only): two rows per thread
 * group; f16 weights at most 64 threads per row (with 128 or 256 they lost up to 2× on four of
 * six shapes). The old rule (4 rows, U/4 threads up to 256) ran the gated f16 gate+up at
 * 1341 GB/s against 2786 for this one. G from the H100 sweep of 2026-12-05 (bench/results/
 * 2026-12-05-2210-nvidia-h100-gemv-groups.json: Llama-3.2-1B's four decode shapes, G 1/2/4/8 ×
 * 32/64 threads): G = 2 at 64 threads was within 3% of each shape's best for q8 and q4 (G = 1:
 * 1.49× and 1.87× slower, geometric mean) and the best line for f16 (1.13× against G = 1's
 * 1.16×); f32 was not swept and keeps G = 1. Two more H100 sweeps on 2026-12-06
 * (bench/results/2026-12-06-0148-nvidia-h100-gemv-tpc.json and -0149-…-gemv-g.json) ran G = 4
 * up to 3.4× (q4) faster on the 8192-row gated and 32768-row shapes, but in the model it lost:
 * Llama-3.2-1B q4 decode went from 1.160 to 1.239 GPU ms a token (gate+up 0.414 → 0.461 ms,
 * lm_head 0.147 → 0.192; bench/results/2026-12-06-0408-nvidia-h100-80gb-hbm3.json against the
 * 01:33 run; the f16 rows, whose rule did not change, moved 0.1%). A sweep times one weight
 * matrix over and over, which the 50 MB L2 holds; in decode every weight comes from HBM once, so
 * q8 and q4 stay at G = 2. A row whose units G does not divide takes the largest power of two
 * that does.
 */
export const GEMV_RULE: Readonly<Record<WeightType, GemvRule>> = {
  f32: { G: 1, maxTPC: 256, C: 2 },
  f16: { G: 2, maxTPC: 64, C: 2 },
  q8: { G: 2, maxTPC: 64, C: 2 },
  q4: { G: 2, maxTPC: 64, C: 2 },
};

/** The rule's shape for matmul a on the device (GEMV_RULE, or another rule line). */
export function gemvShape(
  a: MatmulAttrs,
  caps: DeviceCaps,
  rule: GemvRule = GEMV_RULE[a.wType],
): GemvShape {
  const U = gemvUnits(a);
  const cap = Math.min(gemvWorkgroup(caps), rule.maxTPC);
  let G = rule.G;
  while (G > 1 && U % G !== 0) G /= 2;
  return { TPC: Math.min(cap, rowLanes(U, warpFloor(caps))), C: rule.C, G };
}

/**
 * Lanes a row of U load units asks for before the caps: about 8 units a lane, at least `warp`
 * (warpFloor). The dense GEMV and the MoE expert GEMVs (moe-gemv.ts) share it.
 */
export function rowLanes(U: number, warp: number): number {
  return Math.max(warp, pow2Floor(Math.max(1, U / 8)));
}

/**
 * The fewest threads a row takes: a warp of 32 (GPUs with wider subgroups keep the measured 32),
 * or the device's subgroup where that is narrower. SwiftShader's is 4: it runs a workgroup as
 * one fiber per 4 lanes and switches every fiber at each barrier, so a short row over 32 lanes
 * paid two more reduction rounds and 4x the workgroups (each repeating a fused norm's
 * reduction); the demo hybrid's lm_head (4096 x 256) took 239 ms a token there.
 */
export function warpFloor(caps: DeviceCaps): number {
  return caps.subgroupMaxSize > 0 ? Math.min(32, pow2Floor(caps.subgroupMaxSize)) : 32;
}

/** Load units per row (common.ts Common.U). */
export function gemvUnits(a: Pick<MatmulAttrs, 'K'>): number {
  return a.K % 4 === 0 ? a.K / 4 : a.K;
}

function gemvWorkgroup(caps: DeviceCaps): number {
  return pow2Floor(Math.min(256, caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX));
}

/**
 * Most rows one GEMV workgroup takes at once (gemvLaunch's R): each weight unit it loads serves
 * them all, so a batched decode step of B <= R sequences reads its weights from memory once
 * rather than once per row. 8 keeps the accumulators (V · R a thread) in registers.
 */
export const GEMV_ROWS_PER_WORKGROUP = 8;

export function gemvLaunch(
  a: MatmulAttrs,
  caps: DeviceCaps,
  shape: GemvShape = gemvShape(a, caps),
  /** Rows a workgroup takes (the step's maxT, at most GEMV_ROWS_PER_WORKGROUP); decode: 1. */
  rowsPerWorkgroup = 1,
): KernelLaunch {
  const UG = shape.G;
  if (![1, 2, 4, 8].includes(UG) || gemvUnits(a) % UG !== 0)
    throw new Error(
      `matmul gemv: G = ${UG} load units per step must be 1, 2, 4 or 8 and divide the row's ${gemvUnits(a)} units (K = ${a.K})`,
    );
  const c = common(a, { weightGroup: UG });
  const WG = gemvWorkgroup(caps);
  const TPC = Math.min(WG, shape.TPC);
  // Even, so a RoPE pair never straddles two groups.
  if (shape.C % 2 !== 0) throw new Error(`matmul gemv: C = ${shape.C} must be even`);
  const C = shape.C;
  const V = a.gated ? 2 * C : C;
  const CPW = (WG / TPC) * C;
  const blocks = Math.ceil(a.N / CPW);
  const { gx, gz } = foldGrid(blocks, caps, 'matmul gemv');
  if (4 * WG * V > caps.maxWorkgroupStorageBytes) {
    throw new Error(`matmul gemv: ${4 * WG * V} bytes of workgroup memory exceed the device limit`);
  }
  const R = rowsPerWorkgroup;
  if (!Number.isInteger(R) || R < 1 || R > GEMV_ROWS_PER_WORKGROUP)
    throw new Error(`matmul gemv: ${R} rows a workgroup (allowed 1..${GEMV_ROWS_PER_WORKGROUP})`);
  // Row-serial epilogues and decode-only prologues keep one row a workgroup.
  if (R > 1 && (a.conv || a.splitXMaps || a.prologueGroup !== undefined || a.prologueGate))
    throw new Error(
      'matmul gemv: several rows a workgroup need no conv epilogue, split x maps or grouped/gated prologue',
    );
  const cols = Array.from({ length: C }, (_, j) => j);
  const vals = Array.from({ length: V }, (_, v) => v);
  const rowIds = Array.from({ length: R }, (_, i) => i);
  // Names of row i's index, x base, norm statistics and accumulators; one row keeps the names
  // the decode kernel has always had.
  const rn = (name: string, i: number): string => (R === 1 ? name : `${name}${i}`);
  const acc = (v: number, i: number): string => (R === 1 ? `s${v}` : `s${v}_${i}`);
  // A grouped prologue (prologueGroup) reads its group's rstd; the group of load unit k is k / GU.
  const grouped = a.prologueGroup !== undefined && a.prologueGroup !== a.K;
  const GU = grouped ? (c.vec4 ? a.prologueGroup! / 4 : a.prologueGroup!) : 0;
  if (grouped && c.vec4 && a.prologueGroup! % 4 !== 0)
    throw new Error(
      `matmul gemv: prologueGroup ${a.prologueGroup} must be a multiple of 4 when K (${a.K}) is`,
    );
  const G = grouped ? a.K / a.prologueGroup! : 1;
  // The gate's row r, unit k: columns [offset, offset + K) of its [T, cols] rows (prologueGateCols).
  const gc = a.prologueGateCols ?? { cols: a.K, offset: 0 };
  // x at load unit `k` (a WGSL u32 variable): mapped, normed, gated and rounded as the
  // attributes say.
  const xAt = (k: string, i = 0): string => {
    const raw = a.xMap
      ? c.xUnit(`${c.rowBase} + ${rn('r', i)}`, k)
      : `b_x[${rn('base', i)} + ${k}]`;
    const gated = a.prologueGate
      ? ` * gate_x((${c.rowBase} + r) * ${gc.cols}u + ${gc.offset}u + ${c.vec4 ? `4u * ${k}` : k})`
      : '';
    const normed = a.prologue
      ? `norm_x(${raw}, ${k}, ${rn('mean', i)}, ${grouped ? `grstd[${k} / ${GU}u]` : rn('rstd', i)})${gated}`
      : raw;
    return a.xType === 'f16' ? `round_x(${normed})` : normed;
  };
  // Per-split x maps: each of the C rows reads x as its own split maps it (rows of one thread
  // group may straddle a split boundary), so each has its own xv.
  const xsAt = (k: string, j: number): string => {
    const v = `load_xs(${c.rowBase} + r, ${k}, min(col0 + ${j}u, N - 1u))`;
    return a.xType === 'f16' ? `round_x(${v})` : v;
  };
  const rows = cols.map((j) => `let w${j} = min(col0 + ${j}u, N - 1u) * U;`);
  if (a.gated) rows.push(...cols.map((j) => `let wu${j} = w${j} + N * U;`));
  let loop: string;
  if (UG === 1) {
    const xLoads = a.splitXMaps
      ? cols.map((j) => `let xv${j} = ${xsAt('k', j)};`).join('\n    ')
      : rowIds.map((i) => `let ${rn('xv', i)} = ${xAt('k', i)};`).join('\n    ');
    const perRow = a.splitXMaps ? (j: number) => `xv${j}` : () => 'xv';
    // Each weight unit is loaded once and serves the R rows.
    const wl = R === 1 ? (w: string) => `load_wu(${w} + k)` : (w: string) => `${w}v`;
    const wLoads =
      R === 1
        ? []
        : [...cols.map((j) => `w${j}`), ...(a.gated ? cols.map((j) => `wu${j}`) : [])].map(
            (w) => `let ${w}v = load_wu(${w} + k);`,
          );
    const fma = rowIds.flatMap((i) =>
      cols.map((j) => `${acc(j, i)} += ${c.dot(R === 1 ? perRow(j) : rn('xv', i), wl(`w${j}`))};`),
    );
    if (a.gated)
      fma.push(
        ...rowIds.flatMap((i) =>
          cols.map((j) => `${acc(C + j, i)} += ${c.dot(rn('xv', i), wl(`wu${j}`))};`),
        ),
      );
    loop = `for (var k = lane; k < U; k += ${TPC}u) {
    ${[xLoads, ...wLoads].join('\n    ')}
    ${fma.join('\n    ')}
  }`;
  } else {
    // G units kb … kb+G-1 per step: x loaded unit by unit, w through load_wg (weight-load.ts
    // weightGroupBinding), whose wide reads want the group's units consecutive in one thread.
    const us = Array.from({ length: UG }, (_, g) => g);
    const ks = us.map((g) => `let k${g} = kb + ${g}u;`).join(' ');
    // Several rows: each row's x units, then load_wg per row and weight row (the repeated
    // weight loads are the same addresses, served by the cache, not by memory).
    const xName = (i: number, g: number) => (R === 1 ? `xv_${g}` : `xv${i}_${g}`);
    const xLoads = a.splitXMaps
      ? cols.flatMap((j) => us.map((g) => `let xv${j}_${g} = ${xsAt(`k${g}`, j)};`))
      : rowIds.flatMap((i) => us.map((g) => `let ${xName(i, g)} = ${xAt(`k${g}`, i)};`));
    const xArgs = (j: number, i = 0) =>
      us.map((g) => (a.splitXMaps ? `xv${j}_${g}` : xName(i, g))).join(', ');
    const fma = rowIds.flatMap((i) =>
      cols.map((j) => `${acc(j, i)} += load_wg(w${j} + kb, ${xArgs(j, i)});`),
    );
    if (a.gated)
      fma.push(
        ...rowIds.flatMap((i) =>
          cols.map((j) => `${acc(C + j, i)} += load_wg(wu${j} + kb, ${xArgs(0, i)});`),
        ),
      );
    loop = `for (var kb = lane * ${UG}u; kb < U; kb += ${TPC * UG}u) {
    ${ks}
    ${xLoads.join('\n    ')}
    ${fma.join('\n    ')}
  }`;
  }

  const red = (i: string): string => `red[${i} * ${WG}u + lid]`;
  // Row i's outputs from the reduced partial sums (in red).
  const finish = (i: number): string => {
    const r = rn('r', i);
    if (a.ropeKv)
      return cols
        .filter((j) => j % 2 === 0)
        .map(
          (j) =>
            `if (col0 + ${j}u < N) { emit_pair(${r}, col0 + ${j}u, ${red(`${j}u`)}, ${red(`${j + 1}u`)}); }`,
        )
        .join('\n    ');
    return cols
      .map(
        (j) =>
          `if (col0 + ${j}u < N) { emit(${r}, col0 + ${j}u, ${red(`${j}u`)}${a.gated ? `, ${red(`${C + j}u`)}` : ''}); }`,
      )
      .join('\n    ');
  };
  // Row i's partial sums, reduced over each weight row's TPC lanes, then emitted.
  const reduceRow = (
    i: number,
  ): string => `${vals.map((v) => `${red(`${v}u`)} = ${acc(v, i)};`).join('\n  ')}
  workgroupBarrier();
  for (var h = ${TPC / 2}u; h > 0u; h = h >> 1u) {
    if (lane < h) {
      ${vals.map((v) => `red[${v * WG}u + lid] += red[${v * WG}u + lid + h];`).join('\n      ')}
    }
    workgroupBarrier();
  }
  if (lane == 0u${R === 1 ? '' : ` && rfirst + ${i}u < ${c.nRows}`}) {
    ${finish(i)}
  }`;

  let stats = '';
  if (a.prologue) {
    // Whole-workgroup tree reduction over red[0..WG); a barrier after each read of red[0]
    // keeps the next pass from overwriting it early.
    const reduce = (v: string): string => `
  red[lid] = ${v};
  workgroupBarrier();
  for (var h = ${WG / 2}u; h > 0u; h = h >> 1u) {
    if (lid < h) { red[lid] += red[lid + h]; }
    workgroupBarrier();
  }`;
    const sq = c.vec4 ? 'dot(d, d)' : 'd * d';
    const layer = a.prologue.kind === 'layer';
    // Grouped (prologueGroup): TPG threads per group reduce its units together, every group at
    // once, so a row's G groups cost one tree reduction of log2(TPG) steps, not G of them.
    if (grouped && G > WG)
      throw new Error(`matmul gemv: ${G} prologue groups exceed the ${WG}-thread workgroup`);
    const TPG = grouped ? pow2Floor(WG / G) : 0;
    stats = grouped
      ? `
  let mean = 0.0;
  {
    let gi = lid / ${TPG}u;
    let li = lid % ${TPG}u;
    var ss = 0.0;
    if (gi < ${G}u) {
      for (var k = li; k < ${GU}u; k += ${TPG}u) { let d = b_x[base + gi * ${GU}u + k]; ss += ${sq}; }
    }
    red[lid] = ss;
    workgroupBarrier();
    for (var h = ${Math.floor(TPG / 2)}u; h > 0u; h = h >> 1u) {
      if (li < h) { red[lid] += red[lid + h]; }
      workgroupBarrier();
    }
    if (li == 0u && gi < ${G}u) { grstd[gi] = inverseSqrt(red[lid] / f32(${a.prologueGroup}) + EPS); }
    workgroupBarrier();
  }`
      : rowIds
          .map((i) => {
            const [mean, rstd, base] = [rn('mean', i), rn('rstd', i), rn('base', i)];
            return `
  var ${mean} = 0.0;${
    layer
      ? `
  ${R === 1 ? 'var s' : 's'} = 0.0;
  for (var k = lid; k < U; k += ${WG}u) { s += ${c.sum(`b_x[${base} + k]`)}; }${reduce('s')}
  ${mean} = red[0] / f32(K);
  workgroupBarrier();`
      : ''
  }
  ${R === 1 ? 'var ss' : 'ss'} = 0.0;
  for (var k = lid; k < U; k += ${WG}u) { let d = b_x[${base} + k] - ${mean}; ss += ${sq}; }${reduce('ss')}
  let ${rstd} = inverseSqrt(red[0] / f32(K) + EPS);
  workgroupBarrier();`;
          })
          .join('');
    // Several rows share the statistics' running sums.
    if (R > 1) stats = `\n  var s = 0.0;\n  var ss = 0.0;${stats}`;
  }

  // A conv epilogue carries its state from row to row, so one workgroup walks the rows in order
  // (decode has one); otherwise each workgroup takes R rows (grid y).
  const rowLoop = a.conv
    ? `for (var r = 0u; r < ${c.nRows}; r++) {`
    : R === 1
      ? `let r = wid.y;
  // Also keeps the step binding alive in the layout when nothing else reads it.
  if (r >= ${c.nRows}) { return; }`
      : `let rfirst = wid.y * ${R}u;
  // Also keeps the step binding alive in the layout when nothing else reads it.
  if (rfirst >= ${c.nRows}) { return; }
  ${rowIds.map((i) => `let r${i} = min(rfirst + ${i}u, ${c.nRows} - 1u);`).join(' ')}`;
  const rowEnd = a.conv ? '\n  workgroupBarrier();\n  }' : '';
  const bases = rowIds.map((i) => `let ${rn('base', i)} = (${c.rowBase} + ${rn('r', i)}) * U;`);
  const code = `${c.header}
const BLOCKS: u32 = ${blocks}u;
var<workgroup> red: array<f32, ${WG * V}>;${
    grouped
      ? `
var<workgroup> grstd: array<f32, ${G}>;`
      : ''
  }

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let blk = wid.z * ${gx}u + wid.x;
  if (blk >= BLOCKS) { return; }
  ${rowLoop}
  ${bases.join('\n  ')}
  ${stats}
  let lane = lid % ${TPC}u;
  let col0 = blk * ${CPW}u + (lid / ${TPC}u) * ${C}u;
  ${rows.join('\n  ')}
  ${rowIds.flatMap((i) => vals.map((v) => `var ${acc(v, i)} = 0.0;`)).join(' ')}
  ${loop}
  ${rowIds.map(reduceRow).join('\n  workgroupBarrier();\n  ')}${rowEnd}
}
`;
  const name = `matmul_gemv${CPW}x${TPC}${UG > 1 ? `u${UG}` : ''}${R > 1 ? `r${R}` : ''}${c.features}_${hash(code)}`;
  return {
    kernel: { name, code: withHelpers(code), bindings: c.bindings, workgroupSize: [WG, 1, 1] },
    grid: [gx, a.conv ? 1 : R === 1 ? { sym: a.rows } : { sym: a.rows, div: R }, gz],
  };
}
