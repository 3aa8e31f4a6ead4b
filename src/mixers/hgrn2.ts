/**
 * `hgrn2(...)`: HGRN2 (Qin et al. 2024), as fla's HGRN2Attention computes it
 * (fla/layers/hgrn2.py). Per token, with x the normed input and per key channel:
 *   q = swish(x W_q),  f = x W_f,  v = x W_i          (optional short conv, no activation, on each
 *                                                       projection first)
 *   g = logsigmoid(f), or in layers > 0 with a lower bound lb (0 < lb < 1):
 *       g = logaddexp(log lb, log1p(−lb) + logsigmoid(f))     (the forget gate is at least lb)
 *   k = 1 − exp(g)                                      (input gate tied to the forget gate)
 *   S_h ← diag(exp g) S_h + k vᵀ,  o = S_hᵀ (q · key_head_dim^-0.5)      (GLA's recurrence)
 *   out = o_proj(rmsnorm(o))                           (one RMSNorm over all value channels)
 * The lower bound: fla keeps one model-level parameter lower_bounds [layers, hidden] and gives
 * layer i row i of cumsum(softmax(lower_bounds, over layers)) − softmax[0] (so layer 0 gets 0,
 * and fla skips it there). strata keeps the derived value itself as a per-layer parameter,
 * `<layer>.attn.lower_bound` [key width]: the fla importer reads it out of lower_bounds with a
 * stored slice whose post-step is that cumulative softmax (src/import/convert.ts), and a spec's
 * random weights draw it in (0, 1) directly. Nothing is lost for inference: lower_bounds enters
 * the forward pass only through those rows.
 * fla's sizes: heads = hidden / expand_ratio, key head = expand_ratio, value head = hidden / heads.
 */
