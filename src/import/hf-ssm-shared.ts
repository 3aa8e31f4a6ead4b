/**
 * What the state-space and hybrid importers share (hf-mamba.ts, hf-mamba2.ts, hf-bamba.ts,
 * hf-jamba.ts, hf-lfm2.ts, hf-nemotron-h.ts, and the Mamba-2 hybrids hf-zamba2.ts,
 * hf-falcon-h1.ts, hf-granite.ts): the readers of the Mamba conv and SSM keys (a Mamba-2 mixer
 * under each family's key names, the dt limit, the SiLU requirement, the init-only keys), the
 * RMSNorm eps and layer-index readers, and the rule-based weight map (first matching rename;
 * depthwise conv weights stored [C, 1, K]) with HF Mamba's `backbone.` rules.
 */
import { type Mamba2Spec, type ModelIR, type NormSpec } from '../spec/model.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { rmsNorm } from './hf-model.ts';
import { readActivation } from './hf-decoder.ts';
import { expectedTensors } from './names.ts';
import type { FamilyImport } from './registry.ts';

export type Rule = [RegExp, string];

/** The weight map and stored shapes of a model whose checkpoint renames by `rules` (first match). */
export function mapWeights(model: ModelIR, rules: readonly Rule[]): Omit<FamilyImport, 'model'> {
  const weightMap: Record<string, string> = {};
  const storedShapes: Record<string, number[]> = {};
  for (const t of expectedTensors(model)) {
    const rule = rules.find(([re]) => re.test(t.name));
    weightMap[t.name] = rule ? t.name.replace(rule[0], rule[1]) : t.name;
    // nn.Conv1d(groups=channels) stores [channels, 1, kernel]: the same elements as [C, K].
    if (/\.conv1d\.weight$/.test(t.name)) storedShapes[t.name] = [t.shape[0], 1, t.shape[1]];
  }
  return { weightMap, storedShapes };
}

export function rms(cfg: ConfigReader, key: string, fallback: number): NormSpec {
  const eps = cfg.num(key, fallback);
  if (!(eps > 0)) cfg.fail(key, `must be positive, got ${eps}`);
  return rmsNorm(eps);
}

/** Mamba's conv and gate activation: the kernels implement SiLU only. */
export function requireSilu(cfg: ConfigReader, key: string): void {
  if (readActivation(cfg, key, 'silu') !== 'silu') {
    cfg.fail(key, 'must be silu for the mamba mixers (the conv and gate activation)');
  }
}

/** time_step_limit [min, max] → dtMin / dtMax (null for +inf); HF default (0, inf). */
export function readDtLimit(
  cfg: ConfigReader,
  key = 'time_step_limit',
): { dtMin: number; dtMax: number | null } {
  const raw = cfg.raw(key);
  if (raw === undefined || raw === null) return { dtMin: 0, dtMax: null };
  const ok =
    Array.isArray(raw) &&
    raw.length === 2 &&
    raw.every((v) => typeof v === 'number') &&
    (raw[0] as number) >= 0 &&
    Number.isFinite(raw[0]) &&
    (raw[1] as number) >= (raw[0] as number);
  if (!ok) cfg.fail(key, `must be [min, max] with 0 <= min <= max, got ${show(raw)}`);
  const [lo, hi] = raw as number[];
  return { dtMin: lo, dtMax: Number.isFinite(hi) ? hi : null };
}

/** Keys that only seed the training-time initialisation of the SSM parameters. */
export const SSM_INIT_KEYS = [
  'time_step_min',
  'time_step_max',
  'time_step_floor',
  'time_step_scale',
  'time_step_init_scheme',
  'rescale_prenorm_residual',
  // f32 everywhere: keeping the residual in f32 changes nothing.
  'residual_in_fp32',
  // Training-time kernel choices in MambaConfig.
  'use_mambapy',
  'use_associative_scan',
] as const;

/**
 * State-space models have no context limit of their own; strata still sizes buffers from
 * max_context, so SSM-only checkpoints get a generous default.
 */
export const SSM_MAX_CONTEXT = 1 << 20;

/** HF Mamba's and Nemotron-H's names: everything under `backbone.`, the final norm norm_f. */
export const BACKBONE_RULES: readonly Rule[] = [
  [/^model\.embed_tokens\./, 'backbone.embeddings.'],
  [/^model\.norm\./, 'backbone.norm_f.'],
  [/^model\.layers\.(\d+)\.input_layernorm\./, 'backbone.layers.$1.norm.'],
  [/^model\.layers\.(\d+)\.mixer\./, 'backbone.layers.$1.mixer.'],
];

