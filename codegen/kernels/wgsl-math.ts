/**
 * The one home of the WGSL scalar math helpers. Each is defined once here and mirrored by the
 * CPU function of the same name in src/ops/math.ts (same formula, computed in f64 there), so a
 * kernel and its reference cannot drift apart. Kernels call helpers by name; withHelpers()
 * pastes in the definitions a module calls, and nothing else, so no kernel defines its own.
 */
import type { Activation } from '../../src/spec/model.ts';
import { wgslF32 } from './wgsl-builder.ts';

export type HelperName =
  | 'log1p'
  | 'softplus'
  | 'logsigmoid'
  | 'logaddexp'
  | 'sigmoid'
  | 'silu'
  | 'elu1'
  | 'erf_f32'
  | 'tanh_safe'
  | 'tanh_acc'
  | 'f16_rne'
  | 'f16_bits'
  | 'f16_pack2'
  | 'is_nonfinite'
  | 'pcg'
  | 'unit_draw'
  | 'neg_log_unit';

interface Helper {
  /** Helpers this one calls (pasted with it). */
  uses: readonly HelperName[];
  code: string;
}

/**
 * Σ_{n=1..16} c^n x^n / n in Horner form (c = ±1): the series of −log(1 − x) (c = 1) or
 * log1p(x) (c = −1), for 0 ≤ x < 1/4 (truncation below 4^−17 / 17).
 */
export function logSeries(x: string, sign: 1 | -1): string {
  let e = '';
  for (let n = 16; n >= 1; n--) {
    const c = (sign === -1 && n % 2 === 0 ? -1 : 1) / n;
    e = n === 16 ? wgslF32(c) : `${wgslF32(c)} + ${x} * (${e})`;
  }
  return `${x} * (${e})`;
}

/**
 * Definitions in dependency order (a helper comes after those it uses), which is also the
 * order withHelpers() pastes them in, so a kernel's code does not depend on how it asked.
 */
