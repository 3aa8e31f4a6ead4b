/**
 * Lowering of an attention sublayer (pre-norm, q/k/v projections, optional
 * qk-norm, RoPE, KV-cache append, attention, output projection, residual),
 * unfused: the passes fuse it.
 */
import type { GraphBuilder } from '../builder.ts';
import type { AttentionSpec, ModelIR } from '../../spec/model.ts';
import { attentionNames } from '../../import/names.ts';
import { linear, linearRowBlocks, linearScale, mixerSublayer, ropeTableParams } from './common.ts';

export function lowerAttention(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  a: AttentionSpec,
  /** What the pre-norm reads when it is not the residual x (a shared block's output added). */
  input: number = x,
): number {
  return mixerSublayer(b, model, x, input, i, attentionNames(i).norm, `l${i}.attn`, (h) =>
    attentionBranch(b, model, h, i, a, 1, 1),
  );
}

/**
 * outScale · attention(inScale · h) for the normed input h, without the residual: the multipliers
 * fold into the q/k/v weights and the output projection.
 */
export function attentionBranch(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  i: number,
  a: AttentionSpec,
  inScale: number,
  outScale: number,
): number {
  const n = attentionNames(i);
  const L = `l${i}.attn`;
  const qCols = a.heads * a.headDim;
  const kvCols = a.kvHeads * a.headDim;
  const inS = linearScale(inScale, 1);
  const proj = (prefix: string, cols: number, tag: string) =>
    linear(b, h, prefix, cols, model.dim, a.qkvBias, `${L}.${tag}`, 'T', inS);
  // Gated attention: q_proj holds each head's query rows then its gate rows.
  const qPart = (offset: number, tag: string) =>
    linearRowBlocks(
      b,
      h,
      n.q,
      a.heads,
      2 * a.headDim,
      [{ offset, count: a.headDim }],
      model.dim,
      a.qkvBias,
      `${L}.${tag}`,
      inS,
    );
  let q = a.outputGate ? qPart(0, 'q') : proj(n.q, qCols, 'q');
  const gate = a.outputGate ? qPart(a.headDim, 'gate') : null;
  let k = proj(n.k, kvCols, 'k');
  const v = proj(n.v, kvCols, 'v');
  if (a.qkNorm) {
    const headNorm = (t: number, width: number, prefix: string, tag: string) =>
      b.op(
        {
          op: 'norm',
          norm: { ...model.norm, kind: 'rms', bias: false },
          width,
          group: a.headDim,
          residual: false,
        },
        `${L} ${tag}-norm`,
        { x: t, w: b.param(`${prefix}.weight`, [a.headDim]) },
        { out: { name: `${L}.${tag}norm`, shape: ['T', width] } },
      ).out;
    q = headNorm(q, qCols, n.qNorm, 'q');
    k = headNorm(k, kvCols, n.kNorm, 'k');
  }
  const att = attendOverCache(b, a, i, L, { q, k, v }, a.sinks ? n.sinks : null, `${L}.out`);
  const gated =
    gate === null
      ? att
      : b.op(
          { op: 'glu', act: 'sigmoid', width: qCols },
          `${L} output gate`,
          { gate, up: att },
          { out: { name: `${L}.gated`, shape: ['T', qCols] } },
        ).out;
  const out = linearScale(1, outScale);
  return linear(b, gated, n.o, model.dim, qCols, a.outBias, `${L}.o`, 'T', out);
}

/**
 * The attention core that every lowering with a KV cache shares: RoPE on the projected q and k,
 * k and v appended to layer i's own cache, attention over that cache. `sinks` names the per-head
 * sink logits' param (null: none); `outName` names the result.
 */
export function attendOverCache(
  b: GraphBuilder,
  a: AttentionSpec,
  i: number,
  L: string,
  qkv: { q: number; k: number; v: number },
  sinks: string | null,
  outName: string,
): number {
  const kvCols = a.kvHeads * a.headDim;
  let { q, k } = qkv;
  const tables = ropeTableParams(b, a);
  if (a.rope && tables) {
    const rope = (t: number, heads: number, tag: string) =>
      b.op(
        { op: 'rope', heads, headDim: a.headDim, rotaryDim: a.rope!.rotaryDim, pairs: 'half' },
        `${L} rope ${tag}`,
        { x: t, cos: tables.cos, sin: tables.sin },
        { out: { name: `${L}.${tag}rope`, shape: ['T', heads * a.headDim] } },
      ).out;
    q = rope(q, a.heads, 'q');
    k = rope(k, a.kvHeads, 'k');
  }
  const kcache = b.state(`cache.k.${i}`, [b.capacity, kvCols]);
  const vcache = b.state(`cache.v.${i}`, [b.capacity, kvCols]);
  const write = { op: 'kv_write', width: kvCols, capacity: b.capacity, columns: null } as const;
  b.op(write, `${L} k-append`, { x: k, cache: kcache }, { cache: kcache });
  b.op(write, `${L} v-append`, { x: qkv.v, cache: vcache }, { cache: vcache });
  return b.op(
    {
      op: 'attention',
      heads: a.heads,
      kvHeads: a.kvHeads,
      headDim: a.headDim,
      vHeadDim: a.headDim,
      scale: a.scale,
      causal: a.causal,
      window: a.window,
      softcap: a.softcap,
      sinks: sinks !== null,
      capacity: b.capacity,
    },
    `${L} attention`,
    sinks === null
      ? { q, kcache, vcache }
      : { q, kcache, vcache, sinks: b.param(sinks, [a.heads]) },
    { out: { name: outName, shape: ['T', a.heads * a.headDim] } },
  ).out;
}
