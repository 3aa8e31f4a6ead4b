/**
 * NSA, native sparse attention (Yuan et al. 2025, "Native Sparse Attention: Hardware-Aligned and
 * Natively Trainable Sparse Attention", arXiv 2502.11089), as fla implements it
 * (fla/ops/nsa/naive.py, fla/layers/nsa.py), so that fla checkpoints import unchanged:
 *
 *   o = g_cmp · o_cmp + g_slc · o_slc + g_swa · o_swa      (gates: sigmoid of g_proj, per head)
 *
 * - Compression: the keys (already rotated) and values of each complete block of `block` (l)
 *   tokens are mean-pooled into one compressed key and value (fla's default; the paper's MLP with
 *   intra-block positions is not fla's and not here). fla uses one size for the compression block,
 *   its stride and the selection block, and so do we; the DSL rejects other combinations.
 * - Compressed attention (o_cmp): query p attends over the complete blocks, those whose last token
 *   (c + 1)·l − 1 ≤ p. With none visible (p < l − 1) o_cmp is 0.
 * - Selection: per kv head, a block's importance is the mean over the group's query heads of the
 *   compressed-attention probability it got (heads of a GQA group share their selection, so they
 *   read the same key blocks). The initial block 0, the previous block p/l − 1 and the current block
 *   p/l always rank first (fla gives them score 1, no less than any probability); blocks after p/l are
 *   never chosen. The `select` (n) best blocks are kept; with fewer than n candidates, all of them.
 *   Ties (the forced blocks among themselves, or equal probabilities) go to the later block: fla's
 *   torch.topk leaves tie order unspecified; this only matters when n < 3.
 * - Selected attention (o_slc): query p attends over the keys ≤ p of its kv head's chosen blocks.
 * - Sliding window (o_swa): plain causal attention over the last `window` keys (p − w, p], the
 *   attention op with a window (flash_attn's window_size = (w − 1, 0) in fla).
 *
 * Decode keeps the full KV cache (the selected and window branches read raw keys anywhere in the
 * past, as fla's cache does) plus the compressed caches, which grow by one row per l tokens:
 * nsa_compress writes a block's row when a step's token completes it, so prefill and decode build
 * the same rows.
 *
 * Caches are f32 here (kvType 'f16' is rejected by the lowering).
 */
import type {
  Cost,
  NsaCompressAttrs,
  NsaCompressedAttrs,
  NsaSelectedAttrs,
  StepShape,
} from '../graph/ops.ts';
import { f32, inPlace, rule, u32, type Arrays, type OpDefinition } from './types.ts';

/** The padding of unused pick slots. */
export const NSA_NO_BLOCK = 0xffffffff;

/**
 * The score of an always-selected block: above any probability. fla writes 1, which an f32
 * probability can round to; 2 keeps the forced blocks first in f32 and f64 alike.
 */
export const NSA_FORCED = 2;

/** Rows of the compressed caches: one per block of the KV cache, the partial last one included. */
export function nsaBlocks(a: { capacity: number; block: number }): number {
  return Math.ceil(a.capacity / a.block);
}

function checkHeads(op: string, a: { heads: number; kvHeads: number }): void {
  if (a.heads % a.kvHeads !== 0) {
    throw new Error(`${op}: heads (${a.heads}) must be a multiple of kvHeads (${a.kvHeads})`);
  }
}

function checkBlock(op: string, a: { block: number; select?: number }): void {
  if (!Number.isInteger(a.block) || a.block < 1) {
    throw new Error(`${op}: block must be an integer >= 1, got ${a.block}`);
  }
  if (a.select !== undefined && (!Number.isInteger(a.select) || a.select < 1)) {
    throw new Error(`${op}: select must be an integer >= 1, got ${a.select}`);
  }
}

function checkStep(op: string, capacity: number, step: StepShape): void {
  if (step.pos + step.T > capacity) {
    throw new Error(`${op}: pos + T = ${step.pos + step.T} exceeds cache capacity ${capacity}`);
  }
}

