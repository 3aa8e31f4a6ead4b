/**
 * `nsa(...)`: native sparse attention (DeepSeek, arXiv 2502.11089) as fla's NativeSparseAttention
 * layer computes it (fla/layers/nsa.py; semantics of the branches in src/ops/nsa.ts). Per layer:
 *   q = q_proj x, k = k_proj x, v = v_proj x, g = g_proj x     (g: [heads, 3] per token)
 *   q, k ← RoPE (NeoX halves over the whole head, base rope_theta)
 *   k, v → the KV cache (every position: the selected and window branches read anywhere)
 *   blocks of `block` tokens → mean-pooled compressed K/V (a row per completed block)
 *   o = σ(g_cmp) o_cmp + σ(g_slc) o_slc + σ(g_swa) o_swa,   out = o_proj o
 * with o_cmp attention over the compressed blocks, o_slc over the `select` most important blocks
 * (shared by each kv head's group) and o_swa over the last `window` tokens.
 *
 * The paper's general form has a compression block l, a stride d ≤ l and a selection block l'
 * (a multiple of d). fla's layer has one block_size for all three, and so does this version: the
 * parameters are spelled out so that a spec says what it means, and any other combination is an
 * error rather than a silently different model. KV memory: the full cache (2·kvHeads·headDim per
 * token) plus the compressed one (the same per `block` tokens).
 */
