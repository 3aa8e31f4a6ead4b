/**
 * f16 matmuls against the reference, which rounds w (and, for xType f16, each normalised x row)
 * to f16 exactly as the kernels do. Products of f16 values are exact in f32, so only the
 * summation order differs and the stated 1e-4 relative tolerance holds as for f32.
 * The unpacking schedules (GEMV, FMA tiles) run on any device, SwiftShader included; the
 * tensor-core schedule needs shader-f16 and subgroup-matrix (the H100/H200 with `--gpu-flags fast`).
 */
import { describe, expect, it } from 'vitest';
import { BASELINE_CAPS } from '../../src/target.ts';
import { matmulKernel, tensorTiling, tensorUnsupported } from '../../codegen/kernels/matmul.ts';
import {
  TENSOR_SHAPES,
  TENSOR_STAGES,
  tensorCommon,
  tensorLaunch,
  tensorTilingFor,
} from '../../codegen/kernels/matmul/subgroup-matrix.ts';
import type { MatmulAttrs, StepShape } from '../../src/graph/ops.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { packF16 } from '../../formats/safetensors.ts';
import { roundF16 } from '../../src/ops/math.ts';
import {
  check,
  LAYER,
  matrixCaps,
  mm,
  PATHS,
  RMS,
  ropeCase,
  SHAPES,
  TENSOR_CAPS,
} from '../helpers/matmul.ts';

const W16 = { wType: 'f16', xType: 'f32' } as const;
const F16 = { wType: 'f16', xType: 'f16' } as const;

const VARIANTS: Array<[string, Partial<MatmulAttrs>]> = [
  ['f16 weights', W16],
  ['f16 weights, f16 x', F16],
  ['f16: bias + gelu', { ...F16, bias: true, act: 'gelu' }],
  [
    'f16 weights: rms + gated silu + bias + residual',
    { ...W16, prologue: RMS, gated: true, act: 'silu', bias: true, residual: true },
  ],
  [
    'f16: layer norm + gated + scale',
    { ...F16, prologue: LAYER, gated: true, act: 'silu', scale: 0.5 },
  ],
  ['f16: rows L + strided', { ...F16, rows: 'L', outStride: 300, outOffset: 7 }],
];

describe('f16 matmuls on the unpacking schedules (any device)', () => {
  for (const [path, maxT, steps] of PATHS) {
    describe(path, () => {
      for (const [vi, [label, over]] of VARIANTS.entries()) {
        it(label, async () => {
          const run = { caps: await matrixCaps(), maxT, steps };
          for (const [si, [N, K]] of SHAPES.entries()) {
            await check(mm(N, K, over), run, 200_000 + 1000 * vi + 10 * si);
          }
        });
      }
      it('f16: rms + ropeKv', async () => {
        const run = { caps: await matrixCaps(), maxT, steps };
        await check(ropeCase(4, 2, 8, 4, 67, { ...F16, bias: true, prologue: RMS }), run, 230_000);
        await check(ropeCase(3, 1, 6, 6, 129, W16), run, 231_000);
      });
    });
  }

  it('rounds x to the nearest f16, ties to even, subnormals and overflow included', async () => {
    // w = identity, so out[r][n] = round_x(x[r][n]) exactly (the other products are 0 · finite).
    const edges = [
      1 + 2 ** -11, // a tie: stays at 1 (even)
      1 + 3 * 2 ** -11, // a tie: up to 1 + 2^-9 (even)
      1 + 2 ** -11 + 2 ** -20, // just above a tie: up
      -(2048 + 1), // a tie where the f16 step is 2: stays at 2048
      2049.5, // above the tie: 2050
      2 ** -14 - 2 ** -25, // largest subnormal range: to 2^-14 after rounding
      3 * 2 ** -25, // a subnormal tie: 2 · 2^-24 (even)
      2 ** -26, // under half the smallest subnormal: 0
      65519, // rounds down to 65504, the largest f16
      0.1,
      -0.3333,
      12345.678,
    ];
    const K = edges.length;
    const w = new Float32Array(K * K);
    for (let n = 0; n < K; n++) w[n * K + n] = 1;
    for (const maxT of [1, 3]) {
      const a = mm(K, K, F16);
      const x = new Float32Array(maxT * K);
      for (let r = 0; r < maxT; r++) x.set(edges, r * K);
      const launches = matmulKernel(a, { caps: await matrixCaps(), maxT }).launches;
      const { out } = await runLaunches(launches, {
        inputs: { x, w: packF16(w) },
        outputs: { out: maxT * K },
        step: { T: maxT, pos: 0, L: maxT },
      });
      expect(Array.from(out)).toEqual(Array.from(x, (v) => roundF16(v)));
    }
    // Beyond 65504 an f16 is infinite: alone in its row, so no 0 · ∞ joins the sum.
    const a = mm(1, 4, F16);
    const { out } = await runLaunches(
      matmulKernel(a, { caps: await matrixCaps(), maxT: 1 }).launches,
      {
        inputs: {
          x: new Float32Array([-70000, 0, 0, 0]),
          w: packF16(new Float32Array([1, 0, 0, 0])),
        },
        outputs: { out: 1 },
        step: { T: 1, pos: 0, L: 1 },
      },
    );
    expect(out[0]).toBe(-Infinity);
  });

  it('refuses f16 x with f32 weights', () => {
    expect(() =>
      matmulKernel(mm(8, 8, { xType: 'f16' }), { caps: BASELINE_CAPS, maxT: 4 }),
    ).toThrow(/xType 'f16' needs wType 'f16'/);
  });

  it('counts the f16 weight at two bytes against the binding limit', () => {
    const caps = { ...BASELINE_CAPS, maxStorageBindingBytes: 2 * 64 * 64 };
    expect(() => matmulKernel(mm(64, 64, W16), { caps, maxT: 1 })).not.toThrow();
    expect(() => matmulKernel(mm(64, 64), { caps, maxT: 1 })).toThrow(
      /exceeds maxStorageBufferBindingSize/,
    );
  });
});

