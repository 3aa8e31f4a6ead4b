/**
 * `mla(...)`: DeepSeek-V2/V3 multi-head latent attention (HF DeepseekV3Attention; see MlaSpec),
 * lowered unfused in one of two forms (MlaSpec.cache):
 *
 * - 'latent' (the default): the cache holds the normalised latent c and the shared rotated key
 *   part k_pe, [c | k_pe] per row, and W_UK / W_UV (kv_b_proj's per-head k and v rows) are
 *   absorbed: q_nope·k_nope = q_nope·(W_UK c) = (W_UKᵀ q_nope)·c, so each head's query becomes
 *   [W_UKᵀ q_nope | q_pe] (head_matmul, then a per-head concat) and scores against the cached row
 *   as it is; the weighted sum of latents (attention with vFromK 0: values are the rows' latent
 *   columns, one kv head shared by all heads) goes back out through W_UV per head. KV bytes per
 *   token and layer: 4 · (kvRank + ropeDim) in f32 (DeepSeek-V3: 4 · 576 = 2,304).
 *   Prefill uses the same absorbed form, not the expanded one: a prefill chunk after earlier
 *   chunks or decode steps must see every earlier position, and only the latent cache holds
 *   them, so an expanded prefill would have to re-expand the whole cached context through
 *   kv_b_proj each chunk (or keep the expanded cache too, which is what this form saves).
 *   The price, from the ops' cost model for one DeepSeek-V3 layer: prefill of 2,048 tokens
 *   1,352 GFLOP against 940 expanded (scores over kvRank + ropeDim = 576 dims instead of 192);
 *   decode at 32k context 9.5 GFLOP against 3.1, but 0.83 GB moved against 6.1 (bench/mla.ts
 *   times both on a GPU).
 * - 'expanded': each head's key (nope + rope dims) and value are cached, not the latent, so the
 *   attention op runs unchanged apart from its narrower v heads. KV bytes per token and layer:
 *   4 · heads · (nopeDim + ropeDim + vHeadDim) (DeepSeek-V3: 4 · 128 · 320 = 163,840), 71× the
 *   latent's; over DeepSeek-V3's 61 layers 9.5 MiB against 137 KiB per token. Kept to compare
 *   against (fewer FLOPs per cached token: scores over nope + rope dims instead of kvRank + rope).
 *
 * Within a head, strata keeps the rope dims first ([rope | nope], HF has [nope | rope]): the rope
 * op rotates a head's leading dims, so q_b_proj's rows are reordered per head when loaded, and the
 * key is assembled in the same order by two column writes into the cache. q·k is unchanged.
 */