import type { GraphBuilder } from '../graph/builder.ts';
import {
  columns,
  linear,
  linearRowBlocks,
  pointwiseOp,
  ropeNode,
  ropeTableParams,
} from '../graph/blocks/common.ts';
import type { KvWriteAttrs, PointwiseExpr, PointwiseInput } from '../graph/ops.ts';
import { nsaBlocks } from '../ops/nsa.ts';
import { multipleOf, type Issue, type Namer } from '../spec/checks.ts';
import { defineKind, opt, req } from '../spec/kind.ts';
import type { ModelIR, RopeSpec } from '../spec/model.ts';
import { bool as boolSchema, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { bool, int, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';
import { attentionHeadDim, flaMixerSublayer, type MixerSite } from './parts.ts';

export interface NsaSpec {
  kind: 'nsa';
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Compression block length l in tokens (fla's block_size). */
  block: number;
  /** Compression stride d (fla: the block, l). */
  stride: number;
  /** Blocks each kv head selects, n (fla's block_counts). */
  select: number;
  /** Selection block length l' (fla: the block, l). */
  selectBlock: number;
  /** Sliding-window length w in tokens (fla's window_size). */
  window: number;
  /** RoPE base on q and k (fla's rope_theta). */
  ropeTheta: number;
  /** Bias on the q/k/v projections (fla's qkv_bias). */
  qkvBias: boolean;
  /** Softmax scale of all three branches; fla: headDim^-0.5. */
  scale: number;
}

/** The three gates in g_proj's per-head order (fla: g_cmp, g_slc, g_swa = g.sigmoid().unbind(-1)). */
const GATES = ['cmp', 'slc', 'swa'] as const;

export function checkNsa(s: NsaSpec, n: Namer): Issue[] {
  const issues = multipleOf(n, 'kvHeads', ['heads', s.heads], ['kvHeads', s.kvHeads]);
  if (s.stride > s.block) {
    issues.push({
      path: ['stride'],
      message:
        `${n('stride')} ${s.stride} exceeds ${n('block')} ${s.block}: the tokens between ` +
        `compression blocks would never be seen by the compressed branch`,
    });
  } else if (s.stride !== s.block) {
    issues.push({
      path: ['stride'],
      message:
        `${n('stride')} ${s.stride} differs from ${n('block')} ${s.block}: overlapping ` +
        `compression blocks are not supported yet (fla's NSA uses stride = block)`,
    });
  }
  if (s.selectBlock !== s.block) {
    issues.push({
      path: ['selectBlock'],
      message:
        `${n('selectBlock')} ${s.selectBlock} differs from ${n('block')} ${s.block}: selection ` +
        `blocks other than the compression blocks are not supported yet (fla's NSA uses one size)`,
    });
  }
  if (s.headDim % 2 !== 0) {
    issues.push({
      path: ['headDim'],
      message: `${n('headDim')} must be even (RoPE rotates pairs of it), got ${s.headDim}`,
    });
  }
  return issues;
}

const kindDef = defineKind({
  name: 'nsa',
  params: {
    heads: req(int(1)),
    kv_heads: opt(int(1)),
    head_dim: opt(int(1)),
    block: opt(int(1)),
    stride: opt(int(1)),
    select: opt(int(1)),
    select_block: opt(int(1)),
    window: opt(int(1)),
    rope_theta: opt(positive),
    qkv_bias: opt(bool),
    scale: opt(positive),
  },
  // Defaults: fla's NativeSparseAttention (block 64, 16 blocks, window 512, rope_theta 10000).
  build: (a, ctx, fail): NsaSpec => {
    const headDim = a.head_dim ?? attentionHeadDim(ctx.dim, a.heads, fail);
    const block = a.block ?? 64;
    return {
      kind: 'nsa',
      heads: a.heads,
      kvHeads: a.kv_heads ?? a.heads,
      headDim,
      block,
      stride: a.stride ?? block,
      select: a.select ?? 16,
      selectBlock: a.select_block ?? block,
      window: a.window ?? 512,
      ropeTheta: a.rope_theta ?? 10000,
      qkvBias: a.qkv_bias ?? false,
      scale: a.scale ?? headDim ** -0.5,
    };
  },
  check: checkNsa,
  toArgs: (s) =>
    s.kind !== 'nsa'
      ? null
      : [
          { name: 'heads', value: s.heads },
          { name: 'kv_heads', value: s.kvHeads },
          { name: 'head_dim', value: s.headDim },
          { name: 'block', value: s.block },
          { name: 'stride', value: s.stride },
          { name: 'select', value: s.select },
          { name: 'select_block', value: s.selectBlock },
          { name: 'window', value: s.window },
          { name: 'rope_theta', value: s.ropeTheta },
          { name: 'qkv_bias', value: s.qkvBias },
          { name: 'scale', value: s.scale },
        ],
});

/** The three branches and their gated sum, for the normed rows h (no residual). */
function nsaBranch(b: GraphBuilder, model: ModelIR, h: number, s: NsaSpec, at: MixerSite): number {
  const i = at.layer;
  const L = at.label;
  const qCols = s.heads * s.headDim;
  const kvCols = s.kvHeads * s.headDim;
  if (b.kv !== 'f32' && !b.scratch) {
    throw new Error(
      `layer ${i}: nsa keeps f32 KV caches; --kv ${b.kv} is not supported for it yet`,
    );
  }
  let q = linear(b, h, `${at.prefix}.q_proj`, qCols, model.dim, s.qkvBias, `${L}.q`);
  let k = linear(b, h, `${at.prefix}.k_proj`, kvCols, model.dim, s.qkvBias, `${L}.k`);
  const v = linear(b, h, `${at.prefix}.v_proj`, kvCols, model.dim, s.qkvBias, `${L}.v`);
  // g_proj's rows are (head, gate) pairs; read gate-major ([T, 3·heads]: every head's g_cmp,
  // then g_slc, then g_swa) so that each gate is a contiguous run of heads for the gated sum.
  const gates = linearRowBlocks(
    b,
    h,
    `${at.prefix}.g_proj`,
    s.heads,
    3,
    GATES.map((_, j) => ({ offset: j, count: 1 })),
    model.dim,
    false,
    `${L}.g`,
  );
  const rope: RopeSpec = { theta: s.ropeTheta, rotaryDim: s.headDim, scaling: { kind: 'none' } };
  const tables = ropeTableParams(b, { rope })!;
  const rotate = (t: number, heads: number, tag: string) =>
    ropeNode(b, L, tables, t, tag, {
      heads,
      headDim: s.headDim,
      rotaryDim: s.headDim,
      pairs: 'half',
    });
  q = rotate(q, s.heads, 'q');
  k = rotate(k, s.kvHeads, 'k');

  const kcache = b.state(`cache.k.${i}`, [b.capacity, kvCols]);
  const vcache = b.state(`cache.v.${i}`, [b.capacity, kvCols]);
  const write: KvWriteAttrs = {
    op: 'kv_write',
    width: kvCols,
    capacity: b.capacity,
    columns: null,
  };
  b.op(write, `${L} k-append`, { x: k, cache: kcache }, { cache: kcache });
  b.op(write, `${L} v-append`, { x: v, cache: vcache }, { cache: vcache });

  const common = { kvHeads: s.kvHeads, headDim: s.headDim, block: s.block, capacity: b.capacity };
  const nb = nsaBlocks(common);
  const kcmp = b.state(`nsa.kcmp.${i}`, [nb, kvCols]);
  const vcmp = b.state(`nsa.vcmp.${i}`, [nb, kvCols]);
  b.op(
    { op: 'nsa_compress', ...common },
    `${L} compress`,
    { kcache, vcache, kcmp, vcmp },
    { kcmp, vcmp },
  );
  const attn = { ...common, heads: s.heads, scale: s.scale, select: s.select };
  const cmp = b.op(
    { op: 'nsa_compressed', ...attn },
    `${L} compressed`,
    { q, kcmp, vcmp },
    {
      out: { name: `${L}.o_cmp`, shape: ['T', qCols] },
      picks: { name: `${L}.picks`, shape: ['T', s.kvHeads * s.select], dtype: 'u32' },
    },
  );
  const slc = b.op(
    { op: 'nsa_selected', ...attn },
    `${L} selected`,
    { q, kcache, vcache, picks: cmp.picks },
    { out: { name: `${L}.o_slc`, shape: ['T', qCols] } },
  ).out;
  const swa = b.op(
    {
      op: 'attention',
      heads: s.heads,
      kvHeads: s.kvHeads,
      headDim: s.headDim,
      vHeadDim: s.headDim,
      scale: s.scale,
      causal: true,
      window: s.window,
      softcap: null,
      sinks: false,
      capacity: b.capacity,
    },
    `${L} window`,
    { q, kcache, vcache },
    { out: { name: `${L}.o_swa`, shape: ['T', qCols] } },
  ).out;

  // o = Σ σ(g_j) o_j: gate j of head h (column j·heads + h) read across the head's columns.
  const gate = (j: number): PointwiseInput => ({
    perToken: true,
    cols: 3 * s.heads,
    inner: 1,
    repeat: s.headDim,
    offset: j * s.heads,
  });
  const term = (j: number): PointwiseExpr => ({
    bin: 'mul',
    a: { fn: 'sigmoid', x: { in: `g${j}` } },
    b: { in: `o${j}` },
  });
  const o = pointwiseOp(
    b,
    `${L}.gated`,
    qCols,
    {
      g0: [gates, gate(0)],
      g1: [gates, gate(1)],
      g2: [gates, gate(2)],
      o0: [cmp.out, columns(qCols)],
      o1: [slc, columns(qCols)],
      o2: [swa, columns(qCols)],
    },
    { bin: 'add', a: { bin: 'add', a: term(0), b: term(1) }, b: term(2) },
  );
  return linear(b, o, `${at.prefix}.o_proj`, model.dim, qCols, false, `${L}.o`);
}

export const nsa = defineMixer<NsaSpec>({
  kind: kindDef,
  schema: object({
    kind: kind('nsa'),
    heads: posInt,
    kvHeads: posInt,
    headDim: posInt,
    block: posInt,
    stride: posInt,
    select: posInt,
    selectBlock: posInt,
    window: posInt,
    ropeTheta: posNumber,
    qkvBias: boolSchema,
    scale: posNumber,
  }),
  dims: (s) =>
    `heads ${s.heads}, kv ${s.kvHeads}, head_dim ${s.headDim}, block ${s.block}, ` +
    `select ${s.select}, window ${s.window}`,
  lower: (b, model, x, i, s, input) =>
    flaMixerSublayer(b, model, x, input, i, 'nsa', (h, at) => nsaBranch(b, model, h, s, at)),
});
