/**
 * Qwen3Config (HF `qwen3`): Llama's layout with q/k RMSNorms, and a sliding window in the layers
 * layer_types (else max_window_layers) picks when use_sliding_window is set.
 */
import { show, type ConfigReader } from './config-reader.ts';
import { decoderImporter, positiveWindow } from './hf-decoder.ts';

const SLIDING_LAYER_TYPES = new Set(['full_attention', 'sliding_attention']);

/** Qwen3: use_sliding_window gates sliding_window; layer_types, else max_window_layers, says where. */
function qwen3Windows(cfg: ConfigReader, layers: number): (number | null)[] {
  const use = cfg.bool('use_sliding_window', false);
  const size = positiveWindow(cfg, 'sliding_window', 4096);
  const sliding = use ? size : null;
  const maxWindowLayers = cfg.int('max_window_layers', 28);
  const types = cfg.optStringList('layer_types');
  if (types) {
    if (types.length !== layers) {
      cfg.fail('layer_types', `has ${types.length} entries for ${layers} layers`);
    }
    const bad = types.find((t) => !SLIDING_LAYER_TYPES.has(t));
    if (bad !== undefined)
      cfg.fail('layer_types', `entry ${show(bad)} is not full_attention or sliding_attention`);
    return types.map((t) => (t === 'sliding_attention' ? sliding : null));
  }
  return Array.from({ length: layers }, (_, i) =>
    sliding !== null && i >= maxWindowLayers ? sliding : null,
  );
}

export const importQwen3 = decoderImporter({
  family: 'qwen3',
  kvHeadsWhenAbsent: 32,
  headDimWhenAbsent: 128,
  maxPositions: 32768,
  rmsEps: 1e-6,
  theta: 10000,
  attentionBiasKey: true,
  mlpBiasKey: false,
  qkNorm: true,
  windows: qwen3Windows,
});
