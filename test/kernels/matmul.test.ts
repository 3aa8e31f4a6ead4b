import { describe, expect, it } from 'vitest';
import { BASELINE_CAPS, type DeviceCaps } from '../../codegen/kernel-ir.ts';
import { matmulKernel, matmulStorageBindings, matmulTiling } from '../../codegen/kernels/matmul.ts';
import type { MatmulAttrs, StepShape } from '../../src/graph/ops.ts';
import { matmul } from '../../src/ops/matmul.ts';
import type { Arrays } from '../../src/ops/types.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

function mm(N: number, K: number, over: Partial<MatmulAttrs> = {}): MatmulAttrs {
  return {
    op: 'matmul',
    N,
    K,
    rows: 'T',
    prologue: null,
    bias: false,
    gated: false,
    act: null,
    scale: 1,
    residual: false,
    outStride: N,
    outOffset: 0,
    ropeKv: null,
    ...over,
  };
}

const RMS = { kind: 'rms', eps: 1e-6, unitOffset: false, bias: false } as const;
const RMS_GEMMA = { kind: 'rms', eps: 1e-6, unitOffset: true, bias: false } as const;
const LAYER = { kind: 'layer', eps: 1e-5, unitOffset: false, bias: true } as const;

/** Odd sizes that are multiples of no tile, and one with K % 4 === 0 for the vec4 path. */
const SHAPES: ReadonlyArray<[number, number]> = [
  [1, 3],
  [67, 129],
  [129, 250],
  [250, 1],
  [33, 260],
];

const PREFILL_MAXT = 37;
const PREFILL_STEPS: StepShape[] = [
  { T: 37, pos: 0, L: 3 },
  { T: 20, pos: 4, L: 1 },
  { T: 1, pos: 9, L: 1 },
];
const DECODE_STEPS: StepShape[] = [{ T: 1, pos: 6, L: 1 }];

function cacheCapacity(maxT: number): number {
  return 9 + maxT + 2;
}

/** Random inputs for one matmul, sized for maxT rows (like the runtime's buffers). */
function makeInputs(a: MatmulAttrs, maxT: number, seed: number): Arrays {
  const wRows = a.gated ? 2 * a.N : a.N;
  const inputs: Arrays = {
    x: randn(maxT * a.K, seed + 1, 2),
    w: randn(wRows * a.K, seed + 2, 1 / Math.sqrt(a.K)),
  };
  if (a.bias) inputs.bias = randn(wRows, seed + 3, 0.5);
  if (a.residual) inputs.residual = randn(maxT * a.N, seed + 4);
  if (a.prologue) {
    const w = randn(a.K, seed + 5, 0.3);
    if (!a.prologue.unitOffset) for (let i = 0; i < w.length; i++) w[i] += 1;
    inputs.normW = w;
    if (a.prologue.kind === 'layer' && a.prologue.bias) inputs.normB = randn(a.K, seed + 6, 0.2);
  }
  const rope = a.ropeKv;
  const outStride = rope ? rope.qCols : a.outStride;
  // Existing contents: anything the kernel must not touch has to survive unchanged.
  inputs.out = randn(maxT * outStride, seed + 7);
  if (rope) {
    const cap = cacheCapacity(maxT);
    const half = rope.rotaryDim / 2;
    const ang = randn(cap * half, seed + 8, Math.PI);
    inputs.cos = ang.map(Math.cos);
    inputs.sin = ang.map(Math.sin);
    inputs.kcache = randn(cap * rope.kvCols, seed + 9);
    inputs.vcache = randn(cap * rope.kvCols, seed + 10);
  }
  return inputs;
}

function copyArrays(src: Arrays, fillOutputs?: number): Arrays {
  const out: Arrays = {};
  for (const [k, v] of Object.entries(src)) {
    const c = v.slice();
    if (fillOutputs !== undefined && (k === 'out' || k === 'kcache' || k === 'vcache'))
      c.fill(fillOutputs);
    out[k] = c;
  }
  return out;
}

interface Run {
  caps: DeviceCaps;
  maxT: number;
  steps: StepShape[];
}

/**
 * Caps for the variant × shape matrix: the device's, but at most 64 invocations and 4 KiB of
 * workgroup memory, so tiles are 32×32×16 (×8 when gated or normed). SwiftShader's pipeline
 * compile time grows with workgroup memory (the zero-initialisation WGSL requires costs
 * ~90 ms per KiB) and the matrix builds a hundred pipelines; the device's own tile choice and
 * the baseline limits are covered by their own tests below.
 */
async function matrixCaps(): Promise<DeviceCaps> {
  const dev = (await testGpu()).caps;
  return {
    ...dev,
    maxInvocationsPerWorkgroup: Math.min(64, dev.maxInvocationsPerWorkgroup),
    maxWorkgroupStorageBytes: Math.min(4096, dev.maxWorkgroupStorageBytes),
  };
}

/**
 * Run the kernel and the reference on the same inputs and compare every output:
 * values the reference writes to within 1e-4 relative, everything else bit-exact
 * (rows past T or L, columns outside outOffset..outOffset+N, other cache rows).
 */