export const nsaCompress: OpDefinition<NsaCompressAttrs> = {
  check(a) {
    checkBlock('nsa_compress', a);
  },
  inputs: (a) => {
    const kvw = a.kvHeads * a.headDim;
    return {
      kcache: rule([a.capacity, kvw]),
      vcache: rule([a.capacity, kvw]),
      kcmp: inPlace([nsaBlocks(a), kvw]),
      vcmp: inPlace([nsaBlocks(a), kvw]),
    };
  },
  outputs: (a) => {
    const kvw = a.kvHeads * a.headDim;
    return { kcmp: inPlace([nsaBlocks(a), kvw]), vcmp: inPlace([nsaBlocks(a), kvw]) };
  },
  reference(a, inputs: Arrays, step) {
    nsaCompress.check(a);
    checkStep('nsa_compress', a.capacity, step);
    const kvw = a.kvHeads * a.headDim;
    const kc = f32(inputs, 'kcache');
    const vc = f32(inputs, 'vcache');
    const kcmp = f32(inputs, 'kcmp');
    const vcmp = f32(inputs, 'vcmp');
    for (let t = 0; t < step.T; t++) {
      const p = step.pos + t;
      if ((p + 1) % a.block !== 0) continue;
      const c = (p + 1) / a.block - 1;
      for (let i = 0; i < kvw; i++) {
        let sk = 0;
        let sv = 0;
        for (let j = c * a.block; j <= p; j++) {
          sk += kc[j * kvw + i];
          sv += vc[j * kvw + i];
        }
        kcmp[c * kvw + i] = sk / a.block;
        vcmp[c * kvw + i] = sv / a.block;
      }
    }
    return { kcmp, vcmp };
  },
  cost(a, step) {
    const kvw = a.kvHeads * a.headDim;
    let done = 0;
    for (let t = 0; t < step.T; t++) if ((step.pos + t + 1) % a.block === 0) done++;
    return {
      flops: 2 * done * a.block * kvw,
      bytesRead: 4 * 2 * done * a.block * kvw,
      bytesWritten: 4 * 2 * done * kvw,
    };
  },
};

/** The blocks query p may select: 0 .. p/l (the current one possibly incomplete). */
export function nsaCandidates(p: number, block: number): number {
  return Math.floor(p / block) + 1;
}

/** Complete blocks query p sees in the compressed branch. */
export function nsaVisible(p: number, block: number): number {
  return Math.floor((p + 1) / block);
}

/**
 * The selection rule on one kv head's importance scores (index = block, candidates only):
 * forced blocks first, then by score, ties to the later block; at most `select`.
 */
export function nsaPick(importance: ArrayLike<number>, p: number, block: number, select: number) {
  const cur = Math.floor(p / block);
  const score = (c: number) => (c === 0 || c === cur || c === cur - 1 ? NSA_FORCED : importance[c]);
  const order = Array.from({ length: cur + 1 }, (_, c) => c);
  order.sort((x, y) => score(y) - score(x) || y - x);
  return order.slice(0, select);
}

/** The caches one kv head's attention reads (columns ko.. of rows kvw wide), and where it writes. */
interface AttendRows {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  kvw: number;
  ko: number;
  hd: number;
  scale: number;
  out: Float32Array;
}

/**
 * Softmax attention of the query at q[qo, qo + hd) over n keys, key i being cache row row(i), into
 * out[qo, qo + hd) (0 when n = 0): the computation the compressed and the selected attentions
 * share, which differ only in their keys. Leaves each key's exp(score − max) in s and returns their
 * sum (the compressed attention reads the probabilities on for the block importances).
 */
function attend(
  r: AttendRows,
  qo: number,
  n: number,
  row: (i: number) => number,
  s: Float64Array,
): number {
  const { q, k, v, kvw, ko, hd } = r;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    let x = 0;
    for (let d = 0; d < hd; d++) x += q[qo + d] * k[row(i) * kvw + ko + d];
    s[i] = x * r.scale;
    if (s[i] > max) max = s[i];
  }
  let sum = 0;
  for (let i = 0; i < n; i++) {
    s[i] = Math.exp(s[i] - max);
    sum += s[i];
  }
  for (let d = 0; d < hd; d++) {
    let o = 0;
    for (let i = 0; i < n; i++) o += s[i] * v[row(i) * kvw + ko + d];
    r.out[qo + d] = n === 0 ? 0 : o / sum;
  }
  return sum;
}

