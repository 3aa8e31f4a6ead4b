/**
 * Per-group sums of a row (semantics in src/graph/ops.ts, GroupSumAttrs): the reduction the
 * pointwise op cannot express, e.g. one dot product per head of two [T, heads·d] activations
 * (multiply them pointwise, then sum each head's d columns).
 */
import type { GroupSumAttrs } from '../graph/ops.ts';
import { f32, rule, type OpDefinition } from './types.ts';

export const groupSum: OpDefinition<GroupSumAttrs> = {
  check(a) {
    if (!Number.isInteger(a.group) || a.group < 1) {
      throw new Error(`group_sum: group must be a positive integer, got ${a.group}`);
    }
    if (!Number.isInteger(a.width) || a.width < 1 || a.width % a.group !== 0) {
      throw new Error(`group_sum: width ${a.width} is not a positive multiple of group ${a.group}`);
    }
  },
  inputs: (a) => ({ x: rule(['T', a.width]) }),
  outputs: (a) => ({ out: rule(['T', a.width / a.group]) }),
  reference(a, inputs, step) {
    groupSum.check(a);
    const x = f32(inputs, 'x');
    if (x.length < step.T * a.width) {
      throw new Error(`group_sum: x has ${x.length} elements, the step needs ${step.T * a.width}`);
    }
    const groups = a.width / a.group;
    const out = new Float32Array(step.T * groups);
    for (let r = 0; r < step.T * groups; r++) {
      let s = 0;
      for (let i = 0; i < a.group; i++) s += x[r * a.group + i];
      out[r] = s;
    }
    return { out };
  },
  cost(a, step) {
    const n = step.T * a.width;
    return { flops: n, bytesRead: 4 * n, bytesWritten: (4 * n) / a.group };
  },
};
