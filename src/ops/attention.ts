/**
 * Attention over a KV cache, and the KV-cache append that feeds it.
 *
 * Layout: q [T, heads·hd]; kcache [capacity, kvHeads·hd] and vcache [capacity, kvHeads·vd]
 * (vd = vHeadDim, the output head width; MLA has vd ≠ hd) holding rows
 * 0..pos+T-1 (the step's own keys were appended by kv_write before attention).
 * Query t sits at absolute position p = pos + t. Head h reads kv head
 * floor(h / (heads / kvHeads)) (GQA/MQA).
 *
 * With sinks (GPT-OSS), head h's learned logit sinks[h] joins the softmax as one more score
 * that has no value row: out = Σ_j exp(s_j) v_j / (Σ_j exp(s_j) + exp(sinks[h])), max-shifted
 * over the scores and the sink together (as HF's eager attention does).
 *
 * StreamingLLM (sinkTokens S, a window W, ring caches): query p also sees keys 0..S-1, and the
 * caches are rings of `capacity` rows (see KvRing) so positions run on past them. Keys are rotated
 * at their absolute positions when written and never re-rotated: the outputs equal dense attention
 * under the mask [0, S) ∪ (p - W, p], which is what the reference computes (the original
 * StreamingLLM instead re-numbers positions inside the cache; HF's SinkCache re-rotates keys).
 * A step of T tokens writes its keys before it reads, so the ring keeps W + T - 1 positions
 * after the sinks: rows = S + W + maxT - 1 (the lowering sizes it so).
 *
 * With vFromK (MLA's latent cache) there is no vcache: head h's value is columns
 * [vFromK, vFromK + vd) of its kv head's key row, read from kcache.
 *
 * With kvType 'f16' the caches are stored as f16 (see KvType): kv_write and the matmul's ropeKv
 * epilogue store each value rounded to f16, and attention reads the caches as they are, so the
 * reference sees exactly the values the kernels unpack.
 */
import {
  cacheRow,
  kvTypeOf,
  kvWriteWidth,
  type AttentionAttrs,
  type Cost,
  type KvWriteAttrs,
  type StepShape,
} from '../graph/ops.ts';
import { dtypeBytes } from '../graph/dtype.ts';
import { keepBlock, patternKeeper, perHeadDraws, randomBlocks } from './block-sparse.ts';
import { roundF16 } from './math.ts';
import { f32, inPlace, rule, type Arrays, type OpDefinition, type TensorRule } from './types.ts';

/**
 * An f16 cache packs element pairs into u32 words and its writers write whole pairs, so every
 * width that places a pair must be even (a row of odd width would share a word with the next).
 */
export function checkEven(op: string, widths: Record<string, number>): void {
  for (const [name, v] of Object.entries(widths)) {
    if (v % 2 !== 0) {
      throw new Error(
        `${op}: kvType 'f16' stores element pairs in u32 words and needs an even ${name}, got ${v}`,
      );
    }
  }
}

/**
 * q and the caches an attention over the KV cache reads (attention, sparse_attention): the key
 * cache, and the value cache unless values are read from the key rows (vFromK).
 */
export function attentionInputs(
  a: Pick<
    AttentionAttrs,
    'heads' | 'kvHeads' | 'headDim' | 'vHeadDim' | 'capacity' | 'vFromK' | 'kvType'
  >,
): Record<string, TensorRule> {
  const kv = kvTypeOf(a);
  const r: Record<string, TensorRule> = {
    q: rule(['T', a.heads * a.headDim]),
    kcache: rule([a.capacity, a.kvHeads * a.headDim], 'read', kv),
  };
  if ((a.vFromK ?? null) === null) {
    r.vcache = rule([a.capacity, a.kvHeads * a.vHeadDim], 'read', kv);
  }
  return r;
}

/**
 * Keys [lo, hi) that query position p may see; every key inside is visible.
 * Shared by the reference, the cost model and (in WGSL form) the kernels.
 */
