/**
 * ModelIR: the normalised, validated model. Every layer is explicit and every
 * hyperparameter is resolved, so later stages never consult defaults or the DSL.
 * The YAML/JSON spec form is exactly this object (see schema.ts).
 */

import type { AttentionSpec } from '../mixers/attention.ts';
import type { DefinedMixerSpec } from '../mixers/index.ts';

export type { AttentionSpec } from '../mixers/attention.ts';
export type { GatedDeltaNetSpec } from '../mixers/gated-deltanet.ts';
export type { Mamba1Spec } from '../mixers/mamba1.ts';
export type { Mamba2ProjScales, Mamba2Spec } from '../mixers/mamba2.ts';
export type { MlaSpec } from '../mixers/mla.ts';
export type { ParallelSpec } from '../mixers/parallel.ts';
export type { ShortConvSpec } from '../mixers/shortconv.ts';

export const MODEL_IR_VERSION = 1;

/**
 * 'l2' (x / sqrt(Σx² + eps) per group, no weight) is an op-level kind: the q/k normalisation of the
 * delta-rule mixers, never a model's norm (the schema and the DSL's norm kinds list rms and layer).
 */
export type NormKind = 'rms' | 'layer' | 'l2';

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
  /**
   * Gemma 4's proportional RoPE (HF rope_type 'proportional'): of the rotaryDim / 2 pairs
   * (i, i + rotaryDim/2), only the first `pairs` rotate, at frequency θ^(−2i/rotaryDim) / factor;
   * the rest get frequency 0 (pass through). Unlike a partial rotary_dim, the pairing and the
   * exponents span the whole rotaryDim.
   */
  | { kind: 'proportional'; pairs: number; factor: number }
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
      /**
       * Round the correction range out to whole dims (HF default); GPT-OSS sets truncate false
       * and ramps between the fractional bounds.
       */
      truncate: boolean;
    };

export interface RopeSpec {
  theta: number;
  /** Number of leading head dims rotated (partial rotary); even, <= headDim. */
  rotaryDim: number;
  scaling: RopeScaling;
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
  /**
   * muP multipliers (Falcon-H1's mlp_multipliers): act(gateScale · (x Wg + bg)) and
   * downScale · (h Wd + bd). Absent means 1; present only when not 1.
   */
  gateScale?: number;
  downScale?: number;
  /**
   * RWKV's channel mixing (the DSL's rwkv7_cmix): the input row is first mixed with its
   * predecessor, x + (x′ − x)·μ, μ a learned [dim] vector (`mlp.x_k`) and x′ the previous row
   * (token shift, per-sequence state). Only in its RWKV form (relu2, ungated, no bias); absent
   * means false.
   */
  tokenShift?: boolean;
}

/** Every mixer kind's spec: each is defined in one file of src/mixers (src/mixers/index.ts). */
export type MixerSpec = DefinedMixerSpec;
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
  /**
   * Gemma 4 (DiffusionGemma): the router reads its own norm of the sublayer input, a weightless
   * RMS norm times a learned [dim] scale (mlp.gate.scale) times dim^−½, not the experts' normed
   * input. Absent: false (present only when true).
   */
  inputScale?: boolean;
  /**
   * Gemma 4: each selected expert's weight, after the top-k renormalisation, is multiplied by
   * the expert's learned scale (mlp.gate.per_expert_scale, [experts]). Absent: false.
   */
  expertScale?: boolean;
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
  /**
   * Gemma 4's dense MLP beside the experts (DiffusionGemma): the shared MLP and the experts each
   * read their own pre-norm of the sublayer input (the FFN norm, and experts_norm) and get their
   * own post-norm (shared_post_norm, experts_post_norm) before they are summed; the sum then
   * takes the model's post-FFN norm (needs postNorms) before the residual add:
   * x + post(post₁(mlp(pre(x))) + post₂(experts(pre₂(x)))). Needs shared experts without a gate.
   * Absent: false (present only when true).
   */
  branchNorms?: boolean;
}

export type FfnSpec = MlpSpec | MoeSpec;

/**
 * A transformer block whose weights are stored once and run at several depths (Zamba2's shared
 * blocks). At a layer that uses it, the block reads [x, e] (the residual stream beside the
 * token embeddings, width 2·dim): h = norm(concat(x, e)); a = attention(h) projected back to dim;
 * y = ffn(norm(a)) (neither sublayer has a residual); the layer's own linear maps y to s, and the
 * layer's mixer reads x + s while its residual stays x: x + mixer(norm(x + s)). Each use has its
 * own KV cache, linear and (optional) rank-`adapterRank` LoRA adapters y += (h A)B on q, k, v and
 * on the ffn's gate and up projections.
 */
export interface SharedBlockSpec {
  kind: 'shared';
  /** The name layers refer to it by; its weights live under model.shared.{name}. */
  name: string;
  /** Reads 2·dim columns; heads × headDim is its width before the output projection to dim. */
  attention: AttentionSpec;
  /** A gated MLP on dim (its gate and up projections are one fused tensor, gate rows first). */
  ffn: MlpSpec;
  adapterRank: number;
  /** Per-use adapters on q, k and v (HF use_shared_attention_adapter). */
  attentionAdapters: boolean;
  /** Per-use adapters on the ffn's gate and up projections (HF use_shared_mlp_adapter). */
  ffnAdapters: boolean;
}

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
  /** The shared block this layer runs before its mixer (see SharedBlockSpec); absent: none. */
  shared?: string | null;
}

