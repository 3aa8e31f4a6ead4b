/** Op name → CPU reference: the interpreter's dispatch table. */
import type { OpAttrs, OpName } from '../graph/ops.ts';
import type { OpDefinition, OpReference } from './types.ts';
import { matmul } from './matmul.ts';
import { attention, kvWrite } from './attention.ts';
import { rope } from './rope.ts';
import { gatedNorm, norm } from './norm.ts';
import { embed } from './embedding.ts';
import { act, add, concat, glu, mul, softcap } from './elementwise.ts';
import { conv1d } from './conv1d.ts';
import { selectiveScan, ssd } from './ssm.ts';
import { sample } from './sampling.ts';
import { linearRecurrence } from './linear-recurrence.ts';
import { pointwise } from './pointwise.ts';
import { tokenShift } from './token-shift.ts';
import { groupSum } from './group-sum.ts';
import { moeCombine, moeGroup, moeMatmul, moeRoute } from './moe.ts';

type Registry = { [K in OpName]: OpReference<Extract<OpAttrs, { op: K }>> };

export const references: Registry = {
  matmul,
  attention,
  kv_write: kvWrite,
  rope,
  norm,
  embed,
  add,
  concat,
  act,
  glu,
  softcap,
  sample,
  mul,
  conv1d,
  selective_scan: selectiveScan,
  ssd,
  gated_norm: gatedNorm,
  linear_recurrence: linearRecurrence,
  pointwise,
  token_shift: tokenShift,
  group_sum: groupSum,
  moe_route: moeRoute,
  moe_group: moeGroup,
  moe_matmul: moeMatmul,
  moe_combine: moeCombine,
};

export function referenceFor<A extends OpAttrs>(a: A): OpReference<A> {
  return references[a.op] as unknown as OpReference<A>;
}

/** Ops defined in full (inputs and outputs with shape rules, checks): shapes.ts and the emitter read these. */
const definitions: { [K in OpName]?: OpDefinition<Extract<OpAttrs, { op: K }>> } = {
  linear_recurrence: linearRecurrence,
  pointwise,
  token_shift: tokenShift,
  group_sum: groupSum,
};

export function definitionFor<A extends OpAttrs>(a: A): OpDefinition<A> | null {
  return (definitions[a.op] as unknown as OpDefinition<A> | undefined) ?? null;
}
