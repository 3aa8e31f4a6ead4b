/** Helpers shared by block lowerings: the pre-sublayer norm and plain linear layers. */
import type { GraphBuilder } from '../builder.ts';
import { plainMatmul } from '../ops.ts';
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
  const w = b.param(`${prefix}.weight`, [N, K]);
  const bv = bias ? b.param(`${prefix}.bias`, [N]) : null;
  return matmul(b, x, w, bv, N, K, label, rows);
}

/** Rows [start, start + count) of a canonical [rows, cols] weight as a parameter of its own. */
export function weightRows(
  b: GraphBuilder,
  name: string,
  start: number,
  count: number,
  cols: number,
): number {
  const shape = cols === 1 ? [count] : [count, cols];
  return b.param(`${name}#rows${start}`, shape, {
    kind: 'rows',
    of: { kind: 'weight', name },
    start,
    count,
    cols,
  });
}

/** Rows `offset + [0, count)` of each block of a per-head interleaved weight. */
export interface RowPart {
  offset: number;
  count: number;
}

/**
 * For each part in turn, its rows of every block of `stride` rows (`blocks` of them) of a
 * canonical [blocks·stride, cols] weight, concatenated: per-head interleaved projections
 * (Qwen3-Next's q/gate in q_proj, q/k/v/z per key head in in_proj_qkvz, b/a in in_proj_ba)
 * pulled apart into contiguous parts.
 */
export function weightRowBlocks(
  b: GraphBuilder,
  name: string,
  blocks: number,
  stride: number,
  parts: readonly RowPart[],
  cols: number,
): number {
  const rows = blocks * parts.reduce((n, p) => n + p.count, 0);
  const shape = cols === 1 ? [rows] : [rows, cols];
  const of = { kind: 'weight', name } as const;
  const tag = parts.map((p) => `${p.offset}.${p.count}`).join('+');
  return b.param(`${name}#blocks${stride}.${tag}`, shape, {
    kind: 'concat',
    parts: parts.flatMap((p) =>
      Array.from({ length: blocks }, (_, i) => ({
        kind: 'rows' as const,
        of,
        start: i * stride + p.offset,
        count: p.count,
        cols,
      })),
    ),
  });
}

/** A linear layer over weightRowBlocks: some parts of a per-head interleaved projection. */
export function linearRowBlocks(
  b: GraphBuilder,
  x: number,
  prefix: string,
  blocks: number,
  stride: number,
  parts: readonly RowPart[],
  K: number,
  bias: boolean,
  label: string,
): number {
  const N = blocks * parts.reduce((n, p) => n + p.count, 0);
  const w = weightRowBlocks(b, `${prefix}.weight`, blocks, stride, parts, K);
  const bv = bias ? weightRowBlocks(b, `${prefix}.bias`, blocks, stride, parts, 1) : null;
  return matmul(b, x, w, bv, N, K, label, 'T');
}

/**
 * One output range of a canonical linear layer `prefix`: y = x W[start:start+count]ᵀ (+ b[...]).
 * Fused input projections (Mamba's in_proj, LFM2's BCx) lower to one of these per part, so no
 * slice op is needed and each part lands in its own tensor.
 */
export function linearRows(
  b: GraphBuilder,
  x: number,
  prefix: string,
  start: number,
  count: number,
  K: number,
  bias: boolean,
  label: string,
): number {
  const w = weightRows(b, `${prefix}.weight`, start, count, K);
  const bv = bias ? weightRows(b, `${prefix}.bias`, start, count, 1) : null;
  return matmul(b, x, w, bv, count, K, label, 'T');
}

function matmul(
  b: GraphBuilder,
  x: number,
  w: number,
  bias: number | null,
  N: number,
  K: number,
  label: string,
  rows: 'T' | 'L',
): number {
  const inputs: Record<string, number> = { x, w };
  if (bias !== null) inputs.bias = bias;
  const shape: Dim[] = [rows, N];
  return b.op(plainMatmul(N, K, rows, bias !== null), label, inputs, {
    out: { name: label, shape },
  }).out;
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

/**
 * Causal depthwise conv over time with its state `state` ([kernel − 1, channels], updated in
 * place). `w` is [channels, kernel]; `bias` [channels] or null.
 */
export function causalConv(
  b: GraphBuilder,
  x: number,
  w: number,
  bias: number | null,
  state: number,
  channels: number,
  kernel: number,
  silu: boolean,
  label: string,
): number {
  const inputs: Record<string, number> = { x, w, state };
  if (bias !== null) inputs.bias = bias;
  return b.op(
    { op: 'conv1d', channels, kernel, bias: bias !== null, silu },
    `${label} conv1d`,
    inputs,
    { out: { name: `${label}.conv`, shape: ['T', channels] }, state },
  ).out;
}
