/**
 * DeepSeek sparse attention (DSA, DeepSeek-V3.2; HF DeepseekV32Indexer / DeepseekV32Attention):
 * a lightning indexer picks, for each query, the `topk` earlier positions (itself included) that
 * attention may see, and attention runs over those positions only.
 *
 * indexer_topk (IndexerTopkAttrs): the query at position p = pos + t scores each key position
 * j <= p as I(p, j) = Σ_h w[t, h] · weightScale · relu(scale · q[t, h] · k[j]) (index q heads
 * [T, heads·dim], already rotated; one index key per position in kcache [capacity, dim], shared by
 * the heads and rotated when written; w the per-head weights from weights_proj), and `sel`
 * [T, topk] lists the min(topk, p + 1) best positions in ascending order, then 0xffffffff
 * (SEL_EMPTY) in the slots left. Ascending order makes sparse_attention sum its rows in the
 * order dense attention does, so with topk >= p + 1 the output equals dense causal attention.
 *
 * Ties: two positions with equal scores rank by position, the lower first. HF ranks with
 * torch.topk, whose order among equal values is unspecified (it depends on the device and the
 * sort it picks), so no rule can match it in general; exact ties need equal index keys or every
 * head's relu at 0 (I = 0), and the golden fixture's script checks that its model never puts a
 * tie (or a near tie) at the top-k boundary (tools/golden/make_golden.py).
 *
 * HF scores every query against all cached keys and adds the causal mask (−inf) before
 * torch.topk; with fewer than topk visible keys its list holds masked positions too, which the
 * causal mask then hides again. Listing only visible positions is the same selection.
 *
 * sparse_attention (SparseAttentionAttrs): attention as the `attention` op computes it, over the
 * cache rows that sel lists for each query (empty slots skipped) instead of 0..p.
 *
 * The index key cache follows the model's KV type (--kv f16 stores it as f16, as kv_write rounds
 * it; DeepSeek keeps it in FP8). The reference indexer computes in f64 from those values (DeepSeek's FP8 index cache and its Hadamard
 * rotation are a precision optimisation HF's port skips too: the rotation is orthogonal, so
 * q·k is unchanged).
 */
import {
  kvTypeOf,
  type Cost,
  type IndexerTopkAttrs,
  type SparseAttentionAttrs,
  type StepShape,
} from '../graph/ops.ts';
import { dtypeBytes } from '../graph/dtype.ts';
import { attentionInputs, checkEven } from './attention.ts';
import { f32, indices, rule, u32, type Arrays, type OpDefinition } from './types.ts';

/** An unused slot of sel (fewer than topk positions visible). */
export const SEL_EMPTY = 0xffffffff;

function checkPositive(op: string, values: Record<string, number>): void {
  for (const [name, v] of Object.entries(values)) {
    if (!Number.isInteger(v) || v < 1)
      throw new Error(`${op}: ${name} must be an integer >= 1, got ${v}`);
  }
}

function checkSteps(op: string, capacity: number, step: StepShape): void {
  if (step.pos + step.T > capacity) {
    throw new Error(`${op}: pos + T = ${step.pos + step.T} exceeds cache capacity ${capacity}`);
  }
}

/**
 * The index scores of query t (position p = pos + t) against key positions 0..p, in f64 from the
 * f32 inputs: the reference's ground truth, shared by tests that look at the margins.
 */
export function indexScores(
  a: IndexerTopkAttrs,
  q: Float32Array,
  w: Float32Array,
  kcache: Float32Array,
  t: number,
  p: number,
): Float64Array {
  const { heads: H, dim: D } = a;
  const out = new Float64Array(p + 1);
  for (let j = 0; j <= p; j++) {
    let s = 0;
    for (let h = 0; h < H; h++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[t * H * D + h * D + d] * kcache[j * D + d];
      const r = dot * a.scale;
      if (r > 0) s += w[t * H + h] * a.weightScale * r;
    }
    out[j] = s;
  }
  return out;
}

/** The positions of the topk best scores (ties: lower position first), ascending. */
export function topkPositions(scores: ArrayLike<number>, topk: number): number[] {
  const n = scores.length;
  const all = Array.from({ length: n }, (_, j) => j);
  if (n <= topk) return all;
  all.sort((x, y) => scores[y] - scores[x] || x - y);
  return all.slice(0, topk).sort((x, y) => x - y);
}

export const indexerTopk: OpDefinition<IndexerTopkAttrs> = {
  check(a) {
    checkPositive('indexer_topk', {
      heads: a.heads,
      dim: a.dim,
      topk: a.topk,
      capacity: a.capacity,
    });
    if (kvTypeOf(a) === 'f16' && a.dim % 2 !== 0) {
      throw new Error(
        `indexer_topk: kvType 'f16' stores element pairs in u32 words and needs an even dim, got ${a.dim}`,
      );
    }
  },
  inputs: (a) => ({
    q: rule(['T', a.heads * a.dim]),
    w: rule(['T', a.heads]),
    // An f16 cache holds the values kv_write rounded; the reference reads them as they are.
    kcache: rule([a.capacity, a.dim], 'read', kvTypeOf(a)),
  }),
  outputs: (a) => ({ sel: indices(['T', a.topk]) }),
  reference(a: IndexerTopkAttrs, inputs: Arrays, step: StepShape): Arrays {
    indexerTopk.check(a);
    checkSteps('indexer_topk', a.capacity, step);
    const q = f32(inputs, 'q');
    const w = f32(inputs, 'w');
    const kc = f32(inputs, 'kcache');
    const sel = new Uint32Array(step.T * a.topk).fill(SEL_EMPTY);
    for (let t = 0; t < step.T; t++) {
      const p = step.pos + t;
      const picked = topkPositions(indexScores(a, q, w, kc, t, p), a.topk);
      sel.set(picked, t * a.topk);
    }
    return { sel };
  },
  cost(a: IndexerTopkAttrs, step: StepShape): Cost {
    let pairs = 0;
    for (let t = 0; t < step.T; t++) pairs += step.pos + t + 1;
    const keys = step.pos + step.T;
    return {
      // Per (query, key): heads dot products of dim, a relu, a weighted add; selection ~4 passes.
      flops: pairs * (a.heads * (2 * a.dim + 3) + 8),
      bytesRead: 4 * step.T * a.heads * (a.dim + 1) + dtypeBytes(kvTypeOf(a), keys * a.dim),
      bytesWritten: 4 * step.T * a.topk,
    };
  },
};