describe('tensor-core schedule choice', () => {
  it('takes f16 × f16 prefill matmuls with K % 8 === 0 where the device has subgroup matrices', () => {
    const a = mm(4096, 4096, F16);
    const t = tensorTiling(a, TENSOR_CAPS, 4096);
    expect(t).not.toBeNull();
    expect(t!.workgroupBytes).toBeLessThanOrEqual(49152);
    const k = matmulKernel(a, { caps: TENSOR_CAPS, maxT: 4096 }).launches[0].kernel;
    expect(k.name).toMatch(/^matmul_mma/);
    expect(k.code).toContain('enable chromium_experimental_subgroup_matrix;');
    expect(k.workgroupSize[0] % 32).toBe(0);
    // Decode stays on the GEMV; f16 weights with f32 x stay on the FMA tiles.
    expect(matmulKernel(a, { caps: TENSOR_CAPS, maxT: 1 }).launches[0].kernel.name).toMatch(
      /^matmul_gemv/,
    );
    expect(
      matmulKernel(mm(4096, 4096, W16), { caps: TENSOR_CAPS, maxT: 64 }).launches[0].kernel.name,
    ).toMatch(/^matmul_t/);
  });

  it('follows the measured tile rule: 4 subgroups of 4×4 with 256+ workgroups, else 8 of 4×2', () => {
    const pick = (N: number, K: number, maxT: number, over: Partial<MatmulAttrs> = {}) => {
      const t = tensorTiling(mm(N, K, { ...F16, ...over }), TENSOR_CAPS, maxT)!;
      return [t.SGR, t.SGC, t.FM, t.FN, t.BK];
    };
    expect(pick(4096, 4096, 4096)).toEqual([2, 2, 4, 4, 32]);
    expect(pick(1024, 1024, 1024)).toEqual([2, 4, 4, 2, 64]);
    // Gated: the up-projection's tile leaves no room for 64-deep staging.
    expect(pick(8192, 2048, 512, { gated: true, act: 'silu' })).toEqual([2, 4, 4, 2, 32]);
    // A 64-token prompt: no tile taller than 64 rows.
    expect(pick(2048, 2048, 64)[0] * pick(2048, 2048, 64)[2] * 16).toBeLessThanOrEqual(64);
    expect(tensorTiling(mm(2048, 2048, F16), TENSOR_CAPS, 7)).toBeNull();
  });

  it('says why a matmul stays off the tensor cores', () => {
    expect(tensorUnsupported(mm(64, 64, F16), BASELINE_CAPS)).toMatch(/no shader-f16/);
    expect(tensorUnsupported(mm(64, 60, F16), TENSOR_CAPS)).toMatch(
      /K = 60 is not a multiple of 8/,
    );
    expect(tensorUnsupported(mm(64, 64, W16), TENSOR_CAPS)).toMatch(/not an f16 × f16/);
    const f16Only = {
      ...TENSOR_CAPS,
      subgroupMatrixConfigs: [TENSOR_CAPS.subgroupMatrixConfigs[1]],
    };
    expect(tensorUnsupported(mm(64, 64, F16), f16Only)).toMatch(/no f16 → f32/);
    // Without a tensor schedule an f16 × f16 matmul still runs, on the FMA tiles.
    expect(
      matmulKernel(mm(64, 64, F16), { caps: BASELINE_CAPS, maxT: 37 }).launches[0].kernel.name,
    ).toMatch(/^matmul_t.*_f16_/);
  });

  it('keeps every tile shape inside the workgroup-memory limit, gated and normed included', () => {
    const a = mm(4096, 4096, { ...F16, gated: true, act: 'silu', prologue: LAYER });
    for (const s of TENSOR_SHAPES) {
      const t = tensorTilingFor(a, TENSOR_CAPS, s);
      if (t) expect(t.workgroupBytes).toBeLessThanOrEqual(49152);
    }
  });
});

