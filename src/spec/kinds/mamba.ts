/**
 * State-space mixers: `mamba1(...)` (selective scan) and `mamba2(...)` (SSD). Defaults follow the
 * HuggingFace config classes (MambaConfig, Mamba2Config); widths can be given directly or through
 * `expand` as in those configs.
 */
import { checkMamba1, checkMamba2 } from '../checks.ts';
import { defineKind, opt } from '../kind.ts';
import type { Mamba1Spec, Mamba2ProjScales, Mamba2Spec } from '../model.ts';
import { bool, int, nonNegative, orNone, positive } from '../values.ts';

type Fail = (message: string, param?: 'expand') => never;

/** The inner width from an explicit width or `expand × dim` (not both: they could disagree). */
function innerWidth(
  explicit: number | undefined,
  widthName: string,
  expand: number | undefined,
  dim: number,
  fail: Fail,
): number {
  if (explicit !== undefined && expand !== undefined) {
    fail(`give ${widthName} or expand, not both`, 'expand');
  }
  return explicit ?? (expand ?? 2) * dim;
}

export const mamba1 = defineKind({
  name: 'mamba1',
  params: {
    d_state: opt(int(1)),
    d_conv: opt(int(1)),
    expand: opt(int(1)),
    d_inner: opt(int(1)),
    dt_rank: opt(int(1)),
    conv_bias: opt(bool),
    proj_bias: opt(bool),
    inner_norm_eps: opt(orNone(positive)),
  },
  build: (a, ctx, fail): Mamba1Spec => ({
    kind: 'mamba1',
    dInner: innerWidth(a.d_inner, 'd_inner', a.expand, ctx.dim, fail),
    dState: a.d_state ?? 16,
    dConv: a.d_conv ?? 4,
    // MambaConfig's time_step_rank "auto".
    dtRank: a.dt_rank ?? Math.ceil(ctx.dim / 16),
    convBias: a.conv_bias ?? true,
    projBias: a.proj_bias ?? false,
    innerNorms: a.inner_norm_eps ? { eps: a.inner_norm_eps } : null,
  }),
  check: checkMamba1,
  // Null for other mixer kinds: the printer asks every kind of the family.
  toArgs: (s) =>
    s.kind !== 'mamba1'
      ? null
      : [
          { name: 'd_inner', value: s.dInner },
          { name: 'd_state', value: s.dState },
          { name: 'd_conv', value: s.dConv },
          { name: 'dt_rank', value: s.dtRank },
          { name: 'conv_bias', value: s.convBias },
          { name: 'proj_bias', value: s.projBias },
          { name: 'inner_norm_eps', value: s.innerNorms && s.innerNorms.eps },
        ],
});

export const mamba2 = defineKind({
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

/** The DSL names of Mamba2Spec.projScales, in in_proj's order. */
const PROJ_SCALE_NAMES = ['z_scale', 'x_scale', 'b_scale', 'c_scale', 'dt_scale'] as const;
