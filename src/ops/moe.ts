/**
 * Mixture-of-experts ops (semantics in src/graph/ops.ts): the router (top-k ids and weights per
 * token), grouping of (token, k) pairs by expert, the grouped expert projections over the selected
 * pairs only, and the weighted combine back to token order. Ground truth for the WGSL kernels in
 * codegen/kernels/moe.ts and for the interpreter. Costs count only the active experts.
 */
import type {
  MoeCombineAttrs,
  MoeGroupAttrs,
  MoeMatmulAttrs,
  MoeRouteAttrs,
  StepShape,
} from '../graph/ops.ts';
import { dtypeBytes, weightTypeUnsupported } from '../graph/dtype.ts';
import { activate, normalizeRow, sigmoid } from './math.ts';
import { roundWeight } from './weight-storage.ts';
import {
  f32,
  indices,
  inPlace,
  rule,
  u32,
  type HostArray,
  type OpDefinition,
  type TensorRule,
} from './types.ts';

/** The DeepSeek-V3 normaliser's guard against an all-zero denominator. */
export const SIGMOID_NORM_EPS = 1e-20;

function positiveInt(v: number): boolean {
  return Number.isInteger(v) && v > 0;
}

/**
 * Indices of the k largest values, best first; equal values rank the lower index first, as
 * torch.topk on CPU does in deterministic mode (see MoeRouteAttrs in src/graph/ops.ts).
 */
export function topkIndices(values: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((p, q) => (values[q] > values[p] ? 1 : values[q] < values[p] ? -1 : p - q));
  return idx.slice(0, k);
}

/** One token's experts (best first) and weights from its router logits. */
export function routeToken(
  a: MoeRouteAttrs,
  logits: ArrayLike<number>,
  bias?: ArrayLike<number>,
  expertScale?: ArrayLike<number>,
): { ids: number[]; weights: number[] } {
  const r = routeUnscaled(a, logits, bias);
  if (!a.expertScale) return r;
  if (!expertScale) throw new Error('moe_route: expertScale set without its input');
  return { ids: r.ids, weights: r.weights.map((w, j) => w * expertScale[r.ids[j]]) };
}

function routeUnscaled(
  a: MoeRouteAttrs,
  logits: ArrayLike<number>,
  bias?: ArrayLike<number>,
): { ids: number[]; weights: number[] } {
  const E = a.experts;
  const l = Array.from({ length: E }, (_, i) => logits[i]);
  if (a.scoring === 'softmax') {
    const ids = topkIndices(l, a.topK);
    // Selection by logit: the first pick is the largest logit of all.
    const m = l[ids[0]];
    const num = ids.map((i) => Math.exp(l[i] - m));
    let den = 0;
    if (a.normalize) for (const v of num) den += v;
    else for (const v of l) den += Math.exp(v - m);
    return { ids, weights: num.map((v) => (v / den) * a.scale) };
  }
  const s = l.map(sigmoid);
  const rank = s.map((v, i) => v + (a.correctionBias && bias ? bias[i] : 0));
  if (a.groups > 1) {
    const size = E / a.groups;
    const groupScore = Array.from({ length: a.groups }, (_, g) => {
      const [b0, b1] = topkIndices(rank.slice(g * size, (g + 1) * size), 2);
      return rank[g * size + b0] + rank[g * size + b1];
    });
    const keep = new Set(topkIndices(groupScore, a.topkGroups));
    for (let i = 0; i < E; i++) if (!keep.has(Math.floor(i / size))) rank[i] = 0;
  }
  const ids = topkIndices(rank, a.topK);
  const w = ids.map((i) => s[i]);
  let den = 1;
  if (a.normalize) den = w.reduce((x, y) => x + y, 0) + SIGMOID_NORM_EPS;
  return { ids, weights: w.map((v) => (v / den) * a.scale) };
}

