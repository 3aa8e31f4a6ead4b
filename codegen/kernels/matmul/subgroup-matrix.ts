/**
 * The prefill matmul on tensor cores, through WGSL subgroup matrices
 * (chromium_experimental_subgroup_matrix; shader-f16). x is normalised in f32 and rounded to
 * f16 as it is staged (xType 'f16'), w is read as f16; products accumulate in f32. Each of the
 * workgroup's SGR×SGC subgroups owns FM×FN result fragments of one device matrix shape (16×16
 * on NVIDIA); the tile is staged row-major in workgroup memory with rows padded by 8 halves,
 * so fragment loads from consecutive rows fall in different banks. The result leaves through
 * one fragment-sized f32 scratch per subgroup into the shared epilogue, so every fusion the
 * other schedules have (norm prologue, bias, gating, residual, RoPE + KV-append) works here.
 *
 * Where the time goes (bench/tensor-ceiling.ts, H100, 2026-12-06: this tile's 4 subgroups of
 * 4 × 4 fragments on 1,056 workgroups): the products alone run at 637 TFLOP/s and with their
 * fragment loads from workgroup memory at 608, but two barriers a step bring that to 332 and the
 * staging stores to 181 (204 with 16-byte stores). The matmul itself reaches 105 TFLOP/s at
 * 4096³, 0.14× cuBLAS's f16 in the same run: what is left to win is in staging, barriers and the
 * global loads, for which WGSL has no asynchronous copies; not in the products.
 */
import type { MatmulAttrs } from '../../../src/graph/ops.ts';
import type { KernelLaunch } from '../../kernel-ir.ts';
import {
  f16Config,
  f16TensorCoresUnsupported,
  type DeviceCaps,
  type SubgroupMatrixConfig,
} from '../../../src/target.ts';
import {
  checkRowTiles,
  foldGrid,
  hash,
  preferTile,
  rowStats,
  rowStatsBytes,
  rowStatsDecls,
  tileRowCap,
  common,
  type Common,
} from './common.ts';
import { gridFits } from './tiled.ts';
import { withHelpers } from '../wgsl-math.ts';

export const SUBGROUP_MATRIX_ENABLES = [
  'enable f16;',
  'enable subgroups;',
  'enable chromium_experimental_subgroup_matrix;',
  // Fragment offsets derive from subgroup_id, which is uniform per subgroup but not per
  // workgroup; the analysis only knows workgroup uniformity.
  'diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);',
];

export interface TensorTiling {
  /** Subgroups per workgroup: SGR down the rows, SGC across the columns. */
  SGR: number;
  SGC: number;
  /** Result fragments per subgroup. */
  FM: number;
  FN: number;
  BK: number;
  cfg: SubgroupMatrixConfig;
  /** Invocations per subgroup (the device's subgroupMaxSize). */
  SG: number;
  BM: number;
  BN: number;
  threads: number;
  workgroupBytes: number;
  /**
   * Workgroup-memory buffers per staged operand: 2 writes the next K step into one buffer while
   * the subgroups read the other, one barrier a step instead of two.
   */
  stages: TensorStages;
  /**
   * Staging writes 8 or 4 halves in one 16- or 8-byte store through a vec4<u32> / vec2<u32>
   * view of the workgroup buffer the fragments load from as f16 (WGSL buffer_view), instead of
   * one store a half: bench/tensor-ceiling.ts put the scalar stores at 3.4× the cost of the
   * products they feed on the H100. Taken wherever the device has buffer_view.
   */
  vectorStores: boolean;
}

/**
 * Workgroup buffers per operand; both are tried by the tests and the sweep. (Loading w's
 * fragments straight from the weight buffer instead of staging them was tried too: 2-8× slower
 * on the H100, bench/results/2026-12-06-1710-nvidia-h100-tensor-staging-sweep.json.)
 */
export type TensorStages = 1 | 2;
export const TENSOR_STAGES: readonly TensorStages[] = [1, 2];

