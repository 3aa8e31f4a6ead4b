/**
 * Lowering of a mixture-of-experts FFN sublayer:
 *   h = norm(x); logits = h·W_routerᵀ (+ b); (ids, weights) = route(logits)
 *   prefill: (counts, offsets, order) = group(ids)       decode: one token needs no schedule
 *   a = experts_up(h, ids) [T·k, H]; y = experts_down(a, ids) [T·k, dim]
 *   shared experts (a dense MLP on h, optionally × sigmoid(h·w_gate)) lower to ordinary ops
 *   out = x + residualScale·(Σ_j weights[t, j]·y[t·k + j] + shared)
 * Each projection's experts live in one [experts, rows, cols] parameter concatenated from the
 * canonical per-expert weights, gate rows before up rows (the matmul family's gated layout).
 *
 * Gemma 4 (DiffusionGemma) adds three settings, each lowered to ops that exist: the router's own
 * input norm (router.inputScale: a weightless RMS norm whose weight is the learned scale folded
 * with dim^−½), per-expert output scales (router.expertScale: a moe_route input), and branch
 * norms (branchNorms: the experts read pre₂(x), the shared MLP the FFN norm's h; each branch is
 * post-normed, summed, and the sum takes the post-FFN norm before the residual add).
 */
import type { GraphBuilder } from '../builder.ts';
import type { ParamSource } from '../ir.ts';
import type { MlpSpec, ModelIR, MoeSpec } from '../../spec/model.ts';
import {
  layerPrefix,
  linearTensors,
  mlpProjections,
  mlpWeightNames,
  normTensors,
  normWeightNames,
  postNormNames,
  weightOf,
  biasOf,
  type MlpWeightNames,
  type NormWeightNames,
  type TensorSpec,
} from '../../import/names.ts';
import { linear, preNorm, residualAdd, scaledParam, sublayerResidual } from './common.ts';

/**
 * MoE FFN tensors under `mlp` (HF Qwen2/3-MoE naming, which transformers 5 also uses for Mixtral):
 * the router is `gate`, routed expert e is `experts.{e}.{gate,up,down}_proj`, the shared experts
 * are one MLP `shared_expert` with its sigmoid gate `shared_expert_gate` [1, dim].
 */
export function moeNames(i: number) {
  const p = `${layerPrefix(i)}.mlp`;
  return {
    norm: `${layerPrefix(i)}.post_attention_layernorm`,
    router: `${p}.gate`,
    /** DeepSeek-V3's selection-only bias (a buffer of its router). */
    correctionBias: `${p}.gate.e_score_correction_bias`,
    /** Gemma 4's router input scale [dim] and per-expert output scales [experts]. */
    routerScale: `${p}.gate.scale`,
    expertScale: `${p}.gate.per_expert_scale`,
    /** Gemma 4's branch norms (MoeSpec.branchNorms): the experts' pre- and post-norm, the dense MLP's post-norm. */
    expertsNorm: `${layerPrefix(i)}.pre_feedforward_layernorm_2`,
    expertsPostNorm: `${layerPrefix(i)}.post_feedforward_layernorm_2`,
    sharedPostNorm: `${layerPrefix(i)}.post_feedforward_layernorm_1`,
    expert: (e: number) => ({
      gate: `${p}.experts.${e}.gate_proj`,
      up: `${p}.experts.${e}.up_proj`,
      down: `${p}.experts.${e}.down_proj`,
    }),
    shared: {
      gate: `${p}.shared_expert.gate_proj`,
      up: `${p}.shared_expert.up_proj`,
      down: `${p}.shared_expert.down_proj`,
    },
    sharedGate: `${p}.shared_expert_gate`,
  };
}

/** The tensors of layer i's MoE FFN (src/import/names.ts layerTensors lists them). */
export function moeTensors(model: ModelIR, i: number, f: MoeSpec): TensorSpec[] {
  const n = moeNames(i);
  const out = [
    ...normTensors(model, n.norm, model.dim),
    ...linearTensors(n.router, f.experts, model.dim, f.router.bias),
  ];
  if (f.router.correctionBias) out.push({ name: n.correctionBias, shape: [f.experts] });
  if (f.router.inputScale) out.push({ name: n.routerScale, shape: [model.dim] });
  if (f.router.expertScale) out.push({ name: n.expertScale, shape: [f.experts] });
  if (f.branchNorms)
    for (const norm of [n.expertsNorm, n.expertsPostNorm, n.sharedPostNorm])
      out.push(...normTensors(model, norm, model.dim));
  for (let e = 0; e < f.experts; e++) out.push(...mlpProjections(model, n.expert(e), f.expert));
  if (f.shared) out.push(...mlpProjections(model, n.shared, f.shared));
  if (f.sharedGate) out.push({ name: `${n.sharedGate}.weight`, shape: [1, model.dim] });
  return out;
}

