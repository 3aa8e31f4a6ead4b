import { describe, expect, it } from 'vitest';
import { BASELINE_CAPS, type DeviceCaps } from '../../src/target.ts';
import { GEMV_MAX_ROWS, matmulKernel, matmulTiling } from '../../codegen/kernels/matmul.ts';
import { matmulStorageBindings } from '../../src/ops/matmul.ts';
import { common } from '../../codegen/kernels/matmul/common.ts';
import { TILE_SHAPES, tiledLaunch, tilingFor } from '../../codegen/kernels/matmul/tiled.ts';
import { gemvLaunch } from '../../codegen/kernels/matmul/gemv.ts';
import type { MatmulAttrs, StepShape } from '../../src/graph/ops.ts';
import { matmul } from '../../src/ops/matmul.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';
import {
  check,
  DECODE_STEPS,
  LAYER,
  matrixCaps,
  mm,
  PATHS,
  RMS,
  RMS_GEMMA,
  ropeCase,
  ropeKv16,
  SHAPES,
} from '../helpers/matmul.ts';

const VARIANTS: Array<[string, Partial<MatmulAttrs>]> = [
  ['plain', {}],
  ['bias', { bias: true }],
  ['prologue rms', { prologue: RMS }],
  ['prologue rms (1 + w)', { prologue: RMS_GEMMA, bias: true }],
  ['prologue layer norm with bias', { prologue: LAYER }],
  ['gated silu', { gated: true, act: 'silu' }],
  ['gated gelu + bias', { gated: true, act: 'gelu', bias: true }],
  ['act gelu_tanh', { act: 'gelu_tanh', bias: true }],
  ['act relu2', { act: 'relu2' }],
  ['residual', { residual: true }],
  ['rows L', { rows: 'L', residual: true }],
  // Granite: residual_multiplier folded into the residual epilogue, 1/logits_scaling on the head.
  ['scale + residual', { scale: 0.22, residual: true, bias: true }],
  ['rows L + scale', { rows: 'L', scale: 0.5 }],
  ['gated silu + scale + residual', { gated: true, act: 'silu', scale: 1.5, residual: true }],
  [
    'rms + gated + bias + residual',
    { prologue: RMS, gated: true, act: 'silu', bias: true, residual: true },
  ],
];

