/**
 * fla's `gla` model type (GLAConfig, GLAForCausalLM; fla 0.5.2): GatedLinearAttention at every
 * layer the hybrid `attn` key leaves to it (src/mixers/gla.ts). The layer's own knobs that the
 * config does not pass stay at the layer's defaults: gate_low_rank_dim 16,
 * gate_logit_normalizer 16, conv_bias false. `use_gk` / `use_gv` are stored by the config but
 * read by no layer. Checkpoint names are strata's canonical ones under `attn.` (the mixer names
 * its weights with fla's suffixes), except the output norm of an unfused layer (below).
 */
import type { GlaFeatureMap, GlaSpec } from '../mixers/gla.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { flaModel, flaWeights, readFlaAttention, readFlaShell } from './fla-common.ts';
import type { FamilyImport } from './registry.ts';

/** fla's ACT2FN names (fla/modules/activations.py) → the feature map strata computes. */
const FEATURE_MAPS: Readonly<Record<string, GlaFeatureMap>> = {
  relu: 'relu',
  sigmoid: 'sigmoid',
  logsigmoid: 'logsigmoid',
  silu: 'silu',
  swish: 'silu',
  sqrelu: 'relu2',
  // fla's gelu is its tanh approximation (fast_gelu_impl).
  gelu: 'gelu_tanh',
};

function readFeatureMap(cfg: ConfigReader): GlaFeatureMap | null {
  const raw = cfg.raw('feature_map');
  if (raw === undefined || raw === null) return null;
  const name = cfg.str('feature_map');
  if (Object.hasOwn(FEATURE_MAPS, name)) return FEATURE_MAPS[name];
  if (name === 'bias_gelu') {
    return cfg.fail(
      'feature_map',
      `'bias_gelu' takes a bias argument, which fla's layer never passes; refusing it`,
    );
  }
  return cfg.fail(
    'feature_map',
    `'${name}' is not a feature map strata computes (fla's ACT2FN names: ${Object.keys(FEATURE_MAPS).join(', ')})`,
  );
}

/** A per-head width from fla's expand ratio: int(hidden · expand) split over the heads. */
function headWidth(cfg: ConfigReader, key: string, dim: number, heads: number): number {
  const expand = cfg.num(key, key === 'expand_k' ? 0.5 : 1);
  const total = Math.trunc(dim * expand);
  if (!(expand > 0) || total < heads || total % heads !== 0) {
    cfg.fail(
      key,
      `gives width int(${dim} × ${expand}) = ${total}, which num_heads ${heads} does not divide`,
    );
  }
  return total / heads;
}

export function importFlaGla(cfg: ConfigReader, name: string): FamilyImport {
  const shell = readFlaShell(cfg, { dim: 2048, layers: 24 });
  const heads = cfg.positiveInt('num_heads', 4);
  const kvHeads = cfg.has('num_kv_heads') ? cfg.positiveInt('num_kv_heads') : heads;
  cfg.ignore('num_kv_heads');
  if (heads % kvHeads !== 0)
    cfg.fail('num_kv_heads', `${kvHeads} does not divide num_heads ${heads}`);
  const keyHeadDim = headWidth(cfg, 'expand_k', shell.dim, heads);
  const valueHeadDim = headWidth(cfg, 'expand_v', shell.dim, heads);
  const featureMap = readFeatureMap(cfg);
  const shortConv = cfg.bool('use_short_conv', false);
  const dConv = shortConv ? cfg.positiveInt('conv_size', 4) : null;
  if (dConv !== null && dConv < 2) cfg.fail('conv_size', `must be at least 2, got ${dConv}`);
  cfg.ignore('conv_size');
  // Older fla configs (the fla-hub 1.3B/2.7B releases) carry keys fla 0.5.2 no longer reads.
  if (cfg.has('rms_norm_eps') && cfg.num('rms_norm_eps') !== shell.eps) {
    cfg.fail(
      'rms_norm_eps',
      `(an older fla name) is ${show(cfg.raw('rms_norm_eps'))} but norm_eps is ${shell.eps}; which one the checkpoint was trained with is unclear`,
    );
  }
  cfg.ignore('rms_norm_eps');
  if (shortConv && cfg.bool('share_conv_kernel', false)) {
    cfg.fail(
      'share_conv_kernel',
      'is set with use_short_conv: an older fla layout strata does not import',
    );
  }
  cfg.ignore('share_conv_kernel');
  // Stored by GLAConfig, read by no layer.
  cfg.ignore('use_gk', 'use_gv');
  const outputGate = cfg.bool('use_output_gate', true);
  // The output gate's function is hidden_act: swish, as fla's GatedMLP requires (readFlaShell).
  const clampMin = cfg.has('clamp_min') ? cfg.num('clamp_min') : null;
  cfg.ignore('clamp_min');
  if (clampMin !== null && clampMin > 0) {
    cfg.fail(
      'clamp_min',
      `is ${clampMin}: a floor above 0 on the log-gate would make the decay grow`,
    );
  }
  const spec: GlaSpec = {
    kind: 'gla',
    heads,
    kvHeads,
    keyHeadDim,
    valueHeadDim,
    featureMap,
    dConv,
    outputGate,
    gateRank: 16,
    gateNormalizer: 16,
    clampMin,
    normEps: shell.eps,
  };
  const attn = readFlaAttention(cfg, shell);
  const model = flaModel(name, shell, attn, 'gla', () => structuredClone(spec));
  // With fuse_norm false (or no output gate) the per-head norm is an RMSNorm named g_norm.
  const fused = cfg.raw('fuse_norm') !== false;
  return {
    model,
    ...flaWeights(model, (n) => (fused ? n : n.replace('.g_norm_swish_gate.', '.g_norm.'))),
  };
}