export function visibleKeys(
  a: Pick<AttentionAttrs, 'causal' | 'window' | 'globalQueries' | 'blockCausal' | 'phased'>,
  p: number,
  step: Pick<StepShape, 'T' | 'pos' | 'keys'>,
): [number, number] {
  const n = Math.max(step.pos + step.T, step.keys ?? 0);
  // A phased mask's denoising step: the window of the step's first position, then every key.
  if (a.phased && (step.keys ?? 0) > 0)
    return [a.window === null ? 0 : Math.max(0, step.pos - a.window + 1), n];
  // A global query (Longformer) sees past the window.
  const w = p < (a.globalQueries ?? 0) ? null : a.window;
  const lo = w === null ? 0 : Math.max(0, p - w + 1);
  if (a.causal) return [lo, p + 1];
  // Block-causal: the end of the query's block (keys past it are not visible, whatever `keys`).
  const B = a.blockCausal ?? null;
  if (B !== null) return [lo, Math.min(n, (Math.floor(p / B) + 1) * B)];
  return [lo, w === null ? n : Math.min(n, p + w)];
}

/**
 * Key ranges query position p sees: the window's [lo, hi) and, with sink tokens, [0, sinkTokens)
 * before it (merged when they touch); with a block-sparse layout, the parts of [lo, hi) in the
 * key blocks p's block keeps. Disjoint and ascending. `head` (the query head) is read only by a
 * layout whose random blocks are drawn per head (src/ops/block-sparse.ts perHeadDraws).
 */
export function visibleRanges(
  a: Pick<
    AttentionAttrs,
    'causal' | 'window' | 'sinkTokens' | 'globalQueries' | 'blockSparse' | 'blockCausal' | 'phased'
  >,
  p: number,
  step: Pick<StepShape, 'T' | 'pos' | 'keys'>,
  head = 0,
): [number, number][] {
  const [lo, hi] = visibleKeys(a, p, step);
  const bs = a.blockSparse ?? null;
  if (bs !== null) {
    const B = bs.block;
    const keep = patternKeeper(bs, Math.floor(p / B), keyBlocks(B, step), a.causal, head);
    const out: [number, number][] = [];
    for (let kb = Math.floor(lo / B); kb * B < hi; kb++) {
      if (!keep(kb)) continue;
      const r: [number, number] = [Math.max(lo, kb * B), Math.min(hi, (kb + 1) * B)];
      const last = out[out.length - 1];
      if (last && last[1] === r[0]) last[1] = r[1];
      else out.push(r);
    }
    return out;
  }
  const s = Math.min(a.sinkTokens ?? 0, hi);
  if (s === 0) return [[lo, hi]];
  if (s >= lo) return [[0, hi]];
  return [
    [0, s],
    [lo, hi],
  ];
}

/** Key blocks of a step (the kernel's n over the block, rounded up): random blocks draw below it. */
function keyBlocks(block: number, step: Pick<StepShape, 'T' | 'pos' | 'keys'>): number {
  return Math.ceil(Math.max(step.pos + step.T, step.keys ?? 0) / block);
}

/**
 * A ring of `rows` rows with `sink` sink rows, read by a window of W over a step of T tokens
 * whose keys are written first: it must keep W + T - 1 positions after the sinks.
 */
export function checkRing(
  op: string,
  ring: { sink: number },
  rows: number,
  window: number,
  T: number,
): void {
  const need = ring.sink + window + T - 1;
  if (rows < need) {
    throw new Error(
      `${op}: a ring cache of ${rows} rows cannot hold sink_tokens ${ring.sink} + window ${window} + ` +
        `${T - 1} more rows for a step of ${T} tokens (needs ${need} rows)`,
    );
  }
}

function checkCapacity(a: AttentionAttrs, step: StepShape): void {
  if (a.ring) {
    checkRing('attention', a.ring, a.capacity, a.window ?? 0, step.T);
    return;
  }
  if (step.pos + step.T > a.capacity) {
    throw new Error(
      `attention: pos + T = ${step.pos + step.T} exceeds cache capacity ${a.capacity}`,
    );
  }
  if ((!a.causal || a.phased) && (step.keys ?? 0) > a.capacity) {
    throw new Error(`attention: keys ${step.keys} exceed cache capacity ${a.capacity}`);
  }
}

