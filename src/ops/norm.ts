/**
 * RMSNorm and LayerNorm over rows of width `width`, in groups of `group`
 * elements: a plain norm has group = width; qk-norm normalises each head
 * separately (group = headDim) with one [headDim] weight shared by all heads, and GroupNorm
 * (perChannel) one weight per column. The 'l2' kind (linear attention's q/k normalisation)
 * divides by the root of the plain sum of squares and has no weight. With `residual`, the
 * normed row is added to a residual row (a sandwich post-norm and its residual add in one pass).
 * Also Mamba-2's gated RMSNorm (gated_norm), whose weight spans the whole row (or, with
 * groupWeight, one group, as fla's gated per-head output norm has it).
 */
import { tokenShift } from './token-shift.ts';
import type { Cost, GatedNormAttrs, NormAttrs, StepShape } from '../graph/ops.ts';
import { activate, normalizeRow } from './math.ts';
import { f32, rule, type Arrays, type OpDefinition, type TensorRule } from './types.ts';

/** Throws unless width is a whole number of groups. */
function checkNormAttrs(a: NormAttrs): void {
  if (!Number.isInteger(a.group) || a.group < 1)
    throw new Error(`norm: group must be a positive integer, got ${a.group}`);
  if (!Number.isInteger(a.width) || a.width % a.group !== 0) {
    throw new Error(`norm: width ${a.width} is not a multiple of group ${a.group}`);
  }
  if (a.phased && (a.norm.kind !== 'rms' || a.residual || a.perChannel))
    throw new Error(
      `norm: a phased norm is a plain rms norm (got ${a.norm.kind}${a.residual ? ' with a residual' : ''})`,
    );
  if (a.shift && (a.group !== a.width || a.residual))
    throw new Error('norm: a fused token shift needs group = width and no residual');
}

/** LayerNorm with bias is the only variant that reads `b`. */
export function normHasBias(a: NormAttrs): boolean {
  return a.norm.kind === 'layer' && a.norm.bias;
}

/** Elements of w and b: one group's, or the whole row's with perChannel. */
export function normParamWidth(a: NormAttrs): number {
  return a.perChannel ? a.width : a.group;
}

export const norm: OpDefinition<NormAttrs> = {
  check: checkNormAttrs,
  inputs(a) {
    const r: Record<string, TensorRule> = { x: rule(['T', a.width]) };
    if (a.norm.kind !== 'l2') r.w = rule([normParamWidth(a)]);
    if (normHasBias(a)) r.b = rule([normParamWidth(a)]);
    if (a.residual) r.residual = rule(['T', a.width]);
    if (a.shift) r.state = rule([1, a.width], 'read_write');
    return r;
  },
  outputs: (a) => ({
    out: rule(['T', a.width]),
    ...(a.shift ? { prev: rule(['T', a.width]), state: rule([1, a.width], 'read_write') } : {}),
  }),
  reference(a, inputs, step): Arrays {
    norm.check(a);
    const n = step.T * a.width;
    const x = f32(inputs, 'x');
    const w = a.norm.kind === 'l2' ? undefined : f32(inputs, 'w');
    const b = normHasBias(a) ? f32(inputs, 'b') : undefined;
    if (x.length < n) throw new Error(`norm: x has ${x.length} elements, the step needs ${n}`);
    const params = normParamWidth(a);
    if ((w && w.length < params) || (b && b.length < params))
      throw new Error(`norm: w/b need ${params} elements`);
    const out = new Float32Array(n);
    // A phased norm's encoding step: x times the weight, no normalisation.
    if (a.phased && !((step.keys ?? 0) > 0)) {
      const unit = a.norm.kind !== 'l2' && a.norm.unitOffset;
      for (let i = 0; i < n; i++) {
        const c = i % a.group;
        out[i] = x[i] * (unit ? 1 + w![c] : w![c]);
      }
      return { out };
    }
    for (let t = 0; t < step.T; t++) {
      const off = t * a.width;
      normalizeRow(a.norm, x, off, a.width, a.group, w, b, out, off, a.perChannel ?? false);
    }
    if (a.residual) {
      const r = f32(inputs, 'residual');
      if (r.length < n) throw new Error(`norm: residual has ${r.length} elements, needs ${n}`);
      for (let i = 0; i < n; i++) out[i] = r[i] + out[i];
    }
    if (a.shift) {
      // The token shift of out, as token_shift computes it (src/ops/token-shift.ts).
      const shifted = tokenShift.reference(
        { op: 'token_shift', width: a.width },
        { x: out, state: f32(inputs, 'state') },
        step,
      );
      return { out, prev: shifted.out, state: shifted.state };
    }
    return { out };
  },
  cost(a: NormAttrs, step: StepShape): Cost {
    const n = step.T * a.width;
    // rms: square-accumulate + scale-multiply per element; layer adds the mean and the centring.
    const perElem = (a.norm.kind === 'layer' ? (a.norm.bias ? 7 : 6) : 4) + (a.residual ? 1 : 0);
    const params = a.norm.kind === 'l2' ? 0 : normParamWidth(a) * 4 * (normHasBias(a) ? 2 : 1);
    const read = n * 4 * (a.residual ? 2 : 1);
    return { flops: n * perElem, bytesRead: read + params, bytesWritten: n * 4 };
  },
};