async function check(a: MatmulAttrs, run: Run, seed: number): Promise<void> {
  const { launches } = matmulKernel(a, { caps: run.caps, maxT: run.maxT });
  for (const [si, step] of run.steps.entries()) {
    const inputs = makeInputs(a, run.maxT, seed + 100 * si);
    const ref = matmul.reference(a, copyArrays(inputs), step);
    // Which elements the op writes: the reference run over NaN-filled outputs leaves the rest NaN.
    const mask = matmul.reference(a, copyArrays(inputs, NaN), step);
    const gpu = await runLaunches(launches, { inputs: copyArrays(inputs), step });
    const label = `${launches[0].kernel.name} N=${a.N} K=${a.K} maxT=${run.maxT} T=${step.T} L=${step.L}`;
    for (const name of Object.keys(ref)) {
      const r = ref[name];
      const g = gpu[name];
      const init = inputs[name];
      const m = mask[name];
      const written: number[] = [];
      const want: number[] = [];
      let untouchedBad = 0;
      for (let i = 0; i < r.length; i++) {
        if (Number.isNaN(m[i])) {
          if (g[i] !== init[i]) untouchedBad++;
        } else {
          written.push(g[i]);
          want.push(r[i]);
        }
      }
      expect(written.length, `${label}: ${name} has written elements`).toBeGreaterThan(0);
      expect(untouchedBad, `${label}: ${name} elements that must be left alone`).toBe(0);
      const err = maxRelError(written, want);
      expect(err, `${label}: ${name} max rel error`).toBeLessThanOrEqual(1e-4);
    }
  }
}

const PATHS: Array<[string, number, StepShape[]]> = [
  ['prefill', PREFILL_MAXT, PREFILL_STEPS],
  ['decode', 1, DECODE_STEPS],
];

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

function ropeCase(
  heads: number,
  kvHeads: number,
  headDim: number,
  rotaryDim: number,
  K: number,
  over: Partial<MatmulAttrs> = {},
): MatmulAttrs {
  const ropeKv = { qCols: heads * headDim, kvCols: kvHeads * headDim, headDim, rotaryDim };
  return mm(ropeKv.qCols + 2 * ropeKv.kvCols, K, { ropeKv, outStride: ropeKv.qCols, ...over });
}

describe('matmul kernels against the reference', () => {
  for (const [path, maxT, steps] of PATHS) {
    describe(path, () => {
      for (const [vi, [label, over]] of VARIANTS.entries()) {
        it(label, async () => {
          const run = { caps: await matrixCaps(), maxT, steps };
          for (const [si, [N, K]] of SHAPES.entries()) {
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

  it('picks tiles from the caps and stays correct under each', async () => {
    const a = mm(67, 129, {
      prologue: LAYER,
      gated: true,
      act: 'silu',
      bias: true,
      residual: true,
    });
    const capsList: DeviceCaps[] = [
      BASELINE_CAPS,
      { ...BASELINE_CAPS, maxWorkgroupStorageBytes: 4096 },
    ];
    const names = new Set<string>();
    const steps = (maxT: number): StepShape[] => [
      { T: maxT, pos: 0, L: 1 },
      { T: 2, pos: 0, L: 1 },
    ];
    for (const [i, caps] of capsList.entries()) {
      for (const maxT of [37, 5]) {
        names.add(matmulKernel(a, { caps, maxT }).launches[0].kernel.name.split('_')[1]);
        await check(a, { caps, maxT, steps: steps(maxT) }, 90_000 + 10 * i + maxT);
      }
      await check({ ...a, K: 128 }, { caps, maxT: 1, steps: DECODE_STEPS }, 91_000 + i);
    }
    expect(names.size).toBeGreaterThanOrEqual(3);
  });
});

describe('matmul tiling and device limits', () => {
  it('uses 128x128 tiles of 1024 threads on an H100-class device', () => {
    const h100: DeviceCaps = {
      ...BASELINE_CAPS,
      maxInvocationsPerWorkgroup: 1024,
      maxWorkgroupSizeX: 1024,
      maxWorkgroupStorageBytes: 49152,
    };
    const t = matmulTiling(mm(4096, 4096), h100, 512);
    expect([t.BM, t.BN, t.threads]).toEqual([128, 128, 1024]);
    expect(t.workgroupBytes).toBeLessThanOrEqual(49152);
    const name = matmulKernel(mm(4096, 4096), { caps: h100, maxT: 512 }).launches[0].kernel.name;
    expect(name).toMatch(/^matmul_t128x128x\d+_r4x4/);
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
    // Run a fold for real by pretending the device allows only 3 workgroups per dimension.
    const tiny: DeviceCaps = { ...(await testGpu()).caps, maxWorkgroupsPerDimension: 3 };
    const a = mm(250, 67, { bias: true, rows: 'L' });
    const decode = matmulKernel(a, { caps: tiny, maxT: 1 }).launches[0];
    expect(decode.grid[2]).toBeGreaterThan(1);
    await check(a, { caps: tiny, maxT: 1, steps: DECODE_STEPS }, 95_000);
    const pre = matmulKernel(mm(250, 67), { caps: tiny, maxT: 2 }).launches[0];
    expect(pre.grid[2]).toBeGreaterThan(1);
    await check(mm(250, 67), { caps: tiny, maxT: 2, steps: [{ T: 2, pos: 0, L: 1 }] }, 96_000);
  });

  it('counts storage bindings and refuses fusions over the device limit', () => {
    const ropeKv = { qCols: 32, kvCols: 16, headDim: 8, rotaryDim: 8 };
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
    const ropeKv = { qCols: 32, kvCols: 16, headDim: 8, rotaryDim: 8 };
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
    const ropeKv = { qCols: 16, kvCols: 8, headDim: 8, rotaryDim: 8 };
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
    const ropeKv = { qCols: 4, kvCols: 4, headDim: 4, rotaryDim: 2 };
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
