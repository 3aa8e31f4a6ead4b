/**
 * The matmul's fused pointwise work (the matmul-prologue and matmul-epilogue fusions): an x map
 * computing x as it loads (RWKV's token mix) and an epilogue expression on each output element,
 * on every schedule against the reference, with shapes that are multiples of no tile; and the
 * decode conv epilogue (conv-epilogue: Mamba's in_proj + conv, LFM2's B·x + conv) on the GEMV.
 */
import { describe, expect, it } from 'vitest';
import type { FusedPointwise, MatmulAttrs, PointwiseInput } from '../../src/graph/ops.ts';
import { matmul, matmulStorageBindings } from '../../src/ops/matmul.ts';
import {
  check,
  DECODE_STEPS,
  matrixCaps,
  mm,
  PATHS,
  RMS,
  SHAPES,
  TENSOR_CAPS,
} from '../helpers/matmul.ts';
import { matmulKernel } from '../../codegen/kernels/matmul.ts';
import { BASELINE_CAPS } from '../../src/target.ts';

const act = (cols: number): PointwiseInput => ({ perToken: true, cols, inner: cols, repeat: 1 });
const param = (cols: number): PointwiseInput => ({ perToken: false, cols, inner: cols, repeat: 1 });

/** x + (prev − x)·μ, RWKV's token mix. */
function tokenMix(K: number): FusedPointwise {
  const x = { in: 'x' };
  return {
    inputs: { x: act(K), p_prev: act(K), p_mu: param(K) },
    expr: {
      bin: 'add',
      a: x,
      b: { bin: 'mul', a: { bin: 'sub', a: { in: 'p_prev' }, b: x }, b: { in: 'p_mu' } },
    },
  };
}

const tanh: FusedPointwise = { inputs: {}, expr: { fn: 'tanh', x: { in: 'y' } } };

/** sigmoid(y)·g + h: a per-token gate over all columns and a per-head (3 columns) parameter. */
function gate(width: number): FusedPointwise {
  const heads = Math.ceil(width / 3);
  return {
    inputs: { e_g: act(width), e_h: { perToken: false, cols: heads, inner: 1, repeat: 3 } },
    expr: {
      bin: 'add',
      a: { bin: 'mul', a: { fn: 'sigmoid', x: { in: 'y' } }, b: { in: 'e_g' } },
      b: { in: 'e_h' },
    },
  };
}

const VARIANTS: Array<[string, (N: number, K: number) => Partial<MatmulAttrs>]> = [
  ['x map (token mix)', (_N, K) => ({ xMap: tokenMix(K) })],
  [
    'x map + gated + bias',
    (_N, K) => ({ xMap: tokenMix(K), gated: true, act: 'silu', bias: true }),
  ],
  ['epilogue tanh', () => ({ epilogue: tanh })],
  [
    'epilogue gate after bias, act and scale, before residual',
    (N) => ({ epilogue: gate(N), bias: true, act: 'relu2', scale: 0.7, residual: true }),
  ],
  [
    'x map + epilogue + gated + residual',
    (N, K) => ({ xMap: tokenMix(K), epilogue: gate(N), gated: true, act: 'gelu', residual: true }),
  ],
  [
    'x map + splits',
    (N, K) => ({ xMap: tokenMix(K), splits: N < 2 ? null : [1, N - 1], bias: true }),
  ],
  [
    'epilogue on a strided output (columns outOffset + c)',
    (N) => ({ epilogue: gate(N + 7), outStride: N + 7, outOffset: 4 }),
  ],
  [
    'f16 weights + x map + epilogue',
    (N, K) => ({ xMap: tokenMix(K), epilogue: gate(N), wType: 'f16' }),
  ],
];

describe('matmul with a fused x map and epilogue against the reference', () => {
  for (const [path, maxT, steps] of PATHS) {
    describe(path, () => {
      for (const [vi, [label, over]] of VARIANTS.entries()) {
        it(label, async () => {
          const run = { caps: await matrixCaps(), maxT, steps };
          for (const [si, [N, K]] of SHAPES.entries()) {
            await check(mm(N, K, over(N, K)), run, 70_000 + 1000 * vi + 10 * si);
          }
        });
      }
    });
  }
});

