/**
 * HF model types strata knows of but cannot run yet, each with what it lacks. When a
 * family lands, its entry moves from here to an importer in hf.ts.
 */
export const UNSUPPORTED_MODEL_TYPES: Readonly<Record<string, string>> = {
  gemma3_text: 'sandwich norms (post-attention and post-FFN RMSNorm) and per-layer-type RoPE bases',
  gpt_oss: 'attention sinks and an importer for its fused, interleaved expert tensors',
  deepseek_v3: 'multi-head latent attention (MLA)',
  falcon_h1: 'parallel attention + mamba2 branches in one layer and muP multipliers',
  granitemoehybrid: 'Granite multipliers and an importer for its fused expert tensors',
  zamba2: 'shared attention blocks with LoRA adapters',
};

export function unsupportedMessage(modelType: string): string | null {
  if (!Object.hasOwn(UNSUPPORTED_MODEL_TYPES, modelType)) return null;
  return `model_type '${modelType}' needs ${UNSUPPORTED_MODEL_TYPES[modelType]}, not supported yet`;
}