describe('matmul kernels against the reference', () => {
  for (const [path, maxT, steps] of PATHS) {
    describe(path, () => {
      for (const [vi, [label, over]] of VARIANTS.entries()) {
        it(label, async () => {
          const run = { caps: await matrixCaps(), maxT, steps };
          // Few rows go through the decode GEMV's code with a row loop: its edge shapes (K = 1,
          // K odd, vec4 K) are enough there, and keep the suite inside CI's time.
          const shapes = path === 'few rows' ? SHAPES.filter(([, K]) => K !== 250) : SHAPES;
          for (const [si, [N, K]] of shapes.entries()) {
            await check(mm(N, K, over), run, 1000 * vi + 10 * si);
          }
        });
      }
      it('outStride / outOffset (split LM head)', async () => {
        const run = { caps: await matrixCaps(), maxT, steps };
        for (const [si, [N, K]] of SHAPES.entries()) {
          const a = mm(N, K, {
            outStride: N + 5 + si,
            outOffset: 2 + si,
            act: si % 2 ? 'relu' : null,
            rows: si % 2 ? 'L' : 'T',
          });
          await check(a, run, 50_000 + 10 * si);
        }
      });
      it('splits: several matmuls of one x, each column range to its own output', async () => {
        const run = { caps: await matrixCaps(), maxT, steps };
        for (const [si, [N, K]] of SHAPES.entries()) {
          if (N < 3) continue;
          const third = Math.floor(N / 3);
          const splits = si % 2 ? [third, N - third] : [third, third, N - 2 * third];
          const over = si % 2 ? { prologue: RMS, bias: true } : { act: 'silu' as const };
          await check(mm(N, K, { splits, ...over }), run, 60_000 + 10 * si);
        }
      });
      it('ropeKv: QKV + RoPE + KV-append with GQA sizes and partial rotary', async () => {
        const run = { caps: await matrixCaps(), maxT, steps };
        const cases = [
          ropeCase(4, 2, 8, 4, 67, { bias: true }),
          ropeCase(3, 1, 6, 6, 129),
          ropeCase(5, 1, 10, 4, 40, { bias: true }),
          ropeCase(2, 2, 4, 2, 3, { outStride: 2 * 4 + 2 * 2 * 4 }), // outStride N is accepted too
          ropeCase(8, 2, 16, 16, 250, { bias: true }),
          // The widest fusion: rms prologue + bias + rope (9 storage buffers).
          ropeCase(3, 1, 8, 6, 67, { bias: true, prologue: RMS }),
        ];
        for (const [si, a] of cases.entries()) await check(a, run, 70_000 + 10 * si);
      });
      it('ropeKv without RoPE (rotaryDim 0): QKV + KV-append, no tables bound', async () => {
        const run = { caps: await matrixCaps(), maxT, steps };
        const cases = [
          ropeCase(3, 1, 10, 0, 45, { bias: true, prologue: LAYER }),
          ropeCase(4, 2, 8, 0, 67),
          ropeKv16(ropeCase(5, 1, 6, 0, 40, { bias: true })),
        ];
        for (const [si, a] of cases.entries()) await check(a, run, 73_000 + 10 * si);
      });
      it('ropeKv into f16 caches: each k/v pair one word, rounded as the reference', async () => {
        const run = { caps: await matrixCaps(), maxT, steps };
        const cases = [
          ropeCase(4, 2, 8, 4, 67, { bias: true }),
          ropeCase(3, 1, 6, 6, 129),
          ropeCase(5, 1, 10, 4, 40, { bias: true }),
          ropeCase(8, 2, 16, 16, 250, { bias: true }),
          ropeCase(3, 1, 8, 6, 67, { bias: true, prologue: RMS }),
        ].map(ropeKv16);
        for (const [si, a] of cases.entries()) await check(a, run, 75_000 + 10 * si);
      });
      it('ropeKv into ring caches (streaming attention): k/v of position p at its ring row', async () => {
        // Steps whose positions cross the ring's wrap; the tables cover 9 + maxT + 2 positions.
        const ringSteps =
          maxT > 1
            ? [
                // The last T positions the tables hold (9 + maxT + 2), past the ring's wrap.
                { T: Math.min(20, maxT), pos: 11 + maxT - Math.min(20, maxT), L: 1 },
                { T: maxT, pos: 0, L: 1 },
              ]
            : [{ T: 1, pos: 10, L: 1 }];
        const run = { caps: await matrixCaps(), maxT, steps: ringSteps };
        const ring = (a: MatmulAttrs, sink: number): MatmulAttrs => ({
          ...a,
          ropeKv: { ...a.ropeKv!, ring: { sink, rows: sink + maxT + 4 } },
        });
        const cases = [
          ring(ropeCase(4, 2, 8, 4, 67, { bias: true }), 3),
          ring(ropeKv16(ropeCase(3, 1, 6, 6, 129)), 0),
        ];
        for (const [si, a] of cases.entries()) await check(a, run, 77_000 + 10 * si);
      });
    });
  }
});

