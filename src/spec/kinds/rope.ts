/** Rotary position embedding: `rope(theta:, rotary_dim:, scaling:)` and its scaling kinds. */
import { defineKind, opt, req, toDslCall, type Family } from '../kind.ts';
import type { RopeScaling, RopeSpec } from '../model.ts';
import { block, bool, int, orNone, positive } from '../values.ts';

const linear = defineKind({
  name: 'linear',
  params: { factor: req(positive) },
  build: (a): RopeScaling => ({ kind: 'linear', factor: a.factor }),
  toArgs: (s) => (s.kind === 'linear' ? [{ name: 'factor', value: s.factor }] : null),
});

const proportional = defineKind({
  name: 'proportional',
  params: { pairs: req(int(0)), factor: opt(positive) },
  build: (a): RopeScaling => ({ kind: 'proportional', pairs: a.pairs, factor: a.factor ?? 1 }),
  toArgs: (s) =>
    s.kind === 'proportional'
      ? [
          { name: 'pairs', value: s.pairs },
          { name: 'factor', value: s.factor },
        ]
      : null,
});

const llama3 = defineKind({
  name: 'llama3',
  params: {
    factor: req(positive),
    low_freq_factor: req(positive),
    high_freq_factor: req(positive),
    original_max_positions: req(int(1)),
  },
  build: (a): RopeScaling => ({
    kind: 'llama3',
    factor: a.factor,
    lowFreqFactor: a.low_freq_factor,
    highFreqFactor: a.high_freq_factor,
    originalMaxPositions: a.original_max_positions,
  }),
  toArgs: (s) =>
    s.kind === 'llama3'
      ? [
          { name: 'factor', value: s.factor },
          { name: 'low_freq_factor', value: s.lowFreqFactor },
          { name: 'high_freq_factor', value: s.highFreqFactor },
          { name: 'original_max_positions', value: s.originalMaxPositions },
        ]
      : null,
});

const yarn = defineKind({
  name: 'yarn',
  params: {
    factor: req(positive),
    original_max_positions: req(int(1)),
    beta_fast: opt(positive),
    beta_slow: opt(positive),
    attention_factor: opt(positive),
    truncate: opt(bool),
  },
  // Defaults follow HuggingFace's _compute_yarn_parameters.
  build: (a): RopeScaling => ({
    kind: 'yarn',
    factor: a.factor,
    originalMaxPositions: a.original_max_positions,
    betaFast: a.beta_fast ?? 32,
    betaSlow: a.beta_slow ?? 1,
    attentionFactor: a.attention_factor ?? (a.factor > 1 ? 0.1 * Math.log(a.factor) + 1 : 1),
    truncate: a.truncate ?? true,
  }),
  toArgs: (s) =>
    s.kind === 'yarn'
      ? [
          { name: 'factor', value: s.factor },
          { name: 'original_max_positions', value: s.originalMaxPositions },
          { name: 'beta_fast', value: s.betaFast },
          { name: 'beta_slow', value: s.betaSlow },
          { name: 'attention_factor', value: s.attentionFactor },
          { name: 'truncate', value: s.truncate },
        ]
      : null,
});

export const SCALINGS: Family<RopeScaling> = {
  noun: 'rope scaling',
  example: 'linear(...), llama3(...), yarn(...) or proportional(...)',
  kinds: [linear, llama3, yarn, proportional],
};

export const DEFAULT_ROPE_THETA = 10000;

/** The rope an attention gets when it does not say: theta 10000 over the full head. */
export function defaultRope(headDim: number): RopeSpec {
  return { theta: DEFAULT_ROPE_THETA, rotaryDim: headDim, scaling: { kind: 'none' } };
}

export const rope = defineKind({
  name: 'rope',
  params: {
    theta: opt(positive),
    rotary_dim: opt(int(1)),
    scaling: opt(orNone(block(SCALINGS))),
  },
  build: (a, ctx): RopeSpec => {
    if (ctx.headDim === undefined) throw new Error('rope resolved outside an attention block');
    return {
      theta: a.theta ?? DEFAULT_ROPE_THETA,
      rotaryDim: a.rotary_dim ?? ctx.headDim,
      scaling: a.scaling ? a.scaling(ctx) : { kind: 'none' },
    };
  },
  toArgs: (s) => [
    { name: 'theta', value: s.theta },
    { name: 'rotary_dim', value: s.rotaryDim },
    {
      name: 'scaling',
      value: s.scaling.kind === 'none' ? null : toDslCall(SCALINGS, s.scaling).value,
    },
  ],
});

export const ROPES: Family<RopeSpec> = {
  noun: 'rope',
  example: 'rope(...)',
  kinds: [rope],
};
