/**
 * What the HF config writers (hf-families.ts) share: the refusal error, the JSON value type,
 * the layer pickers, and the writers of RoPE dicts and activation names, each the inverse of
 * its reader in src/import (hf-rope.ts, hf-decoder.ts).
 */
import type {
  Activation,
  FfnSpec,
  LayerSpec,
  MixerSpec,
  MlpSpec,
  ModelIR,
  MoeSpec,
  RopeSpec,
} from '../spec/model.ts';

/** A design feature the chosen model type (or every candidate type) cannot express. */
export class ExportError extends Error {
  override name = 'ExportError';
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/**
 * The keys every type writes: sizes, context, tying and dtype. `hasContext`: whether
 * the type has a max_position_embeddings key (the state-space types have none).
 */
export function baseKeys(type: string, arch: string, m: ModelIR, hasContext: boolean): JsonObject {
  return {
    model_type: type,
    architectures: [arch],
    vocab_size: m.vocab,
    hidden_size: m.dim,
    num_hidden_layers: m.layers.length,
    ...(hasContext ? { max_position_embeddings: m.maxContext } : {}),
    tie_word_embeddings: m.tieEmbeddings,
    dtype: 'bfloat16',
  };
}

/** Refuses `feature` of the design for `type`, naming the layer where there is one. */
export function refuse(type: string, feature: string, why: string, layer?: number): never {
  const at = layer === undefined ? '' : `layer ${layer}: `;
  throw new ExportError(`${type} cannot express ${at}${feature}: ${why}`);
}

/** The mixer kind of a layer as messages name it ('none' for a mixer-less layer). */
export function mixerKind(l: LayerSpec): string {
  return l.mixer?.kind ?? 'none';
}

export function ffnKind(l: LayerSpec): string {
  return l.ffn?.kind ?? 'none';
}

/** The first layer's mixer of `kind`, the one whose settings the config writes for them all. */
export function firstMixer<K extends MixerSpec['kind']>(
  m: ModelIR,
  kind: K,
): Extract<MixerSpec, { kind: K }> | null {
  const l = m.layers.find((x) => x.mixer?.kind === kind);
  return (l?.mixer ?? null) as Extract<MixerSpec, { kind: K }> | null;
}

export function firstMlp(m: ModelIR): MlpSpec | null {
  return (m.layers.find((l) => l.ffn?.kind === 'mlp')?.ffn as MlpSpec | undefined) ?? null;
}

export function firstMoe(m: ModelIR): MoeSpec | null {
  return (m.layers.find((l) => l.ffn?.kind === 'moe')?.ffn as MoeSpec | undefined) ?? null;
}

/** Refuses any layer whose mixer kind is not one of `allowed` ('none': no mixer). */
export function requireMixers(type: string, m: ModelIR, allowed: readonly string[]): void {
  for (const l of m.layers) {
    const k = mixerKind(l);
    if (!allowed.includes(k))
      refuse(type, `the ${k} mixer`, `${type} layers are ${allowed.join(' or ')}`, l.index);
  }
}

/** Refuses any layer whose FFN kind is not one of `allowed` ('none': no FFN). */
export function requireFfns(type: string, m: ModelIR, allowed: readonly string[]): void {
  for (const l of m.layers) {
    const k = ffnKind(l);
    // Gemma 4's MoE settings have no config key in the exported types.
    const f = l.ffn;
    if (f?.kind === 'moe' && (f.branchNorms || f.router.inputScale || f.router.expertScale))
      refuse(
        type,
        "Gemma 4's MoE (branch norms, router input scale, per-expert scales)",
        `${type} has no such FFN`,
        l.index,
      );
    if (!allowed.includes(k)) {
      const has = allowed.map((a) => (a === 'none' ? 'no FFN' : `${a} FFNs`)).join(' or ');
      refuse(
        type,
        k === 'none' ? 'a layer without FFN' : `the ${k} FFN`,
        `${type} has ${has}`,
        l.index,
      );
    }
  }
}

/** Each layer's FFN width where it is a dense MLP (the config's intermediate_size). */
export function mlpHidden(m: ModelIR, fallback: number): number {
  return firstMlp(m)?.hidden ?? fallback;
}

const ACT_NAMES: Readonly<Record<Activation, string | null>> = {
  silu: 'silu',
  gelu: 'gelu',
  gelu_tanh: 'gelu_pytorch_tanh',
  relu: 'relu',
  relu2: 'relu2',
  sigmoid: null,
};

/** transformers' ACT2FN name of an activation. */
export function actName(type: string, act: Activation, where: string): string {
  const name = ACT_NAMES[act];
  if (name === null)
    refuse(type, `${where} activation ${act}`, 'transformers has no such FFN activation');
  return name;
}

/** transformers' yarn mscale default, 0.1·ln(factor) + 1 (1 for factor <= 1). */
function yarnDefaultFactor(factor: number): number {
  return factor <= 1 ? 1 : 0.1 * Math.log(factor) + 1;
}

/**
 * A RoPE as transformers 5's rope_parameters dict (the inverse of readRope). `partial`:
 * 'always' writes partial_rotary_factor even at 1 (for a class whose default is not 1).
 */
export function ropeParameters(
  r: RopeSpec,
  headDim: number,
  partial: 'when-partial' | 'always' = 'when-partial',
): JsonObject {
  const p: JsonObject = { rope_type: 'default', rope_theta: r.theta };
  if (partial === 'always' || r.rotaryDim !== headDim) {
    p.partial_rotary_factor = r.rotaryDim / headDim;
  }
  const s = r.scaling;
  switch (s.kind) {
    case 'none':
      break;
    case 'linear':
      Object.assign(p, { rope_type: 'linear', factor: s.factor });
      break;
    case 'proportional':
      // HF rotates int(partial_rotary_factor · head_dim // 2) pairs over the whole head.
      if (r.rotaryDim !== headDim)
        throw new ExportError(
          `proportional RoPE over ${r.rotaryDim} of ${headDim} head dims: transformers spans the whole head`,
        );
      Object.assign(p, {
        rope_type: 'proportional',
        partial_rotary_factor: (2 * s.pairs) / headDim,
        ...(s.factor !== 1 ? { factor: s.factor } : {}),
      });
      break;
    case 'llama3':
      Object.assign(p, {
        rope_type: 'llama3',
        factor: s.factor,
        low_freq_factor: s.lowFreqFactor,
        high_freq_factor: s.highFreqFactor,
        original_max_position_embeddings: s.originalMaxPositions,
      });
      break;
    case 'yarn':
      Object.assign(p, {
        rope_type: 'yarn',
        factor: s.factor,
        original_max_position_embeddings: s.originalMaxPositions,
        beta_fast: s.betaFast,
        beta_slow: s.betaSlow,
      });
      if (s.attentionFactor !== yarnDefaultFactor(s.factor)) p.attention_factor = s.attentionFactor;
      if (!s.truncate) p.truncate = false;
      break;
  }
  return p;
}

/**
 * x such that f(x) === y, preferring a short decimal: configs store a number the importer maps
 * through f (query_pre_attn_scalar ↦ its ^-0.5, logits_scaling ↦ 1 / it); a value whose plain
 * inverse rounds differently is nudged to the round-tripping neighbour when there is one.
 */
export function invertExactly(y: number, f: (x: number) => number, inverse: number): number {
  for (const digits of [6, 9, 12, 15]) {
    const x = Number(inverse.toPrecision(digits));
    if (f(x) === y) return x;
  }
  return inverse;
}

/** The indices of the layers matching `pred`. */
export function indices(m: ModelIR, pred: (l: LayerSpec) => boolean): number[] {
  return m.layers.filter(pred).map((l) => l.index);
}

export function isMoe(f: FfnSpec | null): f is MoeSpec {
  return f?.kind === 'moe';
}