export const moeRoute: OpDefinition<MoeRouteAttrs> = {
  /** Attribute rules shared by the reference and the kernel generator. */
  check(a) {
    const pre = `moe_route experts=${a.experts} top_k=${a.topK}`;
    if (!positiveInt(a.experts) || !positiveInt(a.topK) || a.topK > a.experts) {
      throw new Error(`${pre}: experts and top_k must be positive integers with top_k <= experts`);
    }
    if (!(Number.isFinite(a.scale) && a.scale > 0))
      throw new Error(`${pre}: scale must be > 0, got ${a.scale}`);
    if (a.scoring === 'softmax' && (a.correctionBias || a.groups !== 1 || a.topkGroups !== 1)) {
      throw new Error(
        `${pre}: the correction bias and group-limited selection are defined for sigmoid scoring only`,
      );
    }
    if (!positiveInt(a.groups) || !positiveInt(a.topkGroups) || a.topkGroups > a.groups) {
      throw new Error(`${pre}: groups and topk_groups must be positive with topk_groups <= groups`);
    }
    if (a.groups > 1) {
      if (a.experts % a.groups !== 0)
        throw new Error(`${pre}: groups (${a.groups}) must divide experts`);
      // A group is scored by its two best experts, so it needs two.
      if (a.experts / a.groups < 2)
        throw new Error(`${pre}: each of the ${a.groups} groups needs at least 2 experts`);
      // The kernel keeps the chosen groups in one 32-bit mask.
      if (a.groups > 32) throw new Error(`${pre}: at most 32 expert groups are supported`);
      if (a.topK > (a.experts / a.groups) * a.topkGroups) {
        throw new Error(`${pre}: top_k exceeds the experts of the topk_groups eligible groups`);
      }
    }
  },
  /** load: routed tokens per expert over the sequence's life, counted in place. */
  inputs(a) {
    const r: Record<string, TensorRule> = { logits: rule(['T', a.experts]) };
    if (a.correctionBias) r.bias = rule([a.experts]);
    if (a.expertScale) r.expertScale = rule([a.experts]);
    r.load = inPlace([a.experts], 'u32');
    return r;
  },
  outputs: (a) => ({
    ids: indices(['T', a.topK]),
    weights: rule(['T', a.topK]),
    load: inPlace([a.experts], 'u32'),
  }),
  reference(a, inputs, step) {
    moeRoute.check(a);
    const E = a.experts;
    const K = a.topK;
    const logits = f32(inputs, 'logits');
    if (logits.length < step.T * E)
      throw new Error(`moe_route: logits has ${logits.length} elements, T x experts needs more`);
    const bias = a.correctionBias ? f32(inputs, 'bias') : undefined;
    const expertScale = a.expertScale ? f32(inputs, 'expertScale') : undefined;
    // Counts accumulate in place; the interpreter's state arrays are f32, the GPU's u32.
    const load: HostArray | undefined = inputs.load;
    if (!load || load.length < E) throw new Error(`moe_route: input 'load' needs ${E} elements`);
    const ids = new Uint32Array(step.T * K);
    const weights = new Float32Array(step.T * K);
    for (let t = 0; t < step.T; t++) {
      const r = routeToken(a, logits.subarray(t * E, (t + 1) * E), bias, expertScale);
      for (let j = 0; j < K; j++) {
        ids[t * K + j] = r.ids[j];
        weights[t * K + j] = r.weights[j];
        load[r.ids[j]] += 1;
      }
    }
    return { ids, weights, load };
  },
  cost: (a, { T }) => ({
    // k ranking passes over the experts plus the exponentials.
    flops: T * a.experts * (a.topK + 4),
    bytesRead:
      4 * (T * a.experts + (a.correctionBias ? a.experts : 0) + (a.expertScale ? a.experts : 0)),
    bytesWritten: 4 * (2 * T * a.topK + a.experts),
  }),
};

