/**
 * Shared by the matmul kernel tests: attrs, awkward shapes, random inputs, and the check that
 * runs a kernel and the reference on the same inputs.
 */
import { encodeWeight } from '../../src/ops/weight-storage.ts';
import { words } from './weights.ts';
import { expect } from 'vitest';
import { BASELINE_CAPS, type DeviceCaps } from '../../src/target.ts';
import { matmulKernel } from '../../codegen/kernels/matmul.ts';
import {
  kvTypeOf,
  plainMatmul,
  convStateName,
  splitOutput,
  type FusedPointwise,
  type MatmulAttrs,
  type StepShape,
} from '../../src/graph/ops.ts';
import { matmul } from '../../src/ops/matmul.ts';
import type { Arrays } from '../../src/ops/types.ts';
import { f16BitsToNumber, f32ToF16Bits, packF16 } from '../../formats/safetensors.ts';
import { roundF16 } from '../../src/ops/math.ts';
import { runLaunches, testGpu, type HostArray } from './gpu.ts';
import { maxRelError, randn } from './numeric.ts';

export function mm(N: number, K: number, over: Partial<MatmulAttrs> = {}): MatmulAttrs {
  return { ...plainMatmul(N, K), ...over };
}

/**
 * x + (prev − x)·μ (RWKV's token mix) with μ columns [s·K, (s+1)·K) of a [parts·K] parameter: the
 * x map of split s when one concatenated parameter serves several splits (splitXMaps).
 */
export function mixOf(K: number, parts: number, s: number): FusedPointwise {
  const x = { in: 'x' };
  const act = () => ({ perToken: true, cols: K, inner: K, repeat: 1 });
  return {
    inputs: {
      x: act(),
      p_prev: act(),
      p_mu: { perToken: false, cols: parts * K, inner: K, repeat: 1, offset: s * K },
    },
    expr: {
      bin: 'add',
      a: x,
      b: { bin: 'mul', a: { bin: 'sub', a: { in: 'p_prev' }, b: x }, b: { in: 'p_mu' } },
    },
  };
}

export const RMS = { kind: 'rms', eps: 1e-6, unitOffset: false, bias: false } as const;
export const RMS_GEMMA = { kind: 'rms', eps: 1e-6, unitOffset: true, bias: false } as const;
export const LAYER = { kind: 'layer', eps: 1e-5, unitOffset: false, bias: true } as const;

/** Odd sizes that are multiples of no tile, and one with K % 4 === 0 for the vec4 path. */
export const SHAPES: ReadonlyArray<[number, number]> = [
  [1, 3],
  [67, 129],
  [129, 250],
  [250, 1],
  [33, 260],
];

export const PREFILL_MAXT = 37;
export const PREFILL_STEPS: StepShape[] = [
  { T: 37, pos: 0, L: 3 },
  { T: 20, pos: 4, L: 1 },
  { T: 1, pos: 9, L: 1 },
];
export const DECODE_STEPS: StepShape[] = [{ T: 1, pos: 6, L: 1 }];
/**
 * A step of a few rows (batched decode, a diffusion block): the GEMV with 8 rows a workgroup
 * (gemvServesRows), so 11 rows make a full row group and a partial one, and rows 'L' of 9 too.
 */
export const FEW_ROWS_MAXT = 11;
export const FEW_ROWS_STEPS: StepShape[] = [
  { T: 11, pos: 0, L: 2 },
  { T: 9, pos: 3, L: 9 },
  { T: 1, pos: 12, L: 1 },
];

function cacheCapacity(maxT: number): number {
  return 9 + maxT + 2;
}

