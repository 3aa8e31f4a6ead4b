/** Dense feed-forward kinds: `swiglu(...)`, `geglu(...)` and the general `mlp(...)`. */
import { defineKind, opt, req } from '../kind.ts';
import type { Activation, MlpSpec } from '../model.ts';
import { bool, int, oneOf } from '../values.ts';

export const ACTIVATIONS: readonly Activation[] = ['silu', 'gelu', 'gelu_tanh', 'relu', 'relu2'];
const GELUS: readonly Activation[] = ['gelu', 'gelu_tanh'];

export const swiglu = defineKind({
  name: 'swiglu',
  params: { hidden: req(int(1)), bias: opt(bool) },
  build: (a): MlpSpec => ({
    kind: 'mlp',
    hidden: a.hidden,
    act: 'silu',
    gated: true,
    bias: a.bias ?? false,
  }),
  toArgs: (s) =>
    s.gated && s.act === 'silu'
      ? [
          { name: 'hidden', value: s.hidden },
          { name: 'bias', value: s.bias },
        ]
      : null,
});

export const geglu = defineKind({
  name: 'geglu',
  // Gemma's GeGLU uses the tanh approximation: geglu(hidden: ..., act: gelu_tanh).
  params: { hidden: req(int(1)), act: opt(oneOf('activation', GELUS)), bias: opt(bool) },
  build: (a): MlpSpec => ({
    kind: 'mlp',
    hidden: a.hidden,
    act: a.act ?? 'gelu',
    gated: true,
    bias: a.bias ?? false,
  }),
  toArgs: (s) =>
    s.gated && GELUS.includes(s.act)
      ? [
          { name: 'hidden', value: s.hidden },
          { name: 'act', value: { name: s.act } },
          { name: 'bias', value: s.bias },
        ]
      : null,
});

export const mlp = defineKind({
  name: 'mlp',
  params: {
    hidden: req(int(1)),
    act: req(oneOf('activation', ACTIVATIONS)),
    gated: opt(bool),
    bias: opt(bool),
  },
  build: (a): MlpSpec => ({
    kind: 'mlp',
    hidden: a.hidden,
    act: a.act,
    gated: a.gated ?? false,
    bias: a.bias ?? false,
  }),
  toArgs: (s) => [
    { name: 'hidden', value: s.hidden },
    { name: 'act', value: { name: s.act } },
    { name: 'gated', value: s.gated },
    { name: 'bias', value: s.bias },
  ],
});
