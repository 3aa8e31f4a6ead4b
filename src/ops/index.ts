/** Op name → CPU reference: the interpreter's dispatch table. */
import type { OpAttrs, OpName } from '../graph/ops.ts';
import type { OpReference } from './types.ts';
import { matmul } from './matmul.ts';
import { attention, kvWrite } from './attention.ts';
import { rope } from './rope.ts';
import { gatedNorm, norm } from './norm.ts';
import { embed } from './embedding.ts';
import { act, add, concat, glu, mul, softcap } from './elementwise.ts';
import { conv1d } from './conv1d.ts';
import { selectiveScan, ssd } from './ssm.ts';
import { sample } from './sampling.ts';
import { gatedDeltaRule } from './linear-recurrence.ts';
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
  gated_delta_rule: gatedDeltaRule,
  moe_route: moeRoute,
  moe_group: moeGroup,
  moe_matmul: moeMatmul,
  moe_combine: moeCombine,
};

export function referenceFor<A extends OpAttrs>(a: A): OpReference<A> {
  return references[a.op] as unknown as OpReference<A>;
}
