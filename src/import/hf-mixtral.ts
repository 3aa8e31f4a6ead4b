/**
 * MixtralConfig (HF `mixtral`): Mistral's layout with a sparse MoE in every layer; the
 * checkpoint keeps the router and experts under `block_sparse_moe` (w1 / w3 / w2).
 */
import type { MlpSpec } from '../spec/model.ts';
import type { ConfigReader } from './config-reader.ts';
import { decoderImporter, positiveWindow } from './hf-decoder.ts';
import { moeSpec, readTopK, softmaxRouter, type LayerFfn } from './hf-moe.ts';

/**
 * Mixtral: every layer is sparse; intermediate_size is each expert's width; the router
 * renormalises the top-k softmax weights. router_jitter_noise only perturbs training.
 */
function mixtralFfns(cfg: ConfigReader, layers: number, dense: MlpSpec): LayerFfn[] {
  const experts = cfg.positiveInt('num_local_experts', 8);
  const topK = readTopK(cfg, experts, 2);
  cfg.ignore('router_jitter_noise');
  const spec = moeSpec(experts, topK, dense, softmaxRouter(true));
  return Array.from({ length: layers }, () => ({ name: 'moe', spec: structuredClone(spec) }));
}

/**
 * Checkpoint names of Mixtral's sparse blocks: `block_sparse_moe.gate` for the router and
 * `experts.{e}.w1 / w3 / w2` for gate / up / down (the names transformers keeps on disk).
 */
function mixtralWeightName(canonical: string): string {
  const m =
    /^(model\.layers\.\d+)\.mlp\.(gate\.weight|experts\.(\d+)\.(gate|up|down)_proj\.weight)$/.exec(
      canonical,
    );
  if (!m) return canonical;
  if (m[3] === undefined) return `${m[1]}.block_sparse_moe.gate.weight`;
  const w = { gate: 'w1', up: 'w3', down: 'w2' }[m[4] as 'gate' | 'up' | 'down'];
  return `${m[1]}.block_sparse_moe.experts.${m[3]}.${w}.weight`;
}

export const importMixtral = decoderImporter({
  family: 'mixtral',
  kvHeadsWhenAbsent: 8,
  headDimWhenAbsent: null,
  maxPositions: 4096 * 32,
  rmsEps: 1e-5,
  theta: 1e6,
  attentionBiasKey: false,
  mlpBiasKey: false,
  qkNorm: false,
  // MixtralConfig, unlike MistralConfig, has no window when the key is absent.
  windows: (cfg, layers) => Array(layers).fill(positiveWindow(cfg, 'sliding_window', null)),
  ffns: mixtralFfns,
  weightName: mixtralWeightName,
});