import type { GraphBuilder } from '../graph/builder.ts';
import { columns, linear, pointwiseOp } from '../graph/blocks/common.ts';
import { layerPrefix } from '../import/names.ts';
import { defineKind, opt } from '../spec/kind.ts';
import type { ModelIR } from '../spec/model.ts';
import { bool, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { bool as boolValue, int, orNone, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';
import {
  add,
  bin,
  constant,
  featureMap,
  flaMixerSublayer,
  fn,
  outputNorm,
  projection,
  recurrence,
  ref,
  sub,
} from './parts.ts';

export interface Hgrn2Spec {
  kind: 'hgrn2';
  heads: number;
  /** Forget-gate (key) channels per head: fla's expand_ratio. */
  keyHeadDim: number;
  /** Input (value) channels per head: fla's hidden / heads. */
  valueHeadDim: number;
  /** Kernel of the short convolutions (no activation) on q, f and i; null: none. */
  dConv: number | null;
  /** Layers after the first bound the forget gate from below (fla's use_lower_bound). */
  lowerBound: boolean;
  /** Epsilon of the output RMSNorm. */
  normEps: number;
}

/** The canonical name of layer i's lower bound [heads · keyHeadDim]. */
export const lowerBoundName = (i: number): string => `${layerPrefix(i)}.attn.lower_bound`;

function lowerHgrn2(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  s: Hgrn2Spec,
  input: number,
): number {
  const key = s.heads * s.keyHeadDim;
  const value = s.heads * s.valueHeadDim;
  return flaMixerSublayer(b, model, x, input, i, 'hgrn2', (h, at) => {
    const L = at.label;
    const conv = s.dConv === null ? null : { kernel: s.dConv, silu: false };
    const q = featureMap(b, projection(b, model, h, at, 'q', key, conv), key, 'silu', `${L}.q_map`);
    const f = projection(b, model, h, at, 'f', key, conv);
    const v = projection(b, model, h, at, 'i', value, conv);
    const forget = fn('logsigmoid', ref('f'));
    // fla applies the bound from the second layer on (`layer_idx > 0`), where it is above 0.
    const g =
      s.lowerBound && i > 0
        ? pointwiseOp(
            b,
            `${L}.gate`,
            key,
            {
              f: [f, columns(key)],
              lb: [b.param(lowerBoundName(i), [key]), columns(key, false)],
            },
            bin('logaddexp', fn('log', ref('lb')), add(fn('log1p', fn('neg', ref('lb'))), forget)),
          )
        : pointwiseOp(b, `${L}.gate`, key, { f: [f, columns(key)] }, forget);
    const k = pointwiseOp(
      b,
      `${L}.k`,
      key,
      { g: [g, columns(key)] },
      sub(constant(1), fn('exp', ref('g'))),
    );
    const spec = {
      heads: s.heads,
      keyDim: s.keyHeadDim,
      valueDim: s.valueHeadDim,
      decay: 'key',
      update: 'add',
    } as const;
    const o = recurrence(b, spec, { q, k, v, g }, `hgrn2.${i}`, L);
    const normed = outputNorm(
      b,
      o,
      { weight: `${at.prefix}.g_norm.weight`, width: value, headDim: value, eps: s.normEps },
      L,
    );
    return linear(b, normed, `${at.prefix}.o_proj`, model.dim, value, false, `${L}.out`);
  });
}

export const hgrn2Mixer = defineMixer<Hgrn2Spec>({
  kind: defineKind({
    name: 'hgrn2',
    params: {
      heads: opt(int(1)),
      key_head_dim: opt(int(1)),
      value_head_dim: opt(int(1)),
      d_conv: opt(orNone(int(2))),
      lower_bound: opt(boolValue),
      norm_eps: opt(positive),
    },
    build: (a, ctx, fail): Hgrn2Spec => {
      // HGRN2Config: expand_ratio 128 unless num_heads is given; hidden splits over the heads.
      const keyHeadDim = a.key_head_dim ?? (a.heads === undefined ? 128 : ctx.dim / a.heads);
      const heads = a.heads ?? ctx.dim / keyHeadDim;
      if (!Number.isInteger(heads) || !Number.isInteger(keyHeadDim)) {
        fail(
          `dim ${ctx.dim} does not split into heads of key_head_dim; give heads and key_head_dim`,
        );
      }
      const valueHeadDim = a.value_head_dim ?? ctx.dim / heads;
      if (!Number.isInteger(valueHeadDim)) {
        fail(`dim ${ctx.dim} is not a multiple of heads ${heads}; give value_head_dim`);
      }
      return {
        kind: 'hgrn2',
        heads,
        keyHeadDim,
        valueHeadDim,
        dConv: a.d_conv ?? null,
        lowerBound: a.lower_bound ?? true,
        normEps: a.norm_eps ?? 1e-6,
      };
    },
    // Null for other mixer kinds: the printer asks every kind of the family.
    toArgs: (s) =>
      s.kind !== 'hgrn2'
        ? null
        : [
            { name: 'heads', value: s.heads },
            { name: 'key_head_dim', value: s.keyHeadDim },
            { name: 'value_head_dim', value: s.valueHeadDim },
            { name: 'd_conv', value: s.dConv },
            { name: 'lower_bound', value: s.lowerBound },
            { name: 'norm_eps', value: s.normEps },
          ],
  }),
  schema: object({
    kind: kind('hgrn2'),
    heads: posInt,
    keyHeadDim: posInt,
    valueHeadDim: posInt,
    dConv: { type: ['integer', 'null'], minimum: 2 },
    lowerBound: bool,
    normEps: posNumber,
  }),
  dims: (s) =>
    `heads ${s.heads}, key_head_dim ${s.keyHeadDim}, value_head_dim ${s.valueHeadDim}` +
    (s.dConv === null ? '' : `, d_conv ${s.dConv}`) +
    (s.lowerBound ? ', lower bound' : ''),
  lower: lowerHgrn2,
  // A lower bound lies in (0, 1); near 1 the gate could not forget at all.
  init: { '.attn.lower_bound': [0.05, 0.5] },
});
