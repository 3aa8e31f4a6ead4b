/**
 * The WGSL math helpers (codegen/kernels/wgsl-math.ts) on the GPU against their CPU mirrors in
 * src/ops/math.ts, over the awkward inputs: signed zeros, tiny values where log(1 + x) and
 * e − 1 lose relative precision, torch's softplus threshold at ±20, ±88 where exp nears the
 * f32 range, and ±1e4 where a naive exp overflows.
 */
import { describe, expect, it } from 'vitest';
import { STEP_BINDING, STEP_WGSL, type KernelLaunch } from '../../codegen/kernel-ir.ts';
import { HELPER_NAMES, withHelpers, type HelperName } from '../../codegen/kernels/wgsl-math.ts';
import {
  elu1,
  erf,
  log1p,
  logaddexp,
  logsigmoid,
  sigmoid,
  silu,
  softplus,
} from '../../src/ops/math.ts';
import { runLaunch } from '../helpers/gpu.ts';

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
type Unary = Exclude<HelperName, 'logaddexp'>;
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

describe('WGSL math helpers against their CPU mirrors', () => {
  it('covers every helper', () => {
    expect([...Object.keys(CASES), 'logaddexp'].sort()).toEqual([...HELPER_NAMES].sort());
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
});