/** counts, offsets and order of the pairs as moe_group defines them. */
export function groupPairs(
  ids: ArrayLike<number>,
  pairs: number,
  experts: number,
): { counts: Uint32Array; offsets: Uint32Array; order: Uint32Array } {
  const counts = new Uint32Array(experts);
  for (let p = 0; p < pairs; p++) {
    const e = ids[p];
    if (!(e < experts)) throw new Error(`moe: pair ${p} names expert ${e} of ${experts}`);
    counts[e]++;
  }
  const offsets = new Uint32Array(experts + 1);
  for (let e = 0; e < experts; e++) offsets[e + 1] = offsets[e] + counts[e];
  const next = offsets.slice(0, experts);
  const order = new Uint32Array(pairs);
  for (let p = 0; p < pairs; p++) order[next[ids[p]]++] = p;
  return { counts, offsets, order };
}

export const moeGroup: OpDefinition<MoeGroupAttrs> = {
  check(a) {
    if (!positiveInt(a.experts) || !positiveInt(a.topK)) {
      throw new Error(`moe_group: experts and top_k must be positive integers`);
    }
  },
  inputs: (a) => ({ ids: indices(['T', a.topK]) }),
  outputs: (a) => ({
    counts: indices([a.experts]),
    offsets: indices([a.experts + 1]),
    order: indices(['T', a.topK]),
  }),
  reference(a, inputs, step) {
    const ids = u32(inputs, 'ids');
    const P = step.T * a.topK;
    if (ids.length < P) throw new Error(`moe_group: ids has ${ids.length} elements, needs ${P}`);
    return groupPairs(ids, P, a.experts);
  },
  cost: (a, { T }) => ({
    flops: 0,
    bytesRead: 4 * T * a.topK,
    bytesWritten: 4 * (2 * a.experts + 1 + T * a.topK),
  }),
};

/** The gated / activated value of one output column (shared with the kernels' epilogue). */
export function moeEpilogue(a: MoeMatmulAttrs, g: number, u: number): number {
  if (a.clamp) {
    const gc = Math.min(g, a.clamp.limit);
    const uc = Math.min(Math.max(u, -a.clamp.limit), a.clamp.limit);
    return gc * sigmoid(a.clamp.alpha * gc) * (uc + 1);
  }
  const v = a.act ? activate(a.act, g) : g;
  return a.gated ? v * u : v;
}

