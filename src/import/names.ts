/**
 * Canonical weight names and shapes of a ModelIR model: HuggingFace Llama's
 * naming. The single source of truth for the lowering, the random initialiser,
 * the importers' name maps and the bundle's tensor list.
 */
import type {
  AttentionSpec,
  GatedDeltaNetSpec,
  LayerSpec,
  Mamba1Spec,
  Mamba2Spec,
  MixerKind,
  MixerSpec,
  MlpSpec,
  ModelIR,
  MoeSpec,
  ShortConvSpec,
} from '../spec/model.ts';

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

/** Mamba-1 mixer tensors (HF MambaMixer's names under `mixer`); the conv weight is [channels, kernel]. */
export function mamba1Names(i: number) {
  const p = `${layerPrefix(i)}.mixer`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    inProj: `${p}.in_proj`,
    conv: `${p}.conv1d`,
    xProj: `${p}.x_proj`,
    dtProj: `${p}.dt_proj`,
    outProj: `${p}.out_proj`,
    aLog: `${p}.A_log`,
    d: `${p}.D`,
    /** Jamba's inner RMSNorms. */
    dtNorm: `${p}.dt_layernorm`,
    bNorm: `${p}.b_layernorm`,
    cNorm: `${p}.c_layernorm`,
  };
}

/** Mamba-2 mixer tensors (HF Mamba2Mixer's names under `mixer`). */
export function mamba2Names(i: number) {
  const p = `${layerPrefix(i)}.mixer`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    inProj: `${p}.in_proj`,
    conv: `${p}.conv1d`,
    outProj: `${p}.out_proj`,
    aLog: `${p}.A_log`,
    d: `${p}.D`,
    dtBias: `${p}.dt_bias`,
    /** The gated RMSNorm's weight. */
    gateNorm: `${p}.norm`,
  };
}

/** LFM2 short-conv mixer tensors under `mixer`. */
export function shortConvNames(i: number) {
  const p = `${layerPrefix(i)}.mixer`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    inProj: `${p}.in_proj`,
    conv: `${p}.conv1d`,
    outProj: `${p}.out_proj`,
  };
}

/** Gated DeltaNet mixer tensors (HF Qwen3NextGatedDeltaNet's names under `linear_attn`). */
export function gatedDeltaNetNames(i: number) {
  const p = `${layerPrefix(i)}.linear_attn`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    inProjQkvz: `${p}.in_proj_qkvz`,
    inProjBa: `${p}.in_proj_ba`,
    conv: `${p}.conv1d`,
    dtBias: `${p}.dt_bias`,
    aLog: `${p}.A_log`,
    /** The gated output RMSNorm's weight [valueHeadDim], shared by all value heads. */
    gateNorm: `${p}.norm`,
    outProj: `${p}.out_proj`,
  };
}

/**
 * Gated DeltaNet widths: key/value widths, conv channels (q, k, v), and the rows of one key
 * head's group in in_proj_qkvz (q, k, then its valueHeads / keyHeads heads of v and of z) and
 * in_proj_ba (b then a for those value heads).
 */
