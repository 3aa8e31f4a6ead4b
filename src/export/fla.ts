/**
 * ModelIR → the config.json of flash-linear-attention's (fla's) model types, the inverse of
 * src/import/fla-*.ts: gla, retnet, linear_attn, delta_net, gated_deltanet, hgrn2 (each with the
 * hybrid `attn` key that puts softmax attention at listed layers) and rwkv7. fla registers these
 * with transformers' Auto classes, so `AutoModelForCausalLM.from_config` builds them once fla is
 * imported; that is how a design found by `strata explore` goes to fla for training. As for the
 * transformers types (hf-config.ts), each writer only writes keys: the text is imported back and
 * the export is refused, naming the first difference, unless it gives the design again.
 */
import type { AttentionSpec, ModelIR } from '../spec/model.ts';
import type { GlaFeatureMap, GlaSpec } from '../mixers/gla.ts';
import type { RetNetSpec } from '../mixers/retnet.ts';
import type { FeatureMap, LinearAttnSpec } from '../mixers/linear-attn.ts';
import type { DeltaNetSpec, QkActivation } from '../mixers/deltanet.ts';
import type { Hgrn2Spec } from '../mixers/hgrn2.ts';
import type { Rwkv7Spec } from '../mixers/rwkv7.ts';
import {
  baseKeys,
  firstMixer,
  firstMlp,
  indices,
  invertExactly,
  refuse,
  requireFfns,
  type JsonObject,
} from './hf-common.ts';

/**
 * fla's `expand_k` / `expand_v`: x with int(dim · x) = width, as the layers derive their widths
 * (python's int() truncates).
 */
function expand(dim: number, width: number): number {
  return invertExactly(width, (x) => Math.trunc(dim * x), width / dim);
}

/** The keys of fla's model shell: sizes, the norm eps and its GatedMLP (SwiGLU, fla's swish). */
function shell(type: string, arch: string, m: ModelIR): JsonObject {
  requireFfns(type, m, ['mlp']);
  const mlp = firstMlp(m);
  return {
    ...baseKeys(type, arch, m, true),
    norm_eps: m.norm.eps,
    hidden_act: 'swish',
    ...(mlp ? { intermediate_size: mlp.hidden } : {}),
    ...attnKey(m),
  };
}

/** The hybrid `attn` key: the attention layers and their settings (fla's Attention, RoPE always). */
function attnKey(m: ModelIR): JsonObject {
  const layers = indices(m, (l) => l.mixer?.kind === 'attention');
  const a = firstMixer(m, 'attention') as AttentionSpec | null;
  if (!a || layers.length === 0) return {};
  return {
    attn: {
      layers,
      num_heads: a.heads,
      num_kv_heads: a.kvHeads,
      qkv_bias: a.qkvBias,
      ...(a.window !== null ? { window_size: a.window } : {}),
      ...(a.rope ? { rope_theta: a.rope.theta } : {}),
    },
  };
}

/** fla's head layout keys (readFlaHeads): heads, k/v heads and the two expand ratios. */
function headKeys(
  dim: number,
  h: { heads: number; kvHeads: number; keyHeadDim: number; valueHeadDim: number },
): JsonObject {
  return {
    num_heads: h.heads,
    num_kv_heads: h.kvHeads,
    expand_k: expand(dim, h.heads * h.keyHeadDim),
    expand_v: expand(dim, h.heads * h.valueHeadDim),
  };
}

/** The inverse of a name table of an importer: strata's name → fla's. */
function nameOf<T extends string>(
  type: string,
  what: string,
  table: Record<string, T>,
  v: T,
): string {
  const name = Object.keys(table).find((k) => table[k] === v);
  if (name === undefined) refuse(type, `${what} ${v}`, `fla's ${type} has no such ${what}`);
  return name;
}

const GLA_MAPS: Record<string, GlaFeatureMap> = {
  relu: 'relu',
  sigmoid: 'sigmoid',
  logsigmoid: 'logsigmoid',
  swish: 'silu',
  sqrelu: 'relu2',
  gelu: 'gelu_tanh',
};

export function exportFlaGla(m: ModelIR): JsonObject {
  const type = 'gla';
  const g = firstMixer(m, 'gla') as GlaSpec;
  return {
    ...shell(type, 'GLAForCausalLM', m),
    ...headKeys(m.dim, g),
    feature_map: g.featureMap === null ? null : nameOf(type, 'feature map', GLA_MAPS, g.featureMap),
    use_short_conv: g.dConv !== null,
    ...(g.dConv !== null ? { conv_size: g.dConv } : {}),
    use_output_gate: g.outputGate,
    ...(g.clampMin !== null ? { clamp_min: g.clampMin } : {}),
    fuse_norm: true,
  };
}