export const moeMatmul: OpDefinition<MoeMatmulAttrs> = {
  check(a) {
    const pre = `moe_matmul N=${a.N} K=${a.K}`;
    if (![a.N, a.K, a.experts, a.topK, a.expertCount].every(positiveInt))
      throw new Error(`${pre}: N, K, experts, top_k and expertCount must be positive integers`);
    if (!Number.isInteger(a.expertStart) || a.expertStart < 0) {
      throw new Error(`${pre}: expertStart must be a non-negative integer`);
    }
    if (a.expertStart + a.expertCount > a.experts + sharedCount(a)) {
      throw new Error(
        `${pre}: experts [${a.expertStart}, ${a.expertStart + a.expertCount}) exceed the ${a.experts} experts`,
      );
    }
    if (a.clamp) {
      if (!a.gated || a.act !== null)
        throw new Error(`${pre}: the clamped SwiGLU needs gated and act null`);
      if (!(a.clamp.limit > 0 && Number.isFinite(a.clamp.alpha)))
        throw new Error(`${pre}: clamp limit must be > 0 and alpha finite`);
    }
    if (a.gated && !a.act && !a.clamp) throw new Error(`${pre}: a gated projection needs act`);
    const narrow = weightTypeUnsupported(a.wType, a.K);
    if (narrow) throw new Error(`${pre}: wType ${narrow}`);
    checkInline(a, pre);
  },
  /**
   * A node holding experts after the first (expertStart > 0: a split projection's later parts)
   * also reads `out`, so the rows of the pairs the earlier parts computed survive. w has the
   * dtype wType; the reference reads it as f32 values and rounds them as that storage does.
   */
  inputs(a) {
    const wRows = a.gated ? 2 * a.N : a.N;
    const r: Record<string, TensorRule> = {
      x: rule(a.input === 'token' ? ['T', a.K] : ['T', moeSlots(a), a.K]),
    };
    if (a.prologue) {
      r.normW = rule([a.K]);
      if (a.prologue.kind === 'layer' && a.prologue.bias) r.normB = rule([a.K]);
    }
    r.w = rule([a.expertCount, wRows, a.K], 'read', a.wType);
    if (a.bias) r.bias = rule([a.expertCount, wRows]);
    if (a.route) {
      r.logits = rule(['T', a.experts]);
      if (a.route.correctionBias) r.routeBias = rule([a.experts]);
      if (a.route.expertScale) r.expertScale = rule([a.experts]);
      if (a.route.load) r.load = inPlace([a.experts], 'u32');
    } else r.ids = indices(['T', a.topK]);
    const c = a.combine;
    if (c) {
      r.weights = rule(['T', a.topK]);
      if (c.residual) r.residual = rule(['T', a.N]);
      if (c.shared && !a.sharedSlots) r.shared = rule(['T', a.N]);
      if (c.sharedGate) r.sharedGate = rule(['T', 1]);
      if (c.load) r.load = inPlace([a.experts], 'u32');
    }
    if (a.grouped) {
      r.offsets = indices([a.experts + 1]);
      r.order = indices(['T', a.topK]);
    }
    if (a.expertStart > 0) r.out = inPlace(moeOutShape(a));
    return r;
  },
  outputs: (a) => {
    const r: Record<string, TensorRule> = {
      out: rule(moeOutShape(a), a.expertStart > 0 ? 'read_write' : 'read'),
    };
    if (a.route) {
      r.ids = indices(['T', a.topK]);
      r.weights = rule(['T', a.topK]);
    }
    if (a.route?.load || a.combine?.load) r.load = inPlace([a.experts], 'u32');
    return r;
  },
  reference(a, inputs, step) {
    moeMatmul.check(a);
    const { N, K, topK } = a;
    const S = moeSlots(a);
    const P = step.T * S;
    const wRows = a.gated ? 2 * N : N;
    const xIn = f32(inputs, 'x');
    const wIn = f32(inputs, 'w');
    const xRows = a.input === 'token' ? step.T : P;
    if (xIn.length < xRows * K) throw new Error(`moe_matmul: x has ${xIn.length} elements`);
    const x = a.prologue ? normalizedRows(a.prologue, xIn, inputs, xRows, K) : xIn;
    const routed = a.route ? routeInline(a, inputs, step) : null;
    const ids = routed ? routed.ids : u32(inputs, 'ids');
    if (wIn.length < a.expertCount * wRows * K)
      throw new Error(
        `moe_matmul: w has ${wIn.length} elements, needs ${a.expertCount * wRows * K}`,
      );
    // Blocks run along K within one row, so rounding all experts' rows at once is per row.
    const w = roundWeight(a.wType, wIn.subarray(0, a.expertCount * wRows * K), K);
    if (ids.length < step.T * topK) throw new Error(`moe_matmul: ids has ${ids.length} elements`);
    const bias = a.bias ? f32(inputs, 'bias') : undefined;
    const prev = inputs.out;
    const out =
      prev instanceof Float32Array && !a.combine
        ? Float32Array.from(prev)
        : new Float32Array(P * N);
    if (out.length < P * N) throw new Error(`moe_matmul: out has ${out.length} elements`);
    for (let p = 0; p < P; p++) {
      const t = Math.floor(p / S);
      const j = p % S;
      // Slot topK + c of a folded shared expert is expert number experts + c.
      const e = j < topK ? ids[t * topK + j] : a.experts + j - topK;
      if (!(e < a.experts) && j < topK) throw new Error(`moe_matmul: pair ${p} names expert ${e}`);
      const local = e - a.expertStart;
      if (local < 0 || local >= a.expertCount) continue;
      const xOff = (a.input === 'token' ? t : p) * K;
      const wOff = local * wRows * K;
      for (let n = 0; n < N; n++) {
        let g = 0;
        let u = 0;
        const gRow = wOff + n * K;
        for (let k = 0; k < K; k++) g += x[xOff + k] * w[gRow + k];
        if (a.gated) {
          const uRow = wOff + (N + n) * K;
          for (let k = 0; k < K; k++) u += x[xOff + k] * w[uRow + k];
        }
        if (bias) {
          g += bias[local * wRows + n];
          if (a.gated) u += bias[local * wRows + N + n];
        }
        out[p * N + n] = moeEpilogue(a, g, u);
      }
    }
    if (a.combine) return combineInline(a, out, ids, inputs, step.T);
    if (routed) return { out, ...routed };
    return { out };
  },
  cost(a, { T }) {
    const wRows = a.gated ? 2 * a.N : a.N;
    // Only the selected pairs are computed. A node holding some of the routed experts sees, on
    // average, its share of the routed pairs, so the split nodes of one projection add up to the
    // whole; shared slots (sharedSlots) are computed for every token.
    const routed = routedCount(a);
    const sharedHere = a.expertCount - routed;
    const share = routed / a.experts;
    const P = T * a.topK * share + (a.sharedSlots ? T * sharedHere : 0);
    const touched =
      Math.min(routed, Math.ceil(T * a.topK * share)) + (a.sharedSlots ? sharedHere : 0);
    const xRows = a.input === 'token' ? T : P;
    // Routing: k ranking passes over the experts (the kernel's every workgroup repeats them, but
    // they read the logits from cache); combine: a multiply-add per pair and column.
    const inline = (a.route ? T * a.experts * (a.topK + 4) : 0) + (a.combine ? 2 * P * a.N : 0);
    return {
      flops: 2 * P * a.K * wRows + inline,
      bytesRead:
        dtypeBytes(a.wType, touched * wRows * a.K) +
        4 * (touched * wRows * (a.bias ? 1 : 0) + xRows * a.K + T * a.topK) +
        (a.grouped ? 4 * (a.experts + 1 + T * a.topK) : 0),
      bytesWritten: 4 * (a.combine ? T * a.N : P * a.N),
    };
  },
};

