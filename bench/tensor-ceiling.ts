/**
 * Where the tensor-core matmul's time goes: the WGSL subgroup-matrix products alone, then with
 * the fragment loads from workgroup memory the matmul's inner loop makes, then with its staging
 * (scalar f16 stores and two barriers a step), each in TFLOP/s on the same grid. The matmul
 * (codegen/kernels/matmul/subgroup-matrix.ts) does all three plus its global loads; if the
 * first is already far below the GPU's tensor rate, no schedule in WGSL can close the gap to
 * cuBLAS, and the note says so with these figures.
 *   tsx bench/tensor-ceiling.ts [--gpu-flags fast] [--steps 4096] [--out FILE]
 * Every kernel is one workgroup of 4 subgroups, each holding 4 × 4 accumulator fragments (the
 * matmul's 2x2x4x4 tile), 8 workgroups per SM's worth of grid (1056 on an H100).
 */
import { STEP_WGSL, type KernelLaunch } from '../codegen/kernel-ir.ts';
import { SUBGROUP_MATRIX_ENABLES } from '../codegen/kernels/matmul/subgroup-matrix.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { f16Config, f16TensorCoresUnsupported } from '../src/target.ts';
import { benchArgs, gpuFlags, whole, writeResult } from './args.ts';
import { timeLaunches } from './gpu-timer.ts';

const { values } = benchArgs({
  'gpu-flags': { type: 'string', default: 'fast' },
  steps: { type: 'string' },
  groups: { type: 'string' },
  out: { type: 'string' },
});
const STEPS = whole('--steps', values.steps, 4096);
const GROUPS = whole('--groups', values.groups, 1056);
const gpu = await acquire({ flags: gpuFlags(values['gpu-flags']) });
const why = f16TensorCoresUnsupported(gpu.caps);
if (why) throw new Error(`tensor-ceiling: ${why}`);
const cfg = f16Config(gpu.caps)!;
const { M: CM, N: CN, K: CK } = cfg;
const SG = gpu.caps.subgroupMaxSize;
const NT = 4 * SG;
const F = 4; // fragments per subgroup down and across
// A row: two K steps the loads read, one the staging writes, and the matmul's 8 halves of pad.
const LD = 3 * CK + 8;
const ROWS = 4 * F * CM; // xs rows: every subgroup's left fragments
const left = `subgroup_matrix_left<f16, ${CK}, ${CM}>`;
const right = `subgroup_matrix_right<f16, ${CN}, ${CK}>`;
const result = `subgroup_matrix_result<f32, ${CN}, ${CM}>`;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const pairs = range(F).flatMap((i) => range(F).map((j) => [i, j] as const));

const STAGES = [
  'mma',
  'mma+loads',
  'mma+loads+barriers',
  'mma+loads+staging',
  'mma+loads+vector staging',
] as const;
type Stage = (typeof STAGES)[number];