export const attention: OpDefinition<AttentionAttrs> = {
  check(a) {
    if (a.heads % a.kvHeads !== 0) {
      throw new Error(`attention: heads (${a.heads}) must be a multiple of kvHeads (${a.kvHeads})`);
    }
    if (a.window !== null && a.window < 1) throw new Error(`attention: window must be >= 1`);
    const B = a.blockCausal ?? null;
    if (B !== null) {
      if (!Number.isSafeInteger(B) || B < 1)
        throw new Error(`attention: blockCausal must be an integer >= 1, got ${B}`);
      if (a.causal || a.window !== null || (a.sinkTokens ?? 0) > 0 || a.ring)
        throw new Error(
          `attention: blockCausal ${B} needs causal false and no window, sink tokens or ring ` +
            `(causal ${a.causal}, window ${a.window})`,
        );
    }
    if (
      a.phased &&
      (!a.causal ||
        B !== null ||
        (a.sinkTokens ?? 0) > 0 ||
        a.ring ||
        a.globalQueries ||
        a.blockSparse)
    )
      throw new Error(
        `attention: a phased mask needs causal true (its encoding mask) and no block-causal mask, ` +
          `sink tokens, ring cache, global queries or block-sparse layout (causal ${a.causal})`,
      );
    const sink = a.sinkTokens ?? 0;
    if (!Number.isInteger(sink) || sink < 0) {
      throw new Error(`attention: sinkTokens must be an integer >= 0, got ${sink}`);
    }
    // Sink (or global) tokens stand beside a window; a ring drops positions only a causal
    // query never reads again.
    if ((sink > 0 || a.ring) && (a.window === null || (a.ring && !a.causal))) {
      throw new Error(
        `attention: sink tokens and a ring cache need causal attention with a window ` +
          `(bidirectional global tokens: a window and no ring; causal ${a.causal}, window ${a.window})`,
      );
    }
    if (a.ring && a.ring.sink !== sink) {
      throw new Error(`attention: ring.sink ${a.ring.sink} differs from sinkTokens ${sink}`);
    }
    if (a.ring) checkRing('attention', a.ring, a.capacity, a.window!, 1);
    const gq = a.globalQueries ?? 0;
    if (gq > 0 && (a.causal || gq > sink)) {
      throw new Error(
        `attention: globalQueries ${gq} needs bidirectional attention and as many sink tokens ` +
          `(causal ${a.causal}, sinkTokens ${sink})`,
      );
    }
    const bs = a.blockSparse ?? null;
    if (bs !== null) {
      if (a.window !== null || sink > 0 || a.ring) {
        throw new Error(
          `attention: a block-sparse layout takes no window, sink tokens or ring cache ` +
            `(window ${a.window}, sinkTokens ${sink}); its local band is the window`,
        );
      }
      if (!(Number.isInteger(bs.block) && bs.block >= 1)) {
        throw new Error(`attention: block must be an integer >= 1, got ${bs.block}`);
      }
    }
    const vk = a.vFromK ?? null;
    if (vk !== null && !(Number.isInteger(vk) && vk >= 0 && vk + a.vHeadDim <= a.headDim)) {
      throw new Error(
        `attention: values read from key columns [${vk}, ${vk + a.vHeadDim}) must lie inside the key head of ${a.headDim}`,
      );
    }
    if (kvTypeOf(a) === 'f16') {
      checkEven('attention', { headDim: a.headDim, vHeadDim: a.vHeadDim });
      if (vk !== null) checkEven('attention', { vFromK: vk });
    }
  },
  inputs(a) {
    const r = attentionInputs(a);
    if (a.sinks) r.sinks = rule([a.heads]);
    return r;
  },
  outputs: (a) => ({ out: rule(['T', a.heads * a.vHeadDim]) }),
  reference(a: AttentionAttrs, inputs: Arrays, step: StepShape): Arrays {
    attention.check(a);
    checkCapacity(a, step);
    const q = f32(inputs, 'q');
    const kc = f32(inputs, 'kcache');
    const vk = a.vFromK ?? null;
    const vc = vk === null ? f32(inputs, 'vcache') : kc;
    const sinks = a.sinks ? f32(inputs, 'sinks') : null;
    const { heads, kvHeads, headDim: hd, vHeadDim: vd } = a;
    const qw = heads * hd;
    const kvw = kvHeads * hd;
    // Values from their own cache, or from the key rows (vFromK).
    const vw = vk === null ? kvHeads * vd : kvw;
    const ow = heads * vd;
    const group = heads / kvHeads;
    const out = new Float32Array(step.T * ow);
    const scores: number[] = [];
    const rowOf: number[] = [];
    const acc = new Float64Array(vd);
    // Per-head random blocks: each head's visible keys are its own.
    const perHead = perHeadDraws(a.blockSparse);
    for (let t = 0; t < step.T; t++) {
      const p = step.pos + t;
      // Cache rows of the visible keys (of head h), ascending by position.
      const visible = (h: number) => {
        rowOf.length = 0;
        for (const [lo, hi] of visibleRanges(a, p, step, h)) {
          for (let j = lo; j < hi; j++) rowOf.push(cacheRow(a.ring, a.capacity, j));
        }
      };
      if (!perHead) visible(0);
      for (let h = 0; h < heads; h++) {
        if (perHead) visible(h);
        const qo = t * qw + h * hd;
        const kvh = Math.floor(h / group);
        const ko = kvh * hd;
        const vo = vk === null ? kvh * vd : ko + vk;
        const sink = sinks ? sinks[h] : -Infinity;
        let max = sink;
        for (let i = 0; i < rowOf.length; i++) {
          const j = rowOf[i];
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[qo + d] * kc[j * kvw + ko + d];
          s *= a.scale;
          if (a.softcap !== null) s = a.softcap * Math.tanh(s / a.softcap);
          scores[i] = s;
          if (s > max) max = s;
        }
        let sum = sinks ? Math.exp(sink - max) : 0;
        acc.fill(0);
        for (let i = 0; i < rowOf.length; i++) {
          const j = rowOf[i];
          const e = Math.exp(scores[i] - max);
          sum += e;
          for (let d = 0; d < vd; d++) acc[d] += e * vc[j * vw + vo + d];
        }
        for (let d = 0; d < vd; d++) out[t * ow + h * vd + d] = acc[d] / sum;
      }
    }
    return { out };
  },
  cost(a: AttentionAttrs, step: StepShape): Cost {
    // Per-head random blocks: the layout's pairs are every head's, the random blocks' are counted
    // per head (they are disjoint from the layout's, see perHeadRandomPairs).
    const perHead = perHeadDraws(a.blockSparse);
    const shared = perHead ? { ...a, blockSparse: { ...a.blockSparse!, random: null } } : a;
    const randomPairs = perHead ? perHeadRandomPairs(a, step) : null;
    let pairs = 0;
    let kvLo = Infinity;
    let kvHi = 0;
    let sinkRows = 0;
    for (let t = 0; t < step.T; t++) {
      // (with a block-sparse layout the ranges are its kept blocks' parts, lo to hi overall)
      const ranges = visibleRanges(shared, step.pos + t, step);
      for (const [lo, hi] of ranges) pairs += (hi - lo) * a.heads;
      const lo = a.blockSparse ? ranges[0][0] : ranges[ranges.length - 1][0];
      const hi = ranges[ranges.length - 1][1];
      if (ranges.length > 1 && !a.blockSparse) sinkRows = ranges[0][1];
      kvLo = Math.min(kvLo, lo);
      kvHi = Math.max(kvHi, hi);
      if (randomPairs !== null) {
        pairs += randomPairs(step.pos + t);
        // A random block may lie outside the layout's kept keys (before, or bidirectionally
        // after them): the kept rows are looked for over all the visible keys.
        const [vlo, vhi] = visibleKeys(a, step.pos + t, step);
        kvLo = Math.min(kvLo, vlo);
        kvHi = Math.max(kvHi, vhi);
      }
    }
    const bs = a.blockSparse ?? null;
    // Cache rows read, summed over the kv heads.
    const kvRows =
      bs === null
        ? (Math.max(0, kvHi - kvLo) + sinkRows) * a.kvHeads
        : keptKeyRows(bs, a, step, kvLo, kvHi);
    const qBytes = 4 * step.T * a.heads * a.headDim;
    return {
      // q·k and p·v: 2 FLOPs per element each, plus ~5 for the softmax per score.
      flops: pairs * (2 * a.headDim + 2 * a.vHeadDim + 5),
      // Values read from the key rows (vFromK) cost no bytes of their own.
      bytesRead:
        qBytes +
        dtypeBytes(
          kvTypeOf(a),
          kvRows * (a.headDim + ((a.vFromK ?? null) === null ? a.vHeadDim : 0)),
        ),
      bytesWritten: 4 * step.T * a.heads * a.vHeadDim,
    };
  },
};

