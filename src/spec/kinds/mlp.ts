/**
 * Dense feed-forward kinds: `swiglu(...)`, `geglu(...)`, RWKV's `rwkv7_cmix(...)` and the general
 * `mlp(...)`.
 */
import { checkMlp } from '../checks.ts';
import { defineKind, opt, req } from '../kind.ts';
import type { Activation, MlpSpec } from '../model.ts';
import { bool, int, oneOf, positive } from '../values.ts';

/** muP multipliers on the gate and down projections (Falcon-H1); left out of the spec when 1. */
const scaleParams = { gate_scale: opt(positive), down_scale: opt(positive) };

function scales(a: { gate_scale?: number; down_scale?: number }): Partial<MlpSpec> {
  return {
    ...(a.gate_scale !== undefined && a.gate_scale !== 1 ? { gateScale: a.gate_scale } : {}),
    ...(a.down_scale !== undefined && a.down_scale !== 1 ? { downScale: a.down_scale } : {}),
  };
}

const scaleArgs = (s: MlpSpec) => [
  { name: 'gate_scale', value: s.gateScale ?? 1 },
  { name: 'down_scale', value: s.downScale ?? 1 },
];

export const ACTIVATIONS: readonly Activation[] = ['silu', 'gelu', 'gelu_tanh', 'relu', 'relu2'];
const GELUS: readonly Activation[] = ['gelu', 'gelu_tanh'];

export const swiglu = defineKind({
  name: 'swiglu',
  params: { hidden: req(int(1)), bias: opt(bool), ...scaleParams },
  build: (a): MlpSpec => ({
    kind: 'mlp',
    hidden: a.hidden,
    act: 'silu',
    gated: true,
    bias: a.bias ?? false,
    ...scales(a),
  }),
  toArgs: (s) =>
    s.gated && s.act === 'silu' && !s.tokenShift
      ? [{ name: 'hidden', value: s.hidden }, { name: 'bias', value: s.bias }, ...scaleArgs(s)]
      : null,
});

export const geglu = defineKind({
  name: 'geglu',
  // Gemma's GeGLU uses the tanh approximation: geglu(hidden: ..., act: gelu_tanh).
  params: {
    hidden: req(int(1)),
    act: opt(oneOf('activation', GELUS)),
    bias: opt(bool),
    ...scaleParams,
  },
  build: (a): MlpSpec => ({
    kind: 'mlp',
    hidden: a.hidden,
    act: a.act ?? 'gelu',
    gated: true,
    bias: a.bias ?? false,
    ...scales(a),
  }),
  toArgs: (s) =>
    s.gated && GELUS.includes(s.act) && !s.tokenShift
      ? [
          { name: 'hidden', value: s.hidden },
          { name: 'act', value: { name: s.act } },
          { name: 'bias', value: s.bias },
          ...scaleArgs(s),
        ]
      : null,
});

/**
 * RWKV-7's channel mixing (fla's RWKV7FeedForward): the row mixed with its predecessor by a
 * learned vector, then key, relu², value: an ungated relu2 MLP with token shift.
 */
export const rwkv7Cmix = defineKind({
  name: 'rwkv7_cmix',
  params: { hidden: req(int(1)) },
  build: (a): MlpSpec => ({
    kind: 'mlp',
    hidden: a.hidden,
    act: 'relu2',
    gated: false,
    bias: false,
    tokenShift: true,
  }),
  check: checkMlp,
  toArgs: (s) => (s.tokenShift ? [{ name: 'hidden', value: s.hidden }] : null),
});

export const mlp = defineKind({
  name: 'mlp',
  params: {
    hidden: req(int(1)),
    act: req(oneOf('activation', ACTIVATIONS)),
    gated: opt(bool),
    bias: opt(bool),
    ...scaleParams,
  },
  build: (a): MlpSpec => ({
    kind: 'mlp',
    hidden: a.hidden,
    act: a.act,
    gated: a.gated ?? false,
    bias: a.bias ?? false,
    ...scales(a),
  }),
  check: checkMlp,
  toArgs: (s) =>
    s.tokenShift
      ? null
      : [
          { name: 'hidden', value: s.hidden },
          { name: 'act', value: { name: s.act } },
          { name: 'gated', value: s.gated },
          { name: 'bias', value: s.bias },
          ...scaleArgs(s),
        ],
});
