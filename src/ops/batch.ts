/**
 * Batched decode (compile --batch B): the decode step's rows are B sequences, not B consecutive
 * tokens of one. Each prompt is prefilled into its own slot by the one-sequence prefill
 * (runtime/batch.ts), so the sequences sit at their own positions: row s at step.pos +
 * rowPos[s] (StepShape.rowPos; codegen/kernel-ir.ts ROW_POS on the GPU). Only the ops that keep
 * per-sequence state or read the position need to know: their attrs carry `batch` (set by the
 * GraphBuilder), their per-sequence states hold B slices one after another, and row s reads and
 * writes slice s.
 *
 * Rather than restate each such op's shapes and reference, this wraps its one definition: shapes
 * are the single-sequence ones with the per-sequence tensors B times longer, and the reference is
 * the single-sequence reference run once per row (T = 1) on that row's slices. So a batched
 * kernel is tested against exactly what B independent sequences would compute.
 */
import type { OpAttrs, OpName, StepShape } from '../graph/ops.ts';
import type { Dim } from '../graph/ir.ts';
import type { Arrays, HostArray, OpDefinition, TensorRule } from './types.ts';

/**
 * The ops with a batched kernel, and for each the inputs and outputs that hold one sequence's
 * state (sliced by sequence rather than by row). Every other op is either row-independent (its
 * rows may be any sequences: matmuls, norms, pointwise, embed, MoE) or refuses a batch.
 */
export const BATCHED_OPS: Partial<Record<OpName, readonly string[]>> = {
  rope: [],
  kv_write: ['cache'],
  attention: ['kcache', 'vcache'],
  conv1d: ['state'],
  mamba1_step: ['state'],
  ssd: ['state'],
  linear_recurrence: ['state'],
  token_shift: ['state'],
  sample: ['token'],
  // Each sequence keeps its own budget rows, positions and scores, so it evicts on its own.
  h2o_attention: ['kcache', 'vcache', 'rows'],
  // NSA: each sequence compresses its own blocks and picks among them.
  nsa_compress: ['kcache', 'vcache', 'kcmp', 'vcmp'],
  nsa_compressed: ['kcmp', 'vcmp'],
  nsa_selected: ['kcache', 'vcache'],
  // DeepSeek sparse attention: each sequence's top-k over its own index keys, then attention
  // over its own listed rows.
  indexer_topk: ['kcache'],
  sparse_attention: ['kcache', 'vcache'],
  // Lowered batched, but only its decode fusion (mamba1_step) has a batched kernel.
  selective_scan: ['state'],
};

/**
 * Ops whose state is not a sequence's but the whole run's, which every row adds to alike:
 * moe_route's per-expert load counters (run --stats). They run unbatched.
 */
export const SHARED_STATE_OPS: readonly OpName[] = ['moe_route'];

/** The batch size of an op's attrs: 1 when the op runs one sequence. */
export function batchOf(a: OpAttrs): number {
  return 'batch' in a && typeof a.batch === 'number' ? a.batch : 1;
}

function single<A extends OpAttrs>(a: A): A {
  const { batch: _batch, ...rest } = a as A & { batch?: number };
  return rest as A;
}

const numel = (shape: readonly Dim[]): number =>
  shape.reduce<number>((n, d) => n * (typeof d === 'number' ? d : 1), 1);

const isRows = (r: TensorRule): boolean => r.shape[0] === 'T' || r.shape[0] === 'L';

function alloc(r: TensorRule, n: number): HostArray {
  return r.dtype === 'u32' ? new Uint32Array(n) : new Float32Array(n);
}

/** `def` for B sequences a step (see the header); B = batchOf(attrs). */
export function batchedDefinition<A extends OpAttrs>(def: OpDefinition<A>): OpDefinition<A> {
  const perSeq = (a: A): readonly string[] => {
    const names = BATCHED_OPS[a.op];
    if (!names) {
      const ok = Object.keys(BATCHED_OPS).join(', ');
      throw new Error(
        `${a.op}: no batched decode kernel (batch ${batchOf(a)}); batched ops: ${ok}`,
      );
    }
    return names;
  };
  const widen = (a: A, rules: Record<string, TensorRule>): Record<string, TensorRule> => {
    const names = perSeq(a);
    const B = batchOf(a);
    return Object.fromEntries(
      Object.entries(rules).map(([n, r]) => {
        if (!names.includes(n)) return [n, r];
        const [first, ...rest] = r.shape;
        if (typeof first !== 'number') throw new Error(`${a.op}: per-sequence '${n}' has rows`);
        return [n, { ...r, shape: [first * B, ...rest] }];
      }),
    );
  };
  return {
    check(a) {
      const B = batchOf(a);
      if (!Number.isInteger(B) || B < 1) throw new Error(`${a.op}: batch ${B} is not a count`);
      perSeq(a);
      def.check(single(a));
    },
    inputs: (a) => widen(a, def.inputs(single(a))),
    outputs: (a) => widen(a, def.outputs(single(a))),
    reference(a: A, inputs: Arrays, step: StepShape): Arrays {
      const one = single(a);
      const names = perSeq(a);
      const B = batchOf(a);
      if (step.T !== B) throw new Error(`${a.op}: a batched step has ${B} rows, got ${step.T}`);
      const ins = def.inputs(one);
      const outs = def.outputs(one);
      // Sequence s's view of a tensor: its slice when per-sequence, its row when it has rows.
      const view = (arr: HostArray, r: TensorRule, name: string, s: number): HostArray => {
        if (names.includes(name)) return arr.subarray(s * numel(r.shape), (s + 1) * numel(r.shape));
        if (isRows(r)) return arr.subarray(s * numel(r.shape), (s + 1) * numel(r.shape));
        return arr;
      };
      const result: Arrays = {};
      for (const [name, r] of Object.entries(outs)) {
        const inPlace = ins[name]?.access === 'read_write';
        result[name] = inPlace ? inputs[name] : alloc(r, numel(r.shape) * B);
      }
      for (let s = 0; s < B; s++) {
        const mine: Arrays = {};
        for (const [name, r] of Object.entries(ins)) mine[name] = view(inputs[name], r, name, s);
        const sampling = step.sampling && { ...step.sampling, seed: step.sampling.seed + s };
        // Row s's position: the step's, or its own when the sequences sit apart (StepShape.rowPos).
        const pos = step.pos + (step.rowPos?.[s] ?? 0);
        const got = def.reference(one, mine, { ...step, T: 1, L: 1, pos, sampling });
        for (const [name, r] of Object.entries(outs)) {
          const into = view(result[name], r, name, s);
          if (got[name] !== into) into.set(got[name]);
        }
      }
      return result;
    },
    cost(a, step) {
      const c = def.cost(single(a), { ...step, T: 1, L: 1 });
      const B = batchOf(a);
      return Object.fromEntries(
        Object.entries(c).map(([k, v]) => [k, typeof v === 'number' ? v * B : v]),
      ) as typeof c;
    },
  };
}
