/**
 * `rwkv7(...)`: RWKV-7's time mixing, as fla's RWKV7Attention computes it (fla/layers/rwkv7.py).
 * With x the normed rows and x′ each row's predecessor (token shift, carried across steps):
 *   x_c = x + (x′ − x)·μ_c for c in r, w, k, v, a, g
 *   r = r_proj(x_r), k = k_proj(x_k), v = v_proj(x_v)
 *   w = −e^(−0.5)·sigmoid(w_lora(x_w))          (log decay; w_lora: down, tanh, up with bias)
 *   a = sigmoid(a_lora(x_a)),  g = g_lora(x_g)   (a_lora: down, up with bias; g_lora: down,
 *                                                 sigmoid, up without bias)
 *   v = v + (v_first − v)·sigmoid(v_lora(x_v))  in every RWKV-7 layer but the first, whose v is
 *                                                 v_first (v_lora: down, up with bias)
 *   kk = l2norm(k·k_k) per head,  k = k·(1 + (a − 1)·k_a)
 *   S ← diag(e^w)·S + (kk·a)((−kk)ᵀS) + k vᵀ,  o = Sᵀr    (linear_recurrence, dplr, scale 1)
 *   y = (GroupNorm(o) + (Σ_d r·k·r_k per head)·v)·g,  out = o_proj(y)
 * GroupNorm is per head with eps head_dim·norm_eps and a weight and bias per channel.
 *
 * v_first crosses layers within one step: the first RWKV-7 layer of the model leaves its v on the
 * builder (GraphBuilder.carry) and every later RWKV-7 layer reads it back (carried), so the value
 * residual is an ordinary activation of the step graph, with no state and no model-level field.
 * "First" is the lowest layer index whose mixer is rwkv7 (layer 0 in fla, whose layer 0 builds the
 * same module without v_lora); that layer also applies fla's `pre_norm` to the residual stream
 * when norm_first is set (RWKV7Block's LayerNorm on the embeddings, weights `layers.0.pre_norm`).
 *
 * State per layer: the token-shift row `rwkv7.shift.{i}` [1, dim] and the recurrence
 * `rwkv7.{i}` [heads, head_dim, value_head_dim]. Weights keep fla's names under
 * `model.layers.{i}.attn` (x_r … x_g and r_k are stored [1, 1, dim] and [heads, head_dim]).
 */
