/**
 * fla's `gated_deltanet` (GatedDeltaNetConfig, fla/models/gated_deltanet) → the `deltanet` mixer
 * with decay 'head': num_heads key heads of head_dim, num_v_heads value heads (default num_heads)
 * of head_dim · expand_v, q/k always SiLU (in the short conv, or on the projection without it),
 * β always sigmoid(b_proj x).
 */
import type { ConfigReader } from './config-reader.ts';
import { flaModel, flaWeights, readFlaAttention, readFlaShell } from './fla-common.ts';
import { readDeltaRuleKeys } from './fla-delta-net.ts';
import type { FamilyImport } from './hf-ssm.ts';
import type { DeltaNetSpec } from '../mixers/deltanet.ts';

export function importFlaGatedDeltaNet(cfg: ConfigReader, name: string): FamilyImport {
  const shell = readFlaShell(cfg, { dim: 2048, layers: 21 });
  const attn = readFlaAttention(cfg, shell);
  const heads = cfg.positiveInt('num_heads', 6);
  const keyHeadDim = cfg.positiveInt('head_dim', 256);
  const valueHeads = cfg.has('num_v_heads') ? cfg.positiveInt('num_v_heads') : heads;
  cfg.ignore('num_v_heads');
  // fla's kernels give value head i key head i // (num_v_heads / num_heads).
  if (valueHeads % heads !== 0) {
    cfg.fail('num_v_heads', `${valueHeads} is not a multiple of num_heads ${heads}`);
  }
  const expandV = cfg.num('expand_v', 2);
  // fla requires head_dim · expand_v to be a whole number (its isclose check) and truncates it.
  const valueHeadDim = Math.trunc(keyHeadDim * expandV);
  if (!(valueHeadDim > 0) || Math.abs(keyHeadDim * expandV - valueHeadDim) > 1e-5 * valueHeadDim) {
    cfg.fail('expand_v', `${expandV} times head_dim ${keyHeadDim} is not a positive whole number`);
  }
  const spec: DeltaNetSpec = {
    kind: 'deltanet',
    heads,
    valueHeads,
    keyHeadDim,
    valueHeadDim,
    ...readDeltaRuleKeys(cfg, true),
    qkActivation: 'silu',
    useBeta: true,
    decay: 'head',
    normEps: shell.eps,
  };
  const model = flaModel(name, shell, attn, 'deltanet', () => structuredClone(spec));
  return { model, ...flaWeights(model) };
}