/**
 * A masked-diffusion LM (LLaDA): generation denoises a canvas of `maskId` tokens with the
 * sampler of src/ops/diffusion.ts; these are its defaults, which `strata run` flags override.
 * Every mixer of such a model is bidirectional attention (`causal: false`).
 */
export interface DiffusionSpec {
  /**
   * Whose sampler: `llada` (ML-GSAI/LLaDA generate(): blocks, even counts) or `dream` (Dream's
   * diffusion_generate: one block, counts ⌊m·(1 − s/t)⌋ over linspace(1, eps, steps + 1)).
   */
  kind: 'llada' | 'dream';
  maskId: number;
  genLength: number;
  blockLength: number;
  steps: number;
  remasking: 'low_confidence' | 'random' | 'margin' | 'entropy';
  temperature: number;
  cfgScale: number;
  /** Position i's prediction is logits row i − 1 (Dream); absent: false. */
  shiftLogits?: boolean;
  /** Dream's final time (kind dream only; absent: 1e-3). */
  eps?: number;
}

/**
 * A block-diffusion LM (BD3-LM): blocks are generated left to right, each denoised against the
 * exact K/V of the committed blocks (src/ops/block-diffusion.ts); these are its sampler's
 * defaults. Every mixer is block-causal attention (`block_causal: B`) with blockLength a
 * multiple of B.
 */
export interface BlockDiffusionSpec {
  kind: 'bd3lm';
  maskId: number;
  genLength: number;
  blockLength: number;
  steps: number;
  sampler: 'first_hitting' | 'ddpm';
  temperature: number;
  nucleusP: number;
}

/**
 * Block diffusion over uniform noise with the entropy-bound sampler (DiffusionGemma; the sampler
 * is src/ops/diffusion-entropy.ts, these are its defaults). The layers run twice with the same
 * weights: as a causal encoder appending the context to the KV cache (a step with Step keys 0)
 * and as a denoiser over a canvas after it (keys > 0), which needs `phased` attention in every
 * layer. The denoiser's input is a weightless RMS norm of emb(canvas)·embeddingScale + SC(p),
 * where p is the previous step's softmax (the state `self_condition.probs`, written by the
 * runtime before each denoising step, zero at a canvas's first step) and
 * SC(p) = selfCondition(rmsnorm(p·E·embeddingScale)) (E the embedding table; tensors under
 * model.self_condition). An encoding step's input is the plain embedding.
 */
export interface EntropyBoundSpec {
  kind: 'entropy_bound';
  // The sampler's settings (a run's EntropyBoundRun adds eos, pad and seed to these); names are
  // HF's DiffusionGemmaGenerationConfig's in camelCase.
  /** Tokens per canvas (the config's canvas_length). */
  canvasLength: number;
  /** Tokens to generate (by default, for the spec): a whole number of canvases. */
  genLength: number;
  /** Denoising steps per canvas at most (max_denoising_steps). */
  maxSteps: number;
  /** Temperature at the last step and the first (t_min, t_max); tMax 0: greedy. */
  tMin: number;
  tMax: number;
  /** The acceptance bound on the summed entropies (sampler_config.entropy_bound). */
  entropyBound: number;
  /** Steps whose argmax must repeat before a canvas may stop (0: no stability rule). */
  stabilityThreshold: number;
  /** A canvas may stop once its mean entropy is below this. */
  confidenceThreshold: number;
  /** The self-conditioning MLP (gated, no bias) on the normed soft embedding. */
  selfCondition: MlpSpec;
}

export interface ModelIR {
  version: typeof MODEL_IR_VERSION;
  name: string;
  vocab: number;
  dim: number;
  /** Norm used before each sublayer and at the end. */
  norm: NormSpec;
  /**
   * Sandwich norms (Gemma 2/3): each sublayer's output is normed again before the residual add,
   * x + norm_post(f(norm_pre(x))), with its own weights (post_mixer_norm, post_ffn_norm).
   */
  postNorms: boolean;
  tieEmbeddings: boolean;
  /** Multiplier applied to token embeddings (Gemma: sqrt(dim)); 1 for most models. */
  embeddingScale: number;
  /**
   * Multiplier on every sublayer's output before its residual add, x + residualScale ·
   * sublayer(norm(x)), for mixers and FFNs alike (Granite's residual_multiplier); 1 for most.
   */
  residualScale: number;
  /**
   * Multiplier on the final logits, before any softcap (Granite: 1 / logits_scaling, Falcon-H1:
   * lm_head_multiplier); 1 for most.
   */
  logitScale: number;
  /** Final logit softcap c: logits = c * tanh(logits / c); null is none. */
  logitSoftcap: number | null;
  /**
   * Gemma 4's layer_scalar: every layer's output (after its last residual add) is multiplied by
   * a learned scalar, the [1] parameter model.layers.{i}.layer_scalar. Absent: false (present
   * only when true).
   */
  layerScalars?: boolean;
  /**
   * The output head has a bias, logits = logitScale · (W h + b) with b the [vocab] parameter lm_head.bias
   * (BD3-LM's output_layer.linear). Absent: false (present only when true).
   */
  headBias?: boolean;
  /** Longest context the model supports (KV cache capacity default). */
  maxContext: number;
  /** Present for a masked-diffusion model (its mask id and sampler defaults); absent: autoregressive. */
  diffusion?: DiffusionSpec | BlockDiffusionSpec | EntropyBoundSpec;
  /** Blocks whose weights several layers share (Zamba2); absent: none. */
  sharedBlocks?: SharedBlockSpec[];
  layers: LayerSpec[];
}