import type { GraphBuilder } from '../graph/builder.ts';
import type { ParamSource } from '../graph/ir.ts';
import { plainMatmul, type KvColumns } from '../graph/ops.ts';
import {
  linear,
  linearRows,
  preNorm,
  ropeNode,
  ropeTableParams,
  sublayerResidual,
} from '../graph/blocks/common.ts';
import { layerPrefix, postNormNames } from '../import/names.ts';
import { checkRope, type Issue, type Namer } from '../spec/checks.ts';
import { defineKind, opt, req, toDslCall } from '../spec/kind.ts';
import { defaultRope, ROPES } from '../spec/kinds/rope.ts';
import type { ModelIR, NormSpec, RopeSpec } from '../spec/model.ts';
import { bool as boolSchema, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { block, bool, int, oneOf, orNone, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';
import { INDEXERS, type IndexerSpec } from '../spec/kinds/indexer.ts';
import type { AttentionAttrs, IndexerTopkAttrs, SparseAttentionAttrs } from '../graph/ops.ts';
import type { Dim } from '../graph/ir.ts';

/**
 * DeepSeek-V2/V3 multi-head latent attention (HF DeepseekV3Attention). q = q_b(norm(q_a(x)))
 * (or q_proj(x) when qRank is null), per head [nope | rope] dims; kv_a_proj_with_mqa(x) gives a
 * latent of kvRank and one ropeDim key part all heads share; kv_b(norm(latent)) gives each
 * head's nope key part and its v. Scores use the nopeDim + ropeDim wide heads, outputs the
 * vHeadDim wide ones. The cache holds the latent (see `cache`).
 */
export interface MlaSpec {
  kind: 'mla';
  heads: number;
  /** q_lora_rank; null: q_proj straight from the model width. */
  qRank: number | null;
  /** kv_lora_rank: the latent width. */
  kvRank: number;
  /** qk_nope_head_dim: the per-head q/k dims without rope. */
  nopeDim: number;
  /** qk_rope_head_dim: the rotated q/k dims (the key's are shared by all heads). */
  ropeDim: number;
  vHeadDim: number;
  /** Over the ropeDim dims (rotaryDim === ropeDim). */
  rope: RopeSpec;
  /**
   * Rotated pairs: 'interleaved' (2i, 2i+1), DeepSeek-V3's rope_interleave, or 'half'
   * (i, i + ropeDim/2) as rotate_half.
   */
  ropePairs: 'interleaved' | 'half';
  /** Bias on q_a_proj (or q_proj), kv_a_proj_with_mqa and o_proj (HF attention_bias). */
  bias: boolean;
  /** Eps of the RMSNorms on the q and kv latents (HF keeps their 1e-6 default). */
  latentEps: number;
  /** Softmax scale: (nopeDim + ropeDim)^-0.5, times mscale² under YaRN with mscale_all_dim. */
  scale: number;
  /**
   * What the KV cache holds: 'latent', the normalised latent and the shared rope key part
   * (kvRank + ropeDim values per token, projections absorbed into the query and output), or
   * 'expanded', every head's key and value (heads · (nopeDim + ropeDim + vHeadDim)).
   */
  cache: MlaCache;
  /**
   * DeepSeek sparse attention (DeepSeek-V3.2): each query attends only to the topk positions its
   * lightning indexer picks (src/ops/indexer.ts; needs qRank, the indexer reads the q latent).
   * null: dense causal attention.
   */
  index: IndexerSpec | null;
}

export type MlaCache = 'latent' | 'expanded';
const CACHES: readonly MlaCache[] = ['latent', 'expanded'];

/** MLA tensors (HF DeepseekV3Attention's names under `self_attn`). */
export function mlaNames(i: number) {
  const p = `${layerPrefix(i)}.self_attn`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    /** Used when qRank is null. */
    q: `${p}.q_proj`,
    qA: `${p}.q_a_proj`,
    qANorm: `${p}.q_a_layernorm`,
    qB: `${p}.q_b_proj`,
    kvA: `${p}.kv_a_proj_with_mqa`,
    kvANorm: `${p}.kv_a_layernorm`,
    kvB: `${p}.kv_b_proj`,
    o: `${p}.o_proj`,
    /** DeepSeek-V3.2's lightning indexer (MlaSpec.index). */
    indexQ: `${p}.indexer.wq_b`,
    indexK: `${p}.indexer.wk`,
    indexKNorm: `${p}.indexer.k_norm`,
    indexWeights: `${p}.indexer.weights_proj`,
  };
}

function checkMla(m: MlaSpec, n: Namer): Issue[] {
  const issues = checkRope(m.rope, m.ropeDim, n).map((issue) => ({
    path: ['rope', ...issue.path],
    message: issue.message,
  }));
  if (m.rope.rotaryDim !== m.ropeDim) {
    issues.push({
      path: ['rope', 'rotaryDim'],
      message: `${n('rotaryDim')} (${m.rope.rotaryDim}) must equal ${n('ropeDim')} (${m.ropeDim}): MLA rotates exactly its rope dims`,
    });
  }
  if (m.index) {
    if (m.qRank === null) {
      issues.push({
        path: ['index'],
        message: `${n('index')} needs ${n('qRank')}: the indexer's queries come from the q latent`,
      });
    }
    if (m.index.dim < m.ropeDim) {
      issues.push({
        path: ['index', 'dim'],
        message: `${n('index')} dim (${m.index.dim}) must be at least ${n('ropeDim')} (${m.ropeDim}): its first rope_dim dims are rotated`,
      });
    }
  }
  return issues;
}

const PAIRS: readonly MlaSpec['ropePairs'][] = ['interleaved', 'half'];

/** HF's DeepseekV3RMSNorm default, which the latent norms keep whatever rms_norm_eps says. */
export const MLA_LATENT_EPS = 1e-6;

const kindDef = defineKind({
  name: 'mla',
  params: {
    heads: req(int(1)),
    q_rank: opt(orNone(int(1))),
    kv_rank: req(int(1)),
    nope_dim: req(int(1)),
    rope_dim: req(int(2)),
    v_dim: req(int(1)),
    rope: opt(block(ROPES)),
    rope_pairs: opt(oneOf('rope pairing', PAIRS)),
    bias: opt(bool),
    latent_eps: opt(positive),
    scale: opt(positive),
    cache: opt(oneOf('mla cache', CACHES)),
    index: opt(orNone(block(INDEXERS))),
  },
  build: (a, ctx): MlaSpec => ({
    kind: 'mla',
    heads: a.heads,
    qRank: a.q_rank ?? null,
    kvRank: a.kv_rank,
    nopeDim: a.nope_dim,
    ropeDim: a.rope_dim,
    vHeadDim: a.v_dim,
    // The rope block sees the rope dims as its head: rotary_dim defaults to rope_dim.
    rope: a.rope ? a.rope({ ...ctx, headDim: a.rope_dim }) : defaultRope(a.rope_dim),
    ropePairs: a.rope_pairs ?? 'interleaved',
    bias: a.bias ?? false,
    latentEps: a.latent_eps ?? MLA_LATENT_EPS,
    // ** as PyTorch's qk_head_dim ** -0.5 rounds.
    scale: a.scale ?? (a.nope_dim + a.rope_dim) ** -0.5,
    cache: a.cache ?? 'latent',
    index: a.index ? a.index(ctx) : null,
  }),
  check: checkMla,
  toArgs: (s) =>
    s.kind !== 'mla'
      ? null
      : [
          { name: 'heads', value: s.heads },
          { name: 'q_rank', value: s.qRank },
          { name: 'kv_rank', value: s.kvRank },
          { name: 'nope_dim', value: s.nopeDim },
          { name: 'rope_dim', value: s.ropeDim },
          { name: 'v_dim', value: s.vHeadDim },
          { name: 'rope', value: toDslCall(ROPES, s.rope).value },
          { name: 'rope_pairs', value: { name: s.ropePairs } },
          { name: 'bias', value: s.bias },
          { name: 'latent_eps', value: s.latentEps },
          { name: 'scale', value: s.scale },
          { name: 'cache', value: { name: s.cache } },
          ...(s.index ? [{ name: 'index', value: toDslCall(INDEXERS, s.index).value }] : []),
        ],
});

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

/** What both MLA forms build on: see lowerMla. */
interface MlaParts {
  /** Each q head's rows in the order given, from q_b_proj (or q_proj). */
  qRows: (ranges: { start: number; count: number }[], tag: string, label: string) => number;
  rope: (t: number, heads: number, headDim: number, tag: string) => number;
  /** The normalised latent [T, kvRank]. */
  ln: number;
  /** The rotated key part all heads share [T, ropeDim]. */
  kPe: number;
  /** kv_b_proj's rows [start, start + count) of each head, as [H · count, kvRank]. */
  kvb: (start: number, count: number, tag: string) => number;
  /** The indexer's positions per query [T, topk] (u32), or null for dense attention. */
  sel: number | null;
}

/** HF DeepseekV32Indexer's k_norm: nn.LayerNorm(dim, eps=1e-6), with weight and bias. */
const INDEX_K_NORM: NormSpec = { kind: 'layer', eps: 1e-6, unitOffset: false, bias: true };

/**
 * DeepSeek sparse attention's lightning indexer for layer i (src/ops/indexer.ts): index queries
 * from the q latent (wq_b), one index key per position from the layer input (wk, LayerNorm), both
 * rotated over their first ropeDim dims with half pairs (HF's indexer uses rotate_half, unlike
 * MLA's interleaved pairs) by MLA's rope tables, the key appended to the layer's index cache
 * ([capacity, dim] in the KV type: 4 · dim more bytes per token in f32, 2 · dim under --kv f16),
 * head weights from weights_proj; returns the selected positions [T, topk].
 */
function indexSelection(
  b: GraphBuilder,
  model: ModelIR,
  m: MlaSpec & { index: IndexerSpec },
  L: string,
  i: number,
  h: number,
  qLatent: number,
  rope: (t: number, heads: number, headDim: number, tag: string, pairs: 'half') => number,
): number {
  const n = mlaNames(i);
  const { heads: H, dim: D } = m.index;
  const qi = rope(
    matmul(
      b,
      qLatent,
      b.param(`${n.indexQ}.weight`, [H * D, m.qRank!]),
      H * D,
      m.qRank!,
      `${L}.index_q`,
    ),
    H,
    D,
    'index_q',
    'half',
  );
  const kRaw = matmul(
    b,
    h,
    b.param(`${n.indexK}.weight`, [D, model.dim]),
    D,
    model.dim,
    `${L}.index_k`,
  );
  const kNormed = b.op(
    { op: 'norm', norm: INDEX_K_NORM, width: D, group: D, residual: false },
    `${L} index_k-norm`,
    {
      x: kRaw,
      w: b.param(`${n.indexKNorm}.weight`, [D]),
      b: b.param(`${n.indexKNorm}.bias`, [D]),
    },
    { out: { name: `${L}.index_knorm`, shape: ['T', D] } },
  ).out;
  const ki = rope(kNormed, 1, D, 'index_k', 'half');
  if (b.kv === 'f16' && D % 2 !== 0) {
    throw new Error(
      `mla layer ${i}: an f16 KV cache (--kv f16) stores value pairs in u32 words and needs an ` +
        `even indexer dim, got ${D}; use --kv f32`,
    );
  }
  const kcache = b.state(`cache.index.${i}`, [b.capacity, D], b.kv);
  b.op(
    { op: 'kv_write', width: D, capacity: b.capacity, columns: null, kvType: b.kv },
    `${L} index_k-append`,
    { x: ki, cache: kcache },
    { cache: kcache },
  );
  const w = matmul(
    b,
    h,
    b.param(`${n.indexWeights}.weight`, [H, model.dim]),
    H,
    model.dim,
    `${L}.index_w`,
  );
  const attrs: IndexerTopkAttrs = {
    op: 'indexer_topk',
    heads: H,
    dim: D,
    topk: m.index.topk,
    // HF: softmax_scale = head_dim ** -0.5 and n_heads ** -0.5 (Python floats, as here).
    scale: D ** -0.5,
    weightScale: H ** -0.5,
    capacity: b.capacity,
    kvType: b.kv,
  };
  return b.op(
    attrs,
    `${L} indexer`,
    { q: qi, w, kcache },
    {
      sel: { name: `${L}.sel`, shape: ['T', m.index.topk], dtype: 'u32' },
    },
  ).sel;
}

/**
 * Causal attention over the cache, dense, or (sel, the indexer's positions per query) over the
 * selected rows only: out [T, heads · vHeadDim].
 */
function attend(
  b: GraphBuilder,
  m: MlaSpec,
  sel: number | null,
  s: { heads: number; kvHeads: number; headDim: number; vHeadDim: number; vFromK: number | null },
  label: string,
  inputs: Record<string, number>,
  out: string,
): number {
  const { vFromK, ...shape } = s;
  // Attrs as before the sparse form existed: no vFromK key when values have their own cache.
  const common = {
    ...shape,
    scale: m.scale,
    capacity: b.capacity,
    kvType: b.kv,
    ...(vFromK === null ? {} : { vFromK }),
  };
  const outputs = { out: { name: out, shape: ['T', s.heads * s.vHeadDim] as Dim[] } };
  if (sel === null) {
    const attrs: AttentionAttrs = {
      op: 'attention',
      ...common,
      causal: true,
      window: null,
      softcap: null,
      sinks: false,
    };
    return b.op(attrs, label, inputs, outputs).out;
  }
  const attrs: SparseAttentionAttrs = { op: 'sparse_attention', ...common, topk: m.index!.topk };
  return b.op(attrs, label, { ...inputs, sel }, outputs).out;
}

/**
 * The latent cache with absorbed projections (see the header): out [T, H · vHeadDim] from a
 * cache of [c | k_pe] rows.
 */
function latentAttention(b: GraphBuilder, m: MlaSpec, L: string, i: number, p: MlaParts): number {
  const H = m.heads;
  const row = m.kvRank + m.ropeDim;
  if (b.kv === 'f16' && (m.kvRank % 2 !== 0 || m.ropeDim % 2 !== 0)) {
    throw new Error(
      `mla layer ${i}: an f16 KV cache (--kv f16) stores value pairs in u32 words and needs an ` +
        `even kv_rank and rope_dim, got ${m.kvRank} and ${m.ropeDim}; use --kv f32 or mla(cache: expanded)`,
    );
  }
  const qPe = p.rope(
    p.qRows([{ start: m.nopeDim, count: m.ropeDim }], 'q_pe', 'q_pe'),
    H,
    m.ropeDim,
    'q',
  );
  const qNope = p.qRows([{ start: 0, count: m.nopeDim }], 'q_nope', 'q_nope');
  // W_UKᵀ q_nope per head: kv_b_proj's k rows of head h are [nopeDim, kvRank], the 'kn' layout.
  const qLatent = b.op(
    { op: 'head_matmul', heads: H, N: m.kvRank, K: m.nopeDim, wLayout: 'kn' },
    `${L} absorb-q`,
    { x: qNope, w: p.kvb(0, m.nopeDim, 'k_nope') },
    { out: { name: `${L}.q_latent`, shape: ['T', H * m.kvRank] } },
  ).out;
  const q = b.op(
    { op: 'concat', widthA: H * m.kvRank, widthB: H * m.ropeDim, groups: H },
    `${L} q-absorbed`,
    { a: qLatent, b: qPe },
    { out: { name: `${L}.q_absorbed`, shape: ['T', H * row] } },
  ).out;
  const cache = b.state(`cache.latent.${i}`, [b.capacity, row], b.kv);
  const write = (x: number, cols: number, offset: number, tag: string) =>
    b.op(
      {
        op: 'kv_write',
        width: row,
        capacity: b.capacity,
        columns: { heads: 1, cols, offset, broadcast: false },
        kvType: b.kv,
      },
      `${L} ${tag}-append`,
      { x, cache },
      { cache },
    );
  write(p.ln, m.kvRank, 0, 'latent');
  write(p.kPe, m.ropeDim, m.kvRank, 'k_pe');
  const outLatent = attend(
    b,
    m,
    p.sel,
    { heads: H, kvHeads: 1, headDim: row, vHeadDim: m.kvRank, vFromK: 0 },
    `${L} attention`,
    { q, kcache: cache },
    `${L}.out_latent`,
  );
  // W_UV per head: kv_b_proj's v rows of head h are [vHeadDim, kvRank], the 'nk' layout.
  return b.op(
    { op: 'head_matmul', heads: H, N: m.vHeadDim, K: m.kvRank, wLayout: 'nk' },
    `${L} absorb-v`,
    { x: outLatent, w: p.kvb(m.nopeDim, m.vHeadDim, 'v') },
    { out: { name: `${L}.out`, shape: ['T', H * m.vHeadDim] } },
  ).out;
}

/** The expanded cache: each head's key [k_pe | k_nope] and value, out [T, H · vHeadDim]. */
function expandedAttention(b: GraphBuilder, m: MlaSpec, L: string, i: number, p: MlaParts): number {
  const H = m.heads;
  const qk = m.nopeDim + m.ropeDim;
  // q heads as [rope | nope].
  const ropeFirst = [
    { start: m.nopeDim, count: m.ropeDim },
    { start: 0, count: m.nopeDim },
  ];
  const q = p.rope(p.qRows(ropeFirst, 'rope_first', 'q'), H, qk, 'q');
  const kNope = matmul(
    b,
    p.ln,
    p.kvb(0, m.nopeDim, 'k_nope'),
    H * m.nopeDim,
    m.kvRank,
    `${L}.k_nope`,
  );
  const v = matmul(b, p.ln, p.kvb(m.nopeDim, m.vHeadDim, 'v'), H * m.vHeadDim, m.kvRank, `${L}.v`);
  const kcache = b.state(`cache.k.${i}`, [b.capacity, H * qk], b.kv);
  const vcache = b.state(`cache.v.${i}`, [b.capacity, H * m.vHeadDim], b.kv);
  const writeK = (t: number, columns: KvColumns, tag: string) =>
    b.op(
      { op: 'kv_write', width: H * qk, capacity: b.capacity, columns, kvType: b.kv },
      `${L} ${tag}-append`,
      { x: t, cache: kcache },
      { cache: kcache },
    );
  writeK(p.kPe, { heads: H, cols: m.ropeDim, offset: 0, broadcast: true }, 'k_pe');
  writeK(kNope, { heads: H, cols: m.nopeDim, offset: m.ropeDim, broadcast: false }, 'k_nope');
  b.op(
    {
      op: 'kv_write',
      width: H * m.vHeadDim,
      capacity: b.capacity,
      columns: null,
      kvType: b.kv,
    },
    `${L} v-append`,
    { x: v, cache: vcache },
    { cache: vcache },
  );
  return attend(
    b,
    m,
    p.sel,
    { heads: H, kvHeads: H, headDim: qk, vHeadDim: m.vHeadDim, vFromK: null },
    `${L} attention`,
    { q, kcache, vcache },
    `${L}.out`,
  );
}

/** x + mla(norm(input)) for layer i. */
function lowerMla(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  m: MlaSpec,
  /** What the pre-norm reads when it is not the residual x (a shared block's output added). */
  input: number,
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
  const rope = (
    t: number,
    heads: number,
    headDim: number,
    tag: string,
    pairs: MlaSpec['ropePairs'] = m.ropePairs,
  ) => ropeNode(b, L, tables, t, tag, { heads, headDim, rotaryDim: m.ropeDim, pairs });

  const h = preNorm(b, model, input, n.norm, L);
  // What q_b_proj (or q_proj) reads, and its width.
  let qIn = h;
  let qK = model.dim;
  if (m.qRank !== null) {
    const qa = linear(b, h, n.qA, m.qRank, model.dim, m.bias, `${L}.q_a`);
    qIn = rmsNorm(qa, m.qRank, n.qANorm, 'q_a');
    qK = m.qRank;
  }
  const qWeight = m.qRank === null ? `${n.q}.weight` : `${n.qB}.weight`;
  // The rows of each q head in the order given, as one [T, H · Σcount] matmul.
  const qRows = (ranges: { start: number; count: number }[], tag: string, label: string) => {
    const cols = ranges.reduce((c, r) => c + r.count, 0);
    const w = headRowsParam(b, qWeight, H, qk, ranges, qK, tag);
    return matmul(b, qIn, w, H * cols, qK, `${L}.${label}`);
  };

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
  // kv_b_proj's rows per head: nope key part (W_UK), then v (W_UV).
  const kvbHead = m.nopeDim + m.vHeadDim;
  const kvb = (start: number, count: number, tag: string) =>
    headRowsParam(b, `${n.kvB}.weight`, H, kvbHead, [{ start, count }], m.kvRank, tag);
  const index = m.index;
  const sel = index === null ? null : indexSelection(b, model, { ...m, index }, L, i, h, qIn, rope);
  const att =
    m.cache === 'latent'
      ? latentAttention(b, m, L, i, { qRows, rope, ln, kPe, kvb, sel })
      : expandedAttention(b, m, L, i, { qRows, rope, ln, kPe, kvb, sel });
  const o = linear(b, att, n.o, model.dim, H * m.vHeadDim, m.bias, `${L}.o`);
  return sublayerResidual(b, model, x, o, postNormNames(i).mixer, L);
}

export const mla = defineMixer<MlaSpec>({
  kind: kindDef,
  schema: object(
    {
      kind: kind('mla'),
      heads: posInt,
      qRank: { type: ['integer', 'null'], minimum: 1 },
      kvRank: posInt,
      nopeDim: posInt,
      // The DSL's rope_dim: int(2); rotary dims come in pairs.
      ropeDim: { type: 'integer', minimum: 2 },
      vHeadDim: posInt,
      rope: { $ref: '#/definitions/rope' },
      ropePairs: { enum: ['interleaved', 'half'] },
      bias: boolSchema,
      latentEps: posNumber,
      scale: posNumber,
      cache: { enum: [...CACHES] },
    },
    // Added after specs were written: left out, attention is dense.
    {
      // if/else rather than oneOf: errors name the indexer's field, not "must be null".
      index: {
        default: null,
        if: { type: 'null' },
        else: object({ kind: kind('indexer'), heads: posInt, dim: posInt, topk: posInt }),
      },
    },
  ),
  dims: (m) => {
    const q = m.qRank === null ? 'q full' : `q_rank ${m.qRank}`;
    const idx = m.index
      ? `, sparse top ${m.index.topk} (indexer ${m.index.heads}x${m.index.dim})`
      : '';
    return `heads ${m.heads}, ${q}, kv_rank ${m.kvRank}, qk ${m.nopeDim}+${m.ropeDim}, v ${m.vHeadDim}${idx}`;
  },
  lower: lowerMla,
});
