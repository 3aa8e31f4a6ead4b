/**
 * Token embedding: out[t] = table[ids[t]] * scale. A table too large for one
 * storage binding is split by rows; each split node owns ids in
 * [rowStart, rowStart + rows), reads its table at id - rowStart, and leaves the
 * other rows of `out` as they are, so `out` is also an input in that case.
 */
import { dtypeBytes, weightTypeUnsupported } from '../graph/dtype.ts';
import { roundWeight } from './weight-storage.ts';
import type { Cost, EmbedAttrs, StepShape } from '../graph/ops.ts';
import { f32, indices, inPlace, rule, u32, type OpDefinition, type TensorRule } from './types.ts';

export function isSplitEmbed(a: EmbedAttrs): boolean {
  return a.rowStart > 0 || a.rows < a.vocab;
}

export const embed: OpDefinition<EmbedAttrs> = {
  check(a) {
    const narrow = weightTypeUnsupported(a.tableType, a.dim);
    if (narrow) throw new Error(`embed: tableType ${narrow}`);
    if (a.rowStart < 0 || a.rows < 1 || a.rowStart + a.rows > a.vocab) {
      throw new Error(
        `embed: rows [${a.rowStart}, ${a.rowStart + a.rows}) outside the vocab of ${a.vocab}`,
      );
    }
  },
  /** A split table's node also reads `out`: the rows of ids outside its range stay as they are. */
  inputs(a) {
    const r: Record<string, TensorRule> = {
      ids: indices(['T']),
      table: rule([a.rows, a.dim], 'read', a.tableType),
    };
    if (isSplitEmbed(a)) r.out = inPlace(['T', a.dim]);
    return r;
  },
  outputs: (a) => ({ out: rule(['T', a.dim], isSplitEmbed(a) ? 'read_write' : 'read') }),
  reference(a, inputs, step) {
    embed.check(a);
    const ids = u32(inputs, 'ids');
    const stored = f32(inputs, 'table');
    const n = step.T * a.dim;
    if (ids.length < step.T)
      throw new Error(`embed: ids has ${ids.length} entries, the step needs ${step.T}`);
    if (stored.length < a.rows * a.dim)
      throw new Error(`embed: table needs ${a.rows} x ${a.dim} elements`);
    const table = roundWeight(a.tableType, stored.subarray(0, a.rows * a.dim), a.dim);
    let out: Float32Array;
    if (isSplitEmbed(a)) {
      const prev = f32(inputs, 'out');
      if (prev.length < n)
        throw new Error(`embed: out has ${prev.length} elements, the step needs ${n}`);
      out = prev.slice(0, n);
    } else {
      out = new Float32Array(n);
    }
    for (let t = 0; t < step.T; t++) {
      const id = ids[t];
      if (id >= a.vocab)
        throw new Error(`embed: token id ${id} at row ${t} is outside the vocab of ${a.vocab}`);
      const r = id - a.rowStart;
      if (r < 0 || r >= a.rows) continue;
      for (let c = 0; c < a.dim; c++) out[t * a.dim + c] = table[r * a.dim + c] * a.scale;
    }
    return { out };
  },
  cost(a: EmbedAttrs, step: StepShape): Cost {
    const n = step.T * a.dim;
    return {
      flops: a.scale === 1 ? 0 : n,
      bytesRead: step.T * 4 + dtypeBytes(a.tableType, n),
      bytesWritten: n * 4,
    };
  },
};
