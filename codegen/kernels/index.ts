/** Op name → WGSL kernel generator: the emitter's dispatch table. */
import type { OpAttrs, OpName } from '../../src/graph/ops.ts';
import type { KernelGenerator } from './types.ts';
import { matmulKernel } from './matmul.ts';
import { attentionKernel } from './attention.ts';
import { kvWriteKernel, ropeKernel } from './rope.ts';
import { h2oAttentionKernel } from './h2o.ts';
import { nsaCompressedKernel, nsaCompressKernel, nsaSelectedKernel } from './nsa.ts';
import { indexerTopkKernel, sparseAttentionKernel } from './indexer.ts';
import { gatedNormKernel, normKernel } from './norm.ts';
import { embedKernel } from './embedding.ts';
import {
  actKernel,
  addKernel,
  concatKernel,
  gluKernel,
  mulKernel,
  softcapKernel,
  stateRowsKernel,
} from './elementwise.ts';
import { conv1dKernel } from './conv1d.ts';
import { selectiveScanKernel, ssdKernel } from './ssm.ts';
import { mamba1StepKernel } from './ssm-step.ts';
import { sampleKernel } from './sampling.ts';
import { softmaxRowsKernel } from './softmax-rows.ts';
import { entropyRowsKernel } from './entropy-rows.ts';
import { linearRecurrenceKernel } from './linear-recurrence.ts';
import { pointwiseKernel } from './pointwise.ts';
import { tokenShiftKernel } from './token-shift.ts';
import { groupSumKernel } from './group-sum.ts';
import { headMatmulKernel } from './head-matmul.ts';
import { moeCombineKernel, moeGroupKernel, moeMatmulKernel, moeRouteKernel } from './moe.ts';

type Registry = { [K in OpName]: KernelGenerator<Extract<OpAttrs, { op: K }>> };

export const generators: Registry = {
  matmul: matmulKernel,
  attention: attentionKernel,
  kv_write: kvWriteKernel,
  h2o_attention: h2oAttentionKernel,
  nsa_compress: nsaCompressKernel,
  nsa_compressed: nsaCompressedKernel,
  nsa_selected: nsaSelectedKernel,
  indexer_topk: indexerTopkKernel,
  sparse_attention: sparseAttentionKernel,
  rope: ropeKernel,
  norm: normKernel,
  embed: embedKernel,
  add: addKernel,
  concat: concatKernel,
  act: actKernel,
  glu: gluKernel,
  softcap: softcapKernel,
  state_rows: stateRowsKernel,
  softmax_rows: softmaxRowsKernel,
  entropy_rows: entropyRowsKernel,
  sample: sampleKernel,
  mul: mulKernel,
  conv1d: conv1dKernel,
  selective_scan: selectiveScanKernel,
  mamba1_step: mamba1StepKernel,
  ssd: ssdKernel,
  gated_norm: gatedNormKernel,
  linear_recurrence: linearRecurrenceKernel,
  pointwise: pointwiseKernel,
  token_shift: tokenShiftKernel,
  group_sum: groupSumKernel,
  moe_route: moeRouteKernel,
  moe_group: moeGroupKernel,
  moe_matmul: moeMatmulKernel,
  moe_combine: moeCombineKernel,
  head_matmul: headMatmulKernel,
};

export function generatorFor<A extends OpAttrs>(a: A): KernelGenerator<A> {
  return generators[a.op] as unknown as KernelGenerator<A>;
}
