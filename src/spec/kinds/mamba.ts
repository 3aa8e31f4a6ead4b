/**
 * `mamba2(...)` (SSD). Defaults follow the HuggingFace config class (Mamba2Config); the width can
 * be given through heads or through `expand` as in that config.
 */
import { innerWidth } from '../../mixers/mamba1.ts';
import { checkMamba2 } from '../checks.ts';
import { defineKind, opt } from '../kind.ts';
import type { Mamba2ProjScales, Mamba2Spec } from '../model.ts';
import { bool, int, nonNegative, orNone, positive } from '../values.ts';

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