/**
 * Workgroup memory (bytes) of the decode kernel of a node with a norm prologue or inline routing
 * (codegen/kernels/moe-fused.ts) at workgroup size WG: the GEMV's reduction and, when it routes,
 * the experts' ranking values, the argmax tree (value, index), the picks and the group scores.
 * Here so the fusion pass can tell whether the kernel fits the device.
 */
export function routedWorkgroupBytes(a: MoeMatmulAttrs, WG: number): number {
  const gemv = WG * (a.gated ? 2 : 1);
  const route = a.route ? a.experts + 2 * WG + 2 * a.topK + a.route.groups + 1 : 0;
  return 4 * (gemv + route);
}

/** Pairs per token: topK, and one more for a folded shared expert. */
export function moeSlots(a: MoeMatmulAttrs): number {
  return a.topK + (a.sharedSlots ? sharedCount(a) : 0);
}

/** The routed experts among the node's [expertStart, expertStart + expertCount). */
export function routedCount(a: MoeMatmulAttrs): number {
  return Math.max(0, Math.min(a.expertStart + a.expertCount, a.experts) - a.expertStart);
}

/** The shared expert's parts stored after the routed experts (MoeMatmulAttrs.sharedExperts). */
export function sharedCount(a: MoeMatmulAttrs): number {
  return a.sharedExperts ?? 0;
}

/** out is [T, slots, N], or [T, N] once the combine is folded in. */
function moeOutShape(a: MoeMatmulAttrs): Array<'T' | number> {
  return a.combine ? ['T', a.N] : ['T', moeSlots(a), a.N];
}

