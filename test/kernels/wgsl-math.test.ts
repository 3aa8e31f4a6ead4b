/**
 * The WGSL math helpers (codegen/kernels/wgsl-math.ts) on the GPU against their CPU mirrors in
 * src/ops/math.ts, over the awkward inputs: signed zeros, tiny values where log(1 + x) and
 * e − 1 lose relative precision, torch's softplus threshold at ±20, ±88 where exp nears the
 * f32 range, and ±1e4 where a naive exp overflows.
 */
import { describe, expect, it } from 'vitest';
import { STEP_BINDING, STEP_WGSL, type KernelLaunch } from '../../codegen/kernel-ir.ts';
import { HELPER_NAMES, withHelpers, type HelperName } from '../../codegen/kernels/wgsl-math.ts';
import { f32ToF16Bits } from '../../formats/safetensors.ts';
import {
  elu1,
  erf,
  log1p,
  logaddexp,
  logsigmoid,
  sigmoid,
  silu,
  roundF16,
  softplus,
} from '../../src/ops/math.ts';
import { pcgHash } from '../../src/ops/sampling.ts';
import { runLaunch } from '../helpers/gpu.ts';
import { randn } from '../helpers/numeric.ts';

const EDGES = [
  0, 1e-8, 1e-6, 1e-3, 0.1, 0.29, 0.3, 0.5, 0.9, 1, 1.5, 2, 5, 15, 19.99, 20, 20.01, 30, 88, 1e4,
];
const INPUTS = [...EDGES, ...EDGES.map((x) => -x), -0.999, -0.9, -0.75].map(Math.fround);

/**
 * CPU mirror, domain, and tolerance |gpu − cpu| ≤ atol + rtol·|cpu|. rtol 1e-5: WGSL's exp may
 * be off by 3 + 2|x| ULP, about 5e-6 relative at |x| = 20, and beyond that only results that
 * saturate or underflow depend on it (atol 1e-30 absorbs flushed denormals). erf_f32 and
 * tanh_safe compute 1 − r and (e − 1)/(e + 1), exact only to ~1e-7 absolutely near 0, which is
 * all GELU needs; tanh_acc is the form accurate there.
 */
type F16Helper = 'f16_rne' | 'f16_bits' | 'f16_pack2';
const F16_HELPERS: F16Helper[] = ['f16_rne', 'f16_bits', 'f16_pack2'];
/** Helpers of u32 random bits, tested on their own below. */
const RANDOM_HELPERS = ['pcg', 'unit_draw', 'neg_log_unit'] as const;
type Unary = Exclude<
  HelperName,
  'logaddexp' | 'is_nonfinite' | F16Helper | (typeof RANDOM_HELPERS)[number]
>;
const CASES: Record<
  Unary,
  { cpu: (x: number) => number; domain?: (x: number) => boolean; atol: number; rtol: number }
> = {
  log1p: { cpu: log1p, domain: (x) => x > -1 && x < 1e4, atol: 1e-30, rtol: 1e-5 },
  softplus: { cpu: softplus, atol: 1e-30, rtol: 1e-5 },
  logsigmoid: { cpu: logsigmoid, atol: 1e-30, rtol: 1e-5 },
  elu1: { cpu: elu1, atol: 1e-30, rtol: 1e-5 },
  sigmoid: { cpu: sigmoid, atol: 1e-30, rtol: 1e-5 },
  silu: { cpu: silu, atol: 1e-30, rtol: 1e-5 },
  erf_f32: { cpu: erf, atol: 3e-7, rtol: 1e-5 },
  tanh_safe: { cpu: Math.tanh, atol: 3e-7, rtol: 1e-5 },
  tanh_acc: { cpu: Math.tanh, atol: 1e-30, rtol: 1e-5 },
};

/** y[i] = call, over n elements; the call reads x[g.x] (and b[g.x] for binary helpers). */
function helperLaunch(name: HelperName, n: number, binary = false): KernelLaunch {
  const call = binary ? `${name}(x[g.x], b[g.x])` : `${name}(x[g.x])`;
  const code = withHelpers(`${STEP_WGSL}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${binary ? '@group(0) @binding(3) var<storage, read> b: array<f32>;' : ''}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < ${n}u * step.T) { y[g.x] = ${call}; }
}
`);
  const bindings: KernelLaunch['kernel']['bindings'] = [
    STEP_BINDING,
    { name: 'x', access: 'read' },
    { name: 'y', access: 'read_write' },
  ];
  if (binary) bindings.push({ name: 'b', access: 'read' });
  return {
    kernel: { name: `helper_${name}`, code, bindings, workgroupSize: [64, 1, 1] },
    grid: [Math.ceil(n / 64), 1, 1],
  };
}