export const sparseAttention: OpDefinition<SparseAttentionAttrs> = {
  check(a) {
    checkPositive('sparse_attention', {
      heads: a.heads,
      kvHeads: a.kvHeads,
      headDim: a.headDim,
      vHeadDim: a.vHeadDim,
      topk: a.topk,
      capacity: a.capacity,
    });
    if (a.heads % a.kvHeads !== 0) {
      throw new Error(
        `sparse_attention: heads (${a.heads}) must be a multiple of kvHeads (${a.kvHeads})`,
      );
    }
    const vk = a.vFromK ?? null;
    if (vk !== null && !(Number.isInteger(vk) && vk >= 0 && vk + a.vHeadDim <= a.headDim)) {
      throw new Error(
        `sparse_attention: values read from key columns [${vk}, ${vk + a.vHeadDim}) must lie inside the key head of ${a.headDim}`,
      );
    }
    if (kvTypeOf(a) === 'f16') {
      checkEven('sparse_attention', { headDim: a.headDim, vHeadDim: a.vHeadDim, vFromK: vk ?? 0 });
    }
  },
  inputs(a) {
    const r = attentionInputs(a);
    r.sel = indices(['T', a.topk]);
    return r;
  },
  outputs: (a) => ({ out: rule(['T', a.heads * a.vHeadDim]) }),
  reference(a: SparseAttentionAttrs, inputs: Arrays, step: StepShape): Arrays {
    sparseAttention.check(a);
    checkSteps('sparse_attention', a.capacity, step);
    const q = f32(inputs, 'q');
    const kc = f32(inputs, 'kcache');
    const vk = a.vFromK ?? null;
    const vc = vk === null ? f32(inputs, 'vcache') : kc;
    const sel = u32(inputs, 'sel');
    const { heads, kvHeads, headDim: hd, vHeadDim: vd } = a;
    const kvw = kvHeads * hd;
    const vw = vk === null ? kvHeads * vd : kvw;
    const ow = heads * vd;
    const group = heads / kvHeads;
    const out = new Float32Array(step.T * ow);
    const acc = new Float64Array(vd);
    const rows: number[] = [];
    const scores: number[] = [];
    for (let t = 0; t < step.T; t++) {
      const p = step.pos + t;
      rows.length = 0;
      for (let i = 0; i < a.topk; i++) {
        const j = sel[t * a.topk + i];
        if (j === SEL_EMPTY) continue;
        // Never silently wrong: a listed position the query may not see is a broken list.
        if (j > p) {
          throw new Error(
            `sparse_attention: sel[${t}, ${i}] = ${j} lies after the query's position ${p}`,
          );
        }
        rows.push(j);
      }
      for (let h = 0; h < heads; h++) {
        const qo = t * heads * hd + h * hd;
        const kvh = Math.floor(h / group);
        const ko = kvh * hd;
        const vo = vk === null ? kvh * vd : ko + vk;
        let max = -Infinity;
        for (let i = 0; i < rows.length; i++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[qo + d] * kc[rows[i] * kvw + ko + d];
          scores[i] = s * a.scale;
          if (scores[i] > max) max = scores[i];
        }
        let sum = 0;
        acc.fill(0);
        for (let i = 0; i < rows.length; i++) {
          const e = Math.exp(scores[i] - max);
          sum += e;
          for (let d = 0; d < vd; d++) acc[d] += e * vc[rows[i] * vw + vo + d];
        }
        // No row listed (cannot happen with indexer_topk's lists, which hold p itself): zeros.
        for (let d = 0; d < vd; d++) out[t * ow + h * vd + d] = sum > 0 ? acc[d] / sum : 0;
      }
    }
    return { out };
  },
  cost(a: SparseAttentionAttrs, step: StepShape): Cost {
    let pairs = 0;
    for (let t = 0; t < step.T; t++) pairs += Math.min(a.topk, step.pos + t + 1);
    // Rows read: at most every cached row, at most topk per query.
    const rows = Math.min(step.pos + step.T, step.T * a.topk);
    const vCols = (a.vFromK ?? null) === null ? a.vHeadDim : 0;
    return {
      flops: pairs * a.heads * (2 * a.headDim + 2 * a.vHeadDim + 5),
      bytesRead:
        4 * step.T * (a.heads * a.headDim + a.topk) +
        dtypeBytes(kvTypeOf(a), rows * a.kvHeads * (a.headDim + vCols)),
      bytesWritten: 4 * step.T * a.heads * a.vHeadDim,
    };
  },
};
