/**
 * RoPE: the cos/sin tables (HuggingFace-exact, including linear, llama3, yarn
 * and proportional scaling), the CPU reference of the standalone rope op, and the row
 * permutation that turns HF's 'half' pairing into 'interleaved'.
 *
 * The tables reproduce transformers' float32 arithmetic step by step (each
 * torch op on a float32 tensor rounds to f32), because a rounding difference in
 * inv_freq becomes an angle error that grows linearly with the position.
 */
import type { Cost, RopeAttrs, StepShape } from '../graph/ops.ts';
import type { RopeSpec } from '../spec/model.ts';
import { rotateHead } from './math.ts';
import { f32, rule, type Arrays, type OpDefinition } from './types.ts';

const fr = Math.fround;

/** Exponents 2i/dim of the default inv_freq, as torch computes them: float32 division. */
function pairExponents(rotaryDim: number): number[] {
  const half = rotaryDim / 2;
  const e: number[] = [];
  for (let i = 0; i < half; i++) e.push(fr((2 * i) / rotaryDim));
  return e;
}

/** base ** e in float32 (torch's pow on a float32 tensor with a Python scalar base). */
function powF32(base: number, e: number): number {
  return fr(Math.pow(fr(base), e));
}

function defaultInvFreq(theta: number, rotaryDim: number): number[] {
  return pairExponents(rotaryDim).map((e) => fr(1 / powF32(theta, e)));
}

/** HF `_compute_llama3_parameters`: keep high frequencies, divide low ones by factor, blend between. */
function llama3InvFreq(
  base: number[],
  s: {
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositions: number;
  },
): number[] {
  const factor = fr(s.factor);
  const lowWavelen = fr(s.originalMaxPositions / s.lowFreqFactor);
  const highWavelen = fr(s.originalMaxPositions / s.highFreqFactor);
  const twoPi = fr(2 * Math.PI);
  const oldCtx = fr(s.originalMaxPositions);
  const lff = fr(s.lowFreqFactor);
  const band = fr(s.highFreqFactor - s.lowFreqFactor);
  return base.map((inv) => {
    // torch evaluates `scalar / tensor` as reciprocal(tensor) * scalar.
    const wavelen = fr(fr(1 / inv) * twoPi);
    const scaled = wavelen > lowWavelen ? fr(inv / factor) : inv;
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (!medium) return scaled;
    const smooth = fr(fr(fr(fr(1 / wavelen) * oldCtx) - lff) / band);
    const a = fr(fr(fr(1 - smooth) * scaled) / factor);
    return fr(a + fr(smooth * scaled));
  });
}

/**
 * HF `_compute_yarn_parameters`: blend interpolated and extrapolated frequencies over a ramp
 * between two correction dims, rounded out to whole dims unless `truncate` is false (GPT-OSS).
 */
