/**
 * Canonical weight names and shapes of a ModelIR model: HuggingFace Llama's naming. A mixer's
 * weights are what its lowering declares (src/mixers, read back by layerParams); the embedding,
 * norms, FFNs and shared blocks are named here. The one list the random initialiser, the
 * importers' name maps, the parameter counts and the bundle's tensor list read.
 */
import type { LayerSpec, MixerSpec, MlpSpec, ModelIR, SharedBlockSpec } from '../spec/model.ts';

import { mixerDef } from '../mixers/lookup.ts';
import { layerParams } from '../mixers/define.ts';
import { selfConditionTensors } from '../graph/blocks/self-condition.ts';
import { moeTensors, moeWeightNames, type MoeWeightNames } from '../graph/blocks/moe.ts';

export interface TensorSpec {
  name: string;
  shape: number[];
}

export const EMBED = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm';
export const LM_HEAD = 'lm_head.weight';
/** The output head's bias [vocab] (ModelIR.headBias). */
export const LM_HEAD_BIAS = 'lm_head.bias';

export const layerPrefix = (i: number): string => `model.layers.${i}`;

/** Layer i's learned output scalar [1] (ModelIR.layerScalars; Gemma 4's layer_scalar). */
export const layerScalarName = (i: number): string => `${layerPrefix(i)}.layer_scalar`;

/** The pre-norm of layer i's mixer, whatever its kind. */
export const inputNormName = (i: number): string => `${layerPrefix(i)}.input_layernorm`;

export function mlpNames(i: number) {
  const p = `${layerPrefix(i)}.mlp`;
  return {
    norm: `${layerPrefix(i)}.post_attention_layernorm`,
    gate: `${p}.gate_proj`,
    up: `${p}.up_proj`,
    down: `${p}.down_proj`,
    /** The token-shift mix vector of RWKV's channel mix (MlpSpec.tokenShift). */
    shift: `${p}.x_k`,
  };
}

/**
 * Sandwich-norm weights (model.postNorms) on each sublayer's output before its residual add. HF
 * Gemma calls the mixer's `post_attention_layernorm`, which in the canonical (Llama) naming is
 * the FFN's pre-norm, hence a name of its own here.
 */
export function postNormNames(i: number) {
  return {
    mixer: `${layerPrefix(i)}.post_mixer_layernorm`,
    ffn: `${layerPrefix(i)}.post_feedforward_layernorm`,
  };
}

/**
 * A shared block's tensors, stored once under model.shared.{name}: its two norms (the first over
 * the 2·dim input), attention projections (q/k/v read 2·dim) and the ffn with gate and up fused
 * in one [2·hidden, dim] tensor, gate rows first (HF Zamba2's gate_up_proj).
 */
export function sharedBlockNames(name: string) {
  const p = `model.shared.${name}`;
  return {
    inputNorm: `${p}.input_layernorm`,
    q: `${p}.self_attn.q_proj`,
    k: `${p}.self_attn.k_proj`,
    v: `${p}.self_attn.v_proj`,
    o: `${p}.self_attn.o_proj`,
    ffnNorm: `${p}.pre_ff_layernorm`,
    gateUp: `${p}.feed_forward.gate_up_proj`,
    down: `${p}.feed_forward.down_proj`,
  };
}

/**
 * Tensors of layer i's use of a shared block: the linear from the block's output to the mixer's
 * input, and the LoRA adapters (`down` [rank, in], `up` [out, rank]) of this use.
 */
export function sharedUseNames(i: number) {
  const p = `${layerPrefix(i)}.shared`;
  const adapter = (tag: string) => ({
    down: `${p}.${tag}_adapter.down`,
    up: `${p}.${tag}_adapter.up`,
  });
  return {
    linear: `${p}.linear`,
    q: adapter('q'),
    k: adapter('k'),
    v: adapter('v'),
    gateUp: adapter('gate_up'),
  };
}

function sharedBlockTensors(model: ModelIR, s: SharedBlockSpec): TensorSpec[] {
  const n = sharedBlockNames(s.name);
  const a = s.attention;
  const inp = 2 * model.dim;
  return [
    ...normTensors(model, n.inputNorm, inp),
    ...linearTensors(n.q, a.heads * a.headDim, inp, a.qkvBias),
    ...linearTensors(n.k, a.kvHeads * a.headDim, inp, a.qkvBias),
    ...linearTensors(n.v, a.kvHeads * a.headDim, inp, a.qkvBias),
    ...linearTensors(n.o, model.dim, a.heads * a.headDim, a.outBias),
    ...normTensors(model, n.ffnNorm, model.dim),
    ...linearTensors(n.gateUp, 2 * s.ffn.hidden, model.dim, s.ffn.bias),
    ...linearTensors(n.down, model.dim, s.ffn.hidden, s.ffn.bias),
  ];
}