export interface MoeWeightNames {
  norm: NormWeightNames;
  router: string;
  routerBias: string | null;
  correctionBias: string | null;
  /** One entry per routed expert. */
  experts: MlpWeightNames[];
  shared: MlpWeightNames | null;
  sharedGate: string | null;
}

/** Full names of layer i's MoE tensors (src/import/names.ts layerWeightNames). */
export function moeWeightNames(model: ModelIR, i: number, f: MoeSpec): MoeWeightNames {
  const m = moeNames(i);
  return {
    norm: normWeightNames(model, m.norm),
    router: weightOf(m.router),
    routerBias: biasOf(m.router, f.router.bias),
    correctionBias: f.router.correctionBias ? m.correctionBias : null,
    experts: Array.from({ length: f.experts }, (_, e) => mlpWeightNames(m.expert(e), f.expert)),
    shared: f.shared ? mlpWeightNames(m.shared, f.shared) : null,
    sharedGate: f.sharedGate ? weightOf(m.sharedGate) : null,
  };
}

/** The state tensor holding layer i's per-expert token counts (read by `strata run --stats`). */
export const moeLoadState = (i: number): string => `moe.load.${i}`;

const weight = (name: string): ParamSource => ({ kind: 'weight', name });

/**
 * A dense MLP on h without norm or residual: the shared experts (and DiffusionGemma's
 * self-conditioning MLP).
 */
export function sharedMlp(
  b: GraphBuilder,
  h: number,
  names: { gate: string; up: string; down: string },
  s: MlpSpec,
  dim: number,
  label: string,
): number {
  const up = linear(b, h, names.up, s.hidden, dim, s.bias, `${label}.up`);
  let a: number;
  if (s.gated) {
    const gate = linear(b, h, names.gate, s.hidden, dim, s.bias, `${label}.gate`);
    a = b.op(
      { op: 'glu', act: s.act, width: s.hidden },
      `${label} ${s.act}-glu`,
      { gate, up },
      { out: { name: `${label}.glu`, shape: ['T', s.hidden] } },
    ).out;
  } else {
    a = b.op(
      { op: 'act', act: s.act, width: s.hidden },
      `${label} ${s.act}`,
      { x: up },
      { out: { name: `${label}.act`, shape: ['T', s.hidden] } },
    ).out;
  }
  return linear(b, a, names.down, dim, s.hidden, s.bias, `${label}.down`);
}

/**
 * The experts of the routed shape the shared expert makes when its hidden columns are cut into
 * blocks of the experts' hidden size H (1 for Qwen3-Next and DeepSeek-V3, whose shared expert is
 * as wide as an expert; 4 for Qwen2-MoE's 5632 = 4 × 1408), or 0 when it has another gating,
 * activation, bias, scale or width, or the experts are clamped. Those experts are stored after
 * the routed ones in each projection's weights (MoeMatmulAttrs.sharedExperts) so decode can run
 * the shared expert as m more pairs per token (src/passes/fuse-moe.ts) from the very weights
 * prefill reads. A biased down projection would add its bias m times, so m > 1 needs none.
 */
export function sharedExpertParts(f: MoeSpec): number {
  const s = f.shared;
  const ex = f.expert;
  if (!s || f.clamp || s.tokenShift || ex.tokenShift) return 0;
  if (s.gated !== ex.gated || s.act !== ex.act || s.bias !== ex.bias) return 0;
  if ((s.gateScale ?? 1) !== (ex.gateScale ?? 1) || (s.downScale ?? 1) !== (ex.downScale ?? 1))
    return 0;
  const m = s.hidden / ex.hidden;
  return Number.isInteger(m) && m >= 1 && !(m > 1 && s.bias) ? m : 0;
}