describe('matmul on the device tile choice and on the baseline limits', () => {
  const combos: Array<[string, MatmulAttrs]> = [
    ['plain vec4', mm(33, 260)],
    [
      'rows L + strided + gelu + bias',
      mm(67, 129, { rows: 'L', outStride: 75, outOffset: 5, act: 'gelu', bias: true }),
    ],
    ['rms + ropeKv + bias', ropeCase(3, 1, 8, 6, 67, { bias: true, prologue: RMS })],
    [
      'layer norm + gated gelu_tanh + bias + residual',
      mm(67, 129, { prologue: LAYER, gated: true, act: 'gelu_tanh', bias: true, residual: true }),
    ],
  ];
  for (const [ci, [label, a]] of combos.entries()) {
    it(label, async () => {
      const dev = (await testGpu()).caps;
      for (const [pi, [, maxT, steps]] of PATHS.entries()) {
        await check(a, { caps: dev, maxT, steps }, 20_000 + 100 * ci + pi);
      }
    });
  }

  it('is right under every tile shape that fits the device', async () => {
    const caps = (await testGpu()).caps;
    const cases = [
      mm(67, 260, { bias: true, residual: true }),
      mm(67, 129, { prologue: LAYER, gated: true, act: 'silu', bias: true, residual: true }),
      ropeCase(3, 1, 8, 6, 67, { bias: true, prologue: RMS, wType: 'f16' }),
      ropeKv16(ropeCase(4, 2, 8, 8, 64, { bias: true, prologue: RMS })),
    ];
    const steps: StepShape[] = [
      { T: 37, pos: 0, L: 1 },
      { T: 5, pos: 2, L: 1 },
    ];
    // Each tile shape under two of the cases, alternating (the full product took 32 s of CI's
    // 30 minutes); every shape that fits the device runs under at least one.
    let ran = 0;
    const fits = new Set<number>();
    const seen = new Set<number>();
    for (const [ci, a] of cases.entries()) {
      for (const [si, shape] of TILE_SHAPES.entries()) {
        const t = tilingFor(a, caps, shape);
        if (!t) continue;
        fits.add(si);
        if ((si + ci) % 2 !== 0 && !(ci === cases.length - 1 && !seen.has(si))) continue;
        const launch = tiledLaunch(a, common(a), caps, 37, t);
        await check(a, { caps, maxT: 37, steps }, 90_000 + 100 * ci + si, [launch]);
        seen.add(si);
        ran++;
      }
    }
    expect(ran).toBeGreaterThanOrEqual(6);
    expect([...seen].sort()).toEqual([...fits].sort());
  });
});

describe('the decode GEMV under every shape the sweep tries', () => {
  it('is right for 2, 4 and 8 rows per thread group and 32 to 256 threads per row', async () => {
    const caps = (await testGpu()).caps;
    const cases = [
      mm(67, 260, { bias: true, residual: true, wType: 'f16' }),
      mm(67, 129, { splits: [1, 60, 6], prologue: RMS }),
      mm(67, 129, { prologue: LAYER, gated: true, act: 'silu', bias: true, residual: true }),
      // RoPE pairs must not straddle two thread groups, whatever C is.
      ropeCase(3, 1, 8, 6, 67, { bias: true, prologue: RMS }),
    ];
    // Every case under every thread count, and each (threads, rows) pair under some case, rows
    // rotating with the case: 12 checks where the full product took 36 (30 s of CI's 30 min).
    let ran = 0;
    const seen = new Set<string>();
    for (const [ci, a] of cases.entries()) {
      for (const [ti, TPC] of [32, 64, 256].entries()) {
        const C = [2, 4, 8][(ti + ci) % 3];
        const launch = gemvLaunch(a, caps, { TPC, C, G: 1 });
        await check(a, { caps, maxT: 1, steps: DECODE_STEPS }, 96_000 + 100 * ci + TPC + C, [
          launch,
        ]);
        seen.add(`${TPC}x${C}`);
        ran++;
      }
    }
    expect(ran).toBe(12);
    expect(seen.size).toBe(9);
    expect(() => gemvLaunch(mm(8, 8), caps, { TPC: 32, C: 3, G: 1 })).toThrow(/C = 3 must be even/);
  });
});

