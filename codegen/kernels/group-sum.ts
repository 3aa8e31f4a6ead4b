/**
 * Per-group row sums (semantics: src/ops/group-sum.ts): one thread per output element adds its
 * group's columns in order. Groups are head widths (tens to a few hundred), so a serial sum per
 * thread is short and needs no workgroup reduction.
 */
import type { GroupSumAttrs } from '../../src/graph/ops.ts';
import { groupSum } from '../../src/ops/group-sum.ts';
import { STEP_WGSL } from '../kernel-ir.ts';
import { opBindings } from './wgsl-builder.ts';
import type { KernelGenerator } from './types.ts';
import { FLAT_MAIN_WGSL, flatGrid, streamWorkgroup } from './elementwise.ts';

export const groupSumKernel: KernelGenerator<GroupSumAttrs> = (a, { caps, maxT }) => {
  groupSum.check(a);
  const groups = a.width / a.group;
  const wg = streamWorkgroup(caps);
  const { bindings, decls } = opBindings(a, [
    'GROUPS',
    'GROUP',
    'WG',
    'i',
    'j',
    's',
    'wid',
    'nwg',
    'lid',
    'main',
  ]);
  const code = `${STEP_WGSL}
${decls}
const GROUPS: u32 = ${groups}u;
const GROUP: u32 = ${a.group}u;
const WG: u32 = ${wg}u;

${FLAT_MAIN_WGSL}
  if (i >= step.T * GROUPS) { return; }
  var s = 0.0;
  for (var j = 0u; j < GROUP; j++) { s += x[i * GROUP + j]; }
  out[i] = s;
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `group_sum_w${a.width}_g${a.group}_wg${wg}`,
          code,
          bindings,
          workgroupSize: [wg, 1, 1],
        },
        grid: flatGrid('T', groups, maxT, wg, caps),
      },
    ],
    scratch: {},
  };
};
