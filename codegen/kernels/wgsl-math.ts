/**
 * WGSL twins of src/ops/math.ts: one definition of each formula for all kernels.
 * Generators paste the functions they use into their module.
 */
import type { Activation } from '../../src/spec/model.ts';

/** erf for exact GELU. WGSL has none; this fit's 1.2e-7 relative error is far inside our 1e-4 tolerance. */
export const ERF_WGSL = /* wgsl */ `
fn erf_f32(x: f32) -> f32 {
  // Numerical Recipes erfc (Chebyshev fit, |rel err| < 1.2e-7).
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
      t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
`;

/** tanh that cannot overflow: WGSL's tanh may evaluate exp(2x) and return NaN for large |x|. */
export const TANH_WGSL = /* wgsl */ `
fn tanh_safe(x: f32) -> f32 {
  let c = clamp(x, -15.0, 15.0);
  let e = exp(2.0 * c);
  return (e - 1.0) / (e + 1.0);
}
`;

/** WGSL helper functions an activation needs (prepend once per module). */
export function actPrelude(act: Activation | null): string {
  if (act === 'gelu') return ERF_WGSL;
  if (act === 'gelu_tanh') return TANH_WGSL;
  return '';
}

/** A WGSL expression applying `act` to the f32 expression `x` (x must be a simple name). */
export function actExpr(act: Activation, x: string): string {
  switch (act) {
    case 'silu':
      return `(${x} / (1.0 + exp(-${x})))`;
    case 'gelu':
      return `(0.5 * ${x} * (1.0 + erf_f32(${x} * 0.70710678118654752)))`;
    case 'gelu_tanh':
      return `(0.5 * ${x} * (1.0 + tanh_safe(0.79788456080286536 * (${x} + 0.044715 * ${x} * ${x} * ${x}))))`;
    case 'relu':
      return `max(${x}, 0.0)`;
    case 'relu2':
      return `(max(${x}, 0.0) * max(${x}, 0.0))`;
    case 'sigmoid':
      return `(1.0 / (1.0 + exp(-${x})))`;
  }
}