function yarnInvFreq(
  theta: number,
  rotaryDim: number,
  s: {
    factor: number;
    originalMaxPositions: number;
    betaFast: number;
    betaSlow: number;
    truncate: boolean;
  },
): number[] {
  const factor = fr(s.factor);
  const posFreqs = pairExponents(rotaryDim).map((e) => powF32(theta, e));
  // Python floats (f64) from here to the integer bounds.
  const correctionDim = (rot: number): number =>
    (rotaryDim * Math.log(s.originalMaxPositions / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
  const round = (x: number, to: (v: number) => number): number => (s.truncate ? to(x) : x);
  const low = Math.max(round(correctionDim(s.betaFast), Math.floor), 0);
  let high = Math.min(round(correctionDim(s.betaSlow), Math.ceil), rotaryDim - 1);
  if (low === high) high += 0.001;
  const span = fr(high - low);
  // torch: (arange(f32) - low) / (high - low), each Python-float operand rounded to f32.
  const lowF = fr(low);
  return posFreqs.map((pf, i) => {
    const ramp = Math.min(1, Math.max(0, fr(fr(i - lowF) / span)));
    const extrapolation = fr(1 - ramp);
    const invExtra = fr(1 / pf);
    const invInter = fr(1 / fr(factor * pf));
    return fr(fr(invInter * fr(1 - extrapolation)) + fr(invExtra * extrapolation));
  });
}

/** inv_freq [rotaryDim/2] and the cos/sin multiplier, as HF's rope init functions return them. */
export function ropeInvFreq(rope: RopeSpec): { invFreq: Float32Array; attentionFactor: number } {
  const { theta, rotaryDim, scaling } = rope;
  if (rotaryDim <= 0 || rotaryDim % 2 !== 0) {
    throw new Error(`rope: rotaryDim must be a positive even number, got ${rotaryDim}`);
  }
  switch (scaling.kind) {
    case 'none':
      return { invFreq: Float32Array.from(defaultInvFreq(theta, rotaryDim)), attentionFactor: 1 };
    case 'proportional': {
      // HF _compute_proportional_rope_parameters: the rotated pairs' default frequencies, zeros
      // for the rest, all divided by factor.
      const f = fr(scaling.factor);
      const inv = defaultInvFreq(theta, rotaryDim).map((x, i) =>
        i < scaling.pairs ? fr(x / f) : 0,
      );
      return { invFreq: Float32Array.from(inv), attentionFactor: 1 };
    }
    case 'linear': {
      const f = fr(scaling.factor);
      const inv = defaultInvFreq(theta, rotaryDim).map((x) => fr(x / f));
      return { invFreq: Float32Array.from(inv), attentionFactor: 1 };
    }
    case 'llama3':
      return {
        invFreq: Float32Array.from(llama3InvFreq(defaultInvFreq(theta, rotaryDim), scaling)),
        attentionFactor: 1,
      };
    case 'yarn':
      return {
        invFreq: Float32Array.from(yarnInvFreq(theta, rotaryDim, scaling)),
        attentionFactor: scaling.attentionFactor,
      };
  }
}

/**
 * cos/sin tables [capacity, rotaryDim/2] (row p for absolute position p), matching HF:
 * angle = f32(inv_freq · p), cos/sin rounded to f32, then times attention_factor in f32.
 */
export function ropeTables(
  rope: RopeSpec,
  capacity: number,
): { cos: Float32Array; sin: Float32Array } {
  const { invFreq, attentionFactor } = ropeInvFreq(rope);
  const half = invFreq.length;
  const af = fr(attentionFactor);
  const cos = new Float32Array(capacity * half);
  const sin = new Float32Array(capacity * half);
  for (let p = 0; p < capacity; p++) {
    for (let i = 0; i < half; i++) {
      const angle = fr(invFreq[i] * fr(p));
      const c = fr(Math.cos(angle));
      const s = fr(Math.sin(angle));
      cos[p * half + i] = af === 1 ? c : fr(c * af);
      sin[p * half + i] = af === 1 ? s : fr(s * af);
    }
  }
  return { cos, sin };
}

/**
 * Row permutation (new row ← old row) within one head taking HF 'half' pairing to
 * 'interleaved': new 2i ← old i, new 2i+1 ← old i + rd/2, rows ≥ rd unchanged.
 */
export function interleavePermutation(headDim: number, rotaryDim: number): Uint32Array {
  if (rotaryDim % 2 !== 0 || rotaryDim > headDim || rotaryDim <= 0) {
    throw new Error(`rope: rotaryDim ${rotaryDim} must be even and in (0, headDim=${headDim}]`);
  }
  const half = rotaryDim / 2;
  const perm = new Uint32Array(headDim);
  for (let i = 0; i < half; i++) {
    perm[2 * i] = i;
    perm[2 * i + 1] = i + half;
  }
  for (let d = rotaryDim; d < headDim; d++) perm[d] = d;
  return perm;
}

export const rope: OpDefinition<RopeAttrs> = {
  check(a) {
    if (a.rotaryDim % 2 !== 0 || a.rotaryDim <= 0 || a.rotaryDim > a.headDim) {
      throw new Error(
        `rope: rotaryDim ${a.rotaryDim} must be even and in (0, headDim=${a.headDim}]`,
      );
    }
  },
  /** The tables are cos/sin [capacity, rotaryDim/2], row p for absolute position p. */
  inputs: (a) => ({
    x: rule(['T', a.heads * a.headDim]),
    cos: rule([a.capacity, a.rotaryDim / 2]),
    sin: rule([a.capacity, a.rotaryDim / 2]),
  }),
  outputs: (a) => ({ out: rule(['T', a.heads * a.headDim]) }),
  reference(a: RopeAttrs, inputs: Arrays, step: StepShape): Arrays {
    rope.check(a);
    const x = f32(inputs, 'x');
    const cos = f32(inputs, 'cos');
    const sin = f32(inputs, 'sin');
    const width = a.heads * a.headDim;
    const half = a.rotaryDim / 2;
    if ((step.pos + step.T) * half > cos.length) {
      throw new Error(
        `rope: tables hold ${cos.length / half} positions, need ${step.pos + step.T}`,
      );
    }
    const out = x.slice(0, step.T * width);
    for (let t = 0; t < step.T; t++) {
      const csOff = (step.pos + t) * half;
      for (let h = 0; h < a.heads; h++) {
        rotateHead(out, t * width + h * a.headDim, a.rotaryDim, a.pairs, cos, sin, csOff);
      }
    }
    return { out };
  },
  cost(a: RopeAttrs, step: StepShape): Cost {
    const width = a.heads * a.headDim;
    const pairs = a.heads * (a.rotaryDim / 2);
    return {
      flops: 6 * pairs * step.T,
      bytesRead: 4 * step.T * (width + a.rotaryDim),
      bytesWritten: 4 * step.T * width,
    };
  },
};
