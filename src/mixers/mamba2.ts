/**
 * `mamba2(...)`: the Mamba-2 SSD mixer (HF Mamba2Mixer). Per layer, on the normed input h:
 *   z, x, B, C, dt = in_proj h        (one projection, lowered as five matmuls over its row ranges)
 *   x, B, C = silu(conv(x | B | C))   causal depthwise conv of d_conv taps; the conv over xBC is
 *                                     depthwise, so it splits by channel ranges exactly
 *   y = ssd(x, dt + dt_bias, A_log, B, C, D)   chunked SSD scan, scalar decay per head
 *   out = out_proj(gated_rmsnorm(y, z))        (or y · silu(z) without the norm: Falcon-H1)
 * State: conv.{i}.x/.b/.c [dConv − 1, channels] and ssm.{i} [heads, headDim, dState]. Defaults
 * follow Mamba2Config; the width can be given through heads or through `expand` as in that config.
 * parallel(...) runs mamba2Branch beside attention (Falcon-H1).
 */
import type { GraphBuilder } from '../graph/builder.ts';
import {
  causalConv,
  linear,
  linearRows,
  linearScale,
  mixerSublayer,
  weightRows,
} from '../graph/blocks/common.ts';
import { layerPrefix } from '../import/names.ts';
import { checkKernel, multipleOf, type Issue, type Namer } from '../spec/checks.ts';
import { defineKind, opt } from '../spec/kind.ts';
import type { ModelIR } from '../spec/model.ts';
import { bool as boolSchema, kind, object, posInt, posNumber } from '../spec/schema-parts.ts';
import { bool, int, nonNegative, orNone, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';
import { innerWidth } from './mamba1.ts';

/**
 * Mamba-2 SSD mixer (HF Mamba2Mixer): in_proj to (z, xBC, dt), causal depthwise conv + SiLU on
 * xBC, SSD scan with scalar decay per head, gated RMSNorm with z, out_proj.
 */
export interface Mamba2Spec {
  kind: 'mamba2';
  heads: number;
  headDim: number;
  dState: number;
  /** B/C groups (heads share B and C within a group). */
  groups: number;
  dConv: number;
  /** Tokens per chunk of the chunked SSD algorithm (numerics only, not the model). */
  chunk: number;
  convBias: boolean;
  /** Bias on in_proj and out_proj. */
  projBias: boolean;
  /** The gated RMSNorm normalises groups of this many channels (heads × headDim for one group). */
  normGroup: number;
  normEps: number;
  /** softplus(dt + dt_bias) is clamped to [dtMin, dtMax]; dtMax null is no upper limit. */
  dtMin: number;
  dtMax: number | null;
  /**
   * Multipliers on in_proj's five output parts [z, x, B, C, dt] (Falcon-H1's ssm_multipliers,
   * HF's mup_vector), applied after its bias. Absent means all 1; present only when one is not.
   */
  projScales?: Mamba2ProjScales;
  /**
   * false: out = y · silu(z) with no RMSNorm (Falcon-H1's mamba_rms_norm: false). Absent means
   * true, the gated RMSNorm; present only when false.
   */
  gateNorm?: false;
  /**
   * true: out = RMSNorm(y) · w · silu(z), the norm before the gate (Falcon-H1's
   * mamba_norm_before_gate with mamba_rms_norm). Absent means the gate first; present only when true.
   */
  normBeforeGate?: true;
}

export type Mamba2ProjScales = [z: number, x: number, b: number, c: number, dt: number];

/** Mamba-2 mixer tensors (HF Mamba2Mixer's names under `mixer`). */
export function mamba2Names(i: number) {
  const p = `${layerPrefix(i)}.mixer`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    inProj: `${p}.in_proj`,
    conv: `${p}.conv1d`,
    outProj: `${p}.out_proj`,
    aLog: `${p}.A_log`,
    d: `${p}.D`,
    dtBias: `${p}.dt_bias`,
    /** The gated RMSNorm's weight. */
    gateNorm: `${p}.norm`,
  };
}

/** Mamba-2 widths: the inner width, the conv channels (x, B, C) and in_proj's rows (z, xBC, dt). */
export function mamba2Widths(m: Mamba2Spec): { inner: number; conv: number; inProj: number } {
  const inner = m.heads * m.headDim;
  const conv = inner + 2 * m.groups * m.dState;
  return { inner, conv, inProj: inner + conv + m.heads };
}

/** The largest finite f32: "no upper clamp" for dt, as a number every kernel can write. */
const F32_MAX = 3.4028234663852886e38;