describe('matmul tiling and device limits', () => {
  const h100: DeviceCaps = {
    ...BASELINE_CAPS,
    maxInvocationsPerWorkgroup: 1024,
    maxWorkgroupSizeX: 1024,
    maxWorkgroupStorageBytes: 49152,
  };

  it('takes the preferred tile while it still fills a large GPU, and smaller ones for small problems', () => {
    const big = matmulTiling(mm(4096, 4096), h100, 4096);
    expect([big.BM, big.BN, big.RM, big.RN, big.threads]).toEqual([128, 64, 8, 4, 256]);
    expect(big.workgroupBytes).toBeLessThanOrEqual(49152);
    const name = matmulKernel(mm(4096, 4096), { caps: h100, maxT: 4096 }).launches[0].kernel.name;
    expect(name).toMatch(/^matmul_t128x64x16_r8x4/);
    // 1024 x 1024: 128 x 64 tiles would give 128 workgroups; a smaller tile gives at least 192.
    const mid = matmulTiling(mm(1024, 1024), h100, 1024);
    expect([mid.BM, mid.BN]).toEqual([64, 64]);
    // A 16-token prefill never takes tiles taller than 16 rows.
    expect(matmulTiling(mm(4096, 4096), h100, 16).BM).toBe(16);
    // Gated: two accumulator sets, so no 8 x 8 blocks.
    const g = matmulTiling(mm(4096, 4096, { gated: true, act: 'silu' }), h100, 4096);
    expect(g.RM * g.RN).toBeLessThanOrEqual(32);
    // The baseline's 256 invocations and 16 KiB still give a tile.
    expect(matmulTiling(mm(4096, 4096), BASELINE_CAPS, 4096).threads).toBeLessThanOrEqual(256);
  });

  it('refuses splits that do not add up or that meet a fusion they cannot take', () => {
    const gen = (over: Partial<MatmulAttrs>) => () =>
      matmulKernel(mm(12, 8, over), { caps: BASELINE_CAPS, maxT: 4 });
    expect(gen({ splits: [4, 4] })).toThrow(/splits \[4,4\] must sum to N/);
    expect(gen({ splits: [12] })).toThrow(/two or more positive column counts/);
    expect(gen({ splits: [6, 6], residual: true })).toThrow(/cannot be combined/);
    expect(matmulStorageBindings(mm(12, 8, { splits: [4, 4, 4], bias: true }))).toBe(6);
  });

  it('serves a step of up to 16 rows with the GEMV, 8 rows a workgroup, the rest with tiles', async () => {
    const name = (a: MatmulAttrs, maxT: number) =>
      matmulKernel(a, { caps: BASELINE_CAPS, maxT }).launches[0].kernel.name;
    expect(name(mm(2048, 2048), 4)).toMatch(/^matmul_gemv\d+x\d+r4_/);
    expect(name(mm(2048, 2048), GEMV_MAX_ROWS)).toMatch(/^matmul_gemv\d+x\d+r8_/);
    expect(name(mm(2048, 2048), GEMV_MAX_ROWS + 1)).toMatch(/^matmul_t/);
    // An LM head too: each weight load serves the step's rows, so it is read once for up to 8.
    expect(name(mm(8192, 2048), 4)).toMatch(/^matmul_gemv\d+x\d+r4_/);
    expect(name(mm(8192, 2048), 1)).toMatch(/^matmul_gemv\d+x\d+_/);
    expect(() => gemvLaunch(mm(64, 64), BASELINE_CAPS, undefined, 9)).toThrow(
      /9 rows a workgroup \(allowed 1\.\.8\)/,
    );
    // Several rows through the GEMV, each with its own norm and residual, against the reference.
    const a = mm(67, 130, { prologue: RMS, bias: true, residual: true });
    const steps: StepShape[] = [
      { T: 5, pos: 0, L: 5 },
      { T: 3, pos: 5, L: 3 },
    ];
    const run = { caps: BASELINE_CAPS, maxT: 5, steps };
    expect(matmulKernel(a, run).launches[0].kernel.name).toMatch(/^matmul_gemv/);
    await check(a, run, 97_500);
  });

  it('folds large column counts into 2-D grids', async () => {
    // A vocab-sized head: 128256 columns must never put more than 65535 workgroups on one axis.
    const big = mm(128256, 256);
    for (const maxT of [1, 37]) {
      for (const caps of [BASELINE_CAPS, { ...BASELINE_CAPS, maxInvocationsPerWorkgroup: 16 }]) {
        const { grid } = matmulKernel(big, { caps, maxT }).launches[0];
        expect(typeof grid[0] === 'number' && grid[0] <= 65535).toBe(true);
        expect(typeof grid[2] === 'number' && grid[2] <= 65535).toBe(true);
        expect(grid[1]).toEqual(maxT === 1 ? { sym: 'T' } : expect.objectContaining({ sym: 'T' }));
      }
    }
    // Run a fold for real by pretending the device allows only 3 workgroups per dimension (and
    // has a 32-lane subgroup: SwiftShader's 4 would put 64 columns in a block, gemv.ts warpFloor).
    const tiny: DeviceCaps = {
      ...(await testGpu()).caps,
      maxWorkgroupsPerDimension: 3,
      subgroupMaxSize: 32,
    };
    // 120 columns: 8 GEMV blocks of 16, more than 3 per axis and within 3 × 3.
    const a = mm(120, 67, { bias: true, rows: 'L' });
    const decode = matmulKernel(a, { caps: tiny, maxT: 1 }).launches[0];
    expect(decode.grid[2]).toBeGreaterThan(1);
    await check(a, { caps: tiny, maxT: 1, steps: DECODE_STEPS }, 95_000);
    // The tiles' fold (a step of up to GEMV_MAX_ROWS rows would take the GEMV).
    const pre = matmulKernel(mm(250, 67), { caps: tiny, maxT: 37 }).launches[0];
    expect(pre.grid[2]).toBeGreaterThan(1);
    await check(mm(250, 67), { caps: tiny, maxT: 37, steps: [{ T: 2, pos: 0, L: 1 }] }, 96_000);
  });

  it('counts storage bindings and refuses fusions over the device limit', () => {
    const ropeKv = { qCols: 32, kvCols: 16, headDim: 8, rotaryDim: 8, capacity: 16 };
    const wide = mm(64, 64, { ropeKv, prologue: RMS, bias: true });
    expect(matmulStorageBindings(wide)).toBe(9);
    expect(matmulStorageBindings(mm(8, 8))).toBe(3);
    expect(matmulStorageBindings(mm(8, 8, { prologue: LAYER, bias: true, residual: true }))).toBe(
      7,
    );
    expect(() => matmulKernel(wide, { caps: BASELINE_CAPS, maxT: 1 })).toThrow(
      /needs 9 storage buffers.*maxStorageBuffersPerShaderStage = 8/,
    );
    expect(() =>
      matmulKernel(wide, { caps: { ...BASELINE_CAPS, maxStorageBuffersPerStage: 9 }, maxT: 1 }),
    ).not.toThrow();
  });

  it('binds exactly the buffers the attrs need, step first', () => {
    const ropeKv = { qCols: 32, kvCols: 16, headDim: 8, rotaryDim: 8, capacity: 16 };
    const k = matmulKernel(mm(64, 64, { ropeKv, prologue: LAYER, bias: true }), {
      caps: { ...BASELINE_CAPS, maxStorageBuffersPerStage: 10 },
      maxT: 8,
    }).launches[0].kernel;
    expect(k.bindings.map((b) => b.name)).toEqual([
      'step',
      'x',
      'w',
      'bias',
      'normW',
      'normB',
      'cos',
      'sin',
      'out',
      'kcache',
      'vcache',
    ]);
    const plain = matmulKernel(mm(5, 7, { residual: true }), { caps: BASELINE_CAPS, maxT: 1 });
    expect(plain.launches[0].kernel.bindings.map((b) => b.name)).toEqual([
      'step',
      'x',
      'w',
      'residual',
      'out',
    ]);
    expect(plain.scratch).toEqual({});
  });

  it('rejects meaningless combinations with a message', () => {
    const ropeKv = { qCols: 16, kvCols: 8, headDim: 8, rotaryDim: 8, capacity: 16 };
    expect(() =>
      matmulKernel(mm(32, 8, { ropeKv, gated: true }), { caps: BASELINE_CAPS, maxT: 1 }),
    ).toThrow(/ropeKv cannot be combined/);
    expect(() => matmulKernel(mm(30, 8, { ropeKv }), { caps: BASELINE_CAPS, maxT: 1 })).toThrow(
      /qCols \+ 2\*kvCols/,
    );
    expect(() =>
      matmulKernel(mm(8, 8, { outStride: 9, outOffset: 2 }), { caps: BASELINE_CAPS, maxT: 1 }),
    ).toThrow(/exceeds outStride/);
  });
});