/**
 * Per-head random blocks' (query, key) pairs of query position p, summed over the heads. The
 * draw's candidates are the blocks the layout drops, so they add to the layout's pairs without
 * overlap; a drawn block counts its part inside p's visible keys (the step's last key block may be
 * partial, bidirectionally, and drawn by some heads only). The step's positions come in order, so
 * the last query block's draws (every head's, one list) are kept for the next position.
 */
function perHeadRandomPairs(a: AttentionAttrs, step: StepShape): (p: number) => number {
  const bs = a.blockSparse!;
  const B = bs.block;
  const nkb = keyBlocks(B, step);
  let lastQb = -1;
  let drawn: number[] = [];
  return (p) => {
    const qb = Math.floor(p / B);
    if (qb !== lastQb) {
      drawn = [];
      for (let h = 0; h < a.heads; h++) drawn.push(...randomBlocks(bs, qb, nkb, a.causal, h));
      lastQb = qb;
    }
    const [lo, hi] = visibleKeys(a, p, step);
    let n = 0;
    for (const kb of drawn) n += blockSpan(B, kb, lo, hi);
    return n;
  };
}

/**
 * Cache rows in [lo, hi) that some query of the step reads under a block-sparse layout, summed
 * over the kv heads: each key block any of the step's query blocks keeps, read once (the dense
 * model's rule: a row counts once per step however many queries read it). With per-head random
 * blocks a kv head's rows are the union of its query heads' blocks (the kernel reads a group's
 * union once), which differs between kv heads.
 */
