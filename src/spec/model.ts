/**
 * ModelIR: the normalised, validated model. Every layer is explicit and every
 * hyperparameter is resolved, so later stages never consult defaults or the DSL.
 * The YAML/JSON spec form is exactly this object (see schema.ts).
 */

export const MODEL_IR_VERSION = 1;

export type NormKind = 'rms' | 'layer';

export interface NormSpec {
  kind: NormKind;
  eps: number;
  /** Gemma-style RMSNorm multiplies by (1 + w) instead of w. */
  unitOffset: boolean;
  /** LayerNorm bias (ignored for rms). */
  bias: boolean;
}

export type RopeScaling =
  | { kind: 'none' }
  | { kind: 'linear'; factor: number }
  | {
      kind: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    }
  | {
      kind: 'yarn';
      factor: number;
      originalMaxPositions: number;
      betaFast: number;
      betaSlow: number;
      /** Multiplier on cos/sin; HF default 0.1*ln(factor)+1. */
      attentionFactor: number;
    };

export interface RopeSpec {
  theta: number;
  /** Number of leading head dims rotated (partial rotary); even, <= headDim. */
  rotaryDim: number;
  scaling: RopeScaling;
}

export interface AttentionSpec {
  kind: 'attention';
  heads: number;
  kvHeads: number;
  headDim: number;
  /** null: no positional encoding inside attention (e.g. Jamba). */
  rope: RopeSpec | null;
  /** Per-head RMSNorm on q and k before RoPE (Qwen3, Gemma3). */
  qkNorm: boolean;
  /** Bias on the q/k/v projections. */
  qkvBias: boolean;
  /** Bias on the output projection. */
  outBias: boolean;
  causal: boolean;
  /** Sliding window length in tokens; null is full attention. */
  window: number | null;
  /** Softmax scale; usually headDim^-0.5. */
  scale: number;
  /** Attention-logit softcap (Gemma2); null is none. */
  softcap: number | null;
  /**
   * Qwen3-Next's gated attention: q_proj emits, per head, headDim query rows then headDim gate
   * rows, and the attention output is multiplied by sigmoid(gate) before o_proj.
   */
  outputGate: boolean;
}

/**
 * 'sigmoid' is internal (the gated-attention output gate); the DSL's and the schema's act lists
 * leave it out.
 */
export type Activation = 'silu' | 'gelu' | 'gelu_tanh' | 'relu' | 'relu2' | 'sigmoid';

export interface MlpSpec {
  kind: 'mlp';
  hidden: number;
  act: Activation;
  /** Gated (SwiGLU/GeGLU): act(x Wg) * (x Wu). Ungated: act(x Wu). */
  gated: boolean;
  bias: boolean;
}

/**
 * Mamba-1 selective SSM mixer (HF MambaMixer): in_proj to x and the gate z, causal depthwise
 * conv + SiLU on x, x_proj to (dt, B, C), dt_proj, selective scan, gate, out_proj.
 */
export interface Mamba1Spec {
  kind: 'mamba1';
  /** Inner width (expand × dim). */
  dInner: number;
  dState: number;
  /** Conv kernel length (the conv state keeps dConv − 1 steps). */
  dConv: number;
  /** Rank of the dt projection. */
  dtRank: number;
  convBias: boolean;
  /** Bias on in_proj and out_proj. */
  projBias: boolean;
  /** Jamba's RMSNorms on dt, B and C after x_proj; null for none. */
  innerNorms: { eps: number } | null;
}

/**
 * Mamba-2 SSD mixer (HF Mamba2Mixer): in_proj to (z, xBC, dt), causal depthwise conv + SiLU on
 * xBC, SSD scan with scalar decay per head, gated RMSNorm with z, out_proj.
 */
export interface Mamba2Spec {
  kind: 'mamba2';
  heads: number;
  headDim: number;
  dState: number;
  /** B/C groups (heads share B and C within a group). */
  groups: number;
  dConv: number;
  /** Tokens per chunk of the chunked SSD algorithm (numerics only, not the model). */
  chunk: number;
  convBias: boolean;
  /** Bias on in_proj and out_proj. */
  projBias: boolean;
  /** The gated RMSNorm normalises groups of this many channels (heads × headDim for one group). */
  normGroup: number;
  normEps: number;
  /** softplus(dt + dt_bias) is clamped to [dtMin, dtMax]; dtMax null is no upper limit. */
  dtMin: number;
  dtMax: number | null;
}

/**
 * LFM2's gated short convolution: in_proj to (B, C, x), B·x through a causal depthwise conv
 * (no activation), C·conv, out_proj.
 */
