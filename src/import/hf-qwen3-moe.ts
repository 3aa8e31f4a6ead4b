/**
 * Qwen3MoeConfig (HF `qwen3_moe`): Qwen3's attention, and a sparse MoE in the layers that
 * decoder_sparse_step and mlp_only_layers leave sparse (hf-moe.ts's qwen3MoeFfns).
 */
import { decoderImporter, positiveWindow } from './hf-decoder.ts';
import { qwen3MoeFfns } from './hf-moe.ts';

export const importQwen3Moe = decoderImporter({
  family: 'qwen3_moe',
  kvHeadsWhenAbsent: 4,
  headDimWhenAbsent: null,
  maxPositions: 32768,
  rmsEps: 1e-6,
  theta: 10000,
  attentionBiasKey: true,
  mlpBiasKey: false,
  qkNorm: true,
  // Qwen3MoeConfig applies sliding_window to every layer when use_sliding_window is set; it
  // has no max_window_layers (older configs still carry one, which nothing reads).
  windows: (cfg, layers) => {
    cfg.ignore('max_window_layers');
    const size = positiveWindow(cfg, 'sliding_window', 4096);
    return Array(layers).fill(cfg.bool('use_sliding_window', false) ? size : null);
  },
  ffns: qwen3MoeFfns,
});
