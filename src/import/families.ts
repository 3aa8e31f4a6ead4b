/**
 * HF model types strata knows of but cannot run yet, each with what it lacks. When a
 * family lands, its entry moves from here to an importer in hf.ts.
 */
export const UNSUPPORTED_MODEL_TYPES: Readonly<Record<string, string>> = {
  mixtral: 'MoE FFNs (top-k routed experts)',
  qwen3_moe: 'MoE FFNs (top-k routed experts)',
  gemma3_text: 'sandwich norms (post-attention and post-FFN RMSNorm) and per-layer-type RoPE bases',
  gpt_oss: 'MoE FFNs with clamped SwiGLU and attention sinks',
  deepseek_v3: 'multi-head latent attention (MLA) and MoE FFNs with shared experts',
  mamba: 'mamba1 mixers',
  mamba2: 'mamba2 mixers',
  jamba: 'mamba1 mixers and MoE FFNs',
  bamba: 'mamba2 mixers',
  falcon_h1: 'parallel attention + mamba2 mixers and muP multipliers',
  nemotron_h: 'mamba2 mixers, MLP-only layers and MoE FFNs',
  granitemoehybrid: 'mamba2 mixers, MoE FFNs with a shared expert and Granite multipliers',
  zamba2: 'mamba2 mixers and shared attention blocks with LoRA adapters',
  lfm2: 'short gated convolution mixers',
  qwen3_next: 'gated DeltaNet mixers, gated attention and MoE FFNs with a shared expert',
};

export function unsupportedMessage(modelType: string): string | null {
  if (!Object.hasOwn(UNSUPPORTED_MODEL_TYPES, modelType)) return null;
  return `model_type '${modelType}' needs ${UNSUPPORTED_MODEL_TYPES[modelType]}, not supported yet`;
}