function keptKeyRows(
  bs: NonNullable<AttentionAttrs['blockSparse']>,
  a: Pick<AttentionAttrs, 'causal' | 'heads' | 'kvHeads'>,
  step: Pick<StepShape, 'T' | 'pos' | 'keys'>,
  lo: number,
  hi: number,
): number {
  const B = bs.block;
  const nkb = keyBlocks(B, step);
  const qb0 = Math.floor(step.pos / B);
  const qb1 = Math.floor((step.pos + step.T - 1) / B);
  const perHead = perHeadDraws(bs);
  // Blocks every kv head reads: the whole pattern's (one draw per query block, made once), or
  // with per-head draws the layout's, to which each kv head adds its query heads' draws below.
  const keepers: ((kb: number) => boolean)[] = [];
  for (let qb = qb0; qb <= qb1; qb++)
    keepers.push(
      perHead ? (kb) => keepBlock(bs.layout, qb, kb) : patternKeeper(bs, qb, nkb, a.causal),
    );
  const kept = new Set<number>();
  let rows = 0;
  for (let kb = Math.floor(lo / B); kb * B < hi; kb++) {
    if (!keepers.some((keep) => keep(kb))) continue;
    kept.add(kb);
    rows += blockSpan(B, kb, lo, hi);
  }
  let total = rows * a.kvHeads;
  if (!perHead) return total;
  const group = a.heads / a.kvHeads;
  for (let kvh = 0; kvh < a.kvHeads; kvh++) {
    const drawn = new Set<number>();
    for (let qb = qb0; qb <= qb1; qb++) {
      for (let g = 0; g < group; g++) {
        for (const kb of randomBlocks(bs, qb, nkb, a.causal, kvh * group + g)) drawn.add(kb);
      }
    }
    for (const kb of drawn) if (!kept.has(kb)) total += blockSpan(B, kb, lo, hi);
  }
  return total;
}