const HELPERS: Record<HelperName, Helper> = {
  /**
   * log(1 + x) for x > -1. WGSL's log has only absolute accuracy near 1, so log(1 + x) for small
   * x (softplus of a typical δ, e^-|v| ≈ 1e-3) would lose relative precision. On −0.5 ≤ x ≤ 1,
   * log1p(x) = 2·atanh(s) with s = x / (2 + x), |s| ≤ 1/3, by its odd series (truncation below
   * 2e-9 relative); elsewhere 1 + x is far from 1 and log is accurate.
   * CPU mirror: log1p (Math.log1p).
   */
  log1p: {
    uses: [],
    code: /* wgsl */ `fn log1p(x: f32) -> f32 {
  if (x < -0.5 || x > 1.0) { return log(1.0 + x); }
  let s = x / (2.0 + x);
  let s2 = s * s;
  return 2.0 * s * (1.0 + s2 * (0.33333333 + s2 * (0.2 + s2 * (0.14285714 + s2 * (0.11111111 +
      s2 * (0.09090909 + s2 * (0.07692308 + s2 * 0.06666667)))))));
}`,
  },
  /**
   * torch.nn.functional.softplus (beta 1, threshold 20: the identity above 20), in the form
   * that never exponentiates a positive argument: max(x, 0) + log1p(e^−|x|).
   * CPU mirror: softplus.
   */
  softplus: {
    uses: ['log1p'],
    code: /* wgsl */ `fn softplus(x: f32) -> f32 {
  if (x > 20.0) { return x; }
  return max(x, 0.0) + log1p(exp(-abs(x)));
}`,
  },
  /**
   * log(sigmoid(x)) = −softplus(−x): exact for large |x| where log(sigmoid(x)) would round
   * sigmoid to 0 or 1 first (GLA's gate, logsigmoid(x)/16). CPU mirror: logsigmoid.
   */
  logsigmoid: {
    uses: ['softplus'],
    code: /* wgsl */ `fn logsigmoid(x: f32) -> f32 { return -softplus(-x); }`,
  },
  /**
   * log(eᵃ + eᵇ) = max(a, b) + log1p(e^−|a−b|): nothing positive is exponentiated. Both a and b
   * −∞ (which the CPU mirror maps to −∞) is outside WGSL's finite arithmetic and not handled.
   * CPU mirror: logaddexp.
   */
  logaddexp: {
    uses: ['log1p'],
    code: /* wgsl */ `fn logaddexp(a: f32, b: f32) -> f32 {
  return max(a, b) + log1p(exp(-abs(a - b)));
}`,
  },
  /**
   * Logistic sigmoid that never exponentiates a positive argument: with e = e^−|x|, 1 / (1 + e)
   * for x ≥ 0 and e / (1 + e) below. One exp, no branch. CPU mirror: sigmoid.
   */
  sigmoid: {
    uses: [],
    code: /* wgsl */ `fn sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e, 1.0, x >= 0.0) / (1.0 + e);
}`,
  },
  /** x · sigmoid(x) (SiLU, swish). CPU mirror: silu. */
  silu: {
    uses: ['sigmoid'],
    code: /* wgsl */ `fn silu(x: f32) -> f32 { return x * sigmoid(x); }`,
  },
  /**
   * elu(x) + 1, linear attention's positive feature map: x + 1 above 0, eˣ below. The exp
   * argument is clamped to ≤ 0 so the branch select() discards cannot overflow. CPU mirror: elu1.
   */
  elu1: {
    uses: [],
    code: /* wgsl */ `fn elu1(x: f32) -> f32 { return select(exp(min(x, 0.0)), x + 1.0, x > 0.0); }`,
  },
  /**
   * erf for exact GELU. WGSL has none; Numerical Recipes' erfc Chebyshev fit, |rel err| < 1.2e-7,
   * far inside our 1e-4 tolerance. CPU mirror: erf (f64-accurate series).
   */
  erf_f32: {
    uses: [],
    code: /* wgsl */ `fn erf_f32(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
      t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}`,
  },
  /**
   * tanh that cannot overflow: WGSL's tanh may evaluate exp(2x) and return NaN for large |x|.
   * Loses relative precision near 0 (use tanh_acc there). CPU mirror: Math.tanh.
   */
  tanh_safe: {
    uses: [],
    code: /* wgsl */ `fn tanh_safe(x: f32) -> f32 {
  let c = clamp(x, -15.0, 15.0);
  let e = exp(2.0 * c);
  return (e - 1.0) / (e + 1.0);
}`,
  },
  /**
   * tanh accurate near 0 as well (softcap of small logits divides by a large cap): an odd
   * Taylor polynomial on |x| < 0.3, truncation below 1e-7 relative. CPU mirror: Math.tanh.
   */
  tanh_acc: {
    uses: ['tanh_safe'],
    code: /* wgsl */ `fn tanh_acc(x: f32) -> f32 {
  if (abs(x) >= 0.3) { return tanh_safe(x); }
  let x2 = x * x;
  return x * (1.0 + x2 * (-0.33333333333 + x2 * (0.13333333333 + x2 * (-0.053968253968 + x2 * 0.021869488536))));
}`,
  },
  /**
   * v rounded to the nearest f16 (ties to even) and back, in f32 (matmul's xType 'f16' staging).
   * Not via pack2x16float: WGSL leaves its rounding to the implementation, and NVIDIA's
   * truncates. Normal f16 range: round the f32 mantissa to 10 bits in integer arithmetic (a
   * carry moves into the exponent as it should); below 2^-14 f16 is subnormal, multiples of
   * 2^-24, and round() ties to even; beyond 65504 the f16 is infinite. CPU mirror: roundF16.
   */
  f16_rne: {
    uses: [],
    code: /* wgsl */ `fn f16_rne(v: f32) -> f32 {
  if (abs(v) < 6.103515625e-5) { return round(v * 16777216.0) / 16777216.0; }
  let b = bitcast<u32>(v);
  let r = bitcast<f32>((b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u);
  if (abs(r) > 65504.0) { return bitcast<f32>((b & 0x80000000u) | 0x7f800000u); }
  return r;
}`,
  },
  /**
   * The IEEE binary16 bits of v rounded to nearest, ties to even, in the low 16 bits: what an f16
   * store writes (KV caches). Built in integer arithmetic rather than with pack2x16float, whose
   * rounding WGSL leaves to the implementation and whose result is indeterminate for values
   * beyond the f16 range. Normal range (|v| ≥ 2^-14): rebias the exponent by 112 and round the
   * mantissa to 10 bits (a carry moves into the exponent; past 65504 it is clamped to the
   * infinity 0x7c00); below, the subnormal code is round(|v|·2^24), ties to even, up to 0x400
   * (the smallest normal) exactly. Infinities stay infinite and NaN stays a (quiet) NaN.
   * CPU mirror: f32ToF16Bits (formats/safetensors.ts).
   */
  f16_bits: {
    uses: [],
    code: /* wgsl */ `fn f16_bits(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  let sign = (b >> 16u) & 0x8000u;
  let a = b & 0x7fffffffu;
  if (a >= 0x7f800000u) { return sign | 0x7c00u | select(0u, 0x200u, a > 0x7f800000u); }
  if (a >= 0x38800000u) {
    let r = a - 0x38000000u;
    return sign | min((r + 0xfffu + ((r >> 13u) & 1u)) >> 13u, 0x7c00u);
  }
  return sign | u32(round(bitcast<f32>(a) * 16777216.0));
}`,
  },
  /** Two f32 values as one u32 word of two f16 halves, lo in the low half (see f16_bits). */
  f16_pack2: {
    uses: ['f16_bits'],
    code: /* wgsl */ `fn f16_pack2(lo: f32, hi: f32) -> u32 { return f16_bits(lo) | (f16_bits(hi) << 16u); }`,
  },
  /** NaN or ±Inf, by the exponent bits: a float comparison could be folded away by the compiler. */
  is_nonfinite: {
    uses: [],
    code: /* wgsl */ `fn is_nonfinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }`,
  },
  /**
   * The PCG hash every sampler's random stream is drawn from (one u32 in, one out).
   * CPU mirror: pcgHash (src/ops/sampling.ts).
   */
  pcg: {
    uses: [],
    code: /* wgsl */ `fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}`,
  },
  /**
   * u = ((bits >> 8) + 0.5) / 2^24 in (0, 1), as noiseUniform computes it in f64. Exact in f32
   * only below 1/2 (above, k + 0.5 needs 25 bits): callers that take log(u) use neg_log_unit.
   */
  unit_draw: {
    uses: [],
    code: /* wgsl */ `fn unit_draw(bits: u32) -> f32 { return (f32(bits >> 8u) + 0.5) * (1.0 / 16777216.0); }`,
  },
  /**
   * −log(u) of unit_draw's u without its rounding: below 1/2 u is exact; above, 1 − u =
   * (2^24 − 1 − k + 0.5) / 2^24 is exact, and −log(1 − w) by its series keeps the small
   * result's relative precision near u = 1 (where f32's u would round to 1 and −log u to 0,
   * making a Gumbel score infinite). Series truncation below 2e-11 relative for w < 1/4.
   */
  neg_log_unit: {
    uses: [],
    code: /* wgsl */ `fn neg_log_unit(bits: u32) -> f32 {
  let k = bits >> 8u;
  if (k < 0x800000u) { return -log((f32(k) + 0.5) * (1.0 / 16777216.0)); }
  let w = (f32(0xffffffu - k) + 0.5) * (1.0 / 16777216.0);
  if (w < 0.25) { return ${logSeries('w', 1)}; }
  return -log(1.0 - w);
}`,
  },
};
export const HELPER_NAMES = Object.keys(HELPERS) as HelperName[];

