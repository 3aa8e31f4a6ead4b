/** Op name → WGSL kernel generator: the emitter's dispatch table. */
import type { OpAttrs, OpName } from '../../src/graph/ops.ts';
import type { KernelGenerator } from './types.ts';
import { matmulKernel } from './matmul.ts';
import { attentionKernel } from './attention.ts';
import { kvWriteKernel, ropeKernel } from './rope.ts';
import { normKernel } from './norm.ts';
import { embedKernel } from './embedding.ts';
import { actKernel, addKernel, gluKernel, softcapKernel } from './elementwise.ts';
import { sampleKernel } from './sampling.ts';

type Registry = { [K in OpName]: KernelGenerator<Extract<OpAttrs, { op: K }>> };

export const generators: Registry = {
  matmul: matmulKernel,
  attention: attentionKernel,
  kv_write: kvWriteKernel,
  rope: ropeKernel,
  norm: normKernel,
  embed: embedKernel,
  add: addKernel,
  act: actKernel,
  glu: gluKernel,
  softcap: softcapKernel,
  sample: sampleKernel,
};

export function generatorFor<A extends OpAttrs>(a: A): KernelGenerator<A> {
  return generators[a.op] as unknown as KernelGenerator<A>;
}