export function gatedDeltaNetWidths(m: GatedDeltaNetSpec) {
  const key = m.keyHeads * m.keyHeadDim;
  const value = m.valueHeads * m.valueHeadDim;
  const perKey = m.valueHeads / m.keyHeads;
  return {
    key,
    value,
    conv: 2 * key + value,
    perKey,
    qkvzGroup: 2 * m.keyHeadDim + 2 * perKey * m.valueHeadDim,
    baGroup: 2 * perKey,
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
  // With an output gate q_proj emits each head's query rows then its gate rows.
  const qRows = a.outputGate ? 2 * qCols : qCols;
  return [
    ...normTensors(model, n.norm, model.dim),
    ...linear(n.q, qRows, model.dim, a.qkvBias),
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

function mamba1Tensors(model: ModelIR, i: number, m: Mamba1Spec): TensorSpec[] {
  const n = mamba1Names(i);
  const xCols = m.dtRank + 2 * m.dState;
  return [
    ...normTensors(model, n.norm, model.dim),
    ...linear(n.inProj, 2 * m.dInner, model.dim, m.projBias),
    ...linear(n.conv, m.dInner, m.dConv, m.convBias),
    ...linear(n.xProj, xCols, m.dInner, false),
    ...(m.innerNorms
      ? [
          { name: `${n.dtNorm}.weight`, shape: [m.dtRank] },
          { name: `${n.bNorm}.weight`, shape: [m.dState] },
          { name: `${n.cNorm}.weight`, shape: [m.dState] },
        ]
      : []),
    // HF's dt_proj always has a bias (it carries the dt initialisation).
    ...linear(n.dtProj, m.dInner, m.dtRank, true),
    { name: n.aLog, shape: [m.dInner, m.dState] },
    { name: n.d, shape: [m.dInner] },
    ...linear(n.outProj, model.dim, m.dInner, m.projBias),
  ];
}

/** Mamba-2 widths: the inner width, the conv channels (x, B, C) and in_proj's rows (z, xBC, dt). */
export function mamba2Widths(m: Mamba2Spec): { inner: number; conv: number; inProj: number } {
  const inner = m.heads * m.headDim;
  const conv = inner + 2 * m.groups * m.dState;
  return { inner, conv, inProj: inner + conv + m.heads };
}

function mamba2Tensors(model: ModelIR, i: number, m: Mamba2Spec): TensorSpec[] {
  const n = mamba2Names(i);
  const w = mamba2Widths(m);
  return [
    ...normTensors(model, n.norm, model.dim),
    ...linear(n.inProj, w.inProj, model.dim, m.projBias),
    ...linear(n.conv, w.conv, m.dConv, m.convBias),
    { name: n.dtBias, shape: [m.heads] },
    { name: n.aLog, shape: [m.heads] },
    { name: n.d, shape: [m.heads] },
    { name: `${n.gateNorm}.weight`, shape: [w.inner] },
    ...linear(n.outProj, model.dim, w.inner, m.projBias),
  ];
}

function shortConvTensors(model: ModelIR, i: number, m: ShortConvSpec): TensorSpec[] {
  const n = shortConvNames(i);
  return [
    ...normTensors(model, n.norm, model.dim),
    ...linear(n.inProj, 3 * model.dim, model.dim, m.bias),
    ...linear(n.conv, model.dim, m.lCache, m.bias),
    ...linear(n.outProj, model.dim, model.dim, m.bias),
  ];
}

function gatedDeltaNetTensors(model: ModelIR, i: number, m: GatedDeltaNetSpec): TensorSpec[] {
  const n = gatedDeltaNetNames(i);
  const w = gatedDeltaNetWidths(m);
  return [
    ...normTensors(model, n.norm, model.dim),
    ...linear(n.inProjQkvz, 2 * w.key + 2 * w.value, model.dim, false),
    ...linear(n.inProjBa, 2 * m.valueHeads, model.dim, false),
    ...linear(n.conv, w.conv, m.dConv, false),
    { name: n.dtBias, shape: [m.valueHeads] },
    { name: n.aLog, shape: [m.valueHeads] },
    { name: `${n.gateNorm}.weight`, shape: [m.valueHeadDim] },
    ...linear(n.outProj, model.dim, w.value, false),
  ];
}

type ByMixerKind<R> = {
  [K in MixerKind]: (model: ModelIR, i: number, m: Extract<MixerSpec, { kind: K }>) => R;
};

function byMixerKind<R>(table: ByMixerKind<R>, model: ModelIR, i: number, m: MixerSpec): R {
  return (table[m.kind] as (model: ModelIR, i: number, m: MixerSpec) => R)(model, i, m);
}

const MIXER_TENSORS: ByMixerKind<TensorSpec[]> = {
  attention: attentionTensors,
  mamba1: mamba1Tensors,
  mamba2: mamba2Tensors,
  shortconv: shortConvTensors,
  gated_deltanet: gatedDeltaNetTensors,
};

function mlpTensors(model: ModelIR, i: number, f: MlpSpec): TensorSpec[] {
  const n = mlpNames(i);
  return [
    ...normTensors(model, n.norm, model.dim),
    ...(f.gated ? linear(n.gate, f.hidden, model.dim, f.bias) : []),
    ...linear(n.up, f.hidden, model.dim, f.bias),
    ...linear(n.down, model.dim, f.hidden, f.bias),
  ];
}

/** The gate (when gated), up and down projections of one MLP under `names`' prefixes. */
function mlpProjections(
  model: ModelIR,
  n: { gate: string; up: string; down: string },
  f: MlpSpec,
): TensorSpec[] {
  return [
    ...(f.gated ? linear(n.gate, f.hidden, model.dim, f.bias) : []),
    ...linear(n.up, f.hidden, model.dim, f.bias),
    ...linear(n.down, model.dim, f.hidden, f.bias),
  ];
}

function moeTensors(model: ModelIR, i: number, f: MoeSpec): TensorSpec[] {
  const n = moeNames(i);
  const out = [
    ...normTensors(model, n.norm, model.dim),
    ...linear(n.router, f.experts, model.dim, f.router.bias),
  ];
  if (f.router.correctionBias) out.push({ name: n.correctionBias, shape: [f.experts] });
  for (let e = 0; e < f.experts; e++) out.push(...mlpProjections(model, n.expert(e), f.expert));
  if (f.shared) out.push(...mlpProjections(model, n.shared, f.shared));
  if (f.sharedGate) out.push({ name: `${n.sharedGate}.weight`, shape: [1, model.dim] });
  return out;
}

export function layerTensors(model: ModelIR, layer: LayerSpec): TensorSpec[] {
  // A layer without a mixer (Nemotron-H's MLP layers) has neither its tensors nor its pre-norm.
  const out = layer.mixer ? byMixerKind(MIXER_TENSORS, model, layer.index, layer.mixer) : [];
  if (layer.ffn?.kind === 'moe') out.push(...moeTensors(model, layer.index, layer.ffn));
  else if (layer.ffn) out.push(...mlpTensors(model, layer.index, layer.ffn));
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

/** Full tensor names of an attention mixer; null where the model has no such tensor. */
export interface AttentionWeightNames {
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
}

export interface Mamba1WeightNames {
  inProj: string;
  inProjBias: string | null;
  conv: string;
  convBias: string | null;
  xProj: string;
  dtProj: string;
  dtProjBias: string;
  aLog: string;
  d: string;
  outProj: string;
  outProjBias: string | null;
  /** Jamba's inner norms on dt, B and C. */
  innerNorms: { dt: string; b: string; c: string } | null;
}

export interface Mamba2WeightNames {
  inProj: string;
  inProjBias: string | null;
  conv: string;
  convBias: string | null;
  dtBias: string;
  aLog: string;
  d: string;
  gateNorm: string;
  outProj: string;
  outProjBias: string | null;
}

export interface GatedDeltaNetWeightNames {
  inProjQkvz: string;
  inProjBa: string;
  conv: string;
  dtBias: string;
  aLog: string;
  gateNorm: string;
  outProj: string;
}

export interface ShortConvWeightNames {
  inProj: string;
  inProjBias: string | null;
  conv: string;
  convBias: string | null;
  outProj: string;
  outProjBias: string | null;
}

/** The mixer's names; which interface it is follows the layer's mixer kind. */
export type MixerWeightNames =
  | AttentionWeightNames
  | Mamba1WeightNames
  | Mamba2WeightNames
  | ShortConvWeightNames
  | GatedDeltaNetWeightNames;

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

function normWeightNames(model: ModelIR, prefix: string): NormWeightNames {
  return {
    weight: `${prefix}.weight`,
    bias: model.norm.kind === 'layer' && model.norm.bias ? `${prefix}.bias` : null,
  };
}

const w = (p: string) => `${p}.weight`;
const b = (p: string, on: boolean) => (on ? `${p}.bias` : null);

const MIXER_NAMES: ByMixerKind<MixerWeightNames> = {
  attention: (_model, i, a: AttentionSpec) => {
    const n = attentionNames(i);
    return {
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
    };
  },
  mamba1: (_model, i, m: Mamba1Spec) => {
    const n = mamba1Names(i);
    return {
      inProj: w(n.inProj),
      inProjBias: b(n.inProj, m.projBias),
      conv: w(n.conv),
      convBias: b(n.conv, m.convBias),
      xProj: w(n.xProj),
      dtProj: w(n.dtProj),
      dtProjBias: `${n.dtProj}.bias`,
      aLog: n.aLog,
      d: n.d,
      outProj: w(n.outProj),
      outProjBias: b(n.outProj, m.projBias),
      innerNorms: m.innerNorms ? { dt: w(n.dtNorm), b: w(n.bNorm), c: w(n.cNorm) } : null,
    };
  },
  mamba2: (_model, i, m: Mamba2Spec) => {
    const n = mamba2Names(i);
    return {
      inProj: w(n.inProj),
      inProjBias: b(n.inProj, m.projBias),
      conv: w(n.conv),
      convBias: b(n.conv, m.convBias),
      dtBias: n.dtBias,
      aLog: n.aLog,
      d: n.d,
      gateNorm: w(n.gateNorm),
      outProj: w(n.outProj),
      outProjBias: b(n.outProj, m.projBias),
    };
  },
  shortconv: (_model, i, m: ShortConvSpec) => {
    const n = shortConvNames(i);
    return {
      inProj: w(n.inProj),
      inProjBias: b(n.inProj, m.bias),
      conv: w(n.conv),
      convBias: b(n.conv, m.bias),
      outProj: w(n.outProj),
      outProjBias: b(n.outProj, m.bias),
    };
  },
  gated_deltanet: (_model, i) => {
    const n = gatedDeltaNetNames(i);
    return {
      inProjQkvz: w(n.inProjQkvz),
      inProjBa: w(n.inProjBa),
      conv: w(n.conv),
      dtBias: n.dtBias,
      aLog: n.aLog,
      gateNorm: w(n.gateNorm),
      outProj: w(n.outProj),
    };
  },
};

/** Structured full names of layer i (derived from the same prefixes as layerTensors). */
export function layerWeightNames(model: ModelIR, i: number): LayerWeightNames {
  const layer = model.layers[i];
  if (!layer)
    throw new Error(`model '${model.name}' has no layer ${i} (it has ${model.layers.length})`);
  let ffn: LayerWeightNames['ffn'] = null;
  let moe: MoeWeightNames | null = null;
  if (layer.ffn?.kind === 'moe') {
    const f = layer.ffn;
    const m = moeNames(i);
    const mlp = (n: { gate: string; up: string; down: string }, s: MlpSpec): MlpWeightNames => ({
      gate: s.gated ? w(n.gate) : null,
      up: w(n.up),
      down: w(n.down),
      gateBias: b(n.gate, s.gated && s.bias),
      upBias: b(n.up, s.bias),
      downBias: b(n.down, s.bias),
    });
    moe = {
      norm: normWeightNames(model, m.norm),
      router: w(m.router),
      routerBias: b(m.router, f.router.bias),
      correctionBias: f.router.correctionBias ? m.correctionBias : null,
      experts: Array.from({ length: f.experts }, (_, e) => mlp(m.expert(e), f.expert)),
      shared: f.shared ? mlp(m.shared, f.shared) : null,
      sharedGate: f.sharedGate ? w(m.sharedGate) : null,
    };
  } else if (layer.ffn) {
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
    // Every mixer kind's pre-norm is input_layernorm.
    inputNorm: layer.mixer ? normWeightNames(model, attentionNames(i).norm) : null,
    mixer: layer.mixer ? byMixerKind(MIXER_NAMES, model, i, layer.mixer) : null,
    ffn,
    moe,
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