/** The helpers `code` calls, directly or through other helpers, in HELPERS order. */
export function helpersUsedBy(code: string): HelperName[] {
  const wanted = new Set<HelperName>();
  const visit = (name: HelperName) => {
    if (wanted.has(name)) return;
    wanted.add(name);
    for (const u of HELPERS[name].uses) visit(u);
  };
  for (const name of HELPER_NAMES) if (new RegExp(`\\b${name}\\s*\\(`).test(code)) visit(name);
  return HELPER_NAMES.filter((n) => wanted.has(n));
}

/** WGSL definitions of the named helpers and those they use. */
export function wgslHelpers(names: readonly HelperName[]): string {
  return helpersUsedBy(names.map((n) => `${n}()`).join(' '))
    .map((n) => HELPERS[n].code)
    .join('\n');
}

/**
 * A kernel module with the helpers it calls pasted in before its entry point (WGSL does not
 * care where a function is declared; before @compute keeps the helpers-then-main section
 * order). Scanning the finished module, rather than a list per kernel, means a helper cannot
 * be forgotten, pasted twice, or pasted unused.
 */
export function withHelpers(code: string): string {
  const defs = wgslHelpers(helpersUsedBy(code));
  if (defs === '') return code;
  const at = code.search(/^@compute\b/m);
  return at < 0 ? `${code}\n${defs}\n` : `${code.slice(0, at)}${defs}\n\n${code.slice(at)}`;
}

/** A WGSL expression applying `act` to the f32 expression `x` (x must be a simple name). */
export function actExpr(act: Activation, x: string): string {
  switch (act) {
    case 'silu':
      return `silu(${x})`;
    case 'gelu':
      return `(0.5 * ${x} * (1.0 + erf_f32(${x} * 0.70710678118654752)))`;
    case 'gelu_tanh':
      return `(0.5 * ${x} * (1.0 + tanh_safe(0.79788456080286536 * (${x} + 0.044715 * ${x} * ${x} * ${x}))))`;
    case 'relu':
      return `max(${x}, 0.0)`;
    case 'relu2':
      return `(max(${x}, 0.0) * max(${x}, 0.0))`;
    case 'sigmoid':
      return `sigmoid(${x})`;
  }
}
