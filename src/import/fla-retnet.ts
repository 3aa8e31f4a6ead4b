/**
 * fla's `retnet` model type (RetNetConfig, RetNetForCausalLM): the retnet mixer
 * (src/mixers/retnet.ts) at every layer the hybrid `attn` key leaves, fla's GatedMLP after it.
 * Defaults are RetNetConfig's.
 */
import type { RetNetSpec } from '../mixers/retnet.ts';
import { show, type ConfigReader } from './config-reader.ts';
import {
  flaModel,
  flaWeights,
  readFlaAttention,
  readFlaHeads,
  readFlaShell,
} from './fla-common.ts';
import type { FamilyImport } from './registry.ts';

export function importRetNet(cfg: ConfigReader, name: string): FamilyImport {
  const shell = readFlaShell(cfg, { dim: 2048, layers: 24, hiddenRatio: 2 });
  const attn = readFlaAttention(cfg, shell);
  const featureMap = cfg.raw('feature_map');
  if (featureMap !== undefined && featureMap !== null) {
    cfg.fail('feature_map', `is ${show(featureMap)}; strata's retnet supports only null (none)`);
  }
  // RetNetBlock never passes these to MultiScaleRetention, whose default is no short conv; older
  // fla configs also carry rms_norm_eps and share_conv_kernel, which nothing reads.
  cfg.ignore('use_short_conv', 'conv_size', 'rms_norm_eps', 'share_conv_kernel');
  const outputGate = cfg.bool('use_output_gate', true);
  const spec: RetNetSpec = {
    kind: 'retnet',
    ...readFlaHeads(cfg, shell, { heads: 8, expandK: 1, expandV: 2 }),
    // Fixed in fla: the decay formula and RotaryEmbedding's base take no config key.
    decayExponent: 5,
    ropeTheta: 10000,
    outputGate,
    // The gate function is the config's hidden_act, the MLP's activation too.
    gateAct: shell.ffn.act,
    normEps: shell.eps,
  };
  const model = flaModel(name, shell, attn, 'retnet', () => structuredClone(spec));
  // The fused norm-and-gate module (g_norm_swish_gate) exists only with fuse_norm (hidden_act is
  // swish, readFlaShell); otherwise fla applies the same RMSNorm as `g_norm`, then the gate.
  const fused = cfg.bool('fuse_norm', true);
  const rename = (n: string) =>
    outputGate && !fused ? n.replace(/\.attn\.g_norm_swish_gate\./, '.attn.g_norm.') : n;
  return { model, ...flaWeights(model, rename) };
}
