/**
 * Pieces the fla linear-attention mixers defined here (retnet, linear_attn) lower alike: the
 * head layout they share (query heads, key/value heads repeated over groups of query heads, as
 * fla's `num_kv_heads`), q/k/v projections, the recurrence, and the per-head RMSNorm of its output.
 */
import type { GraphBuilder } from '../graph/builder.ts';
import type { LinearRecurrenceAttrs } from '../graph/ops.ts';
import { linear } from '../graph/blocks/common.ts';
import type { Issue, Namer } from '../spec/checks.ts';
import type { ModelIR } from '../spec/model.ts';

/** The head layout of q/k/v in these mixers (fla: num_heads, num_kv_heads, expand_k, expand_v). */
export interface HeadLayout {
  heads: number;
  kvHeads: number;
  keyHeadDim: number;
  valueHeadDim: number;
}

/** kvHeads divides heads (query head h reads key/value head h / (heads / kvHeads), as fla repeats). */
export function headLayoutIssues(s: HeadLayout, n: Namer): Issue[] {
  if (s.heads % s.kvHeads === 0) return [];
  const message = `${n('heads')} (${s.heads}) must be a multiple of ${n('kvHeads')} (${s.kvHeads})`;
  return [{ path: ['kvHeads'], message }];
}

/** A head width the DSL leaves out: `ratio · dim / heads` (fla's expand_k / expand_v), if whole. */
export function defaultHeadDim(
  dim: number,
  heads: number,
  ratio: number,
  param: string,
  fail: (message: string) => never,
): number {
  const d = (ratio * dim) / heads;
  if (!Number.isInteger(d)) {
    fail(
      `${ratio === 1 ? '' : `${ratio} · `}dim (${dim}) / heads (${heads}) is not whole; give ${param}`,
    );
  }
  return d;
}

/** "heads 8, kv_heads 8, key 256, value 512": the start of these mixers' table lines. */
export function headDims(s: HeadLayout): string {
  const kv = s.kvHeads === s.heads ? '' : `, kv_heads ${s.kvHeads}`;
  return `heads ${s.heads}${kv}, key ${s.keyHeadDim}, value ${s.valueHeadDim}`;
}

/** q, k and v of the normed input h: fla's bias-free q_proj, k_proj, v_proj under `prefix`. */
export function projectQkv(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  prefix: string,
  s: HeadLayout,
  label: string,
): { q: number; k: number; v: number } {
  const proj = (name: string, cols: number) =>
    linear(b, h, `${prefix}.${name}`, cols, model.dim, false, `${label}.${name[0]}`);
  return {
    q: proj('q_proj', s.heads * s.keyHeadDim),
    k: proj('k_proj', s.kvHeads * s.keyHeadDim),
    v: proj('v_proj', s.kvHeads * s.valueHeadDim),
  };
}

/**
 * The linear recurrence over heads × [keyDim, valueDim (+1 with the normaliser)], its state named
 * `stateName`: q per query head, k and v per key/value head, `g` (when given) per query head.
 */
export function recurrence(
  b: GraphBuilder,
  s: HeadLayout,
  qkv: { q: number; k: number; v: number; g?: number },
  opts: Pick<LinearRecurrenceAttrs, 'decay' | 'normalize' | 'normEps'>,
  stateName: string,
  label: string,
): number {
  const cols = s.valueHeadDim + (opts.normalize ? 1 : 0);
  const state = b.state(stateName, [s.heads, s.keyHeadDim, cols]);
  const attrs: LinearRecurrenceAttrs = {
    op: 'linear_recurrence',
    heads: s.heads,
    qHeads: s.heads,
    kHeads: s.kvHeads,
    vHeads: s.kvHeads,
    gateHeads: s.heads,
    keyDim: s.keyHeadDim,
    valueDim: s.valueHeadDim,
    // fla's default scale for every kernel these mixers call: (key feature dim)^-0.5.
    scale: s.keyHeadDim ** -0.5,
    update: 'add',
    ...opts,
  };
  const inputs: Record<string, number> = { q: qkv.q, k: qkv.k, v: qkv.v, state };
  if (qkv.g !== undefined) inputs.g = qkv.g;
  return b.op(attrs, `${label} recurrence`, inputs, {
    out: { name: `${label}.rec`, shape: ['T', s.heads * s.valueHeadDim] },
    state,
  }).out;
}

/** fla's RMSNorm over each head of `group` columns, one [group] weight `weight` shared by all heads. */
export function headRmsNorm(
  b: GraphBuilder,
  x: number,
  width: number,
  group: number,
  eps: number,
  weight: string,
  label: string,
): number {
  return b.op(
    {
      op: 'norm',
      norm: { kind: 'rms', eps, unitOffset: false, bias: false },
      width,
      group,
      residual: false,
    },
    `${label} head norm`,
    { x, w: b.param(weight, [group]) },
    { out: { name: `${label}.hnorm`, shape: ['T', width] } },
  ).out;
}