/** Elements of gated_norm's w: one group's with groupWeight, else the whole row's. */
export function gatedNormWeightWidth(a: GatedNormAttrs): number {
  return a.groupWeight ? a.group : a.width;
}

function checkGatedNormAttrs(a: GatedNormAttrs): void {
  if (!Number.isInteger(a.group) || a.group < 1)
    throw new Error(`gated_norm: group must be a positive integer, got ${a.group}`);
  if (!Number.isInteger(a.width) || a.width % a.group !== 0)
    throw new Error(`gated_norm: width ${a.width} is not a multiple of group ${a.group}`);
}

/**
 * HF MambaRMSNormGated with group_size (norm_before_gate=False): v = x · silu(z), each group
 * of `group` elements scaled by 1/sqrt(mean(v²) + eps), times w (one weight per element of
 * the row, or per group element with groupWeight). normBeforeGate: v = x, and the result times
 * silu(z) (FalconH1RMSNormGated's norm_before_gate=True). f64 accumulation.
 */
export const gatedNorm: OpDefinition<GatedNormAttrs> = {
  check: checkGatedNormAttrs,
  inputs: (a) => ({
    x: rule(['T', a.width]),
    z: rule(['T', a.width]),
    w: rule([gatedNormWeightWidth(a)]),
  }),
  outputs: (a) => ({ out: rule(['T', a.width]) }),
  reference(a, inputs, step) {
    gatedNorm.check(a);
    const n = step.T * a.width;
    const x = f32(inputs, 'x');
    const z = f32(inputs, 'z');
    const w = f32(inputs, 'w');
    if (x.length < n || z.length < n)
      throw new Error(`gated_norm: x and z need ${n} elements, have ${x.length} and ${z.length}`);
    const wn = gatedNormWeightWidth(a);
    if (w.length < wn) throw new Error(`gated_norm: w needs ${wn} elements`);
    const out = new Float32Array(n);
    const v = new Float64Array(a.group);
    for (let g0 = 0; g0 < n; g0 += a.group) {
      let ss = 0;
      for (let i = 0; i < a.group; i++) {
        v[i] = a.normBeforeGate ? x[g0 + i] : x[g0 + i] * activate('silu', z[g0 + i]);
        ss += v[i] * v[i];
      }
      const inv = 1 / Math.sqrt(ss / a.group + a.eps);
      const col = a.groupWeight ? 0 : g0 % a.width;
      for (let i = 0; i < a.group; i++) {
        const gate = a.normBeforeGate ? activate('silu', z[g0 + i]) : 1;
        out[g0 + i] = v[i] * inv * w[col + i] * gate;
      }
    }
    return { out };
  },
  cost(a: GatedNormAttrs, step: StepShape): Cost {
    const n = step.T * a.width;
    // silu (~4) and the gate product, square-accumulate, two scale products.
    return { flops: n * 9, bytesRead: 8 * n + 4 * gatedNormWeightWidth(a), bytesWritten: 4 * n };
  },
};