/**
 * Jamba's names, which Bamba and Falcon-H1 keep: final_layernorm, the mixer under `mamba`, the
 * FFN's norm pre_ff_layernorm and the FFN under `feed_forward` (each importer adds its own FFN rules
 * before the last, as rules apply first match first).
 */
export const JAMBA_STYLE_RULES: readonly Rule[] = [
  [/^model\.norm\./, 'model.final_layernorm.'],
  [/^model\.layers\.(\d+)\.mixer\./, 'model.layers.$1.mamba.'],
  [/^model\.layers\.(\d+)\.post_attention_layernorm\./, 'model.layers.$1.pre_ff_layernorm.'],
];

/** JAMBA_STYLE_RULES' FFN rule: everything else under `mlp` goes to `feed_forward`. */
export const FEED_FORWARD_RULE: Rule = [
  /^model\.layers\.(\d+)\.mlp\./,
  'model.layers.$1.feed_forward.',
];

interface Mamba2Keys {
  heads: string;
  headDim: string;
  dState: string;
  groups: string;
  dConv: string;
  expand: string;
  chunk: string;
  convBias: string;
  projBias: string;
}

/**
 * A Mamba-2 mixer from a config's keys (names differ per family). heads × headDim must be
 * the inner width expand × dim, as every HF Mamba-2 class assumes when it reshapes.
 */
export function readMamba2(
  cfg: ConfigReader,
  dim: number,
  k: Mamba2Keys,
  defaults: {
    heads: number;
    dState: number;
    groups: number;
    chunk: number;
    headDim: number | 'auto';
  },
  norm: { eps: number; perGroup: boolean },
): Mamba2Spec {
  const expand = cfg.positiveInt(k.expand, 2);
  const inner = expand * dim;
  const heads = cfg.positiveInt(k.heads, defaults.heads);
  const rawHeadDim = cfg.raw(k.headDim);
  let headDim: number;
  if (
    rawHeadDim === 'auto' ||
    ((rawHeadDim === undefined || rawHeadDim === null) && defaults.headDim === 'auto')
  ) {
    if (inner % heads !== 0)
      cfg.fail(k.heads, `${heads} does not divide ${k.expand} × hidden_size (${inner})`);
    headDim = inner / heads;
  } else {
    headDim = cfg.positiveInt(
      k.headDim,
      defaults.headDim === 'auto' ? undefined : defaults.headDim,
    );
  }
  if (heads * headDim !== inner) {
    cfg.fail(
      k.headDim,
      `${headDim} × ${k.heads} ${heads} = ${heads * headDim} is not ${k.expand} × hidden_size (${inner})`,
    );
  }
  const groups = cfg.positiveInt(k.groups, defaults.groups);
  if (heads % groups !== 0) cfg.fail(k.groups, `${groups} does not divide ${k.heads} ${heads}`);
  return {
    kind: 'mamba2',
    heads,
    headDim,
    dState: cfg.positiveInt(k.dState, defaults.dState),
    groups,
    dConv: cfg.positiveInt(k.dConv, 4),
    chunk: cfg.positiveInt(k.chunk, defaults.chunk),
    convBias: cfg.bool(k.convBias, true),
    projBias: cfg.bool(k.projBias, false),
    normGroup: norm.perGroup ? inner / groups : inner,
    normEps: norm.eps,
    ...readDtLimit(cfg),
  };
}

/** Indices into `n` layers: each an integer in range, none repeated. */
export function readIndexList(cfg: ConfigReader, key: string, n: number): number[] | null {
  const raw = cfg.raw(key);
  if (raw === undefined || raw === null) return null;
  const ok =
    Array.isArray(raw) &&
    raw.every((v) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < n) &&
    new Set(raw).size === raw.length;
  if (!ok) cfg.fail(key, `must list distinct layer indices in [0, ${n}), got ${show(raw)}`);
  return raw as number[];
}

/**
 * Bamba's Mamba-2 mixer: its mamba_* keys and BambaConfig's defaults, which
 * GraniteMoeHybridConfig shares; BambaRMSNormGated (eps rms_norm_eps) normalises the whole inner
 * width.
 */
export function readBambaMamba2(cfg: ConfigReader, dim: number, eps: number): Mamba2Spec {
  return readMamba2(
    cfg,
    dim,
    {
      heads: 'mamba_n_heads',
      headDim: 'mamba_d_head',
      dState: 'mamba_d_state',
      groups: 'mamba_n_groups',
      dConv: 'mamba_d_conv',
      expand: 'mamba_expand',
      chunk: 'mamba_chunk_size',
      convBias: 'mamba_conv_bias',
      projBias: 'mamba_proj_bias',
    },
    { heads: 128, headDim: 'auto', dState: 256, groups: 1, chunk: 256 },
    { eps, perGroup: false },
  );
}