export function exportFlaRetNet(m: ModelIR): JsonObject {
  const type = 'retnet';
  const r = firstMixer(m, 'retnet') as RetNetSpec;
  return {
    ...shell(type, 'RetNetForCausalLM', m),
    ...headKeys(m.dim, r),
    use_output_gate: r.outputGate,
    fuse_norm: true,
  };
}

const LINEAR_MAPS: Record<string, FeatureMap> = { elu: 'elu1', relu: 'relu', identity: 'identity' };

export function exportFlaLinearAttn(m: ModelIR): JsonObject {
  const type = 'linear_attn';
  const l = firstMixer(m, 'linear_attn') as LinearAttnSpec;
  return {
    ...shell(type, 'LinearAttentionForCausalLM', m),
    ...headKeys(m.dim, l),
    feature_map: nameOf(type, 'feature map', LINEAR_MAPS, l.featureMap),
    norm_q: l.normQ,
    norm_k: l.normK,
    norm_feature_map: l.normalize,
  };
}

const QK_ACTIVATIONS: Record<string, QkActivation> = {
  silu: 'silu',
  relu: 'relu',
  elu: 'elu1',
  identity: 'identity',
};

/** The keys fla's DeltaNet and Gated DeltaNet share (readDeltaRuleKeys). */
function deltaRuleKeys(d: DeltaNetSpec): JsonObject {
  return {
    use_short_conv: d.dConv !== null,
    ...(d.dConv !== null ? { conv_size: d.dConv } : {}),
    allow_neg_eigval: d.allowNegEigval,
    use_gate: d.outputGate,
  };
}

/** fla's DeltaNet: the deltanet mixer without decay. */
export function exportFlaDeltaNet(m: ModelIR): JsonObject {
  const type = 'delta_net';
  const d = firstMixer(m, 'deltanet') as DeltaNetSpec;
  if (d.decay !== 'none')
    refuse(type, `the deltanet mixer's decay '${d.decay}'`, 'DeltaNet has none (gated_deltanet)');
  return {
    ...shell(type, 'DeltaNetForCausalLM', m),
    num_heads: d.heads,
    expand_k: expand(m.dim, d.heads * d.keyHeadDim),
    expand_v: expand(m.dim, d.heads * d.valueHeadDim),
    qk_activation: nameOf(type, 'q/k activation', QK_ACTIVATIONS, d.qkActivation),
    qk_norm: 'l2',
    use_beta: d.useBeta,
    ...deltaRuleKeys(d),
  };
}

/** fla's Gated DeltaNet: the deltanet mixer with a decay per head. */
export function exportFlaGatedDeltaNet(m: ModelIR): JsonObject {
  const type = 'gated_deltanet';
  const d = firstMixer(m, 'deltanet') as DeltaNetSpec;
  if (d.decay !== 'head')
    refuse(type, `the deltanet mixer's decay '${d.decay}'`, 'Gated DeltaNet decays per head');
  return {
    ...shell(type, 'GatedDeltaNetForCausalLM', m),
    num_heads: d.heads,
    num_v_heads: d.valueHeads,
    head_dim: d.keyHeadDim,
    expand_v: d.valueHeadDim / d.keyHeadDim,
    ...deltaRuleKeys(d),
  };
}

export function exportFlaHgrn2(m: ModelIR): JsonObject {
  const type = 'hgrn2';
  const h = firstMixer(m, 'hgrn2') as Hgrn2Spec;
  return {
    ...shell(type, 'HGRN2ForCausalLM', m),
    expand_ratio: h.keyHeadDim,
    use_short_conv: h.dConv !== null,
    ...(h.dConv !== null ? { conv_size: h.dConv } : {}),
    use_lower_bound: h.lowerBound,
  };
}

/** fla's RWKV-7: time mixing, the relu² channel mix, LayerNorms (RWKV7Config's keys). */
export function exportFlaRwkv7(m: ModelIR): JsonObject {
  const type = 'rwkv7';
  requireFfns(type, m, ['mlp']);
  const r = firstMixer(m, 'rwkv7') as Rwkv7Spec;
  const mlp = firstMlp(m);
  const norm = m.norm;
  if (norm.kind !== 'layer') refuse(type, `${norm.kind} norms`, 'RWKV-7 uses LayerNorm');
  return {
    ...baseKeys(type, 'RWKV7ForCausalLM', m, true),
    norm_eps: norm.eps,
    norm_bias: norm.bias,
    norm_first: r.normFirst,
    hidden_act: 'sqrelu',
    ...(mlp ? { intermediate_size: mlp.hidden } : {}),
    head_dim: r.headDim,
    value_dim: r.heads * r.valueHeadDim,
    decay_low_rank_dim: r.decayRank,
    a_low_rank_dim: r.aRank,
    v_low_rank_dim: r.vRank,
    gate_low_rank_dim: r.gateRank,
    // fla's fused l2_norm takes eps 1e-6 under the root; F.normalize (fuse_norm false) 1e-12.
    fuse_norm: r.kkEps === 1e-6,
  };
}