/**
 * Three u32 words per input element: `body` writes y[3i], y[3i + 1], y[3i + 2] from x[i] (x of
 * WGSL type `xType`, bound from `x`'s bytes); returns the words.
 */
async function wordsPerElement(
  name: string,
  x: Float32Array,
  xType: 'f32' | 'u32',
  body: string,
): Promise<Uint32Array> {
  const n = x.length;
  const code = withHelpers(`${STEP_WGSL}
@group(0) @binding(1) var<storage, read> x: array<${xType}>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= ${n}u * step.T) { return; }
  ${body}
}
`);
  const bindings: KernelLaunch['kernel']['bindings'] = [
    STEP_BINDING,
    { name: 'x', access: 'read' },
    { name: 'y', access: 'read_write' },
  ];
  const { y } = await runLaunch(
    {
      kernel: { name: `helper_${name}`, code, bindings, workgroupSize: [64, 1, 1] },
      grid: [Math.ceil(n / 64), 1, 1],
    },
    { inputs: { x }, outputs: { y: 3 * n }, step: { T: 1, pos: 0, L: 1 } },
  );
  return new Uint32Array(y.buffer, y.byteOffset, 3 * n);
}

describe('WGSL math helpers against their CPU mirrors', () => {
  it('covers every helper', () => {
    expect(
      [
        ...Object.keys(CASES),
        'logaddexp',
        'is_nonfinite',
        ...F16_HELPERS,
        ...RANDOM_HELPERS,
      ].sort(),
    ).toEqual([...HELPER_NAMES].sort());
  });

  for (const name of Object.keys(CASES) as Unary[]) {
    it(name, async () => {
      const c = CASES[name];
      const xs = Float32Array.from(INPUTS.filter(c.domain ?? (() => true)));
      const { y } = await runLaunch(helperLaunch(name, xs.length), {
        inputs: { x: xs },
        outputs: { y: xs.length },
        step: { T: 1, pos: 0, L: 1 },
      });
      const bad: string[] = [];
      xs.forEach((x, i) => {
        const want = c.cpu(x);
        const ok =
          Number.isFinite(y[i]) && Math.abs(y[i] - want) <= c.atol + c.rtol * Math.abs(want);
        if (!ok) bad.push(`${name}(${x}) = ${y[i]}, CPU ${want}`);
      });
      expect(bad).toEqual([]);
    });
  }

  // Every pair of the inputs: equal arguments, one far below the other (e^−|a−b| underflows),
  // both large, both very negative. rtol as above; atol for results that cancel to near 0.
  it('logaddexp', async () => {
    const a = INPUTS.flatMap((x) => INPUTS.map(() => x));
    const b = INPUTS.flatMap(() => INPUTS);
    const xs = Float32Array.from(a);
    const bs = Float32Array.from(b);
    const { y } = await runLaunch(helperLaunch('logaddexp', xs.length, true), {
      inputs: { x: xs, b: bs },
      outputs: { y: xs.length },
      step: { T: 1, pos: 0, L: 1 },
    });
    const bad: string[] = [];
    xs.forEach((x, i) => {
      const want = logaddexp(x, bs[i]);
      const ok = Number.isFinite(y[i]) && Math.abs(y[i] - want) <= 1e-6 + 1e-5 * Math.abs(want);
      if (!ok) bad.push(`logaddexp(${x}, ${bs[i]}) = ${y[i]}, CPU ${want}`);
    });
    expect(bad).toEqual([]);
  });

  it('pastes only what a module calls, with what those call, once', () => {
    const code = withHelpers('fn f(v: f32) -> f32 { return silu(v) + softplus(v) + silu(v); }\n');
    for (const fn of ['silu', 'sigmoid', 'softplus', 'log1p']) {
      expect(code.split(`fn ${fn}(`).length - 1).toBe(1);
    }
    expect(code).not.toContain('fn erf_f32(');
    expect(withHelpers('fn silu_z() {}')).toBe('fn silu_z() {}');
  });

  // f16 rounding must match the CPU bit for bit (caches and staged x are compared exactly):
  // round-to-nearest-even ties in the normal and subnormal ranges, the carry into the exponent,
  // the smallest normal, f32 values below the f16 range, 65504 and the overflow to infinity.
  it('f16_rne, f16_bits and f16_pack2 round exactly as the CPU does', async () => {
    const p = (e: number) => 2 ** e;
    const edges = [
      0,
      1,
      1 + p(-11),
      1 + 3 * p(-11),
      1 + p(-11) + p(-20),
      2 - p(-11),
      2 - p(-12),
      0.1,
      1 / 3,
      p(-24),
      p(-25),
      3 * p(-25),
      5 * p(-25),
      p(-26),
      p(-14),
      p(-14) - p(-25),
      p(-14) - p(-26),
      p(-15) + p(-25),
      1e-30,
      1e-40,
      65504,
      65519,
      65520,
      65536,
      1e5,
      3e38,
      1024.5,
      2049,
    ];
    const xs = Float32Array.from([
      ...edges,
      ...edges.map((x) => -x),
      ...randn(300, 5, 1),
      ...randn(300, 6, 1e-4),
      ...randn(300, 7, 3e4),
    ]);
    const n = xs.length;
    const got = await wordsPerElement(
      'f16',
      xs,
      'f32',
      `y[3u * i] = f16_bits(x[i]);
  y[3u * i + 1u] = bitcast<u32>(f16_rne(x[i]));
  y[3u * i + 2u] = f16_pack2(x[i], x[${n - 1}u - i]);`,
    );
    const f = new Float32Array(1);
    const bits = new Uint32Array(f.buffer);
    const bad: string[] = [];
    xs.forEach((x, i) => {
      f[0] = roundF16(x);
      const want = [
        f32ToF16Bits(x),
        bits[0],
        f32ToF16Bits(x) | (f32ToF16Bits(xs[n - 1 - i]) << 16),
      ];
      for (let k = 0; k < 3; k++) {
        if (got[3 * i + k] >>> 0 !== want[k] >>> 0) {
          bad.push(
            `${F16_HELPERS[k]}(${x}): ${got[3 * i + k].toString(16)}, CPU ${(want[k] >>> 0).toString(16)}`,
          );
        }
      }
    });
    expect(bad).toEqual([]);
  });
  // The samplers' random stream: pcg bit for bit; unit_draw's u where f32 holds it; −log u
  // within 1e-6 relative of f64 everywhere (WGSL's log: 3 ULP, or 2^-21 absolute on [0.5, 2]), including the top draws, where f32's u rounds to
  // 1 (k = 2^24 − 1 gave u = 1, −log u = 0 and an infinite Gumbel score before neg_log_unit).
  it('pcg, unit_draw and neg_log_unit against f64', async () => {
    const ks = [0, 1, 2, 0x7fffff, 0x800000, 0x800001, 0xbfffff, 0xc00000, 0xfffffe, 0xffffff];
    const words = [...ks.flatMap((k) => [k << 8, (k << 8) | 0xff]), 0x12345678, 0xdeadbeef];
    for (let i = 0; i < 200; i++) words.push(pcgHash(i) >>> 0);
    const xs = Uint32Array.from(words.map((w) => w >>> 0));
    const got = await wordsPerElement(
      'random',
      new Float32Array(xs.buffer),
      'u32',
      `y[3u * i] = pcg(x[i]);
  y[3u * i + 1u] = bitcast<u32>(unit_draw(x[i]));
  y[3u * i + 2u] = bitcast<u32>(neg_log_unit(x[i]));`,
    );
    const asF32 = (u: number) => new Float32Array(Uint32Array.of(u).buffer)[0];
    const bad: string[] = [];
    xs.forEach((w, i) => {
      const k = w >>> 8;
      const u = (k + 0.5) / 16777216;
      if (got[3 * i] >>> 0 !== pcgHash(w) >>> 0) bad.push(`pcg(${w.toString(16)})`);
      if (k < 0x800000 && asF32(got[3 * i + 1]) !== u) bad.push(`unit_draw(${w.toString(16)})`);
      const nl = asF32(got[3 * i + 2]);
      const want = -Math.log(u);
      if (!(Math.abs(nl - want) <= 1e-6 * want))
        bad.push(`neg_log_unit(${w.toString(16)}) = ${nl}, f64 ${want}`);
    });
    expect(bad).toEqual([]);
  });
  it('is_nonfinite: NaN and ±Inf only', async () => {
    const xs = Float32Array.from([0, -0, 1, -1, 3.4e38, -3.4e38, 1e-45, NaN, Infinity, -Infinity]);
    const got = await wordsPerElement(
      'nonfinite',
      xs,
      'f32',
      `y[3u * i] = select(0u, 1u, is_nonfinite(x[i]));
  y[3u * i + 1u] = 0u;
  y[3u * i + 2u] = 0u;`,
    );
    expect(Array.from(xs, (_, i) => got[3 * i])).toEqual(
      Array.from(xs, (x) => (Number.isFinite(x) ? 0 : 1)),
    );
  });
});