export const nsaCompressed: OpDefinition<NsaCompressedAttrs> = {
  check(a) {
    checkHeads('nsa_compressed', a);
    checkBlock('nsa_compressed', a);
  },
  inputs: (a) => {
    const kvw = a.kvHeads * a.headDim;
    return {
      q: rule(['T', a.heads * a.headDim]),
      kcmp: rule([nsaBlocks(a), kvw]),
      vcmp: rule([nsaBlocks(a), kvw]),
    };
  },
  outputs: (a) => ({
    out: rule(['T', a.heads * a.headDim]),
    picks: rule(['T', a.kvHeads * a.select], 'read', 'u32'),
  }),
  reference(a, inputs: Arrays, step) {
    nsaCompressed.check(a);
    checkStep('nsa_compressed', a.capacity, step);
    const { heads, kvHeads, headDim: hd, block, select } = a;
    const q = f32(inputs, 'q');
    const kcmp = f32(inputs, 'kcmp');
    const vcmp = f32(inputs, 'vcmp');
    const kvw = kvHeads * hd;
    const qw = heads * hd;
    const group = heads / kvHeads;
    const out = new Float32Array(step.T * qw);
    const picks = new Uint32Array(step.T * kvHeads * select).fill(NSA_NO_BLOCK);
    const nb = nsaBlocks(a);
    const s = new Float64Array(nb);
    const imp = new Float64Array(nb);
    for (let t = 0; t < step.T; t++) {
      const p = step.pos + t;
      const nc = nsaVisible(p, block);
      for (let h = 0; h < kvHeads; h++) {
        imp.fill(0);
        const rows = { q, k: kcmp, v: vcmp, kvw, ko: h * hd, hd, scale: a.scale, out };
        for (let g = h * group; g < (h + 1) * group; g++) {
          if (nc === 0) continue;
          const sum = attend(rows, t * qw + g * hd, nc, (c) => c, s);
          for (let c = 0; c < nc; c++) imp[c] += s[c] / sum / group;
        }
        const chosen = nsaPick(imp, p, block, select);
        picks.set(chosen, (t * kvHeads + h) * select);
      }
    }
    return { out, picks };
  },
  cost(a, step) {
    const kvw = a.kvHeads * a.headDim;
    let pairs = 0;
    for (let t = 0; t < step.T; t++) pairs += nsaVisible(step.pos + t, a.block);
    return {
      flops: pairs * a.heads * (4 * a.headDim + 6),
      bytesRead: 4 * (step.T * a.heads * a.headDim + pairs * 2 * kvw),
      bytesWritten: 4 * step.T * (a.heads * a.headDim + a.kvHeads * a.select),
    };
  },
};

export const nsaSelected: OpDefinition<NsaSelectedAttrs> = {
  check(a) {
    checkHeads('nsa_selected', a);
    checkBlock('nsa_selected', a);
  },
  inputs: (a) => {
    const kvw = a.kvHeads * a.headDim;
    return {
      q: rule(['T', a.heads * a.headDim]),
      kcache: rule([a.capacity, kvw]),
      vcache: rule([a.capacity, kvw]),
      picks: rule(['T', a.kvHeads * a.select], 'read', 'u32'),
    };
  },
  outputs: (a) => ({ out: rule(['T', a.heads * a.headDim]) }),
  reference(a, inputs: Arrays, step) {
    nsaSelected.check(a);
    checkStep('nsa_selected', a.capacity, step);
    const { heads, kvHeads, headDim: hd, block, select } = a;
    const q = f32(inputs, 'q');
    const kc = f32(inputs, 'kcache');
    const vc = f32(inputs, 'vcache');
    const picks = u32(inputs, 'picks');
    const kvw = kvHeads * hd;
    const qw = heads * hd;
    const group = heads / kvHeads;
    const out = new Float32Array(step.T * qw);
    const s = new Float64Array(select * block);
    for (let t = 0; t < step.T; t++) {
      const p = step.pos + t;
      for (let h = 0; h < kvHeads; h++) {
        const keys: number[] = [];
        for (let i = 0; i < select; i++) {
          const c = picks[(t * kvHeads + h) * select + i];
          if (c === NSA_NO_BLOCK) continue;
          for (let j = c * block; j < Math.min((c + 1) * block, p + 1); j++) keys.push(j);
        }
        const rows = { q, k: kc, v: vc, kvw, ko: h * hd, hd, scale: a.scale, out };
        for (let g = h * group; g < (h + 1) * group; g++) {
          attend(rows, t * qw + g * hd, keys.length, (i) => keys[i], s);
        }
      }
    }
    return { out };
  },
  cost(a, step) {
    const kvw = a.kvHeads * a.headDim;
    let pairs = 0;
    for (let t = 0; t < step.T; t++) {
      pairs += Math.min(step.pos + t + 1, a.select * a.block);
    }
    return {
      flops: pairs * a.heads * (4 * a.headDim + 6),
      bytesRead: 4 * (step.T * a.heads * a.headDim + pairs * 2 * kvw),
      bytesWritten: 4 * step.T * a.heads * a.headDim,
    };
  },
};
