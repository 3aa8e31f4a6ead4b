/** Op name → CPU reference: the interpreter's dispatch table. */
import type { OpAttrs, OpName } from '../graph/ops.ts';
import type { OpReference } from './types.ts';
import { matmul } from './matmul.ts';
import { attention, kvWrite } from './attention.ts';
import { rope } from './rope.ts';
import { norm } from './norm.ts';
import { embed } from './embedding.ts';
import { act, add, glu, softcap } from './elementwise.ts';
import { sample } from './sampling.ts';

type Registry = { [K in OpName]: OpReference<Extract<OpAttrs, { op: K }>> };

export const references: Registry = {
  matmul,
  attention,
  kv_write: kvWrite,
  rope,
  norm,
  embed,
  add,
  act,
  glu,
  softcap,
  sample,
};

export function referenceFor<A extends OpAttrs>(a: A): OpReference<A> {
  return references[a.op] as unknown as OpReference<A>;
}
