/**
 * `retnet(...)`: RetNet's multi-scale retention as fla's MultiScaleRetention computes it
 * (fla/layers/multiscale_retention.py, the retnet model type). Per layer:
 *   q = q_proj x, k = k_proj x, v = v_proj x      (kv heads repeated over groups of query heads)
 *   q, k ← RoPE (NeoX halves over the whole key head, base rope_theta, absolute positions, so
 *          decode continues where the cache left off)
 *   S_h ← γ_h S_h + k vᵀ,  o = S_hᵀ (q · key_head_dim^-0.5)   with γ_h = 1 − 2^−(decay_exponent + h)
 *   out = o_proj(rmsnorm_per_head(o) · act(g_proj x))         (without the gate: rmsnorm only)
 * The decays are fixed by the head index, not learnt: fla computes them from the head count in
 * every kernel call (ops/retention: log(1 − 2^(−5 − h))), and the checkpoint holds no tensor for
 * them. The lowering passes them to linear_recurrence ('fixed' decay) as a constant parameter
 * (ParamSource 'constant'), computed here in float32 as fla does.
 */
import { defineMixer } from './define.ts';
import {
  buildHeadLayout,
  HEAD_LAYOUT_PARAMS,
  HEAD_LAYOUT_SCHEMA,
  headLayoutArgs,
  flaMixerSublayer,
  headDims,
  headLayoutIssues,
  layoutRecurrence,
  outputNorm,
  projection,
  projectQkv,
  recurrence,
  type HeadLayout,
} from './parts.ts';
import { linear, ropeNode, ropeTableParams } from '../graph/blocks/common.ts';
import { defineKind, opt } from '../spec/kind.ts';
import type { Activation, RopeSpec } from '../spec/model.ts';
import { bool as boolSchema, kind, object, posNumber } from '../spec/schema-parts.ts';
import { bool, oneOf, positive } from '../spec/values.ts';

export interface RetNetSpec extends HeadLayout {
  kind: 'retnet';
  /** Head h keeps γ_h = 1 − 2^−(decayExponent + h) of its state per token (fla, the paper: 5). */
  decayExponent: number;
  /** RoPE base of the rotary embedding on q and k (fla: 10000, not configurable there). */
  ropeTheta: number;
  /** fla's use_output_gate: the normed output times act(g_proj x). */
  outputGate: boolean;
  /** The gate's activation (fla: the config's hidden_act; swish = silu). */
  gateAct: Activation;
  /** eps of the per-head output RMSNorm. */
  normEps: number;
}

/**
 * Gate activations (every strata activation; fla takes any ACT2FN name). Listed here rather than
 * imported from the ffn kinds, whose module imports the mixer table back.
 */
const GATE_ACTS: readonly Activation[] = ['silu', 'gelu', 'gelu_tanh', 'relu', 'relu2', 'sigmoid'];

/** log γ_h for every head, in float32 like fla's `(1 - 2 ** (-5 - h)).log()` on a float tensor. */
export function retnetLogDecays(s: Pick<RetNetSpec, 'heads' | 'decayExponent'>): number[] {
  const f = Math.fround;
  return Array.from({ length: s.heads }, (_, h) =>
    f(Math.log(f(1 - f(2 ** -(s.decayExponent + h))))),
  );
}

/** The canonical name of the output norm: fla's fused norm-and-gate module, or its plain g_norm. */
function normName(s: RetNetSpec): string {
  return s.outputGate ? 'g_norm_swish_gate' : 'g_norm';
}

const kindDef = defineKind({
  name: 'retnet',
  params: {
    ...HEAD_LAYOUT_PARAMS,
    decay_exponent: opt(positive),
    rope_theta: opt(positive),
    output_gate: opt(bool),
    gate_act: opt(oneOf('activation', GATE_ACTS)),
    norm_eps: opt(positive),
  },
  // Defaults: fla's RetNetConfig (8 heads, expand_k 1, expand_v 2, swish gate, norm_eps 1e-6).
  build: (a, ctx, fail): RetNetSpec => {
    return {
      kind: 'retnet',
      ...buildHeadLayout(a, ctx.dim, { heads: 8, expandK: 1, expandV: 2 }, fail),
      decayExponent: a.decay_exponent ?? 5,
      ropeTheta: a.rope_theta ?? 10000,
      outputGate: a.output_gate ?? true,
      gateAct: a.gate_act ?? 'silu',
      normEps: a.norm_eps ?? 1e-6,
    };
  },
  check: (s: RetNetSpec, n) => {
    const issues = headLayoutIssues(s, n);
    if (s.keyHeadDim % 2 !== 0) {
      issues.push({
        path: ['keyHeadDim'],
        message: `${n('keyHeadDim')} must be even (RoPE rotates pairs of it), got ${s.keyHeadDim}`,
      });
    }
    return issues;
  },
  toArgs: (s) =>
    s.kind !== 'retnet'
      ? null
      : [
          ...headLayoutArgs(s),
          { name: 'decay_exponent', value: s.decayExponent },
          { name: 'rope_theta', value: s.ropeTheta },
          { name: 'output_gate', value: s.outputGate },
          { name: 'gate_act', value: { name: s.gateAct } },
          { name: 'norm_eps', value: s.normEps },
        ],
});

export const retnet = defineMixer<RetNetSpec>({
  kind: kindDef,
  schema: object({
    kind: kind('retnet'),
    ...HEAD_LAYOUT_SCHEMA,
    decayExponent: posNumber,
    ropeTheta: posNumber,
    outputGate: boolSchema,
    gateAct: { enum: [...GATE_ACTS] },
    normEps: posNumber,
  }),
  dims: (s) =>
    `${headDims(s)}, decay 1 - 2^-(${s.decayExponent}+h)${s.outputGate ? `, gate ${s.gateAct}` : ''}`,
  lower: (b, model, x, i, s, input) =>
    flaMixerSublayer(b, model, x, input, i, 'retnet', (h, at) => {
      const L = at.label;
      const { q, k, v } = projectQkv(b, model, h, at, s);
      const rope: RopeSpec = {
        theta: s.ropeTheta,
        rotaryDim: s.keyHeadDim,
        scaling: { kind: 'none' },
      };
      const tables = ropeTableParams(b, { rope })!;
      const rotate = (t: number, heads: number, tag: string) =>
        ropeNode(b, L, tables, t, tag, {
          heads,
          headDim: s.keyHeadDim,
          rotaryDim: s.keyHeadDim,
          pairs: 'half',
        });
      // One tensor for every layer of the same head count: the decays depend on nothing else.
      const g = b.param(`retnet.log_decay.${s.heads}.${s.decayExponent}`, [s.heads], {
        kind: 'constant',
        values: retnetLogDecays(s),
      });
      const o = recurrence(
        b,
        { ...layoutRecurrence(s), decay: 'fixed', update: 'add' },
        { q: rotate(q, s.heads, 'q'), k: rotate(k, s.kvHeads, 'k'), v, g },
        `retention.${i}`,
        L,
      );
      const width = s.heads * s.valueHeadDim;
      const y = outputNorm(
        b,
        o,
        {
          weight: `${at.prefix}.${normName(s)}.weight`,
          width,
          headDim: s.valueHeadDim,
          eps: s.normEps,
          gate: s.outputGate
            ? { z: projection(b, model, h, at, 'g', width), act: s.gateAct }
            : undefined,
        },
        L,
      );
      return linear(b, y, `${at.prefix}.o_proj`, model.dim, width, false, `${L}.o`);
    }),
});