function checkMamba2(m: Mamba2Spec, n: Namer): Issue[] {
  const issues = [
    ...checkKernel('dConv', m.dConv, n),
    ...multipleOf(n, 'groups', ['heads', m.heads], ['groups', m.groups]),
  ];
  const inner = m.heads * m.headDim;
  if (inner % m.normGroup !== 0) {
    issues.push({
      path: ['normGroup'],
      message: `${n('normGroup')} (${m.normGroup}) must divide ${n('heads')} × ${n('headDim')} (${inner})`,
    });
  }
  if (m.normBeforeGate && m.gateNorm === false) {
    issues.push({
      path: ['normBeforeGate'],
      message: `${n('normBeforeGate')} needs the gated norm (${n('gateNorm')} is false)`,
    });
  }
  if (m.dtMax !== null && m.dtMax < m.dtMin) {
    issues.push({
      path: ['dtMax'],
      message: `${n('dtMax')} (${m.dtMax}) must not be below ${n('dtMin')} (${m.dtMin})`,
    });
  }
  return issues;
}

/** The DSL names of Mamba2Spec.projScales, in in_proj's order. */
const PROJ_SCALE_NAMES = ['z_scale', 'x_scale', 'b_scale', 'c_scale', 'dt_scale'] as const;

const kindDef = defineKind({
  name: 'mamba2',
  params: {
    heads: opt(int(1)),
    head_dim: opt(int(1)),
    expand: opt(int(1)),
    d_state: opt(int(1)),
    groups: opt(int(1)),
    d_conv: opt(int(1)),
    chunk: opt(int(1)),
    conv_bias: opt(bool),
    proj_bias: opt(bool),
    norm_group: opt(int(1)),
    norm_eps: opt(positive),
    dt_min: opt(nonNegative),
    dt_max: opt(orNone(positive)),
    gate_norm: opt(bool),
    norm_before_gate: opt(bool),
    z_scale: opt(positive),
    x_scale: opt(positive),
    b_scale: opt(positive),
    c_scale: opt(positive),
    dt_scale: opt(positive),
  },
  build: (a, ctx, fail): Mamba2Spec => {
    const headDim = a.head_dim ?? 64;
    let heads = a.heads;
    if (heads === undefined) {
      const inner = innerWidth(undefined, 'heads', a.expand, ctx.dim, fail);
      if (inner % headDim !== 0) {
        fail(`expand × dim (${inner}) is not a multiple of head_dim ${headDim}; give heads`);
      }
      heads = inner / headDim;
    } else if (a.expand !== undefined) {
      fail('give heads or expand, not both', 'expand');
    }
    const groups = a.groups ?? 1;
    const scales: Mamba2ProjScales = [a.z_scale, a.x_scale, a.b_scale, a.c_scale, a.dt_scale].map(
      (v) => v ?? 1,
    ) as Mamba2ProjScales;
    return {
      kind: 'mamba2',
      heads,
      headDim,
      dState: a.d_state ?? 128,
      groups,
      dConv: a.d_conv ?? 4,
      chunk: a.chunk ?? 256,
      convBias: a.conv_bias ?? true,
      projBias: a.proj_bias ?? false,
      // mamba_ssm normalises each B/C group's channels separately (HF's Mamba2 and Bamba
      // classes normalise the whole width: norm_group: heads × head_dim).
      normGroup: a.norm_group ?? (heads * headDim) / groups,
      normEps: a.norm_eps ?? 1e-5,
      dtMin: a.dt_min ?? 0,
      dtMax: a.dt_max ?? null,
      // Defaults are left out of the spec (see Mamba2Spec), so plain Mamba-2 specs stay as they were.
      ...(scales.some((v) => v !== 1) ? { projScales: scales } : {}),
      ...(a.gate_norm === false ? { gateNorm: false as const } : {}),
      ...(a.norm_before_gate === true ? { normBeforeGate: true as const } : {}),
    };
  },
  check: checkMamba2,
  toArgs: (s) =>
    s.kind !== 'mamba2'
      ? null
      : [
          { name: 'heads', value: s.heads },
          { name: 'head_dim', value: s.headDim },
          { name: 'd_state', value: s.dState },
          { name: 'groups', value: s.groups },
          { name: 'd_conv', value: s.dConv },
          { name: 'chunk', value: s.chunk },
          { name: 'conv_bias', value: s.convBias },
          { name: 'proj_bias', value: s.projBias },
          { name: 'norm_group', value: s.normGroup },
          { name: 'norm_eps', value: s.normEps },
          { name: 'dt_min', value: s.dtMin },
          { name: 'dt_max', value: s.dtMax },
          { name: 'gate_norm', value: s.gateNorm ?? true },
          { name: 'norm_before_gate', value: s.normBeforeGate ?? false },
          ...PROJ_SCALE_NAMES.map((name, i) => ({ name, value: s.projScales?.[i] ?? 1 })),
        ],
});

/**
 * outScale · mamba2(inScale · h) for the normed input h, without the residual. The multipliers
 * and in_proj's part scales fold into in_proj's rows and out_proj.
 */