import { defineMixer } from './define.ts';
import { defineKind, opt } from '../spec/kind.ts';
import { bool, int, positive } from '../spec/values.ts';
import { bool as boolSchema, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import type { ModelIR } from '../spec/model.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import type { PointwiseExpr, PointwiseInput } from '../graph/ops.ts';
import { layerPrefix } from '../import/names.ts';
import { columns, linear, pointwiseOp, preNorm, tokenShiftMixes } from '../graph/blocks/common.ts';
import {
  add,
  constant,
  flaMixerSublayer,
  fn,
  headL2Norm,
  mul,
  perHead,
  recurrence,
  ref,
  sub,
  type MixerSite,
} from './parts.ts';

export interface Rwkv7Spec {
  kind: 'rwkv7';
  heads: number;
  /** Key (and receptance) width per head; keys are heads·headDim wide (fla: hidden_size). */
  headDim: number;
  /** Value width per head (fla: value_dim / heads). */
  valueHeadDim: number;
  /** Low-rank widths of the decay, in-context-rate, value-residual and gate paths. */
  decayRank: number;
  aRank: number;
  vRank: number;
  gateRank: number;
  /** The output GroupNorm's eps is headDim · normEps (fla's RWKV7Attention). */
  normEps: number;
  /**
   * eps of kk's l2 norm, x·rsqrt(Σx² + eps): 1e-6 for fla's fused l2_norm (fuse_norm true); a
   * config with fuse_norm false uses F.normalize, x / max(‖x‖, 1e-12), which eps 1e-24 matches.
   */
  kkEps: number;
  /** The first RWKV-7 layer layer-norms the residual stream before its own pre-norm (pre_norm). */
  normFirst: boolean;
}

/** The carried activation of the first RWKV-7 layer's values (see the file comment). */
const V_FIRST = 'rwkv7.v_first';

/** e^(−0.5): fla's bound on the log decay, w = −e^(−0.5)·sigmoid(·) ∈ (−0.607, 0). */
const DECAY_SCALE = Math.exp(-0.5);

/** The layer whose values every later RWKV-7 layer mixes in (and that applies pre_norm). */
function firstRwkv7Layer(model: ModelIR): number {
  return model.layers.find((l) => l.mixer?.kind === 'rwkv7')?.index ?? -1;
}

/** A pointwise op's input: a tensor and how each output column reads it. */
type Read = [number, PointwiseInput];

/** The time mixing on the normed rows h, without the residual. */
function timeMix(b: GraphBuilder, model: ModelIR, h: number, at: MixerSite, s: Rwkv7Spec): number {
  const { layer: i, prefix: P, label: L } = at;
  const D = model.dim;
  const K = s.heads * s.headDim;
  const V = s.heads * s.valueHeadDim;
  const vec = (name: string, n: number) => b.param(`${P}.${name}`, [n]);
  const pw = (name: string, width: number, inputs: Record<string, Read>, expr: PointwiseExpr) =>
    pointwiseOp(b, `${L}.${name}`, width, inputs, expr);
  const row = (id: number, width: number): Read => [id, columns(width)];
  const param = (id: number, width: number): Read => [id, columns(width, false)];

  const shift = b.state(`rwkv7.shift.${i}`, [1, D]);
  const names = ['r', 'w', 'k', 'v', 'a', 'g'];
  const [xr, xw, xk, xv, xa, xg] = tokenShiftMixes(
    b,
    h,
    shift,
    D,
    names.map((c) => ({ name: c, mu: vec(`x_${c}`, D) })),
    L,
  );
  // fla's LoRA: Linear(dim → rank, no bias), an activation, Linear(rank → out, bias or not).
  const lora = (
    name: string,
    x: number,
    rank: number,
    out: number,
    act: 'tanh' | 'sigmoid' | null,
    bias: boolean,
  ) => {
    const down = linear(b, x, `${P}.${name}.lora.0`, rank, D, false, `${L}.${name}.down`);
    const mid = act ? pw(`${name}.${act}`, rank, { x: row(down, rank) }, fn(act, ref('x'))) : down;
    return linear(b, mid, `${P}.${name}.lora.2`, out, rank, bias, `${L}.${name}.up`);
  };

  const r = linear(b, xr!, `${P}.r_proj`, K, D, false, `${L}.r`);
  const k = linear(b, xk!, `${P}.k_proj`, K, D, false, `${L}.k`);
  let v = linear(b, xv!, `${P}.v_proj`, V, D, false, `${L}.v`);
  const w = pw(
    'decay',
    K,
    { x: row(lora('w_lora', xw!, s.decayRank, K, 'tanh', true), K) },
    mul(constant(-DECAY_SCALE), fn('sigmoid', ref('x'))),
  );
  if (i === firstRwkv7Layer(model)) {
    b.carry(V_FIRST, v);
  } else {
    const first = b.carried(V_FIRST, ['T', V]);
    const width = b.tensors[first]!.shape[1];
    if (width !== V) {
      throw new Error(`layer ${i}: rwkv7 values are ${V} wide, the first rwkv7 layer's ${width}`);
    }
    const mix = lora('v_lora', xv!, s.vRank, V, null, true);
    v = pw(
      'v_mix',
      V,
      { v: row(v, V), first: row(first, V), m: row(mix, V) },
      add(ref('v'), mul(sub(ref('first'), ref('v')), fn('sigmoid', ref('m')))),
    );
  }
  const a = pw(
    'a',
    K,
    { x: row(lora('a_lora', xa!, s.aRank, K, null, true), K) },
    fn('sigmoid', ref('x')),
  );
  const g = lora('g_lora', xg!, s.gateRank, V, 'sigmoid', false);

  const kScaled = pw(
    'kk_in',
    K,
    { k: row(k, K), k_k: param(vec('k_k', K), K) },
    mul(ref('k'), ref('k_k')),
  );
  const kk = headL2Norm(b, kScaled, K, s.headDim, s.kkEps, `${L}.kk`);
  // k·(1 + (a − 1)·k_a): the in-context learning rate's share of the key.
  const kNew = pw(
    'k_mix',
    K,
    { k: row(k, K), a: row(a, K), k_a: param(vec('k_a', K), K) },
    mul(ref('k'), add(constant(1), mul(sub(ref('a'), constant(1)), ref('k_a')))),
  );
  const dplrA = pw('dplr_a', K, { kk: row(kk, K), a: row(a, K) }, mul(ref('kk'), ref('a')));
  const dplrB = pw('dplr_b', K, { kk: row(kk, K) }, fn('neg', ref('kk')));

  const spec = {
    heads: s.heads,
    keyDim: s.headDim,
    valueDim: s.valueHeadDim,
    scale: 1,
    decay: 'key',
    update: 'dplr',
  } as const;
  const inputs = { q: r, k: kNew, v, g: w, a: dplrA, b: dplrB };
  const o = recurrence(b, spec, inputs, `rwkv7.${i}`, L);
  const normed = b.op(
    {
      op: 'norm',
      norm: { kind: 'layer', eps: s.headDim * s.normEps, unitOffset: false, bias: true },
      width: V,
      group: s.valueHeadDim,
      residual: false,
      perChannel: true,
    },
    `${L} group norm`,
    { x: o, w: b.param(`${P}.g_norm.weight`, [V]), b: b.param(`${P}.g_norm.bias`, [V]) },
    { out: { name: `${L}.gnorm`, shape: ['T', V] } },
  ).out;
  // The bonus: (Σ_d r·k·r_k) per head, times that head's v (fla's gate_output_correction).
  const rk = pw(
    'rk',
    K,
    { r: row(r, K), k: row(kNew, K), r_k: param(vec('r_k', K), K) },
    mul(mul(ref('r'), ref('k')), ref('r_k')),
  );
  const bonus = b.op(
    { op: 'group_sum', width: K, group: s.headDim },
    `${L} bonus`,
    { x: rk },
    { out: { name: `${L}.bonus`, shape: ['T', s.heads] } },
  ).out;
  const y = pw(
    'out',
    V,
    {
      o: row(normed, V),
      u: [bonus, perHead(s.heads, s.valueHeadDim)],
      v: row(v, V),
      g: row(g, V),
    },
    mul(add(ref('o'), mul(ref('u'), ref('v'))), ref('g')),
  );
  return linear(b, y, `${P}.o_proj`, D, V, false, `${L}.o_proj`);
}

export const rwkv7 = defineMixer<Rwkv7Spec>({
  kind: defineKind({
    name: 'rwkv7',
    params: {
      heads: opt(int(1)),
      head_dim: opt(int(1)),
      value_head_dim: opt(int(1)),
      decay_rank: opt(int(1)),
      a_rank: opt(int(1)),
      v_rank: opt(int(1)),
      gate_rank: opt(int(1)),
      norm_eps: opt(positive),
      kk_eps: opt(positive),
      norm_first: opt(bool),
    },
    // Defaults of fla's RWKV7Config; heads default to dim / head_dim (keys as wide as the model).
    build: (a, ctx, fail): Rwkv7Spec => {
      const headDim = a.head_dim ?? 64;
      if (a.heads === undefined && ctx.dim % headDim !== 0) {
        fail(
          `head_dim (${headDim}) must divide dim (${ctx.dim}) unless heads is given`,
          'head_dim',
        );
      }
      return {
        kind: 'rwkv7',
        heads: a.heads ?? ctx.dim / headDim,
        headDim,
        valueHeadDim: a.value_head_dim ?? headDim,
        decayRank: a.decay_rank ?? 64,
        aRank: a.a_rank ?? 64,
        vRank: a.v_rank ?? 16,
        gateRank: a.gate_rank ?? 128,
        normEps: a.norm_eps ?? 1e-5,
        kkEps: a.kk_eps ?? 1e-6,
        normFirst: a.norm_first ?? true,
      };
    },
    toArgs: (s) =>
      s.kind !== 'rwkv7'
        ? null
        : [
            { name: 'heads', value: s.heads },
            { name: 'head_dim', value: s.headDim },
            { name: 'value_head_dim', value: s.valueHeadDim },
            { name: 'decay_rank', value: s.decayRank },
            { name: 'a_rank', value: s.aRank },
            { name: 'v_rank', value: s.vRank },
            { name: 'gate_rank', value: s.gateRank },
            { name: 'norm_eps', value: s.normEps },
            { name: 'kk_eps', value: s.kkEps },
            { name: 'norm_first', value: s.normFirst },
          ],
  }),
  schema: object({
    kind: kind('rwkv7'),
    heads: posInt,
    headDim: posInt,
    valueHeadDim: posInt,
    decayRank: posInt,
    aRank: posInt,
    vRank: posInt,
    gateRank: posInt,
    normEps: posNumber,
    kkEps: posNumber,
    normFirst: boolSchema,
  }),
  dims: (s) =>
    `heads ${s.heads}, head_dim ${s.headDim}, value_head_dim ${s.valueHeadDim}, ` +
    `ranks w ${s.decayRank} a ${s.aRank} v ${s.vRank} g ${s.gateRank}`,
  lower(b, model, x, i, s, input) {
    let stream = x;
    let normedInput = input;
    if (s.normFirst && i === firstRwkv7Layer(model)) {
      if (input !== x) throw new Error(`layer ${i}: rwkv7's pre_norm cannot follow a shared block`);
      stream = preNorm(b, model, x, `${layerPrefix(i)}.pre_norm`, `l${i}.pre`);
      normedInput = stream;
    }
    return flaMixerSublayer(b, model, stream, normedInput, i, 'rwkv7', (h, at) =>
      timeMix(b, model, h, at, s),
    );
  },
  // The first RWKV-7 layer makes v_first (no v_lora) and, with normFirst, has pre_norm.
  variant: (model, i) => (i === firstRwkv7Layer(model) ? 'first' : 'later'),
  // Random weights of a trained model's sort: mixes between a row and its predecessor, kk's
  // scale near fla's 0.7, k_a near 1 and a small bonus.
  init: {
    '.attn.x_r': [0, 1],
    '.attn.x_w': [0, 1],
    '.attn.x_k': [0, 1],
    '.attn.x_v': [0, 1],
    '.attn.x_a': [0, 1],
    '.attn.x_g': [0, 1],
    '.attn.k_k': [0.6, 0.8],
    '.attn.k_a': [0.9, 1.1],
    '.attn.r_k': [-0.1, 0.1],
    '.mlp.x_k': [0, 1],
  },
});
