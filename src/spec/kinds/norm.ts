/** Norm kinds: `rms(eps:, unit_offset:)` and `layer(eps:, bias:)`. */
import { checkNorm } from '../checks.ts';
import { defineKind, opt, req, type Family } from '../kind.ts';
import type { NormSpec } from '../model.ts';
import { bool, positive } from '../values.ts';

export const rmsNorm = defineKind({
  name: 'rms',
  params: { eps: req(positive), unit_offset: opt(bool) },
  build: (a): NormSpec => ({
    kind: 'rms',
    eps: a.eps,
    unitOffset: a.unit_offset ?? false,
    bias: false,
  }),
  check: checkNorm,
  toArgs: (s) =>
    s.kind === 'rms' && !s.bias
      ? [
          { name: 'eps', value: s.eps },
          { name: 'unit_offset', value: s.unitOffset },
        ]
      : null,
});

export const layerNorm = defineKind({
  name: 'layer',
  // LayerNorm has a bias unless a model says otherwise (PyTorch's default too).
  params: { eps: req(positive), bias: opt(bool) },
  build: (a): NormSpec => ({ kind: 'layer', eps: a.eps, unitOffset: false, bias: a.bias ?? true }),
  check: checkNorm,
  toArgs: (s) =>
    s.kind === 'layer' && !s.unitOffset
      ? [
          { name: 'eps', value: s.eps },
          { name: 'bias', value: s.bias },
        ]
      : null,
});

export const NORMS: Family<NormSpec> = {
  noun: 'norm',
  example: 'rms(eps: ...) or layer(eps: ...)',
  kinds: [rmsNorm, layerNorm],
};