describe('matmul x map and epilogue attributes', () => {
  it('declares the fused inputs and counts their bindings', () => {
    const a = mm(8, 12, { xMap: tokenMix(12), epilogue: gate(8) });
    expect(Object.keys(matmul.inputs(a)).sort()).toEqual(
      ['e_g', 'e_h', 'p_mu', 'p_prev', 'w', 'x'].sort(),
    );
    expect(matmulStorageBindings(a)).toBe(7);
  });
  it('refuses combinations the kernels do not define', () => {
    const norm = { kind: 'rms', eps: 1e-6, unitOffset: false, bias: false } as const;
    expect(() => matmul.check(mm(8, 12, { xMap: tokenMix(12), prologue: norm }))).toThrow(
      /norm prologue/,
    );
    expect(() => matmul.check(mm(8, 12, { epilogue: tanh, rows: 'L' }))).toThrow(/rows 'T'/);
    expect(() => matmul.check(mm(8, 12, { epilogue: tanh, splits: [4, 4] }))).toThrow(/splits/);
    expect(() => matmul.check(mm(8, 12, { epilogue: gate(7) }))).toThrow(/does not cover/);
    const badName = { ...tanh, inputs: { g: act(8) }, expr: { in: 'g' } };
    expect(() => matmul.check(mm(8, 12, { epilogue: badName }))).toThrow(/e_<name>/);
  });
});