export function lowerMoe(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  f: MoeSpec,
): number {
  const n = moeNames(i);
  const L = `l${i}.moe`;
  const E = f.experts;
  const K = f.topK;
  const D = model.dim;
  const ex = f.expert;
  const H = ex.hidden;
  const h = preNorm(b, model, x, n.norm, L);
  // The experts' input: their own pre-norm with branch norms, else the FFN's.
  const hx = f.branchNorms ? preNorm(b, model, x, n.expertsNorm, `${L}.experts`) : h;
  // Gemma 4's router input: rms(x)·scale·dim^−½, one RMS norm whose weight is the folded product.
  const routerIn = f.router.inputScale
    ? b.op(
        {
          op: 'norm',
          norm: { kind: 'rms', eps: model.norm.eps, unitOffset: false, bias: false },
          width: D,
          group: D,
          residual: false,
        },
        `${L}.router norm`,
        {
          x,
          w: scaledParam(b, n.routerScale, [D], b.weight(n.routerScale, [D]), D ** -0.5),
        },
        { out: { name: `${L}.router.norm`, shape: ['T', D] } },
      ).out
    : h;

  const logits = linear(b, routerIn, n.router, E, D, f.router.bias, `${L}.router`);
  const load = b.tensor(moeLoadState(i), [E], 'state', 'u32');
  const routeIn: Record<string, number> = { logits, load };
  if (f.router.correctionBias) routeIn.bias = b.param(n.correctionBias, [E]);
  if (f.router.expertScale) routeIn.expertScale = b.param(n.expertScale, [E]);
  const r = f.router;
  const routed = b.op(
    {
      op: 'moe_route',
      experts: E,
      topK: K,
      scoring: r.scoring,
      normalize: r.normalize,
      scale: r.scale,
      correctionBias: r.correctionBias,
      groups: r.groups,
      topkGroups: r.topkGroups,
      ...(r.expertScale ? { expertScale: true } : {}),
    },
    `${L} route`,
    routeIn,
    {
      ids: { name: `${L}.ids`, shape: ['T', K], dtype: 'u32' },
      weights: { name: `${L}.weights`, shape: ['T', K] },
      load,
    },
  );

  // Prefill groups the pairs so each expert's weight tiles serve all its tokens; a decode step's
  // k pairs are k different experts, each read once without a schedule.
  const grouped = b.maxT > 1;
  const schedule: Record<string, number> = {};
  if (grouped) {
    const g = b.op(
      { op: 'moe_group', experts: E, topK: K },
      `${L} group`,
      { ids: routed.ids },
      {
        counts: { name: `${L}.counts`, shape: [E], dtype: 'u32' },
        offsets: { name: `${L}.offsets`, shape: [E + 1], dtype: 'u32' },
        order: { name: `${L}.order`, shape: ['T', K], dtype: 'u32' },
      },
    );
    schedule.offsets = g.offsets;
    schedule.order = g.order;
  }

  const experts = Array.from({ length: E }, (_, e) => n.expert(e));
  const upRows = ex.gated ? 2 * H : H;
  const upParts = experts.flatMap((p) => (ex.gated ? [p.gate, p.up] : [p.up]));
  // The shared expert's m parts after the routed experts: part c is its hidden columns
  // cH..(c+1)H, rows of gate and up, columns of down's rows (each row as m heads of H).
  const m = sharedExpertParts(f);
  const hiddenRows = (name: string, c: number, cols: number): ParamSource => ({
    kind: 'rows',
    of: weight(name),
    start: c * H,
    count: H,
    cols,
  });
  const sharedUp = (suffix: 'weight' | 'bias', cols: number): ParamSource[] =>
    Array.from({ length: m }, (_, c) =>
      (ex.gated ? [n.shared.gate, n.shared.up] : [n.shared.up]).map((p) =>
        hiddenRows(`${p}.${suffix}`, c, cols),
      ),
    ).flat();
  const sharedDown = (suffix: 'weight' | 'bias'): ParamSource[] =>
    Array.from({ length: m }, (_, c) =>
      suffix === 'bias' || m === 1
        ? weight(`${n.shared.down}.${suffix}`)
        : {
            kind: 'head_rows' as const,
            of: weight(`${n.shared.down}.${suffix}`),
            heads: D,
            headRows: m,
            ranges: [{ start: c, count: 1 }],
            cols: H,
          },
    );
  const prefix = `${layerPrefix(i)}.mlp.experts`;
  const projection = (
    label: string,
    name: string,
    parts: string[],
    N: number,
    rows: number,
    cols: number,
    x: number,
    input: 'token' | 'pair',
    gated: boolean,
    shared: (suffix: 'weight' | 'bias', cols: number) => ParamSource[],
  ): number => {
    const inputs: Record<string, number> = {
      x,
      w: b.param(`${prefix}.${name}.weight`, [E + m, rows, cols], {
        kind: 'concat',
        parts: [...parts.map((p) => weight(`${p}.weight`)), ...shared('weight', cols)],
      }),
      ids: routed.ids,
      ...schedule,
    };
    if (ex.bias) {
      inputs.bias = b.param(`${prefix}.${name}.bias`, [E + m, rows], {
        kind: 'concat',
        parts: [...parts.map((p) => weight(`${p}.bias`)), ...shared('bias', 1)],
      });
    }
    return b.op(
      {
        op: 'moe_matmul',
        experts: E,
        topK: K,
        N,
        K: cols,
        input,
        gated,
        act: gated && f.clamp ? null : input === 'token' ? ex.act : null,
        clamp: gated ? f.clamp : null,
        bias: ex.bias,
        grouped,
        expertStart: 0,
        expertCount: E + m,
        ...(m > 0 ? { sharedExperts: m } : {}),
        // The precision pass (src/passes/precision.ts) narrows it.
        wType: 'f32',
      },
      `${L} ${label}`,
      inputs,
      { out: { name: `${L}.${label}`, shape: ['T', K, N] } },
    ).out;
  };
  const a = projection(
    ex.gated ? 'experts.gate_up' : 'experts.up',
    ex.gated ? 'gate_up_proj' : 'up_proj',
    upParts,
    H,
    upRows,
    D,
    hx,
    'token',
    ex.gated,
    sharedUp,
  );
  const y = projection(
    'experts.down',
    'down_proj',
    experts.map((p) => p.down),
    D,
    D,
    H,
    a,
    'pair',
    false,
    sharedDown,
  );

  if (f.branchNorms) return branchNormed(b, model, x, i, f, h, y, routed.weights);
  // With sandwich norms the post-norm comes between the expert sum and the residual add.
  const fuseResidual = !model.postNorms;
  const combineIn: Record<string, number> = { y, weights: routed.weights };
  if (fuseResidual) combineIn.residual = x;
  if (f.shared) {
    combineIn.shared = sharedMlp(b, h, n.shared, f.shared, D, `${L}.shared`);
    if (f.sharedGate)
      combineIn.sharedGate = linear(b, h, n.sharedGate, 1, D, false, `${L}.shared_gate`);
  }
  const out = b.op(
    {
      op: 'moe_combine',
      topK: K,
      width: D,
      residual: fuseResidual,
      // Unfused, sublayerResidual scales the sum instead.
      scale: fuseResidual ? model.residualScale : 1,
      shared: f.shared !== null,
      sharedGate: f.shared !== null && f.sharedGate,
    },
    `${L} combine`,
    combineIn,
    { out: { name: fuseResidual ? `${L}.res` : `${L}.out`, shape: ['T', D] } },
  ).out;
  return fuseResidual ? out : sublayerResidual(b, model, x, out, postNormNames(i).ffn, L);
}

