/**
 * Canonical weight names and shapes of a ModelIR model: HuggingFace Llama's
 * naming. The single source of truth for the lowering, the random initialiser,
 * the importers' name maps and the bundle's tensor list.
 */
import type { AttentionSpec, LayerSpec, MlpSpec, ModelIR } from '../spec/model.ts';

export interface TensorSpec {
  name: string;
  shape: number[];
}

export const EMBED = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm';
export const LM_HEAD = 'lm_head.weight';

export const layerPrefix = (i: number): string => `model.layers.${i}`;

export function attentionNames(i: number) {
  const p = `${layerPrefix(i)}.self_attn`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    q: `${p}.q_proj`,
    k: `${p}.k_proj`,
    v: `${p}.v_proj`,
    o: `${p}.o_proj`,
    qNorm: `${p}.q_norm`,
    kNorm: `${p}.k_norm`,
  };
}

export function mlpNames(i: number) {
  const p = `${layerPrefix(i)}.mlp`;
  return {
    norm: `${layerPrefix(i)}.post_attention_layernorm`,
    gate: `${p}.gate_proj`,
    up: `${p}.up_proj`,
    down: `${p}.down_proj`,
  };
}

function normTensors(model: ModelIR, prefix: string, width: number): TensorSpec[] {
  const out = [{ name: `${prefix}.weight`, shape: [width] }];
  if (model.norm.kind === 'layer' && model.norm.bias)
    out.push({ name: `${prefix}.bias`, shape: [width] });
  return out;
}

function linear(prefix: string, out: number, inp: number, bias: boolean): TensorSpec[] {
  const t = [{ name: `${prefix}.weight`, shape: [out, inp] }];
  if (bias) t.push({ name: `${prefix}.bias`, shape: [out] });
  return t;
}

function attentionTensors(model: ModelIR, i: number, a: AttentionSpec): TensorSpec[] {
  const n = attentionNames(i);
  const qCols = a.heads * a.headDim;
  const kvCols = a.kvHeads * a.headDim;
  return [
    ...normTensors(model, n.norm, model.dim),
    ...linear(n.q, qCols, model.dim, a.qkvBias),
    ...linear(n.k, kvCols, model.dim, a.qkvBias),
    ...linear(n.v, kvCols, model.dim, a.qkvBias),
    ...(a.qkNorm
      ? [
          { name: `${n.qNorm}.weight`, shape: [a.headDim] },
          { name: `${n.kNorm}.weight`, shape: [a.headDim] },
        ]
      : []),
    ...linear(n.o, model.dim, qCols, a.outBias),
  ];
}

function mlpTensors(model: ModelIR, i: number, f: MlpSpec): TensorSpec[] {
  const n = mlpNames(i);
  return [
    ...normTensors(model, n.norm, model.dim),
    ...(f.gated ? linear(n.gate, f.hidden, model.dim, f.bias) : []),
    ...linear(n.up, f.hidden, model.dim, f.bias),
    ...linear(n.down, model.dim, f.hidden, f.bias),
  ];
}

export function layerTensors(model: ModelIR, layer: LayerSpec): TensorSpec[] {
  const out = attentionTensors(model, layer.index, layer.mixer);
  if (layer.ffn) out.push(...mlpTensors(model, layer.index, layer.ffn));
  return out;
}

/** Every weight tensor the model needs, in a stable order. */
export function expectedTensors(model: ModelIR): TensorSpec[] {
  const out: TensorSpec[] = [{ name: EMBED, shape: [model.vocab, model.dim] }];
  for (const layer of model.layers) out.push(...layerTensors(model, layer));
  out.push(...normTensors(model, FINAL_NORM, model.dim));
  if (!model.tieEmbeddings) out.push({ name: LM_HEAD, shape: [model.vocab, model.dim] });
  return out;
}

/** The name of a norm's tensors: bias only for a LayerNorm with bias. */
export interface NormWeightNames {
  weight: string;
  bias: string | null;
}

/** Full tensor names of one layer; null where the model has no such tensor. */
export interface LayerWeightNames {
  inputNorm: NormWeightNames;
  q: string;
  k: string;
  v: string;
  o: string;
  qBias: string | null;
  kBias: string | null;
  vBias: string | null;
  oBias: string | null;
  qNorm: string | null;
  kNorm: string | null;
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
}

function normWeightNames(model: ModelIR, prefix: string): NormWeightNames {
  return {
    weight: `${prefix}.weight`,
    bias: model.norm.kind === 'layer' && model.norm.bias ? `${prefix}.bias` : null,
  };
}

/** Structured full names of layer i (derived from the same prefixes as layerTensors). */
export function layerWeightNames(model: ModelIR, i: number): LayerWeightNames {
  const layer = model.layers[i];
  if (!layer)
    throw new Error(`model '${model.name}' has no layer ${i} (it has ${model.layers.length})`);
  const a = layer.mixer;
  const n = attentionNames(i);
  const w = (p: string) => `${p}.weight`;
  const b = (p: string, on: boolean) => (on ? `${p}.bias` : null);
  let ffn: LayerWeightNames['ffn'] = null;
  if (layer.ffn) {
    const f = layer.ffn;
    const m = mlpNames(i);
    ffn = {
      norm: normWeightNames(model, m.norm),
      gate: f.gated ? w(m.gate) : null,
      up: w(m.up),
      down: w(m.down),
      gateBias: b(m.gate, f.gated && f.bias),
      upBias: b(m.up, f.bias),
      downBias: b(m.down, f.bias),
    };
  }
  return {
    inputNorm: normWeightNames(model, n.norm),
    q: w(n.q),
    k: w(n.k),
    v: w(n.v),
    o: w(n.o),
    qBias: b(n.q, a.qkvBias),
    kBias: b(n.k, a.qkvBias),
    vBias: b(n.v, a.qkvBias),
    oBias: b(n.o, a.outBias),
    qNorm: a.qkNorm ? w(n.qNorm) : null,
    kNorm: a.qkNorm ? w(n.kNorm) : null,
    ffn,
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
