/** LlamaConfig (HF `llama`): the plain pre-norm decoder, full attention in every layer. */
import { decoderImporter } from './hf-decoder.ts';

export const importLlama = decoderImporter({
  family: 'llama',
  kvHeadsWhenAbsent: null,
  headDimWhenAbsent: null,
  maxPositions: 2048,
  rmsEps: 1e-6,
  theta: 10000,
  attentionBiasKey: true,
  mlpBiasKey: true,
  qkNorm: false,
  windows: (_cfg, layers) => Array<null>(layers).fill(null),
});