/** The shared block a layer uses, or null; throws when the name is not defined. */
export function sharedBlockOf(model: ModelIR, layer: LayerSpec): SharedBlockSpec | null {
  if (!layer.shared) return null;
  const s = (model.sharedBlocks ?? []).find((b) => b.name === layer.shared);
  if (!s)
    throw new Error(
      `layer ${layer.index} uses shared block '${layer.shared}', which is not defined`,
    );
  return s;
}

function sharedUseTensors(model: ModelIR, i: number, s: SharedBlockSpec): TensorSpec[] {
  const n = sharedUseNames(i);
  const a = s.attention;
  const r = s.adapterRank;
  const inp = 2 * model.dim;
  const adapter = (m: { down: string; up: string }, inWidth: number, out: number) => [
    ...linearTensors(m.down, r, inWidth, false),
    ...linearTensors(m.up, out, r, false),
  ];
  return [
    ...(s.attentionAdapters
      ? [
          ...adapter(n.q, inp, a.heads * a.headDim),
          ...adapter(n.k, inp, a.kvHeads * a.headDim),
          ...adapter(n.v, inp, a.kvHeads * a.headDim),
        ]
      : []),
    ...(s.ffnAdapters ? adapter(n.gateUp, model.dim, 2 * s.ffn.hidden) : []),
    ...linearTensors(n.linear, model.dim, model.dim, false),
  ];
}

export function normTensors(model: ModelIR, prefix: string, width: number): TensorSpec[] {
  const out = [{ name: `${prefix}.weight`, shape: [width] }];
  if (model.norm.kind === 'layer' && model.norm.bias)
    out.push({ name: `${prefix}.bias`, shape: [width] });
  return out;
}

export function linearTensors(
  prefix: string,
  out: number,
  inp: number,
  bias: boolean,
): TensorSpec[] {
  const t = [{ name: `${prefix}.weight`, shape: [out, inp] }];
  if (bias) t.push({ name: `${prefix}.bias`, shape: [out] });
  return t;
}

/**
 * A mixer's tensors, pre-norm included: what its kind's lowering (src/mixers) declares. The mixer
 * registry must be loaded (src/mixers/index.ts), as loading a spec does.
 */
function mixerTensors(model: ModelIR, i: number, m: MixerSpec): TensorSpec[] {
  const def = mixerDef(m.kind);
  if (!def) throw new Error(`layer ${i}: no weights known for mixer kind '${m.kind}'`);
  return layerParams(def, model, i, m);
}

function mlpTensors(model: ModelIR, i: number, f: MlpSpec): TensorSpec[] {
  const n = mlpNames(i);
  return [
    ...normTensors(model, n.norm, model.dim),
    ...(f.tokenShift ? [{ name: n.shift, shape: [model.dim] }] : []),
    ...mlpProjections(model, n, f),
  ];
}

/** The gate (when gated), up and down projections of one MLP under `names`' prefixes. */
export function mlpProjections(
  model: ModelIR,
  n: { gate: string; up: string; down: string },
  f: MlpSpec,
): TensorSpec[] {
  return [
    ...(f.gated ? linearTensors(n.gate, f.hidden, model.dim, f.bias) : []),
    ...linearTensors(n.up, f.hidden, model.dim, f.bias),
    ...linearTensors(n.down, model.dim, f.hidden, f.bias),
  ];
}

export function layerTensors(model: ModelIR, layer: LayerSpec): TensorSpec[] {
  // A layer without a mixer (Nemotron-H's MLP layers) has neither its tensors nor its pre-norm.
  const shared = sharedBlockOf(model, layer);
  const out = shared ? sharedUseTensors(model, layer.index, shared) : [];
  if (layer.mixer) out.push(...mixerTensors(model, layer.index, layer.mixer));
  const post = postNormNames(layer.index);
  if (layer.mixer && model.postNorms) out.push(...normTensors(model, post.mixer, model.dim));
  // Item by item, not push(...): an MoE's ~10^5 tensors as call arguments overflow the stack.
  if (layer.ffn?.kind === 'moe')
    for (const t of moeTensors(model, layer.index, layer.ffn)) out.push(t);
  else if (layer.ffn) out.push(...mlpTensors(model, layer.index, layer.ffn));
  if (layer.ffn && model.postNorms) out.push(...normTensors(model, post.ffn, model.dim));
  if (model.layerScalars) out.push({ name: layerScalarName(layer.index), shape: [1] });
  return out;
}

/** Every weight tensor the model needs, in a stable order. */
export function expectedTensors(model: ModelIR): TensorSpec[] {
  const out: TensorSpec[] = [{ name: EMBED, shape: [model.vocab, model.dim] }];
  // Shared blocks are stored (and counted) once, however many layers use them.
  for (const s of model.sharedBlocks ?? []) out.push(...sharedBlockTensors(model, s));
  for (const layer of model.layers) for (const t of layerTensors(model, layer)) out.push(t);
  out.push(...normTensors(model, FINAL_NORM, model.dim));
  if (model.diffusion?.kind === 'entropy_bound')
    out.push(...selfConditionTensors(model, model.diffusion));
  if (!model.tieEmbeddings) out.push({ name: LM_HEAD, shape: [model.vocab, model.dim] });
  if (model.headBias) out.push({ name: LM_HEAD_BIAS, shape: [model.vocab] });
  return out;
}