/** (SGR, SGC, FM, FN): every tile shape the tests and the sweep try, largest first. */
export const TENSOR_SHAPES: ReadonlyArray<readonly [number, number, number, number]> = [
  [4, 2, 4, 4],
  [2, 4, 4, 4],
  [2, 4, 4, 2],
  [2, 2, 4, 4],
  [2, 2, 2, 4],
  [2, 2, 2, 2],
  [1, 2, 2, 2],
  [1, 1, 2, 2],
];

/** Halves of padding per staged row: 16 bytes, so each row starts 16-byte aligned. */
const PAD = 8;
/** Accumulator fragments per subgroup above this spill registers. */
const MAX_FRAGMENTS = 16;

/**
 * The tile rule's candidates in order of preference, each taken when it fits and gives at least
 * minGroups workgroups. From the H200 sweep of 2026-12-04 (bench/matmul-sweep.ts,
 * bench/results/2026-12-04-nvidia-h200-matmul-sweep.json): four subgroups of 4×4 fragments were
 * fastest once there were 256+ workgroups (128 TFLOP/s at 4096³, 121 at 2048³); below that,
 * eight subgroups of 4×2 won on every shape even at 64 workgroups, 20-30% faster with 64-deep
 * staging where it fits in workgroup memory. Smaller tiles (short prompts) are unmeasured and
 * keep the FMA rule: enough workgroups, else the most.
 */
const TENSOR_RULE: ReadonlyArray<{
  shape: readonly [number, number, number, number];
  BK: number;
  minGroups: number;
}> = [
  { shape: [2, 2, 4, 4], BK: 32, minGroups: 256 },
  { shape: [2, 4, 4, 2], BK: 64, minGroups: 0 },
  { shape: [2, 4, 4, 2], BK: 32, minGroups: 0 },
  ...TENSOR_SHAPES.slice(4).map((shape) => ({ shape, BK: 32, minGroups: 256 })),
];

/** Why this matmul cannot run on tensor cores here, or null when it can. */
export function tensorUnsupported(a: MatmulAttrs, caps: DeviceCaps): string | null {
  if (a.wType !== 'f16' || a.xType !== 'f16') return 'it is not an f16 × f16 matmul';
  const device = f16TensorCoresUnsupported(caps);
  if (device) return device;
  if (a.K % 8 !== 0) return `K = ${a.K} is not a multiple of 8`;
  return null;
}