const devCaps = (await testGpu()).caps;
const unsupported = tensorUnsupported(mm(64, 64, F16), devCaps);
const TSHAPES: ReadonlyArray<[number, number]> = [
  [67, 136],
  [129, 264],
  [250, 8],
  [33, 520],
];
const TSTEPS: StepShape[] = [
  { T: 37, pos: 0, L: 3 },
  { T: 20, pos: 4, L: 1 },
  { T: 2, pos: 9, L: 1 },
];

describe.skipIf(unsupported !== null)(
  unsupported === null
    ? 'tensor-core matmul on this device'
    : `tensor-core matmul (not run on this device: ${unsupported})`,
  () => {
    const run = { caps: devCaps, maxT: 37, steps: TSTEPS };
    for (const [vi, [label, over]] of VARIANTS.entries()) {
      if (over.xType !== 'f16') continue;
      it(label, async () => {
        for (const [si, [N, K]] of TSHAPES.entries()) {
          const a = mm(N, K, over);
          expect(matmulKernel(a, { caps: devCaps, maxT: 37 }).launches[0].kernel.name).toMatch(
            /^matmul_mma/,
          );
          await check(a, run, 300_000 + 1000 * vi + 10 * si);
        }
      });
    }
    it('f16: splits with rms + bias', async () => {
      for (const [si, [N, K]] of TSHAPES.entries()) {
        const splits = [Math.floor(N / 2), N - Math.floor(N / 2)];
        await check(mm(N, K, { ...F16, splits, prologue: RMS, bias: true }), run, 320_000 + si);
      }
    });
    it('f16: rms + bias + ropeKv', async () => {
      await check(ropeCase(4, 2, 8, 4, 72, { ...F16, bias: true, prologue: RMS }), run, 330_000);
      await check(ropeCase(8, 2, 16, 16, 256, F16), run, 331_000);
    });
    it('every tile shape and depth', async () => {
      const steps: StepShape[] = [
        { T: 300, pos: 0, L: 1 },
        { T: 7, pos: 0, L: 1 },
      ];
      const cases = [
        mm(200, 264, { ...F16, bias: true, residual: true }),
        mm(136, 72, { ...F16, prologue: RMS, gated: true, act: 'silu' }),
      ];
      let ran = 0;
      let doubled = 0;
      for (const [ci, a] of cases.entries()) {
        for (const [si, s] of TENSOR_SHAPES.entries()) {
          for (const [BK, stages, vs] of [32, 64].flatMap((BK) =>
            TENSOR_STAGES.flatMap((st) =>
              (devCaps.bufferView ? [false, true] : [false]).map((v) => [BK, st, v] as const),
            ),
          )) {
            const t = tensorTilingFor(a, devCaps, s, BK, stages, vs);
            if (!t) continue;
            const launch = tensorLaunch(a, tensorCommon(a, t), devCaps, 300, t);
            await check(a, { caps: devCaps, maxT: 300, steps }, 340_000 + 100 * ci + 10 * si + BK, [
              launch,
            ]);
            ran++;
            if (t.stages > 1) doubled++;
          }
        }
      }
      expect(ran).toBeGreaterThanOrEqual(8);
      expect(doubled).toBeGreaterThanOrEqual(4);
    });
  },
);
