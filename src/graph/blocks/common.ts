/** Helpers shared by block lowerings: the pre-sublayer norm and plain linear layers. */
import type { GraphBuilder } from '../builder.ts';
import type { Dim } from '../ir.ts';
import type { ModelIR } from '../../spec/model.ts';

/** Pre-norm of the residual stream; `prefix` is the canonical norm name (without `.weight`). */
export function preNorm(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  prefix: string,
  label: string,
): number {
  const inputs: Record<string, number> = { x, w: b.param(`${prefix}.weight`, [model.dim]) };
  if (model.norm.kind === 'layer' && model.norm.bias)
    inputs.b = b.param(`${prefix}.bias`, [model.dim]);
  return b.op(
    { op: 'norm', norm: model.norm, width: model.dim, group: model.dim },
    `${label} norm`,
    inputs,
    { out: { name: `${label}.norm`, shape: ['T', model.dim] } },
  ).out;
}

/** y = x Wᵀ (+ b) for a canonical linear layer `prefix` of shape [N, K]. */
export function linear(
  b: GraphBuilder,
  x: number,
  prefix: string,
  N: number,
  K: number,
  bias: boolean,
  label: string,
  rows: 'T' | 'L' = 'T',
): number {
  const inputs: Record<string, number> = { x, w: b.param(`${prefix}.weight`, [N, K]) };
  if (bias) inputs.bias = b.param(`${prefix}.bias`, [N]);
  const shape: Dim[] = [rows, N];
  return b.op(
    {
      op: 'matmul',
      N,
      K,
      rows,
      prologue: null,
      bias,
      gated: false,
      act: null,
      residual: false,
      outStride: N,
      outOffset: 0,
      ropeKv: null,
    },
    label,
    inputs,
    { out: { name: label, shape } },
  ).out;
}

export function residualAdd(
  b: GraphBuilder,
  x: number,
  y: number,
  width: number,
  label: string,
): number {
  return b.op(
    { op: 'add', width },
    `${label} residual`,
    { a: x, b: y },
    {
      out: { name: `${label}.res`, shape: ['T', width] },
    },
  ).out;
}