function checkInline(a: MoeMatmulAttrs, pre: string): void {
  if (a.prologue && (a.input !== 'token' || a.prologue.kind === 'l2'))
    throw new Error(`${pre}: a norm prologue needs input 'token' and an rms or layer norm`);
  if (a.route) {
    if (a.input !== 'token' || a.grouped || a.expertStart !== 0)
      throw new Error(`${pre}: inline routing needs input 'token', no grouping and expert 0`);
    moeRoute.check({ op: 'moe_route', experts: a.experts, topK: a.topK, ...a.route });
  }
  const c = a.combine;
  if (c) {
    if (a.input !== 'pair' || a.grouped || a.gated || a.act || a.clamp)
      throw new Error(`${pre}: an inline combine needs input 'pair', no grouping and no gating`);
    if (c.sharedGate && !c.shared) throw new Error(`${pre}: sharedGate needs shared`);
    if (!Number.isFinite(c.scale)) throw new Error(`${pre}: combine scale must be finite`);
  }
  const m = sharedCount(a);
  if (!Number.isInteger(m) || m < 0)
    throw new Error(`${pre}: sharedExperts must be an integer >= 0`);
  if (a.sharedSlots && (m === 0 || a.grouped))
    throw new Error(`${pre}: a folded shared expert needs the ungrouped (decode) kernels`);
  if (a.sharedSlots && c && !c.shared)
    throw new Error(`${pre}: a folded shared expert needs combine.shared`);
}

/** x's rows normalised as the prologue says (a matmul's norm prologue). */
function normalizedRows(
  norm: NonNullable<MoeMatmulAttrs['prologue']>,
  x: Float32Array,
  inputs: Record<string, HostArray | undefined>,
  rows: number,
  K: number,
): Float32Array {
  const w = f32(inputs as Record<string, HostArray>, 'normW');
  const b =
    norm.kind === 'layer' && norm.bias
      ? f32(inputs as Record<string, HostArray>, 'normB')
      : undefined;
  const out = new Float32Array(rows * K);
  for (let t = 0; t < rows; t++) normalizeRow(norm, x, t * K, K, K, w, b, out, t * K);
  return out;
}

/** moe_route's reference on the node's logits (MoeInlineRoute). */
function routeInline(
  a: MoeMatmulAttrs,
  inputs: Record<string, HostArray>,
  step: StepShape,
): { ids: Uint32Array; weights: Float32Array; load?: HostArray } {
  const route = a.route!;
  const r = moeRoute.reference(
    { op: 'moe_route', experts: a.experts, topK: a.topK, ...route },
    {
      logits: inputs.logits,
      ...(route.correctionBias ? { bias: inputs.routeBias } : {}),
      ...(route.expertScale ? { expertScale: inputs.expertScale } : {}),
      // Without load the counts go to a scratch array nobody reads.
      load: route.load ? inputs.load : new Uint32Array(a.experts),
    },
    step,
  );
  const out = { ids: r.ids as Uint32Array, weights: r.weights as Float32Array };
  return route.load ? { ...out, load: r.load } : out;
}

/**
 * MoeInlineCombine on the node's pair products y [T·slots, N] (rows of other experts unused);
 * a folded shared expert's slot stands for the `shared` input.
 */