function kernel(stage: Stage): KernelLaunch {
  const loads = (kk: string) => [
    ...range(F).map(
      (i) =>
        `let l${i} = subgroupMatrixLoad<${left}, row_major>(xs, (sg * ${F * CM}u + ${i * CM}u) * ${LD}u + ${kk}, ${LD}u);`,
    ),
    ...range(F).map(
      (j) =>
        `let r${j} = subgroupMatrixLoad<${right}, col_major>(xs, (sg * ${F * CN}u + ${j * CN}u) * ${LD}u + ${kk}, ${LD}u);`,
    ),
  ];
  const mma = pairs.map(
    ([i, j]) => `acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`,
  );
  // Staging: each thread writes its share of a 32-deep x and w tile (as the 2x2x4x4 tile's
  // step does: 128 + 128 rows of 32 halves over 128 threads, 64 halves a thread) into the third
  // K step of each row, so the loads never read what a step writes.
  const stores = range((2 * 128 * 32) / NT).map(
    (q) =>
      `xs[((lid + ${q * NT}u) / 32u % ${ROWS}u) * ${LD}u + ${2 * CK}u + (lid + ${q * NT}u) % ${CK}u] = h;`,
  );
  // The same bytes 16 at a time through a vec4<u32> view of the buffer (buffer_view), as a
  // staged row's 8 halves would go: 8 stores a thread instead of 64.
  const vstores = range((2 * 128 * 32) / 8 / NT).map(
    (q) =>
      `xv[((lid + ${q * NT}u) / 2u % ${ROWS}u) * ${LD / 8}u + ${(2 * CK) / 8}u + (lid + ${q * NT}u) % 2u] = vec4<u32>(it);`,
  );
  const step = (staging: string[]) => [
    ...staging,
    'workgroupBarrier();',
    ...loads(`(it & 1u) * ${CK}u`),
    ...mma,
    'workgroupBarrier();',
  ];
  const body = {
    mma: mma,
    'mma+loads': [...loads(`(it & 1u) * ${CK}u`), ...mma],
    'mma+loads+barriers': step([]),
    'mma+loads+staging': step([`let h = f16(f32(it & 7u) * 0.125);`, ...stores]),
    'mma+loads+vector staging': step(vstores),
  }[stage];
  const code = `${SUBGROUP_MATRIX_ENABLES.join('\n')}
requires buffer_view;
${STEP_WGSL}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
var<workgroup> stage: buffer<${2 * ROWS * LD}>;

@compute @workgroup_size(${NT})
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_id) sg: u32,
) {
  let xs = bufferView<array<f16, ${ROWS * LD}>>(&stage, 0);
  let xv = bufferView<array<vec4<u32>, ${(ROWS * LD) / 8}>>(&stage, 0);
  for (var i = lid; i < ${ROWS * LD}u; i += ${NT}u) { xs[i] = f16(f32(i % 7u) * 0.0625); }
  workgroupBarrier();
  ${loads('0u').join('\n  ')}
  ${pairs.map(([i, j]) => `var acc${i}_${j}: ${result};`).join('\n  ')}
  for (var it = 0u; it < step.T; it++) {
    ${body.join('\n    ')}
  }
  let o = (wid.x * 4u + sg) * ${F * F * CM * CN}u;
  ${pairs.map(([i, j]) => `subgroupMatrixStore<row_major>(&out, o + ${(i * F + j) * CM * CN}u, acc${i}_${j}, ${CN}u);`).join('\n  ')}
}
`;
  return {
    kernel: {
      name: `tensor_ceiling_${stage.replace(/\+/g, '_')}`,
      code,
      bindings: [
        { name: 'step', access: 'read' },
        { name: 'out', access: 'read_write' },
      ],
      workgroupSize: [NT, 1, 1],
    },
    grid: [GROUPS, 1, 1],
  };
}

const rows: { stage: Stage; ms: number; tflops: number }[] = [];
const flops = GROUPS * 4 * pairs.length * 2 * CM * CN * CK * STEPS;
console.log(
  `adapter ${JSON.stringify(gpu.adapterInfo)}; fragment ${CM}x${CN}x${CK}; subgroup ${SG}; ${GROUPS} workgroups × ${STEPS} steps`,
);
for (const stage of STAGES) {
  const launch = kernel(stage);
  const { gpuMs, wallMs } = await timeLaunches(
    gpu,
    [launch],
    { out: GROUPS * 4 * pairs.length * CM * CN * 4 },
    { T: STEPS, pos: 0, L: 1 },
    { reps: 1, samples: 5 },
  );
  const ms = gpuMs ?? wallMs;
  rows.push({ stage, ms, tflops: flops / (ms * 1e-3) / 1e12 });
  console.log(
    `${stage.padEnd(20)} ${ms.toFixed(3).padStart(9)} ms ${rows.at(-1)!.tflops.toFixed(1).padStart(7)} TFLOP/s`,
  );
}
writeResult(values.out, 'bench/tensor-ceiling.ts', {
  device: gpu.adapterInfo,
  fragment: cfg,
  groups: GROUPS,
  steps: STEPS,
  rows,
});
process.exit(0);
