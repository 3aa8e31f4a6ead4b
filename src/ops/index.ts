/**
 * Op name → its one definition (src/ops/<family>.ts): checks, inputs and outputs with shape
 * rules, CPU reference and cost. The interpreter, shape checks, in-place outputs, cost reports and
 * kernel bindings all dispatch through this table.
 */
import type { OpAttrs, OpName } from '../graph/ops.ts';
import type { OpDefinition } from './types.ts';
import { matmul } from './matmul.ts';
import { attention, kvWrite } from './attention.ts';
import { h2oAttention } from './h2o.ts';
import { nsaCompress, nsaCompressed, nsaSelected } from './nsa.ts';
import { indexerTopk, sparseAttention } from './indexer.ts';
import { rope } from './rope.ts';
import { gatedNorm, norm } from './norm.ts';
import { embed } from './embedding.ts';
import { act, add, concat, glu, mul, softcap, stateRows } from './elementwise.ts';
import { conv1d } from './conv1d.ts';
import { mamba1Step, selectiveScan, ssd } from './ssm.ts';
import { sample } from './sampling.ts';
import { softmaxRows } from './softmax-rows.ts';
import { entropyRows } from './entropy-rows.ts';
import { linearRecurrence } from './linear-recurrence.ts';
import { pointwise } from './pointwise.ts';
import { tokenShift } from './token-shift.ts';
import { groupSum } from './group-sum.ts';
import { headMatmul } from './head-matmul.ts';
import { moeCombine, moeGroup, moeMatmul, moeRoute } from './moe.ts';
import { batchedDefinition, batchOf } from './batch.ts';

type Registry = { [K in OpName]: OpDefinition<Extract<OpAttrs, { op: K }>> };

export const definitions: Registry = {
  matmul,
  attention,
  kv_write: kvWrite,
  h2o_attention: h2oAttention,
  nsa_compress: nsaCompress,
  nsa_compressed: nsaCompressed,
  nsa_selected: nsaSelected,
  indexer_topk: indexerTopk,
  sparse_attention: sparseAttention,
  rope,
  norm,
  embed,
  add,
  concat,
  act,
  glu,
  softcap,
  state_rows: stateRows,
  softmax_rows: softmaxRows,
  entropy_rows: entropyRows,
  sample,
  mul,
  conv1d,
  selective_scan: selectiveScan,
  mamba1_step: mamba1Step,
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
  head_matmul: headMatmul,
};

/** An op's definition; for a batched op (attrs.batch > 1) its batched wrapper (src/ops/batch.ts). */
export function definitionFor<A extends OpAttrs>(a: A): OpDefinition<A> {
  const def = definitions[a.op] as unknown as OpDefinition<A>;
  return batchOf(a) > 1 ? batchedDefinition(def) : def;
}

/**
 * Which outputs of an op update one of its inputs in place (state such as KV caches): output
 * name → input name, from the inputs its definition declares read_write.
 */
export function inPlaceOutputs(a: OpAttrs): Record<string, string> {
  const def = definitionFor(a);
  const inputs = def.inputs(a);
  const r: Record<string, string> = {};
  for (const name of Object.keys(def.outputs(a))) {
    if (inputs[name]?.access === 'read_write') r[name] = name;
  }
  return r;
}