/** Keys of block kb (of `block` keys) inside [lo, hi). */
function blockSpan(block: number, kb: number, lo: number, hi: number): number {
  return Math.max(0, Math.min(hi, (kb + 1) * block) - Math.max(lo, kb * block));
}

export const kvWrite: OpDefinition<KvWriteAttrs> = {
  /** The column ranges must lie inside each head's share of the row. */
  check(a) {
    const c = a.columns;
    const f16 = kvTypeOf(a) === 'f16';
    if (a.ring && !(a.ring.sink >= 0 && a.ring.sink < a.capacity)) {
      throw new Error(
        `kv_write: ring sink rows ${a.ring.sink} must be below its ${a.capacity} rows`,
      );
    }
    if (f16) checkEven('kv_write', { width: a.width });
    if (c === null) return;
    if (a.width % c.heads !== 0 || c.offset < 0 || c.offset + c.cols > a.width / c.heads) {
      throw new Error(
        `kv_write: columns [${c.offset}, ${c.offset + c.cols}) do not fit heads of ${a.width / c.heads} in a row of ${a.width}`,
      );
    }
    if (f16) {
      checkEven('kv_write', {
        'head width': a.width / c.heads,
        'column count': c.cols,
        'column offset': c.offset,
      });
    }
  },
  inputs: (a) => ({
    x: rule(['T', kvWriteWidth(a)]),
    cache: inPlace([a.capacity, a.width], kvTypeOf(a)),
  }),
  /** Rows pos .. pos+T-1 (ring: their cacheRow) of the cache, written in place (as f16 values when kvType is 'f16'). */
  outputs: (a) => ({ cache: inPlace([a.capacity, a.width], kvTypeOf(a)) }),
  reference(a: KvWriteAttrs, inputs: Arrays, step: StepShape): Arrays {
    kvWrite.check(a);
    const xIn = f32(inputs, 'x');
    // The cache holds what the kernel stores: each value rounded to f16 under kvType 'f16'.
    const x = kvTypeOf(a) === 'f16' ? xIn.map(roundF16) : xIn;
    const cache = f32(inputs, 'cache');
    if (a.ring) {
      // More rows than the ring holds would overwrite the step's own earlier rows.
      if (step.T > a.capacity - a.ring.sink) {
        throw new Error(
          `kv_write: a step of ${step.T} rows exceeds the ring's ${a.capacity - a.ring.sink} rows after its sink_tokens ${a.ring.sink}`,
        );
      }
    } else if (step.pos + step.T > a.capacity) {
      throw new Error(`kv_write: pos + T = ${step.pos + step.T} exceeds capacity ${a.capacity}`);
    }
    const c = a.columns;
    const row = (t: number) => cacheRow(a.ring, a.capacity, step.pos + t);
    if (c === null) {
      for (let t = 0; t < step.T; t++) {
        cache.set(x.subarray(t * a.width, (t + 1) * a.width), row(t) * a.width);
      }
      return { cache };
    }
    const xw = kvWriteWidth(a);
    const stride = a.width / c.heads;
    for (let t = 0; t < step.T; t++) {
      for (let h = 0; h < c.heads; h++) {
        const from = t * xw + (c.broadcast ? 0 : h * c.cols);
        const to = row(t) * a.width + h * stride + c.offset;
        cache.set(x.subarray(from, from + c.cols), to);
      }
    }
    return { cache };
  },
  cost(a: KvWriteAttrs, step: StepShape): Cost {
    const cols = a.columns === null ? a.width : a.columns.heads * a.columns.cols;
    return {
      flops: 0,
      bytesRead: 4 * step.T * cols,
      bytesWritten: dtypeBytes(kvTypeOf(a), step.T * cols),
    };
  },
};
