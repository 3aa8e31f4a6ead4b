/**
 * Lowering of a gated DeltaNet sublayer (HF Qwen3NextGatedDeltaNet): pre-norm; in_proj_qkvz and
 * in_proj_ba, whose rows are grouped per key head, as one matmul per part (q, k, v, z, and b|a) over
 * that part's rows of every group; a causal conv + SiLU on each of q, k and v (the conv is
 * depthwise over the concatenation q|k|v, so it splits by channel ranges exactly); l2 norms of
 * q and k, β and the log decay as pointwise ops, and the gated delta rule as a linear_recurrence
 * (the fusion pass folds those four into it); the per-value-head RMSNorm (one [valueHeadDim]
 * weight) times silu(z); out_proj; residual. State: conv.{i}.q/.k/.v [dConv − 1, channels] and delta.{i} [valueHeads,
 * keyHeadDim, valueHeadDim].
 */
import type { GraphBuilder } from '../builder.ts';
import type { GatedDeltaNetSpec, ModelIR } from '../../spec/model.ts';
import type { PointwiseInput } from '../ops.ts';
import { gatedDeltaNetNames, gatedDeltaNetWidths } from '../../import/names.ts';
import { causalConv, linear, linearRowBlocks, mixerSublayer, weightRows } from './common.ts';

export function lowerGatedDeltaNet(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  i: number,
  m: GatedDeltaNetSpec,
  /** What the pre-norm reads when it is not the residual x (a shared block's output added). */
  input: number = x,
): number {
  return mixerSublayer(b, model, x, input, i, gatedDeltaNetNames(i).norm, `l${i}.deltanet`, (h) =>
    gatedDeltaNetBranch(b, model, h, i, m),
  );
}

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
  // Qwen3NextRMSNormGated: a plain RMSNorm per value head (weight w, not 1 + w), then · silu(z).
  const normed = b.op(
    {
      op: 'norm',
      norm: { kind: 'rms', eps: m.normEps, unitOffset: false, bias: false },
      width: w.value,
      group: m.valueHeadDim,
      residual: false,
    },
    `${L} head norm`,
    { x: y, w: b.param(`${n.gateNorm}.weight`, [m.valueHeadDim]) },
    { out: { name: `${L}.hnorm`, shape: ['T', w.value] } },
  ).out;
  const gated = b.op(
    { op: 'glu', act: 'silu', width: w.value },
    `${L} output gate`,
    { gate: z, up: normed },
    { out: { name: `${L}.gated`, shape: ['T', w.value] } },
  ).out;
  return linear(b, gated, n.outProj, model.dim, w.value, false, `${L}.out`);
}
