/**
 * Scalar math shared by several op references (activations inside matmul
 * epilogues, norms inside matmul prologues, RoPE inside the fused QKV kernel),
 * so each formula exists once on the CPU side. The scalar helpers (log1p, softplus, sigmoid,
 * silu, erf) mirror the WGSL helpers of the same names in codegen/kernels/wgsl-math.ts one to
 * one: same formula, in f64 here.
 */
import type { Activation, NormSpec } from '../spec/model.ts';
import type { L2Norm } from '../graph/ops.ts';
import { f16BitsToNumber, f32ToF16Bits } from '../../formats/safetensors.ts';

/** x rounded to the nearest f16 (ties to even), as the GPU's f32 → f16 conversion does. */
export function roundF16(x: number): number {
  return f16BitsToNumber(f32ToF16Bits(x));
}

/** log(1 + x). Mirror of WGSL log1p, which builds it from a series because WGSL has none. */
export function log1p(x: number): number {
  return Math.log1p(x);
}

/**
 * torch.nn.functional.softplus (beta 1, threshold 20: the identity above 20), never
 * exponentiating a positive argument. Mirror of WGSL softplus.
 */
export function softplus(x: number): number {
  return x > 20 ? x : Math.max(x, 0) + log1p(Math.exp(-Math.abs(x)));
}

/** Logistic sigmoid, never exponentiating a positive argument. Mirror of WGSL sigmoid. */
export function sigmoid(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return (x >= 0 ? 1 : e) / (1 + e);
}

/** log(sigmoid(x)) = −softplus(−x), exact for large |x|. Mirror of WGSL logsigmoid. */
export function logsigmoid(x: number): number {
  return -softplus(-x);
}

/** log(eᵃ + eᵇ) without overflow. Mirror of WGSL logaddexp. */
export function logaddexp(a: number, b: number): number {
  const m = Math.max(a, b);
  if (m === -Infinity) return -Infinity;
  return m + log1p(Math.exp(-Math.abs(a - b)));
}

/** elu(x) + 1: the positive feature map of linear attention (Katharopoulos et al.). Mirror of WGSL elu1. */
export function elu1(x: number): number {
  return x > 0 ? x + 1 : Math.exp(x);
}

/** x · sigmoid(x). Mirror of WGSL silu. */
export function silu(x: number): number {
  return x * sigmoid(x);
}

/** erf to f64 accuracy (JS has none): Taylor series near 0, continued fraction for the tail. Mirror of WGSL erf_f32. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x);
  if (ax < 3) {
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction for erfc on the tail.
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}

export function activate(act: Activation, x: number): number {
  switch (act) {
    case 'silu':
      return silu(x);
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_tanh':
      return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    case 'relu':
      return Math.max(0, x);
    case 'relu2': {
      const r = Math.max(0, x);
      return r * r;
    }
    case 'sigmoid':
      return sigmoid(x);
  }
}

/**
 * Normalise `width` elements of x starting at xOff, in groups of `group`, into out at outOff.
 * w and b have `group` elements, or `width` with perChannel (b only for LayerNorm with bias;
 * w unused by l2). f64 accumulation.
 */
export function normalizeRow(
  norm: NormSpec | L2Norm,
  x: Float32Array,
  xOff: number,
  width: number,
  group: number,
  w: Float32Array | undefined,
  b: Float32Array | undefined,
  out: Float32Array,
  outOff: number,
  perChannel = false,
): void {
  for (let g0 = 0; g0 < width; g0 += group) {
    let mean = 0;
    if (norm.kind === 'layer') {
      for (let i = 0; i < group; i++) mean += x[xOff + g0 + i];
      mean /= group;
    }
    let ss = 0;
    for (let i = 0; i < group; i++) {
      const d = x[xOff + g0 + i] - mean;
      ss += d * d;
    }
    if (norm.kind === 'l2') {
      const inv = 1 / Math.sqrt(ss + norm.eps);
      for (let i = 0; i < group; i++) out[outOff + g0 + i] = x[xOff + g0 + i] * inv;
      continue;
    }
    if (!w) throw new Error(`${norm.kind} norm needs a weight`);
    const inv = 1 / Math.sqrt(ss / group + norm.eps);
    const p0 = perChannel ? g0 : 0;
    for (let i = 0; i < group; i++) {
      const scale = norm.unitOffset ? 1 + w[p0 + i] : w[p0 + i];
      let y = (x[xOff + g0 + i] - mean) * inv * scale;
      if (norm.kind === 'layer' && norm.bias && b) y += b[p0 + i];
      out[outOff + g0 + i] = y;
    }
  }
}

/**
 * Rotate the rotary part of one head in place. `pairs` picks which elements pair up:
 * 'half' pairs (i, i + rd/2) like HF's rotate_half; 'interleaved' pairs (2i, 2i+1).
 * cos/sin hold rd/2 values for this position starting at csOff.
 */
export function rotateHead(
  v: Float32Array,
  off: number,
  rotaryDim: number,
  pairs: 'half' | 'interleaved',
  cos: Float32Array,
  sin: Float32Array,
  csOff: number,
): void {
  const half = rotaryDim / 2;
  for (let i = 0; i < half; i++) {
    const a = pairs === 'half' ? off + i : off + 2 * i;
    const b = pairs === 'half' ? off + i + half : off + 2 * i + 1;
    const c = cos[csOff + i];
    const s = sin[csOff + i];
    const x0 = v[a];
    const x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x1 * c + x0 * s;
  }
}
