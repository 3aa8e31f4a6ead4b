/**
 * fla's `linear_attn` model type (LinearAttentionConfig, LinearAttentionForCausalLM): the
 * linear_attn mixer (src/mixers/linear-attn.ts) at every layer the hybrid `attn` key leaves, fla's
 * GatedMLP after it. Defaults are LinearAttentionConfig's.
 */
import type { FeatureMap, LinearAttnSpec } from '../mixers/linear-attn.ts';
import { show, type ConfigReader } from './config-reader.ts';
import {
  flaModel,
  flaWeights,
  readFlaAttention,
  readFlaHeads,
  readFlaShell,
} from './fla-common.ts';
import type { FamilyImport } from './hf-ssm.ts';

/** fla's names of the parameter-free feature maps (fla/layers/linear_attn.py) → strata's. */
const FEATURE_MAPS: Readonly<Record<string, FeatureMap>> = {
  elu: 'elu1', // fla: F.elu(x) + 1
  relu: 'relu',
  identity: 'identity',
};

export function importLinearAttn(cfg: ConfigReader, name: string): FamilyImport {
  const shell = readFlaShell(cfg, { dim: 2048, layers: 24 });
  const attn = readFlaAttention(cfg, shell);
  const mapName = cfg.raw('feature_map') ?? 'elementwise_product';
  if (typeof mapName !== 'string' || !Object.hasOwn(FEATURE_MAPS, mapName)) {
    cfg.fail(
      'feature_map',
      `is ${show(mapName)}; strata supports ${Object.keys(FEATURE_MAPS).join(', ')} (fla's learnt maps hedgehog, t2r, elementwise_product and dpfp are not implemented)`,
    );
  }
  // Tying shares the weights of learnt maps between q and k; the supported maps have none.
  cfg.bool('tie_feature_map_qk', false);
  const spec: LinearAttnSpec = {
    kind: 'linear_attn',
    ...readFlaHeads(cfg, shell, { heads: 4, expandK: 1, expandV: 1 }),
    featureMap: FEATURE_MAPS[mapName],
    normQ: cfg.bool('norm_q', false),
    normK: cfg.bool('norm_k', false),
    normalize: cfg.bool('norm_feature_map', false),
    normEps: shell.eps,
  };
  const model = flaModel(name, shell, attn, 'linear_attn', () => structuredClone(spec));
  return { model, ...flaWeights(model) };
}
