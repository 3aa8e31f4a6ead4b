/**
 * Lowering of an MLA sublayer (HF DeepseekV3Attention), unfused, with the expanded cache: each
 * head's key (nope + rope dims) and value are cached, not the latent, so the attention op runs
 * unchanged apart from its narrower v heads. KV bytes per token and layer: 4 · heads ·
 * (nopeDim + ropeDim + vHeadDim) in f32 (DeepSeek-V3: 4 · 128 · 320 = 163,840), against
 * 4 · (kvRank + ropeDim) = 2,304 for the compressed cache with absorbed projections (future
 * work): 71× less. Over DeepSeek-V3's 61 layers: 9.5 MiB against 137 KiB per token.
 *
 * Within a head, strata keeps the rope dims first ([rope | nope], HF has [nope | rope]): the rope
 * op rotates a head's leading dims, so q_b_proj's rows are reordered per head when loaded, and the
 * key is assembled in the same order by two column writes into the cache. q·k is unchanged.
 */
import type { GraphBuilder } from '../builder.ts';
import type { ParamSource } from '../ir.ts';
import type { MlaSpec, ModelIR, NormSpec } from '../../spec/model.ts';
import { mlaNames, postNormNames } from '../../import/names.ts';
import { plainMatmul, type KvColumns } from '../ops.ts';
import { linear, linearRows, preNorm, sublayerResidual } from './common.ts';
import { ropeTableParams } from './attention.ts';

/** The row ranges of each head of a weight `name` [heads·headRows, cols], as one parameter. */
function headRowsParam(
  b: GraphBuilder,
  name: string,
  heads: number,
  headRows: number,
  ranges: { start: number; count: number }[],
  cols: number,
  tag: string,
): number {
  const rows = heads * ranges.reduce((n, r) => n + r.count, 0);
  const source: ParamSource = {
    kind: 'head_rows',
    of: b.weight(name, [heads * headRows, cols]),
    heads,
    headRows,
    ranges,
    cols,
  };
  return b.param(`${name}#${tag}`, [rows, cols], source);
}

function matmul(b: GraphBuilder, x: number, w: number, N: number, K: number, label: string) {
  return b.op(plainMatmul(N, K), label, { x, w }, { out: { name: label, shape: ['T', N] } }).out;
}

export function lowerMla(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  m: MlaSpec,
  /** What the pre-norm reads when it is not the residual x (a shared block's output added). */
  input: number = x,
): number {
  const n = mlaNames(i);
  const L = `l${i}.mla`;
  const H = m.heads;
  const qk = m.nopeDim + m.ropeDim;
  const latentNorm: NormSpec = { kind: 'rms', eps: m.latentEps, unitOffset: false, bias: false };
  const rmsNorm = (t: number, width: number, prefix: string, tag: string) =>
    b.op(
      { op: 'norm', norm: latentNorm, width, group: width, residual: false },
      `${L} ${tag}-norm`,
      { x: t, w: b.param(`${prefix}.weight`, [width]) },
      { out: { name: `${L}.${tag}norm`, shape: ['T', width] } },
    ).out;
  const tables = ropeTableParams(b, m)!;
  const rope = (t: number, heads: number, headDim: number, tag: string) =>
    b.op(
      { op: 'rope', heads, headDim, rotaryDim: m.ropeDim, pairs: m.ropePairs },
      `${L} rope ${tag}`,
      { x: t, cos: tables.cos, sin: tables.sin },
      { out: { name: `${L}.${tag}rope`, shape: ['T', heads * headDim] } },
    ).out;

  const h = preNorm(b, model, input, n.norm, L);
  // q heads as [rope | nope].
  const ropeFirst = [
    { start: m.nopeDim, count: m.ropeDim },
    { start: 0, count: m.nopeDim },
  ];
  let q: number;
  if (m.qRank === null) {
    const w = headRowsParam(b, `${n.q}.weight`, H, qk, ropeFirst, model.dim, 'rope_first');
    q = matmul(b, h, w, H * qk, model.dim, `${L}.q`);
  } else {
    const qa = linear(b, h, n.qA, m.qRank, model.dim, m.bias, `${L}.q_a`);
    const qn = rmsNorm(qa, m.qRank, n.qANorm, 'q_a');
    const w = headRowsParam(b, `${n.qB}.weight`, H, qk, ropeFirst, m.qRank, 'rope_first');
    q = matmul(b, qn, w, H * qk, m.qRank, `${L}.q`);
  }
  q = rope(q, H, qk, 'q');

  // kv_a_proj_with_mqa's rows: the latent, then the rope key part every head shares.
  const kvARows = m.kvRank + m.ropeDim;
  const latent = linearRows(b, h, n.kvA, kvARows, 0, m.kvRank, model.dim, m.bias, `${L}.kv_a`);
  const kPe = rope(
    linearRows(b, h, n.kvA, kvARows, m.kvRank, m.ropeDim, model.dim, m.bias, `${L}.k_pe`),
    1,
    m.ropeDim,
    'k',
  );
  const ln = rmsNorm(latent, m.kvRank, n.kvANorm, 'kv_a');
  // kv_b_proj's rows per head: nope key part, then v.
  const kvbHead = m.nopeDim + m.vHeadDim;
  const kvb = (start: number, count: number, tag: string) =>
    headRowsParam(b, `${n.kvB}.weight`, H, kvbHead, [{ start, count }], m.kvRank, tag);
  const kNope = matmul(b, ln, kvb(0, m.nopeDim, 'k_nope'), H * m.nopeDim, m.kvRank, `${L}.k_nope`);
  const v = matmul(b, ln, kvb(m.nopeDim, m.vHeadDim, 'v'), H * m.vHeadDim, m.kvRank, `${L}.v`);

  const kcache = b.state(`cache.k.${i}`, [b.capacity, H * qk]);
  const vcache = b.state(`cache.v.${i}`, [b.capacity, H * m.vHeadDim]);
  const writeK = (t: number, columns: KvColumns, tag: string) =>
    b.op(
      { op: 'kv_write', width: H * qk, capacity: b.capacity, columns },
      `${L} ${tag}-append`,
      { x: t, cache: kcache },
      { cache: kcache },
    );
  writeK(kPe, { heads: H, cols: m.ropeDim, offset: 0, broadcast: true }, 'k_pe');
  writeK(kNope, { heads: H, cols: m.nopeDim, offset: m.ropeDim, broadcast: false }, 'k_nope');
  b.op(
    { op: 'kv_write', width: H * m.vHeadDim, capacity: b.capacity, columns: null },
    `${L} v-append`,
    { x: v, cache: vcache },
    { cache: vcache },
  );
  const att = b.op(
    {
      op: 'attention',
      heads: H,
      kvHeads: H,
      headDim: qk,
      vHeadDim: m.vHeadDim,
      scale: m.scale,
      causal: true,
      window: null,
      softcap: null,
      sinks: false,
      capacity: b.capacity,
    },
    `${L} attention`,
    { q, kcache, vcache },
    { out: { name: `${L}.out`, shape: ['T', H * m.vHeadDim] } },
  ).out;
  const o = linear(b, att, n.o, model.dim, H * m.vHeadDim, m.bias, `${L}.o`);
  return sublayerResidual(b, model, x, o, postNormNames(i).mixer, L);
}