function combineInline(
  a: MoeMatmulAttrs,
  y: Float32Array,
  ids: ArrayLike<number>,
  inputs: Record<string, HostArray>,
  T: number,
): Record<string, HostArray> {
  const c = a.combine!;
  const { N, topK: KS } = a;
  const S = moeSlots(a);
  const weights = f32(inputs, 'weights');
  const res = c.residual ? f32(inputs, 'residual') : undefined;
  const shared = c.shared && !a.sharedSlots ? f32(inputs, 'shared') : undefined;
  const gate = c.sharedGate ? f32(inputs, 'sharedGate') : undefined;
  const prev = a.expertStart > 0 ? f32(inputs, 'out') : undefined;
  const mine = (e: number) => e >= a.expertStart && e < a.expertStart + a.expertCount;

  const out = new Float32Array(T * N);
  for (let t = 0; t < T; t++) {
    const g = gate ? sigmoid(gate[t]) : 1;
    for (let d = 0; d < N; d++) {
      let acc = 0;
      for (let j = 0; j < KS; j++)
        if (mine(ids[t * KS + j])) acc += weights[t * KS + j] * y[(t * S + j) * N + d];
      if (shared) acc += g * shared[t * N + d];
      for (let j = KS; j < S; j++) if (mine(a.experts + j - KS)) acc += g * y[(t * S + j) * N + d];
      acc *= c.scale;
      if (res) acc += res[t * N + d];
      out[t * N + d] = (prev ? prev[t * N + d] : 0) + acc;
    }
  }
  if (!c.load) return { out };
  const load = inputs.load;
  for (let p = 0; p < T * KS; p++) load[ids[p]] += 1;
  return { out, load };
}

export const moeCombine: OpDefinition<MoeCombineAttrs> = {
  check(a) {
    if (!positiveInt(a.topK) || !positiveInt(a.width)) {
      throw new Error(`moe_combine: top_k and width must be positive integers`);
    }
    if (a.sharedGate && !a.shared) throw new Error(`moe_combine: sharedGate needs shared`);
  },
  inputs(a) {
    const r: Record<string, TensorRule> = {
      y: rule(['T', a.topK, a.width]),
      weights: rule(['T', a.topK]),
    };
    if (a.residual) r.residual = rule(['T', a.width]);
    if (a.shared) r.shared = rule(['T', a.width]);
    if (a.sharedGate) r.sharedGate = rule(['T', 1]);
    return r;
  },
  outputs: (a) => ({ out: rule(['T', a.width]) }),
  reference(a, inputs, step) {
    const { topK: K, width: W } = a;
    const n = step.T * W;
    const y = f32(inputs, 'y');
    const weights = f32(inputs, 'weights');
    if (y.length < step.T * K * W) throw new Error(`moe_combine: y has ${y.length} elements`);
    const res = a.residual ? f32(inputs, 'residual') : undefined;
    const shared = a.shared ? f32(inputs, 'shared') : undefined;
    const gate = a.shared && a.sharedGate ? f32(inputs, 'sharedGate') : undefined;
    const out = new Float32Array(n);
    for (let t = 0; t < step.T; t++) {
      const g = gate ? sigmoid(gate[t]) : 1;
      for (let d = 0; d < W; d++) {
        let acc = 0;
        for (let j = 0; j < K; j++) acc += weights[t * K + j] * y[(t * K + j) * W + d];
        if (shared) acc += g * shared[t * W + d];
        acc *= a.scale;
        if (res) acc += res[t * W + d];
        out[t * W + d] = acc;
      }
    }
    return { out };
  },
  cost: (a, { T }) => {
    const rows = a.topK + (a.residual ? 1 : 0) + (a.shared ? 1 : 0);
    return {
      flops:
        T *
        a.width *
        (2 * a.topK + (a.shared ? 2 : 0) + (a.residual ? 1 : 0) + (a.scale !== 1 ? 1 : 0)),
      bytesRead: 4 * (T * a.width * rows + T * a.topK + (a.sharedGate ? T : 0)),
      bytesWritten: 4 * T * a.width,
    };
  },
};

/** Per-expert token counts as `strata run --stats` shows them. */
export interface ExpertLoad {
  counts: number[];
  total: number;
  /** Largest count over the mean count (1 is perfectly balanced). */
  maxOverMean: number;
}

export function expertLoad(counts: ArrayLike<number>): ExpertLoad {
  const c = Array.from(counts);
  const total = c.reduce((x, y) => x + y, 0);
  const mean = total / Math.max(1, c.length);
  return { counts: c, total, maxOverMean: mean > 0 ? Math.max(...c) / mean : 0 };
}