export interface ShortConvSpec {
  kind: 'shortconv';
  /** Conv kernel length (HF conv_L_cache). */
  lCache: number;
  /** Bias on in_proj, conv and out_proj. */
  bias: boolean;
}

/**
 * Qwen3-Next's gated DeltaNet (HF Qwen3NextGatedDeltaNet): in_proj_qkvz and in_proj_ba (laid out
 * per key head: q, k, v, z then b, a for that head's valueHeads / keyHeads value heads), a causal
 * conv + SiLU over q, k, v (no bias), l2-normalised q and k, the gated delta rule per value head
 * (key heads repeated), a per-head RMSNorm of the output gated by silu(z), out_proj.
 */
export interface GatedDeltaNetSpec {
  kind: 'gated_deltanet';
  keyHeads: number;
  valueHeads: number;
  keyHeadDim: number;
  valueHeadDim: number;
  /** Conv kernel length (the conv state keeps dConv − 1 steps). */
  dConv: number;
  /** eps of the gated output RMSNorm. */
  normEps: number;
}

export type MixerSpec = AttentionSpec | Mamba1Spec | Mamba2Spec | ShortConvSpec | GatedDeltaNetSpec;
export type MixerKind = MixerSpec['kind'];
/**
 * How a MoE router turns router logits into each token's top-k experts and weights (see the
 * moe_route op in src/graph/ops.ts for the exact rules and the tie order).
 */
export interface MoeRouterSpec {
  /** 'softmax' over all experts (Mixtral, Qwen3-MoE, Jamba, GPT-OSS); 'sigmoid' (DeepSeek-V3). */
  scoring: 'softmax' | 'sigmoid';
  /**
   * Renormalise the selected weights to sum to 1: Mixtral and GPT-OSS (whose softmax over the
   * selected k is the same), Qwen3-MoE per norm_topk_prob; Jamba does not.
   */
  normalize: boolean;
  /** Multiplier on the weights (DeepSeek routed_scaling_factor); 1 for most. */
  scale: number;
  /** The router linear has a bias (GPT-OSS). */
  bias: boolean;
  /** Selection-only bias added to the sigmoid scores (DeepSeek-V3 e_score_correction_bias). */
  correctionBias: boolean;
  /** Group-limited selection: only the topkGroups best of `groups` expert groups compete; 1/1 off. */
  groups: number;
  topkGroups: number;
}

/**
 * A sparse mixture-of-experts FFN: a router picks topK of `experts` experts per token; the
 * output is the weighted sum of those experts' MLPs, plus optional shared experts every token
 * uses (a dense MLP of their combined width), optionally scaled by sigmoid(x · w_gate)
 * (Qwen2-MoE / Qwen3-Next's shared_expert_gate).
 */
export interface MoeSpec {
  kind: 'moe';
  experts: number;
  topK: number;
  /** Each routed expert's MLP. */
  expert: MlpSpec;
  /**
   * GPT-OSS's clamped SwiGLU in the experts (needs a gated silu expert):
   * g = min(g, limit), u = clamp(u, −limit, limit), y = g·σ(alpha·g)·(u + 1). null for the plain GLU.
   */
  clamp: { limit: number; alpha: number } | null;
  router: MoeRouterSpec;
  /** Shared experts as one dense MLP; null for none. */
  shared: MlpSpec | null;
  /** Scale the shared experts' output by sigmoid of a learned [1, dim] projection. */
  sharedGate: boolean;
}

export type FfnSpec = MlpSpec | MoeSpec;

export interface LayerSpec {
  index: number;
  /** Name of the mixer definition in the source spec (for tables and overrides). */
  mixerName: string;
  /**
   * null: the layer has no mixer sublayer, only its FFN (Nemotron-H's MLP layers); its
   * mixerName names a `mixer NAME = none` definition.
   */
  mixer: MixerSpec | null;
  /** null: the layer has no FFN sublayer. */
  ffnName: string | null;
  ffn: FfnSpec | null;
}

export interface ModelIR {
  version: typeof MODEL_IR_VERSION;
  name: string;
  vocab: number;
  dim: number;
  /** Norm used before each sublayer and at the end. */
  norm: NormSpec;
  tieEmbeddings: boolean;
  /** Multiplier applied to token embeddings (Gemma: sqrt(dim)); 1 for most models. */
  embeddingScale: number;
  /** Final logit softcap c: logits = c * tanh(logits / c); null is none. */
  logitSoftcap: number | null;
  /** Longest context the model supports (KV cache capacity default). */
  maxContext: number;
  layers: LayerSpec[];
}
