/**
 * `gated_deltanet(...)`: Qwen3-Next's gated DeltaNet linear-attention mixer (HF
 * Qwen3NextGatedDeltaNet). Its lowering: pre-norm; in_proj_qkvz and in_proj_ba, whose rows are
 * grouped per key head, as one matmul per part (q, k, v, z, and b|a) over that part's rows of
 * every group; a causal conv + SiLU on each of q, k and v (the conv is depthwise over the
 * concatenation q|k|v, so it splits by channel ranges exactly); l2 norms of q and k, β and the log
 * decay as pointwise ops, and the gated delta rule as a linear_recurrence (the fusion pass folds
 * those four into it); the per-value-head RMSNorm (one [valueHeadDim] weight) times silu(z);
 * out_proj; residual. State: conv.{i}.q/.k/.v [dConv − 1, channels] and delta.{i} [valueHeads,
 * keyHeadDim, valueHeadDim]. Defaults follow transformers' Qwen3NextConfig (linear_num_key_heads
 * 16, linear_num_value_heads 32, linear_key_head_dim / linear_value_head_dim 128,
 * linear_conv_kernel_dim 4). fla's DeltaNet and Gated DeltaNet, with separate projections, are the
 * `deltanet` kind (deltanet.ts).
 */
import { outputNorm } from './parts.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import type { PointwiseInput } from '../graph/ops.ts';
import {
  causalConv,
  linear,
  linearRowBlocks,
  mixerSublayer,
  weightRows,
} from '../graph/blocks/common.ts';
import { layerPrefix } from '../import/names.ts';
import { checkKernel, multipleOf, type Issue, type Namer } from '../spec/checks.ts';
import { defineKind, opt } from '../spec/kind.ts';
import type { ModelIR } from '../spec/model.ts';
import { kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { int, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';

/**
 * Qwen3-Next's gated DeltaNet (HF Qwen3NextGatedDeltaNet): in_proj_qkvz and in_proj_ba (laid out
 * per key head: q, k, v, z then b, a for that head's valueHeads / keyHeads value heads), a causal
 * conv + SiLU over q, k, v (no bias), l2-normalised q and k, the gated delta rule per value head
 * (key heads repeated), a per-head RMSNorm of the output gated by silu(z), out_proj.
 */
export interface GatedDeltaNetSpec {
  kind: 'gated_deltanet';
  keyHeads: number;
  valueHeads: number;
  keyHeadDim: number;
  valueHeadDim: number;
  /** Conv kernel length (the conv state keeps dConv − 1 steps). */
  dConv: number;
  /** eps of the gated output RMSNorm. */
  normEps: number;
}

/** Gated DeltaNet mixer tensors (HF Qwen3NextGatedDeltaNet's names under `linear_attn`). */
export function gatedDeltaNetNames(i: number) {
  const p = `${layerPrefix(i)}.linear_attn`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    inProjQkvz: `${p}.in_proj_qkvz`,
    inProjBa: `${p}.in_proj_ba`,
    conv: `${p}.conv1d`,
    dtBias: `${p}.dt_bias`,
    aLog: `${p}.A_log`,
    /** The gated output RMSNorm's weight [valueHeadDim], shared by all value heads. */
    gateNorm: `${p}.norm`,
    outProj: `${p}.out_proj`,
  };
}

/**
 * Gated DeltaNet widths: key/value widths, conv channels (q, k, v), and the rows of one key
 * head's group in in_proj_qkvz (q, k, then its valueHeads / keyHeads heads of v and of z) and
 * in_proj_ba (b then a for those value heads).
 */
export function gatedDeltaNetWidths(m: GatedDeltaNetSpec) {
  const key = m.keyHeads * m.keyHeadDim;
  const value = m.valueHeads * m.valueHeadDim;
  const perKey = m.valueHeads / m.keyHeads;
  return {
    key,
    value,
    conv: 2 * key + value,
    perKey,
    qkvzGroup: 2 * m.keyHeadDim + 2 * perKey * m.valueHeadDim,
    baGroup: 2 * perKey,
  };
}

function checkGatedDeltaNet(m: GatedDeltaNetSpec, n: Namer): Issue[] {
  return [
    ...checkKernel('dConv', m.dConv, n),
    ...multipleOf(n, 'valueHeads', ['valueHeads', m.valueHeads], ['keyHeads', m.keyHeads]),
  ];
}

const kindDef = defineKind({
  name: 'gated_deltanet',
  params: {
    key_heads: opt(int(1)),
    value_heads: opt(int(1)),
    key_head_dim: opt(int(1)),
    value_head_dim: opt(int(1)),
    d_conv: opt(int(1)),
    norm_eps: opt(positive),
  },
  build: (a): GatedDeltaNetSpec => ({
    kind: 'gated_deltanet',
    keyHeads: a.key_heads ?? 16,
    valueHeads: a.value_heads ?? 32,
    keyHeadDim: a.key_head_dim ?? 128,
    valueHeadDim: a.value_head_dim ?? 128,
    dConv: a.d_conv ?? 4,
    normEps: a.norm_eps ?? 1e-6,
  }),
  check: checkGatedDeltaNet,
  // Null for other mixer kinds: the printer asks every kind of the family.
  toArgs: (s) =>
    s.kind !== 'gated_deltanet'
      ? null
      : [
          { name: 'key_heads', value: s.keyHeads },
          { name: 'value_heads', value: s.valueHeads },
          { name: 'key_head_dim', value: s.keyHeadDim },
          { name: 'value_head_dim', value: s.valueHeadDim },
          { name: 'd_conv', value: s.dConv },
          { name: 'norm_eps', value: s.normEps },
        ],
});

/** The gated DeltaNet on the normed input h, without the residual. */
function gatedDeltaNetBranch(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  i: number,
  m: GatedDeltaNetSpec,
): number {
  const n = gatedDeltaNetNames(i);
  const L = `l${i}.deltanet`;
  const w = gatedDeltaNetWidths(m);
  const vPerKey = w.perKey * m.valueHeadDim;
  const qkvz = (offset: number, count: number, tag: string) =>
    linearRowBlocks(
      b,
      h,
      n.inProjQkvz,
      m.keyHeads,
      w.qkvzGroup,
      [{ offset, count }],
      model.dim,
      false,
      `${L}.in_${tag}`,
    );
  const parts = [
    { tag: 'q', offset: 0, count: m.keyHeadDim, start: 0, width: w.key },
    { tag: 'k', offset: m.keyHeadDim, count: m.keyHeadDim, start: w.key, width: w.key },
    { tag: 'v', offset: 2 * m.keyHeadDim, count: vPerKey, start: 2 * w.key, width: w.value },
  ];
  const [q, k, v] = parts.map(({ tag, offset, count, start, width }) =>
    causalConv(
      b,
      qkvz(offset, count, tag),
      weightRows(b, `${n.conv}.weight`, w.conv, start, width, m.dConv),
      null,
      b.state(`conv.${i}.${tag}`, [m.dConv - 1, width]),
      width,
      m.dConv,
      true,
      `${L}.${tag}`,
    ),
  );
  const z = qkvz(2 * m.keyHeadDim + vPerKey, vPerKey, 'z');
  // b (the β logits) of every value head, then a (the decay input): one matmul, one tensor that
  // the β and decay ops (and the recurrence they fold into) read at column offsets 0 and VH.
  const ba = linearRowBlocks(
    b,
    h,
    n.inProjBa,
    m.keyHeads,
    w.baGroup,
    [
      { offset: 0, count: w.perKey },
      { offset: w.perKey, count: w.perKey },
    ],
    model.dim,
    false,
    `${L}.in_ba`,
  );
  const state = b.state(`delta.${i}`, [m.valueHeads, m.keyHeadDim, m.valueHeadDim]);
  // q and k are l2-normalised per key head (transformers' l2norm, eps 1e-6, no weight).
  const [qn, kn] = [
    { x: q!, tag: 'q' },
    { x: k!, tag: 'k' },
  ].map(
    ({ x, tag }) =>
      b.op(
        {
          op: 'norm',
          norm: { kind: 'l2', eps: 1e-6 },
          width: w.key,
          group: m.keyHeadDim,
          residual: false,
        },
        `${L} ${tag} l2 norm`,
        { x },
        { out: { name: `${L}.${tag}_l2`, shape: ['T', w.key] } },
      ).out,
  );
  // β = sigmoid(b) and the log decay g = −exp(A_log)·softplus(a + dt_bias), per value head, read
  // from the two halves of b|a.
  const VH = m.valueHeads;
  const half = (offset: number): PointwiseInput => ({
    perToken: true,
    cols: 2 * VH,
    inner: VH,
    repeat: 1,
    offset,
  });
  const perHead: PointwiseInput = { perToken: false, cols: VH, inner: VH, repeat: 1 };
  const beta = b.op(
    {
      op: 'pointwise',
      width: VH,
      inputs: { ba: half(0) },
      expr: { fn: 'sigmoid', x: { in: 'ba' } },
    },
    `${L} beta`,
    { ba },
    { out: { name: `${L}.beta`, shape: ['T', VH] } },
  ).out;
  const g = b.op(
    {
      op: 'pointwise',
      width: VH,
      inputs: { ba: half(VH), aLog: perHead, dtBias: perHead },
      expr: {
        fn: 'neg',
        x: {
          bin: 'mul',
          a: { fn: 'exp', x: { in: 'aLog' } },
          b: { fn: 'softplus', x: { bin: 'add', a: { in: 'ba' }, b: { in: 'dtBias' } } },
        },
      },
    },
    `${L} decay`,
    { ba, aLog: b.param(n.aLog, [VH]), dtBias: b.param(n.dtBias, [VH]) },
    { out: { name: `${L}.g`, shape: ['T', VH] } },
  ).out;
  // The gated delta rule: the unified recurrence with a per-head decay and the delta update, one
  // state per value head, q and k heads repeated to value heads.
  const y = b.op(
    {
      op: 'linear_recurrence',
      heads: VH,
      qHeads: m.keyHeads,
      kHeads: m.keyHeads,
      vHeads: VH,
      gateHeads: VH,
      keyDim: m.keyHeadDim,
      valueDim: m.valueHeadDim,
      // 1 / dk ** 0.5, computed as transformers' torch_*_gated_delta_rule computes it.
      scale: 1 / m.keyHeadDim ** 0.5,
      decay: 'head',
      update: 'delta',
      normalize: false,
      normEps: 0,
    },
    `${L} gated delta rule`,
    { q: qn, k: kn, v: v!, g, beta, state },
    { out: { name: `${L}.rule`, shape: ['T', w.value] }, state },
  ).out;
  // Qwen3NextRMSNormGated: a plain RMSNorm per value head (weight w, not 1 + w), then · silu(z),
  // in one gated_norm dispatch.
  const gated = outputNorm(
    b,
    y,
    {
      weight: `${n.gateNorm}.weight`,
      width: w.value,
      headDim: m.valueHeadDim,
      eps: m.normEps,
      gate: { z, act: 'silu' },
    },
    L,
  );
  return linear(b, gated, n.outProj, model.dim, w.value, false, `${L}.out`);
}

export const gatedDeltaNet = defineMixer<GatedDeltaNetSpec>({
  kind: kindDef,
  schema: object({
    kind: kind('gated_deltanet'),
    keyHeads: posInt,
    valueHeads: posInt,
    keyHeadDim: posInt,
    valueHeadDim: posInt,
    dConv: posInt,
    normEps: posNumber,
  }),
  dims: (m) =>
    `key_heads ${m.keyHeads}, value_heads ${m.valueHeads}, key_head_dim ${m.keyHeadDim}, value_head_dim ${m.valueHeadDim}, d_conv ${m.dConv}`,
  lower: (b, model, x, i, m, input) =>
    mixerSublayer(b, model, x, input, i, gatedDeltaNetNames(i).norm, `l${i}.deltanet`, (h) =>
      gatedDeltaNetBranch(b, model, h, i, m),
    ),
});