export function mamba2Branch(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  i: number,
  m: Mamba2Spec,
  inScale: number,
  outScale: number,
): number {
  const n = mamba2Names(i);
  const L = `l${i}.mamba2`;
  const w = mamba2Widths(m);
  const gn = m.groups * m.dState;
  const [zS, xS, bS, cS, dtS] = m.projScales ?? [1, 1, 1, 1, 1];
  const proj = (start: number, count: number, tag: string, part: number) =>
    linearRows(
      b,
      h,
      n.inProj,
      w.inProj,
      start,
      count,
      model.dim,
      m.projBias,
      `${L}.in_${tag}`,
      linearScale(inScale, part),
    );
  const z = proj(0, w.inner, 'z', zS);
  // Channel ranges of the conv (x, B, C), which follow z in in_proj.
  const parts = [
    { tag: 'x', start: 0, count: w.inner, part: xS },
    { tag: 'b', start: w.inner, count: gn, part: bS },
    { tag: 'c', start: w.inner + gn, count: gn, part: cS },
  ];
  const [xs, B, C] = parts.map(({ tag, start, count, part }) =>
    causalConv(
      b,
      proj(w.inner + start, count, tag, part),
      weightRows(b, `${n.conv}.weight`, w.conv, start, count, m.dConv),
      m.convBias ? weightRows(b, `${n.conv}.bias`, w.conv, start, count, 1) : null,
      b.state(`conv.${i}.${tag}`, [m.dConv - 1, count]),
      count,
      m.dConv,
      true,
      `${L}.${tag}`,
    ),
  );
  const dt = proj(w.inner + w.conv, m.heads, 'dt', dtS);
  const ssm = b.state(`ssm.${i}`, [m.heads, m.headDim, m.dState]);
  const y = b.op(
    {
      op: 'ssd',
      heads: m.heads,
      headDim: m.headDim,
      dState: m.dState,
      groups: m.groups,
      chunk: m.chunk,
      dtMin: m.dtMin,
      dtMax: m.dtMax ?? F32_MAX,
    },
    `${L} ssd`,
    {
      x: xs!,
      dt,
      dtBias: b.param(n.dtBias, [m.heads]),
      aLog: b.param(n.aLog, [m.heads]),
      b: B!,
      c: C!,
      d: b.param(n.d, [m.heads]),
      state: ssm,
    },
    { out: { name: `${L}.ssd`, shape: ['T', w.inner] }, state: ssm },
  ).out;
  const g =
    m.gateNorm === false
      ? // y · silu(z) without the norm (Falcon-H1's mamba_rms_norm: false).
        b.op(
          { op: 'glu', act: 'silu', width: w.inner },
          `${L} gate`,
          { gate: z, up: y },
          { out: { name: `${L}.gated`, shape: ['T', w.inner] } },
        ).out
      : b.op(
          {
            op: 'gated_norm',
            width: w.inner,
            group: m.normGroup,
            eps: m.normEps,
            normBeforeGate: m.normBeforeGate === true,
          },
          `${L} gated norm`,
          { x: y, z, w: b.param(`${n.gateNorm}.weight`, [w.inner]) },
          { out: { name: `${L}.gnorm`, shape: ['T', w.inner] } },
        ).out;
  const out = linearScale(1, outScale);
  return linear(b, g, n.outProj, model.dim, w.inner, m.projBias, `${L}.out`, 'T', out);
}

export const mamba2 = defineMixer<Mamba2Spec>({
  kind: kindDef,
  schema: object(
    {
      kind: kind('mamba2'),
      heads: posInt,
      headDim: posInt,
      dState: posInt,
      groups: posInt,
      dConv: posInt,
      chunk: posInt,
      convBias: boolSchema,
      projBias: boolSchema,
      normGroup: posInt,
      normEps: posNumber,
      dtMin: { type: 'number', minimum: 0 },
      // null: no upper clamp (HF's time_step_limit of inf, which JSON cannot write).
      dtMax: { type: ['number', 'null'], exclusiveMinimum: 0 },
    },
    {
      projScales: { type: 'array', minItems: 5, maxItems: 5, items: posNumber },
      gateNorm: { const: false },
      normBeforeGate: { const: true },
    },
  ),
  dims: (m) => {
    const parts = [`heads ${m.heads}`, `head_dim ${m.headDim}`, `d_state ${m.dState}`];
    if (m.groups !== 1) parts.push(`groups ${m.groups}`);
    parts.push(`d_conv ${m.dConv}`);
    return parts.join(', ');
  },
  lower: (b, model, x, i, m, input) =>
    mixerSublayer(b, model, x, input, i, mamba2Names(i).norm, `l${i}.mamba2`, (h) =>
      mamba2Branch(b, model, h, i, m, 1, 1),
    ),
});