export function tensorTilingFor(
  a: MatmulAttrs,
  caps: DeviceCaps,
  [SGR, SGC, FM, FN]: readonly [number, number, number, number],
  BK = 32,
  stages: TensorStages = 1,
  vectorStores = caps.bufferView,
): TensorTiling | null {
  if (vectorStores && !caps.bufferView) return null;
  const cfg = f16Config(caps);
  if (!cfg) return null;
  const SG = caps.subgroupMaxSize;
  const threads = SGR * SGC * SG;
  const inv = Math.min(caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
  const wTiles = a.gated ? 2 : 1;
  if (threads > inv || FM * FN * wTiles > MAX_FRAGMENTS || BK % cfg.K !== 0 || BK % 8 !== 0)
    return null;
  const BM = SGR * FM * cfg.M;
  const BN = SGC * FN * cfg.N;
  const bytes =
    2 * stages * (BK + PAD) * (BM + wTiles * BN) +
    4 * SGR * SGC * cfg.M * cfg.N * wTiles +
    rowStatsBytes(a, BM, threads);
  if (bytes > caps.maxWorkgroupStorageBytes) return null;
  return {
    SGR,
    SGC,
    FM,
    FN,
    BK,
    cfg,
    SG,
    BM,
    BN,
    threads,
    workgroupBytes: bytes,
    stages,
    vectorStores,
  };
}

/** The tensor-core tile for this matmul (TENSOR_RULE), or null if none fits. */
export function tensorTiling(a: MatmulAttrs, caps: DeviceCaps, maxT: number): TensorTiling | null {
  if (tensorUnsupported(a, caps)) return null;
  const rowCap = tileRowCap(maxT);
  const fits = TENSOR_RULE.flatMap(({ shape, BK, minGroups }) => {
    const t = tensorTilingFor(a, caps, shape, BK);
    return t && t.BM <= rowCap && gridFits(a, caps, maxT, t.BM, t.BN) ? [{ t, minGroups }] : [];
  });
  return fits.length ? preferTile(fits, maxT, a.N) : null;
}

/** The shared header a tensor-core tile needs: its enables, and w read 8 halves a load. */
export function tensorCommon(a: MatmulAttrs, t: TensorTiling): Common {
  const enables = t.vectorStores
    ? [...SUBGROUP_MATRIX_ENABLES, 'requires buffer_view;']
    : SUBGROUP_MATRIX_ENABLES;
  return common(a, { wideWeights: true, enables });
}

export function tensorLaunch(
  a: MatmulAttrs,
  c: Common,
  caps: DeviceCaps,
  maxT: number,
  t: TensorTiling,
): KernelLaunch {
  const why = tensorUnsupported(a, caps);
  if (why) throw new Error(`matmul tensor-core schedule: ${why}`);
  const { SGR, SGC, FM, FN, BK, BM, BN, threads: NT, stages, vectorStores } = t;
  const { M: CM, N: CN, K: CK } = t.cfg;
  const NS = SGR * SGC;
  const LD = BK + PAD;
  const FRAG = CM * CN;
  const tiles = Math.ceil(a.N / BN);
  const { gx, gz } = foldGrid(tiles, caps, 'matmul');
  checkRowTiles(maxT, BM, caps);

  const xu = c.xUnit('rowBase + r', 'k / 4u');
  const normed = a.prologue ? `norm_x(${xu}, k / 4u, smean[m], srstd[m])` : xu;
  // x: 4 k per load (f32), w: 8 k per load (f16 halves packed in a vec4<u32>).
  interface Staged {
    dst: string;
    reg: string;
    per: number;
    rows: number;
    load: (m: string) => string;
    zero: string;
  }
  const staged: Staged[] = [
    {
      dst: 'xs',
      reg: 'px',
      per: 4,
      rows: BM,
      load: (m) => `load_x(row0 + ${m}, k, ${m})`,
      zero: 'vec4<f32>(0.0)',
    },
    {
      dst: 'ws',
      reg: 'pw',
      per: 8,
      rows: BN,
      load: (m) => `load_w8(col0 + ${m}, col0 + ${m} < N, k)`,
      zero: 'vec4<u32>(0u)',
    },
  ];
  if (a.gated)
    staged.push({
      dst: 'wus',
      reg: 'pu',
      per: 8,
      rows: BN,
      load: (m) => `load_w8(N + col0 + ${m}, col0 + ${m} < N, k)`,
      zero: 'vec4<u32>(0u)',
    });
  const units = (s: Staged) => (s.rows * BK) / s.per;
  const loadsPer = (s: Staged) => Math.ceil(units(s) / NT);
  const guard = (s: Staged) => (units(s) % NT === 0 ? '' : `if (i < ${units(s)}u) `);
  const each = (f: (s: Staged, l: number) => string) =>
    staged.flatMap((s) => Array.from({ length: loadsPer(s) }, (_, l) => f(s, l)));
  const regDecls = each((s, l) => `var ${s.reg}${l} = ${s.zero};`).join('\n  ');
  const fetch = each(
    (s, l) => `{
      let i = lid + ${l * NT}u;
      let m = i / ${BK / s.per}u;
      let k = kb + (i % ${BK / s.per}u) * ${s.per}u;
      ${guard(s)}{ ${s.reg}${l} = ${s.load('m')}; }
    }`,
  ).join('\n    ');
  // Where workgroup buffer `at` (an expression) of an operand of `rows` rows starts: nothing to
  // add with one stage.
  const base = (rows: number, at = 'cur') => (stages > 1 ? `(${at}) * ${rows * LD}u + ` : '');
  // Writes the fetched registers into workgroup buffer `sb`.
  const store = (sb: string) =>
    each((s, l) => {
      const v = `${s.reg}${l}`;
      const writes = vectorStores
        ? s.per === 4
          ? `${s.dst}_v[o / 4u] = bitcast<vec2<u32>>(vec4<f16>(round_x(${v})));`
          : `${s.dst}_v[o / 8u] = ${v};`
        : s.per === 4
          ? `let h = vec4<f16>(round_x(${v}));
        ${[0, 1, 2, 3].map((j) => `${s.dst}[o + ${j}u] = h[${j}];`).join(' ')}`
          : [0, 1, 2, 3]
              .map(
                (q) => `let h${q} = bitcast<vec2<f16>>(${v}[${q}]);
        ${s.dst}[o + ${2 * q}u] = h${q}.x; ${s.dst}[o + ${2 * q + 1}u] = h${q}.y;`,
              )
              .join('\n        ');
      return `{
      let i = lid + ${l * NT}u;
      ${guard(s)}{
        let o = ${base(s.rows, sb)}(i / ${BK / s.per}u) * ${LD}u + (i % ${BK / s.per}u) * ${s.per}u;
        ${writes}
      }
    }`;
    }).join('\n    ');

  const frags = Array.from({ length: FM }, (_, i) =>
    Array.from({ length: FN }, (_, j) => [i, j] as const),
  ).flat();
  const left = `subgroup_matrix_left<f16, ${CK}, ${CM}>`;
  const right = `subgroup_matrix_right<f16, ${CN}, ${CK}>`;
  const result = `subgroup_matrix_result<f32, ${CN}, ${CM}>`;
  const accDecl = frags
    .map(([i, j]) => `var acc${i}_${j}: ${result};${a.gated ? ` var up${i}_${j}: ${result};` : ''}`)
    .join('\n  ');
  // One fragment-deep step of the products at K offset kk within the staged tile (in the
  // workgroup buffer `cur` when there are two).
  // Under vector stores xs / ws / wus are pointers (views), else the variables themselves.
  const ref = vectorStores ? '' : '&';
  const mma = [
    ...Array.from(
      { length: FM },
      (_, i) =>
        `let l${i} = subgroupMatrixLoad<${left}, row_major>(${ref}xs, ${base(BM)}(sr * ${FM * CM}u + ${i * CM}u) * ${LD}u + kk, ${LD}u);`,
    ),
    ...(a.gated ? (['ws', 'wus'] as const) : (['ws'] as const)).flatMap((buf) =>
      Array.from(
        { length: FN },
        (_, j) =>
          `let ${buf === 'ws' ? 'r' : 'q'}${j} = subgroupMatrixLoad<${right}, col_major>(${ref}${buf}, ${base(BN)}(sc * ${FN * CN}u + ${j * CN}u) * ${LD}u + kk, ${LD}u);`,
      ),
    ),
    ...frags.map(
      ([i, j]) =>
        `acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});` +
        (a.gated
          ? ` up${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, q${j}, up${i}_${j});`
          : ''),
    ),
  ];

  const upAt = (e: string) => `cs[${NS * FRAG}u + sg * ${FRAG}u + ${e}]`;
  const finish = frags
    .map(([i, j]) => {
      const at = (e: string) => `cs[sg * ${FRAG}u + ${e}]`;
      const rc = (e: string) => `let r = row0 + sr * ${FM * CM}u + ${i * CM}u + ${e} / ${CN}u;
      let c = col0 + sc * ${FN * CN}u + ${j * CN}u + ${e} % ${CN}u;`;
      const body = a.ropeKv
        ? `for (var e = 2u * sl; e < ${FRAG}u; e += 2u * ssz) {
      ${rc('e')}
      if (r < nRows && c < N) { emit_pair(r, c, ${at('e')}, ${at('e + 1u')}); }
    }`
        : `for (var e = sl; e < ${FRAG}u; e += ssz) {
      ${rc('e')}
      if (r < nRows && c < N) { emit(r, c, ${at('e')}${a.gated ? `, ${upAt('e')}` : ''}); }
    }`;
      return `subgroupMatrixStore<row_major>(&cs, sg * ${FRAG}u, acc${i}_${j}, ${CN}u);${
        a.gated
          ? `\n  subgroupMatrixStore<row_major>(&cs, ${NS * FRAG}u + sg * ${FRAG}u, up${i}_${j}, ${CN}u);`
          : ''
      }
  workgroupBarrier();
  {
    ${body}
  }
  workgroupBarrier();`;
    })
    .join('\n  ');

  const code = `${c.header}
const TILES: u32 = ${tiles}u;
${staged
  .map((s) =>
    vectorStores
      ? `var<workgroup> ${s.dst}_b: buffer<${2 * stages * s.rows * LD}>;`
      : `var<workgroup> ${s.dst}: array<f16, ${stages * s.rows * LD}>;`,
  )
  .join('\n')}
var<workgroup> cs: array<f32, ${NS * FRAG * (a.gated ? 2 : 1)}>;
${rowStatsDecls(a, BM, NT)}

fn load_x(r: u32, k: u32, m: u32) -> vec4<f32> {
  let rowBase = ${c.rowBase};
  if (r >= ${c.nRows} || k >= K) { return vec4<f32>(0.0); }
  return ${normed};
}
fn load_w8(row: u32, ok: bool, k: u32) -> vec4<u32> {
  if (!ok || k >= K) { return vec4<u32>(0u); }
  return b_w[(row * K + k) / 8u];
}

@compute @workgroup_size(${NT})
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_id) sg: u32,
  @builtin(subgroup_invocation_id) sl: u32,
  @builtin(subgroup_size) ssz: u32,
) {
  let tile = wid.z * ${gx}u + wid.x;
  if (tile >= TILES) { return; }
  let nRows = ${c.nRows};
  let rowBase = ${c.rowBase};
  let row0 = wid.y * ${BM}u;
  let col0 = tile * ${BN}u;
  ${
    vectorStores
      ? staged
          .map((s) => {
            const n = stages * s.rows * LD;
            const unit = s.per === 4 ? 'vec2<u32>' : 'vec4<u32>';
            return `let ${s.dst} = bufferView<array<f16, ${n}>>(&${s.dst}_b, 0);
  let ${s.dst}_v = bufferView<array<${unit}, ${(n * 2) / (s.per === 4 ? 8 : 16)}>>(&${s.dst}_b, 0);`;
          })
          .join('\n  ')
      : ''
  }
  let sr = sg / ${SGC}u;
  let sc = sg % ${SGC}u;
  ${rowStats(a, c, BM, NT)}
  ${accDecl}
  ${regDecls}
  {
    let kb = 0u;
    ${fetch}
  }
  ${
    stages > 1
      ? `${store('0u')}
  workgroupBarrier();`
      : ''
  }
  for (var k0 = 0u; k0 < K; k0 += ${BK}u) {
    ${
      stages > 1
        ? `let cur = (k0 / ${BK}u) % 2u;`
        : `${store('0u')}
    workgroupBarrier();`
    }
    if (k0 + ${BK}u < K) {
      let kb = k0 + ${BK}u;
      ${fetch}
    }
    for (var kk = 0u; kk < ${BK}u; kk += ${CK}u) {
      ${mma.join('\n      ')}
    }
    ${
      stages > 1
        ? `if (k0 + ${BK}u < K) {
      ${store('1u - cur')}
    }`
        : ''
    }
    workgroupBarrier();
  }
  ${finish}
}
`;
  const staging = `${stages > 1 ? '_db' : ''}${vectorStores ? '_vs' : ''}`;
  const name = `matmul_mma${BM}x${BN}x${BK}_s${SGR}x${SGC}${staging}${c.features}_${hash(code)}`;
  return {
    kernel: { name, code: withHelpers(code), bindings: c.bindings, workgroupSize: [NT, 1, 1] },
    grid: [gx, { sym: a.rows, div: BM }, gz],
  };
}
