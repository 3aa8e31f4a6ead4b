/** MistralConfig (HF `mistral`): Llama's layout with one sliding window in every layer. */
import { decoderImporter, positiveWindow } from './hf-decoder.ts';

export const importMistral = decoderImporter({
  family: 'mistral',
  kvHeadsWhenAbsent: 8,
  headDimWhenAbsent: null,
  maxPositions: 4096 * 32,
  rmsEps: 1e-6,
  theta: 10000,
  attentionBiasKey: false,
  mlpBiasKey: false,
  qkNorm: false,
  // MistralConfig defaults sliding_window to 4096 when the key is absent.
  windows: (cfg, layers) => Array(layers).fill(positiveWindow(cfg, 'sliding_window', 4096)),
});
