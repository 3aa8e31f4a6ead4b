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
}

export type Activation = 'silu' | 'gelu' | 'gelu_tanh' | 'relu' | 'relu2';

export interface MlpSpec {
  kind: 'mlp';
  hidden: number;
  act: Activation;
  /** Gated (SwiGLU/GeGLU): act(x Wg) * (x Wu). Ungated: act(x Wu). */
  gated: boolean;
  bias: boolean;
}

export type MixerSpec = AttentionSpec;
export type FfnSpec = MlpSpec;

export interface LayerSpec {
  index: number;
  /** Name of the mixer definition in the source spec (for tables and overrides). */
  mixerName: string;
  mixer: MixerSpec;
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