/** Random inputs for one matmul, sized for maxT rows (like the runtime's buffers). */
export function makeInputs(a: MatmulAttrs, maxT: number, seed: number): Arrays {
  const wRows = a.gated ? 2 * a.N : a.N;
  const inputs: Arrays = {
    x: randn(maxT * a.K, seed + 1, 2),
    w: randn(wRows * a.K, seed + 2, 1 / Math.sqrt(a.K)),
  };
  if (a.bias) inputs.bias = randn(wRows, seed + 3, 0.5);
  if (a.residual) inputs.residual = randn(maxT * a.N, seed + 4);
  if (a.prologue) {
    // One group's weight when every group shares it (prologueGroupWeight).
    const w = randn(a.prologueGroupWeight ? a.prologueGroup! : a.K, seed + 5, 0.3);
    if (a.prologueGate) inputs.gate = randn(maxT * (a.prologueGateCols?.cols ?? a.K), seed + 15, 2);
    if (!a.prologue.unitOffset) for (let i = 0; i < w.length; i++) w[i] += 1;
    inputs.normW = w;
    if (a.prologue.kind === 'layer' && a.prologue.bias) inputs.normB = randn(a.K, seed + 6, 0.2);
  }
  // The x map's and epilogue's inputs (x among them under an x map): activations have maxT rows.
  for (const [j, [n, i]] of [
    ...Object.entries(a.xMap?.inputs ?? {}),
    ...Object.entries(a.epilogue?.inputs ?? {}),
  ].entries()) {
    inputs[n] = randn((i.perToken ? maxT : 1) * i.cols, seed + 20 + j, 1);
  }
  if (a.xMap) delete inputs.x;
  if (a.xMap?.inputs.x) inputs.x = randn(maxT * a.xMap.inputs.x.cols, seed + 1, 2);
  if (a.conv) {
    const { channels: C, kernel: Kc } = a.conv;
    inputs.convW = randn(C * Kc, seed + 12, 0.6);
    if (a.conv.bias) inputs.convB = randn(C, seed + 13, 0.3);
    // A packed bias follows the weight in convW (MatmulAttrs.conv.packedBias).
    if (a.conv.packedBias) {
      inputs.convW = Float32Array.from([...inputs.convW, ...inputs.convB]);
      delete inputs.convB;
    }
    // One state per MatmulAttrs.conv.states entry (convState, convState1, …).
    for (const [i, c] of (a.conv.states ?? [C]).entries())
      inputs[convStateName(i)] = randn((Kc - 1) * c, seed + 14 + 40 * i, 1.5);
  }
  const rope = a.ropeKv;
  const outStride = rope ? rope.qCols : a.outStride;
  // Existing contents: anything the kernel must not touch has to survive unchanged.
  inputs.out = randn(maxT * outStride, seed + 7);
  // A split matmul writes dense outputs of its column ranges instead.
  for (const [i, n] of (a.splits ?? []).entries())
    inputs[splitOutput(i)] = randn(maxT * n, seed + 11 + i);
  if (rope) {
    const cap = cacheCapacity(maxT);
    const half = rope.rotaryDim / 2;
    // Attention without RoPE (rotaryDim 0) binds no tables.
    if (half > 0) {
      const ang = randn(cap * half, seed + 8, Math.PI);
      inputs.cos = ang.map(Math.cos);
      inputs.sin = ang.map(Math.sin);
    }
    // An f16 cache holds f16 values.
    const kv = (v: Float32Array) => (kvTypeOf(rope) === 'f16' ? v.map(roundF16) : v);
    // Ring caches (KvRing) have their own rows; the tables still cover every position.
    const rows = rope.ring ? rope.ring.rows : cap;
    inputs.kcache = kv(randn(rows * rope.kvCols, seed + 9));
    inputs.vcache = kv(randn(rows * rope.kvCols, seed + 10));
  }
  return inputs;
}

export function copyArrays(src: Arrays, fillOutputs?: number): Arrays {
  const out: Arrays = {};
  for (const [k, v] of Object.entries(src)) {
    const c = v.slice();
    if (fillOutputs !== undefined && (/^out\d*$/.test(k) || k === 'kcache' || k === 'vcache'))
      c.fill(fillOutputs);
    out[k] = c;
  }
  return out;
}