describe('matmul reference', () => {
  const step: StepShape = { T: 2, pos: 0, L: 1 };

  it('computes x·wᵀ + bias + residual by hand', () => {
    const x = new Float32Array([1, 2, 3, -1]);
    const w = new Float32Array([1, 0, 0, 1, 1, 1]);
    const a = mm(3, 2, { bias: true, residual: true });
    const bias = new Float32Array([10, 20, 30]);
    const residual = new Float32Array([1, 1, 1, 2, 2, 2]);
    const { out } = matmul.reference(a, { x, w, bias, residual }, step);
    expect(Array.from(out)).toEqual([12, 23, 34, 15, 21, 34]);
    // rows 'L': only the last row of x, written as row 0
    const last = matmul.reference(mm(3, 2, { rows: 'L' }), { x, w }, step).out;
    expect(Array.from(last)).toEqual([3, -1, 2]);
  });

  it('gated equals act(gate half) * up half', () => {
    const N = 5;
    const K = 7;
    const x = randn(2 * K, 1);
    const w = randn(2 * N * K, 2);
    const bias = randn(2 * N, 3);
    const g = matmul.reference(
      mm(N, K, { gated: true, act: 'silu', bias: true }),
      { x, w, bias },
      step,
    ).out;
    const gate = matmul.reference(mm(N, K, { bias: true, act: 'silu' }), { x, w, bias }, step).out;
    const up = matmul.reference(
      mm(N, K, { bias: true }),
      { x, w: w.subarray(N * K), bias: bias.subarray(N) },
      step,
    ).out;
    expect(
      maxRelError(
        g,
        gate.map((v, i) => v * up[i]),
      ),
    ).toBeLessThan(1e-6);
  });

  it('ropeKv rotates interleaved pairs and appends k/v at pos', () => {
    const ropeKv = { qCols: 4, kvCols: 4, headDim: 4, rotaryDim: 2, capacity: 5 };
    // w = identity: the projection passes x through, so only RoPE and the scatter remain.
    const K = 12;
    const w = new Float32Array(12 * K);
    for (let i = 0; i < 12; i++) w[i * K + i] = 1;
    const x = new Float32Array(K).map((_, i) => i + 1);
    const cos = new Float32Array([1, 1, 1, 0]); // position 3: 90 degrees
    const sin = new Float32Array([0, 0, 0, 1]);
    const kcache = new Float32Array(5 * 4);
    const vcache = new Float32Array(5 * 4);
    const r = matmul.reference(
      mm(12, K, { ropeKv }),
      { x, w, cos, sin, kcache, vcache },
      { T: 1, pos: 3, L: 1 },
    );
    expect(Array.from(r.out)).toEqual([-2, 1, 3, 4]);
    expect(Array.from(r.kcache.subarray(12, 16))).toEqual([-6, 5, 7, 8]);
    expect(Array.from(r.vcache.subarray(12, 16))).toEqual([9, 10, 11, 12]);
    expect(r.kcache[0]).toBe(0);
  });

  it('costs 2·rows·K·N flops (doubled when gated) with weights read once', () => {
    const c = matmul.cost(mm(6, 10, { gated: true }), { T: 3, pos: 0, L: 1 });
    expect(c.flops).toBe(2 * 3 * 10 * 12);
    expect(c.bytesRead).toBe(4 * (12 * 10 + 3 * 10));
    expect(c.bytesWritten).toBe(4 * 3 * 6);
    expect(matmul.cost(mm(6, 10, { rows: 'L' }), { T: 3, pos: 0, L: 1 }).flops).toBe(2 * 10 * 6);
  });
});