/** The name of a norm's tensors: bias only for a LayerNorm with bias. */
export interface NormWeightNames {
  weight: string;
  bias: string | null;
}

/**
 * A mixer's tensors in the order its lowering (src/mixers) first reads them, without the pre-norm
 * (LayerWeightNames.inputNorm): the lowering names them, so no second list does.
 */
export interface MixerWeightNames {
  tensors: string[];
}

/** Full tensor names of one layer; null where the model has no such tensor. */
export interface LayerWeightNames {
  /** The mixer's pre-norm and tensors; null for a layer without a mixer. */
  inputNorm: NormWeightNames | null;
  mixer: MixerWeightNames | null;
  /** Present when the layer has an FFN. */
  ffn: {
    norm: NormWeightNames;
    /** null for an ungated MLP. */
    gate: string | null;
    up: string;
    down: string;
    gateBias: string | null;
    upBias: string | null;
    downBias: string | null;
  } | null;
  /** Present when the layer's FFN is a mixture of experts (ffn is then null). */
  moe: MoeWeightNames | null;
  /** Sandwich norms on the mixer's / FFN's output (model.postNorms and the sublayer exists). */
  postMixerNorm: NormWeightNames | null;
  postFfnNorm: NormWeightNames | null;
}

/** The full names of one MLP's projections under `n`'s prefixes. */
export function mlpWeightNames(
  n: { gate: string; up: string; down: string },
  s: MlpSpec,
): MlpWeightNames {
  return {
    gate: s.gated ? weightOf(n.gate) : null,
    up: weightOf(n.up),
    down: weightOf(n.down),
    gateBias: biasOf(n.gate, s.gated && s.bias),
    upBias: biasOf(n.up, s.bias),
    downBias: biasOf(n.down, s.bias),
  };
}

export interface MlpWeightNames {
  /** null for an ungated MLP. */
  gate: string | null;
  up: string;
  down: string;
  gateBias: string | null;
  upBias: string | null;
  downBias: string | null;
}

export function normWeightNames(model: ModelIR, prefix: string): NormWeightNames {
  return {
    weight: weightOf(prefix),
    bias: biasOf(prefix, model.norm.kind === 'layer' && model.norm.bias),
  };
}

/** A linear's full tensor names under prefix p: its weight, and its bias where it has one. */
export const weightOf = (p: string): string => `${p}.weight`;
export const biasOf = (p: string, on: boolean): string | null => (on ? `${p}.bias` : null);

/** Structured full names of layer i (derived from the same prefixes as layerTensors). */
export function layerWeightNames(model: ModelIR, i: number): LayerWeightNames {
  const layer = model.layers[i];
  if (!layer)
    throw new Error(`model '${model.name}' has no layer ${i} (it has ${model.layers.length})`);
  let ffn: LayerWeightNames['ffn'] = null;
  let moe: MoeWeightNames | null = null;
  if (layer.ffn?.kind === 'moe') {
    moe = moeWeightNames(model, i, layer.ffn);
  } else if (layer.ffn) {
    const m = mlpNames(i);
    ffn = { norm: normWeightNames(model, m.norm), ...mlpWeightNames(m, layer.ffn) };
  }
  // Every mixer kind's pre-norm is input_layernorm.
  const inputNorm = layer.mixer ? normWeightNames(model, inputNormName(i)) : null;
  const isInputNorm = (name: string) => name === inputNorm?.weight || name === inputNorm?.bias;
  return {
    inputNorm,
    mixer: layer.mixer
      ? {
          tensors: mixerTensors(model, i, layer.mixer)
            .map((t) => t.name)
            .filter((name) => !isInputNorm(name)),
        }
      : null,
    ffn,
    moe,
    postMixerNorm:
      layer.mixer && model.postNorms ? normWeightNames(model, postNormNames(i).mixer) : null,
    postFfnNorm: layer.ffn && model.postNorms ? normWeightNames(model, postNormNames(i).ffn) : null,
  };
}

export interface GlobalWeightNames {
  embed: string;
  finalNorm: NormWeightNames;
  /** null when the LM head is tied to the embedding. */
  lmHead: string | null;
}

export function globalWeightNames(model: ModelIR): GlobalWeightNames {
  return {
    embed: EMBED,
    finalNorm: normWeightNames(model, FINAL_NORM),
    lmHead: model.tieEmbeddings ? null : LM_HEAD,
  };
}

export function tensorElements(t: TensorSpec): number {
  return t.shape.reduce((a, b) => a * b, 1);
}
