/**
 * RoPE settings from an HF config, in every spelling transformers has used: top-level
 * `rope_theta` / `partial_rotary_factor` with a `rope_scaling` dict keyed `type` or
 * `rope_type` (transformers 4), or the single `rope_parameters` dict of transformers 5.
 * Defaults follow transformers' rope utilities.
 */
import type { RopeScaling, RopeSpec } from '../spec/model.ts';
import { isConfigObject, show, type ConfigObject, type ConfigReader } from './config-reader.ts';

const ROPE_DICT_KEYS = new Set([
  'rope_type',
  'type',
  'rope_theta',
  'partial_rotary_factor',
  'factor',
  'low_freq_factor',
  'high_freq_factor',
  'original_max_position_embeddings',
  'attention_factor',
  'beta_fast',
  'beta_slow',
  'mscale',
  'mscale_all_dim',
  'truncate',
]);

export interface RopeContext {
  headDim: number;
  /** max_position_embeddings: the default pre-scaling context for llama3/yarn. */
  maxPositions: number;
  /** The model class's default rope_theta. */
  defaultTheta: number;
  family: string;
  /** partial_rotary_factor when no key gives one (Qwen3-Next's config class: 0.25); else 1. */
  defaultPartial?: number;
}

export function readRope(cfg: ConfigReader, ctx: RopeContext): RopeSpec {
  const topTheta = cfg.optNum('rope_theta');
  const topPartial = cfg.optNum('partial_rotary_factor');
  const topOrig = cfg.optInt('original_max_position_embeddings');
  const scaling = cfg.optObject('rope_scaling');
  const params = cfg.optObject('rope_parameters');
  if (scaling && params && JSON.stringify(scaling) !== JSON.stringify(params)) {
    cfg.fail(
      'rope_scaling',
      `disagrees with rope_parameters (${show(scaling)} vs ${show(params)})`,
    );
  }
  const dictKey = scaling ? 'rope_scaling' : 'rope_parameters';
  const dict: ConfigObject = scaling ?? params ?? {};
  const keys = Object.keys(dict);
  if (keys.length > 0 && keys.every((k) => isConfigObject(dict[k]))) {
    cfg.fail(
      dictKey,
      `holds one RoPE per layer type (${keys.join(', ')}); strata's ${ctx.family} importer expects a single RoPE`,
    );
  }
  for (const k of keys) {
    if (!ROPE_DICT_KEYS.has(k)) cfg.fail(`${dictKey}.${k}`, 'is not a RoPE setting strata knows');
  }
  const at = (k: string) => `${dictKey}.${k}`;
  const num = (k: string): number | null => {
    const v = dict[k];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v))
      cfg.fail(at(k), `must be a number, got ${show(v)}`);
    return v;
  };
  const agree = (name: string, inDict: number | null, top: number | null): number | null => {
    if (inDict !== null && top !== null && inDict !== top) {
      cfg.fail(name, `is ${top} but ${at(name)} is ${inDict}`);
    }
    return inDict ?? top;
  };

  const spelled = [dict.rope_type, dict.type].filter((t) => t !== undefined && t !== null);
  if (spelled.some((t) => typeof t !== 'string'))
    cfg.fail(at('rope_type'), `must be a string, got ${show(spelled[0])}`);
  if (spelled.length === 2 && spelled[0] !== spelled[1]) {
    cfg.fail(at('rope_type'), `is '${spelled[0]}' but ${at('type')} is '${spelled[1]}'`);
  }
  const type = (spelled[0] as string | undefined) ?? 'default';
  const need = (k: string): number =>
    num(k) ?? cfg.fail(at(k), `is required for rope type '${type}'`);

  const theta = agree('rope_theta', num('rope_theta'), topTheta) ?? ctx.defaultTheta;
  if (!(theta > 0)) cfg.fail('rope_theta', `must be positive, got ${theta}`);
  const partial =
    agree('partial_rotary_factor', num('partial_rotary_factor'), topPartial) ??
    ctx.defaultPartial ??
    1;
  // HF: dim = int(head_dim * partial_rotary_factor).
  const rotaryDim = Math.floor(ctx.headDim * partial);
  if (rotaryDim <= 0 || rotaryDim > ctx.headDim || rotaryDim % 2 !== 0) {
    cfg.fail(
      'partial_rotary_factor',
      `${partial} gives ${rotaryDim} rotary dims of head_dim ${ctx.headDim}; strata needs an even count in (0, head_dim]`,
    );
  }
  const origMax = agree(
    'original_max_position_embeddings',
    num('original_max_position_embeddings'),
    topOrig,
  );

  let scalingSpec: RopeScaling;
  switch (type) {
    case 'default':
      scalingSpec = { kind: 'none' };
      break;
    case 'linear':
      scalingSpec = { kind: 'linear', factor: need('factor') };
      break;
    case 'llama3':
      scalingSpec = {
        kind: 'llama3',
        factor: need('factor'),
        lowFreqFactor: need('low_freq_factor'),
        highFreqFactor: need('high_freq_factor'),
        originalMaxPositions: origMax ?? ctx.maxPositions,
      };
      break;
    case 'yarn':
      scalingSpec = readYarn(cfg, dict, at, num, origMax ?? ctx.maxPositions, ctx.maxPositions);
      break;
    default:
      cfg.fail(
        at('rope_type'),
        `'${type}' is not supported (strata has default, linear, llama3, yarn)`,
      );
  }
  return { theta, rotaryDim, scaling: scalingSpec };
}

/** YaRN as transformers computes it (_compute_yarn_parameters). */
function readYarn(
  cfg: ConfigReader,
  dict: ConfigObject,
  at: (k: string) => string,
  num: (k: string) => number | null,
  originalMaxPositions: number,
  maxPositions: number,
): RopeScaling {
  // HF: rope_parameters.get("truncate", True); gpt-oss writes false.
  if (dict.truncate !== undefined && typeof dict.truncate !== 'boolean') {
    cfg.fail(at('truncate'), `must be true or false, got ${show(dict.truncate)}`);
  }
  const truncate = dict.truncate ?? true;
  // DeepSeek-style configs omit factor and give it as the ratio of the two context lengths.
  const factor = num('factor') ?? maxPositions / originalMaxPositions;
  const mscale = num('mscale');
  const mscaleAllDim = num('mscale_all_dim');
  const getMscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  let attentionFactor = num('attention_factor');
  if (attentionFactor === null) {
    attentionFactor =
      mscale && mscaleAllDim
        ? getMscale(factor, mscale) / getMscale(factor, mscaleAllDim)
        : getMscale(factor);
  }
  // HF writes `get("beta_fast") or 32`: an explicit 0 also means the default.
  return {
    kind: 'yarn',
    factor,
    originalMaxPositions,
    betaFast: num('beta_fast') || 32,
    betaSlow: num('beta_slow') || 1,
    attentionFactor,
    truncate,
  };
}