describe('every matmul schedule takes the x map and the epilogue', () => {
  // SwiftShader has no subgroup matrices, so the tensor-core kernel is checked as generated here.
  it('the tensor-core schedule loads x through the map and finishes through the epilogue', () => {
    const a = mm(1024, 1024, {
      wType: 'f16',
      xType: 'f16',
      xMap: tokenMix(1024),
      epilogue: gate(1024),
    });
    const k = matmulKernel(a, { caps: TENSOR_CAPS, maxT: 1024 }).launches[0].kernel;
    expect(k.name).toMatch(/^matmul_mma.*_xmap_epi_/);
    expect(k.code).toContain('load_xu(rowBase + r, k / 4u)');
    expect(k.code).toContain('y = epi(r, 0u + c, y);');
    expect(k.code).not.toMatch(/b_x\[\(/);
    expect(k.bindings.map((b) => b.name)).toEqual(
      expect.arrayContaining(['x', 'p_prev', 'p_mu', 'e_g', 'e_h']),
    );
  });
});

describe('matmul with the decode conv epilogue against the reference', () => {
  // Mamba: columns [0, C) of in_proj (the x split) through the conv and SiLU, z untouched, the
  // norm prologue fused; LFM2: B·x (gated, no activation) through a conv without bias or SiLU;
  // a conv over every column of a plain matmul with bias and residual first. Channels are
  // multiples of no tile; pos 0 reads the (garbage) state as zeros.
  const cases: Array<[string, (N: number) => Partial<MatmulAttrs>]> = [
    [
      'mamba in_proj: split x|z, norm prologue, conv kernel 4 with bias and silu',
      (N) => ({
        splits: [Math.ceil(N / 2), N - Math.ceil(N / 2)],
        prologue: RMS,
        conv: { channels: Math.ceil(N / 2), kernel: 4, bias: true, silu: true },
      }),
    ],
    [
      'lfm2 B·x: gated without activation, conv kernel 3, no bias, no silu',
      (N) => ({ gated: true, conv: { channels: N, kernel: 3, bias: false, silu: false } }),
    ],
    [
      'mamba2 in_proj: a conv over middle columns, three states, bias packed into the weight',
      (N) => {
        const offset = Math.floor(N / 4);
        const channels = N - offset - Math.floor(N / 8);
        const third = Math.floor(channels / 3);
        const states = third > 0 ? [channels - 2 * third, third, third] : [channels];
        return {
          prologue: RMS,
          conv: { channels, kernel: 4, bias: true, silu: true, offset, states, packedBias: true },
        };
      },
    ],
    [
      'plain: bias and residual before a kernel-2 conv over every column',
      (N) => ({
        bias: true,
        residual: true,
        conv: { channels: N, kernel: 2, bias: true, silu: true },
      }),
    ],
  ];
  for (const [label, over] of cases) {
    it(label, async () => {
      const caps = await matrixCaps();
      for (const [si, [N, K]] of [
        [2, 3],
        [67, 129],
        [129, 250],
        [33, 260],
      ].entries()) {
        const steps = [...DECODE_STEPS, { T: 1, pos: 0, L: 1 }];
        await check(mm(N, K, over(N)), { caps, maxT: 1, steps }, 90_000 + 10 * si);
      }
    });
  }

  it('a three-state conv epilogue binds one buffer per state and none for a packed bias', () => {
    const conv = { channels: 9, kernel: 4, bias: true, silu: true, offset: 3, states: [5, 2, 2] };
    const a = mm(14, 8, { prologue: RMS, conv: { ...conv, packedBias: true } });
    // x, w, normW, convW, three states, out: Mamba-2's fused in_proj within WebGPU's 8.
    expect(matmulStorageBindings(a)).toBe(8);
    expect(matmul.inputs(a).convW.shape).toEqual([9 * 5]);
    expect(() => matmul.check(mm(14, 8, { conv: { ...conv, states: [5, 2, 3] } }))).toThrow(
      /conv states/,
    );
    expect(() => matmul.check(mm(14, 8, { conv: { ...conv, offset: 6 } }))).toThrow(
      /conv channels/,
    );
  });

  it('walks a longer step row by row (the state carries), and refuses channels past the first output', async () => {
    const caps = await matrixCaps();
    const steps = [
      { T: 3, pos: 0, L: 1 },
      { T: 4, pos: 5, L: 1 },
    ];
    for (const [label, over] of cases) {
      await check(mm(67, 40, over(67)), { caps, maxT: 4, steps }, 91_000 + label.length);
    }
    const conv = { channels: 5, kernel: 4, bias: true, silu: true };
    expect(() => matmul.check(mm(8, 4, { splits: [4, 4], conv }))).toThrow(/conv channels/);
  });
});

describe('matmul with a grouped, gated RMSNorm prologue (decode) against the reference', () => {
  // Mamba-2's gated norm per B/C group once the SSD has gated: each group of x's columns
  // normalised on its own, one weight per column. Groups of 1, of odd sizes (x read as f32) and
  // of multiples of 4 (vec4 units).
  it('matches on the GEMV; refuses prefill', async () => {
    const caps = await matrixCaps();
    for (const [si, [N, K, group]] of [
      [2, 3, 1],
      [67, 129, 43],
      [33, 250, 25],
      [129, 260, 52],
      [40, 64, 16],
    ].entries()) {
      const a = mm(N, K, { prologue: RMS, prologueGroup: group, residual: true });
      await check(a, { caps, maxT: 1, steps: DECODE_STEPS }, 92_000 + 10 * si);
    }
    // The linear mixers' rmsnorm_per_head(o) · w · silu(z): a shared per-head weight and a gate.
    for (const [si, [N, K, group]] of [
      [2, 3, 3],
      [67, 130, 13],
      [33, 240, 48],
      [129, 36, 12],
    ].entries()) {
      for (const groupWeight of [false, true]) {
        const a = mm(N, K, {
          prologue: RMS,
          prologueGroup: group,
          prologueGate: true,
          ...(groupWeight ? { prologueGroupWeight: true } : {}),
          residual: true,
        });
        await check(a, { caps, maxT: 1, steps: DECODE_STEPS }, 93_000 + 10 * si);
      }
    }
    // The gate inside a wider row (gated DeltaNet's z in its in_proj row), at offsets that
    // are multiples of no load unit.
    for (const [si, [N, K, group, cols, offset]] of [
      [5, 36, 12, 83, 45],
      [67, 30, 10, 47, 3],
    ].entries()) {
      const a = mm(N, K, {
        prologue: RMS,
        prologueGroup: group,
        prologueGroupWeight: true,
        prologueGate: true,
        prologueGateCols: { cols, offset },
      });
      await check(a, { caps, maxT: 1, steps: DECODE_STEPS }, 94_000 + 10 * si);
    }
    const a = mm(8, 12, { prologue: RMS, prologueGroup: 4 });
    expect(() => matmulKernel(a, { caps: BASELINE_CAPS, maxT: 4 })).toThrow(/decode/);
    expect(() =>
      matmul.check({ ...a, prologueGate: true, prologueGateCols: { cols: 14, offset: 3 } }),
    ).toThrow(/prologueGateCols/);
    expect(() =>
      matmulKernel({ ...a, prologueGate: true }, { caps: BASELINE_CAPS, maxT: 4 }),
    ).toThrow(/decode/);
    expect(() =>
      matmul.check({ ...a, prologueGroup: undefined, prologueGroupWeight: true }),
    ).toThrow(/prologueGroupWeight/);
    expect(() => matmul.check({ ...a, prologueGroup: 5 })).toThrow(/prologueGroup/);
    expect(() => matmul.check({ ...a, prologue: null })).toThrow(/rms prologue/);
  });
});