/**
 * Gemma 4's FFN with branch norms: x + post(post₁(mlp(h)) + post₂(Σ_j w_j·y_j)), the dense MLP
 * being the MoE's shared experts on the FFN-normed h.
 */
function branchNormed(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  f: MoeSpec,
  h: number,
  y: number,
  weights: number,
): number {
  if (!f.shared || f.sharedGate || !model.postNorms)
    throw new Error(
      `layer ${i}: moe branchNorms needs shared experts without a gate and the model's post norms`,
    );
  const n = moeNames(i);
  const L = `l${i}.moe`;
  const D = model.dim;
  const experts = b.op(
    {
      op: 'moe_combine',
      topK: f.topK,
      width: D,
      residual: false,
      scale: 1,
      shared: false,
      sharedGate: false,
    },
    `${L} combine`,
    { y, weights },
    { out: { name: `${L}.out`, shape: ['T', D] } },
  ).out;
  const dense = sharedMlp(b, h, n.shared, f.shared, D, `${L}.shared`);
  const sum = residualAdd(
    b,
    preNorm(b, model, dense, n.sharedPostNorm, `${L}.shared.post`),
    preNorm(b, model, experts, n.expertsPostNorm, `${L}.experts.post`),
    D,
    `${L}.branches`,
  );
  return sublayerResidual(b, model, x, sum, postNormNames(i).ffn, L);
}