export interface Run {
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
export async function matrixCaps(): Promise<DeviceCaps> {
  const dev = (await testGpu()).caps;
  return {
    ...dev,
    maxInvocationsPerWorkgroup: Math.min(64, dev.maxInvocationsPerWorkgroup),
    maxWorkgroupStorageBytes: Math.min(4096, dev.maxWorkgroupStorageBytes),
  };
}

/** The f32 values of an f16 buffer of n elements read back as f32 words. */
function unpackF16(g: Float32Array, n: number): Float32Array {
  const halves = new Uint16Array(g.buffer, g.byteOffset, n);
  return Float32Array.from(halves, f16BitsToNumber);
}

/**
 * Elements of an f16 cache that differ by more than one f16 step and by more than the f32
 * tolerance (1e-4 of the largest value). Kernel and reference round k and v to f16 from f32
 * values that differ by their summation order, so a value next to a rounding boundary may round
 * to the neighbouring half on one side: one step (at most 2^-10 of the element) is the bound for
 * ordinary values, where a relative tolerance on the whole array would either miss a wrong
 * rounding or fail an honest one. Near zero the f32 difference itself (absolute, from
 * cancellation) can span several subnormal steps; the f32 tolerance covers those.
 */
function f16Mismatches(got: number[], want: number[]): number {
  // f16 bits in order of value: sign-magnitude to a signed integer (±0 both 0).
  const ordinal = (v: number) => {
    const h = f32ToF16Bits(v);
    return h & 0x8000 ? -(h & 0x7fff) : h;
  };
  const atol = 1e-4 * want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let bad = 0;
  for (let i = 0; i < got.length; i++) {
    const steps = Math.abs(ordinal(got[i]) - ordinal(want[i]));
    if (steps > 1 && Math.abs(got[i] - want[i]) > atol) bad++;
  }
  return bad;
}

/**
 * Run the kernel and the reference on the same inputs and compare every output:
 * values the reference writes to within 1e-4 relative (f16 caches: within one f16 step),
 * everything else bit-exact (rows past T or L, columns outside outOffset..outOffset+N, other
 * cache rows).
 */
export async function check(
  a: MatmulAttrs,
  run: Run,
  seed: number,
  launches = matmulKernel(a, { caps: run.caps, maxT: run.maxT }).launches,
): Promise<void> {
  for (const [si, step] of run.steps.entries()) {
    const inputs = makeInputs(a, run.maxT, seed + 100 * si);
    const ref = matmul.reference(a, copyArrays(inputs), step);
    // Which elements the op writes: the reference run over NaN-filled outputs leaves the rest NaN.
    const mask = matmul.reference(a, copyArrays(inputs, NaN), step);
    const onGpu: Record<string, HostArray> = copyArrays(inputs);
    if (a.wType !== 'f32') onGpu.w = words(encodeWeight(a.wType, inputs.w as Float32Array, a.K));
    const kv16 = kvTypeOf(a.ropeKv) === 'f16';
    if (kv16) for (const n of ['kcache', 'vcache']) onGpu[n] = packF16(inputs[n]);
    const gpu = await runLaunches(launches, { inputs: onGpu, step });
    if (kv16) for (const n of ['kcache', 'vcache']) gpu[n] = unpackF16(gpu[n], inputs[n].length);
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
      if (kv16 && (name === 'kcache' || name === 'vcache')) {
        expect(f16Mismatches(written, want), `${label}: ${name} f16 mismatches`).toBe(0);
        continue;
      }
      const err = maxRelError(written, want);
      expect(err, `${label}: ${name} max rel error`).toBeLessThanOrEqual(1e-4);
    }
  }
}

export const PATHS: Array<[string, number, StepShape[]]> = [
  ['prefill', PREFILL_MAXT, PREFILL_STEPS],
  ['few rows', FEW_ROWS_MAXT, FEW_ROWS_STEPS],
  ['decode', 1, DECODE_STEPS],
];

export function ropeCase(
  heads: number,
  kvHeads: number,
  headDim: number,
  rotaryDim: number,
  K: number,
  over: Partial<MatmulAttrs> = {},
): MatmulAttrs {
  const ropeKv = {
    qCols: heads * headDim,
    kvCols: kvHeads * headDim,
    headDim,
    rotaryDim,
    capacity: cacheCapacity(PREFILL_MAXT),
  };
  return mm(ropeKv.qCols + 2 * ropeKv.kvCols, K, { ropeKv, outStride: ropeKv.qCols, ...over });
}

/** A ropeKv matmul whose caches are f16 (kvType 'f16'). */
export function ropeKv16(a: MatmulAttrs): MatmulAttrs {
  if (!a.ropeKv) throw new Error('ropeKv16: not a ropeKv matmul');
  return { ...a, ropeKv: { ...a.ropeKv, kvType: 'f16' } };
}

/** What an H100 or H200 reports with allow_unsafe_apis and vulkan_enable_f16_on_nvidia. */
export const TENSOR_CAPS: DeviceCaps = {
  ...BASELINE_CAPS,
  maxInvocationsPerWorkgroup: 1024,
  maxWorkgroupSizeX: 1024,
  maxWorkgroupStorageBytes: 49152,
  subgroups: true,
  shaderF16: true,
  subgroupMatrix: true,
  subgroupMaxSize: 32,
  subgroupMatrixConfigs: [
    { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 },
    { componentType: 'f16', resultComponentType: 'f16', M: 16, N: 16, K: 16 },
  ],
};
