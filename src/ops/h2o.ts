/**
 * H2O heavy-hitter eviction (Zhang et al. 2023, "H2O: Heavy-Hitter Oracle for Efficient
 * Generative Inference of Large Language Models"): attention over a KV cache that keeps at most
 * `budget` tokens, the `recent` latest ones plus the "heavy hitters", the tokens that have
 * gathered the most attention so far. Semantics in src/graph/ops.ts (H2oAttentionAttrs).
 *
 * Why per kv head: the paper (and its reference code) scores and evicts per attention head, each
 * head keeping its own set of tokens, since heads attend to different tokens. Under grouped-query
 * attention the query heads of a group read one shared key/value row, so the row's score is the
 * sum of the probabilities its query heads gave it (with one query head per kv head this is the
 * paper's rule). A score summed over all heads of the layer would force one set on heads that
 * disagree; per kv head costs no more memory (a row per kept token per kv head either way).
 *
 * The rule, per kv head h, for the token at position p (a step of T tokens runs it for
 * p = pos .. pos+T-1 in order, so prefill equals decoding the same tokens one at a time, and a
 * prompt longer than the budget works):
 * 1. Its row: p while p < budget (the cache fills in order); else the kept row with the smallest
 *    accumulated score among tokens that are neither sinks (position < sinkTokens) nor one of the
 *    `recent` tokens p-recent .. p-1; ties go to the smallest position (the oldest). The token
 *    there is dropped for good. budget > recent + sinkTokens guarantees a candidate.
 * 2. Its k, v (k already rotated at position p) go to that row; the row's position becomes p and
 *    its score 0.
 * 3. Its query heads attend over the kept rows (min(p + 1, budget) of them; all are earlier
 *    positions or p itself, so the causal mask holds without looking at positions), and each
 *    row's score grows by the sum over the group's query heads of the probability it got.
 * The `recent` tokens are those before p: with p itself the cache ends a step holding the
 * recent + 1 latest tokens (H2O's reference counts the current token among its recent ones).
 * A budget no smaller than the context never evicts: rows are positions, and the outputs equal
 * dense causal attention exactly (the reference sums in the same order).
 *
 * With kvType 'f16' the caches hold k and v rounded to f16 (stored as pairs in u32 words by the
 * kernel); scores, positions and the arithmetic stay f32.
 *
 * State: `rows`, [budget, 2·kvHeads] u32: for row r and kv head h, word 2(r·kvHeads + h) is the
 * position kept there and the next word the bits of its f32 score (one buffer rather than two, so
 * the kernel binds 8 storage buffers, WebGPU's default limit per stage). Rows at or past
 * min(pos, budget) are never read, so a sequence's reset needs no clearing.
 */
import { kvTypeOf, type H2oAttentionAttrs } from '../graph/ops.ts';
import { roundF16 } from './math.ts';
import { f32, inPlace, rule, u32, type Arrays, type OpDefinition } from './types.ts';

/** Why a policy cannot work (null when it can): names the setting and the limit. */
export function h2oPolicyError(p: {
  budget: number;
  recent: number;
  sinkTokens: number;
}): string | null {
  if (!Number.isInteger(p.budget) || p.budget < 1) {
    return `h2o budget must be an integer >= 1, got ${p.budget}`;
  }
  if (!Number.isInteger(p.recent) || p.recent < 0) {
    return `h2o recent must be an integer >= 0, got ${p.recent}`;
  }
  if (!Number.isInteger(p.sinkTokens) || p.sinkTokens < 0) {
    return `sink_tokens must be an integer >= 0, got ${p.sinkTokens}`;
  }
  if (p.budget <= p.recent + p.sinkTokens) {
    return (
      `h2o budget ${p.budget} must exceed recent ${p.recent} + sink_tokens ${p.sinkTokens} ` +
      `(= ${p.recent + p.sinkTokens}): a full cache needs at least one token it may evict`
    );
  }
  return null;
}

/** The `rows` state read two ways: positions (u32 words) and scores (the same words as f32). */
export interface H2oRows {
  kvHeads: number;
  words: Uint32Array;
  floats: Float32Array;
}

export function h2oRows(words: Uint32Array, kvHeads: number): H2oRows {
  return { kvHeads, words, floats: new Float32Array(words.buffer, words.byteOffset, words.length) };
}

/** Position kept in row r for kv head h. */
export function keptAt(m: H2oRows, r: number, h: number): number {
  return m.words[2 * (r * m.kvHeads + h)];
}

/** Accumulated score of row r for kv head h. */
export function scoreAt(m: H2oRows, r: number, h: number): number {
  return m.floats[2 * (r * m.kvHeads + h) + 1];
}

/** The row kv head h's token at position p takes (rule step 1). */
export function h2oRow(
  a: Pick<H2oAttentionAttrs, 'budget' | 'recent' | 'sinkTokens'>,
  m: H2oRows,
  h: number,
  p: number,
): number {
  if (p < a.budget) return p;
  let best = -1;
  for (let r = 0; r < a.budget; r++) {
    const at = keptAt(m, r, h);
    if (at < a.sinkTokens || at >= p - a.recent) continue;
    if (best < 0) {
      best = r;
      continue;
    }
    const s = scoreAt(m, r, h);
    const b = scoreAt(m, best, h);
    if (s < b || (s === b && at < keptAt(m, best, h))) best = r;
  }
  if (best < 0) throw new Error(`h2o: no evictable row at position ${p} (broken rows state)`);
  return best;
}

export const h2oAttention: OpDefinition<H2oAttentionAttrs> = {
  check(a) {
    if (a.heads % a.kvHeads !== 0) {
      throw new Error(
        `h2o_attention: heads (${a.heads}) must be a multiple of kvHeads (${a.kvHeads})`,
      );
    }
    const e = h2oPolicyError(a);
    if (e) throw new Error(`h2o_attention: ${e}`);
    if (kvTypeOf(a) === 'f16' && a.headDim % 2 !== 0) {
      throw new Error(
        `h2o_attention: kvType 'f16' stores element pairs in u32 words and needs an even headDim, got ${a.headDim}`,
      );
    }
  },
  inputs: (a) => {
    const kvw = a.kvHeads * a.headDim;
    return {
      q: rule(['T', a.heads * a.headDim]),
      k: rule(['T', kvw]),
      v: rule(['T', kvw]),
      kcache: inPlace([a.budget, kvw], kvTypeOf(a)),
      vcache: inPlace([a.budget, kvw], kvTypeOf(a)),
      rows: inPlace([a.budget, 2 * a.kvHeads], 'u32'),
    };
  },
  outputs: (a) => {
    const kvw = a.kvHeads * a.headDim;
    return {
      out: rule(['T', a.heads * a.headDim]),
      kcache: inPlace([a.budget, kvw], kvTypeOf(a)),
      vcache: inPlace([a.budget, kvw], kvTypeOf(a)),
      rows: inPlace([a.budget, 2 * a.kvHeads], 'u32'),
    };
  },
  reference(a, inputs: Arrays, step) {
    h2oAttention.check(a);
    const { heads, kvHeads, headDim: hd, budget } = a;
    const q = f32(inputs, 'q');
    // An f16 cache holds each k and v rounded to f16, as the kernel stores them.
    const f16 = kvTypeOf(a) === 'f16';
    const k = f16 ? f32(inputs, 'k').map(roundF16) : f32(inputs, 'k');
    const v = f16 ? f32(inputs, 'v').map(roundF16) : f32(inputs, 'v');
    const kc = f32(inputs, 'kcache');
    const vc = f32(inputs, 'vcache');
    const rows = u32(inputs, 'rows');
    if (rows.length < 2 * budget * kvHeads) {
      throw new Error(`h2o_attention: input 'rows' needs ${2 * budget * kvHeads} elements`);
    }
    const m = h2oRows(rows, kvHeads);
    const kvw = kvHeads * hd;
    const qw = heads * hd;
    const group = heads / kvHeads;
    const out = new Float32Array(step.T * qw);
    const s = new Float64Array(budget);
    const acc = new Float64Array(hd);
    const gained = new Float64Array(budget);
    for (let t = 0; t < step.T; t++) {
      const p = step.pos + t;
      for (let h = 0; h < kvHeads; h++) {
        const row = h2oRow(a, m, h, p);
        kc.set(k.subarray(t * kvw + h * hd, t * kvw + (h + 1) * hd), row * kvw + h * hd);
        vc.set(v.subarray(t * kvw + h * hd, t * kvw + (h + 1) * hd), row * kvw + h * hd);
        rows[2 * (row * kvHeads + h)] = p;
        m.floats[2 * (row * kvHeads + h) + 1] = 0;
        const n = Math.min(p + 1, budget);
        gained.fill(0);
        for (let g = h * group; g < (h + 1) * group; g++) {
          const qo = t * qw + g * hd;
          let max = -Infinity;
          for (let r = 0; r < n; r++) {
            let x = 0;
            for (let d = 0; d < hd; d++) x += q[qo + d] * kc[r * kvw + h * hd + d];
            x *= a.scale;
            if (a.softcap !== null) x = a.softcap * Math.tanh(x / a.softcap);
            s[r] = x;
            if (x > max) max = x;
          }
          let sum = 0;
          acc.fill(0);
          for (let r = 0; r < n; r++) {
            const e = Math.exp(s[r] - max);
            s[r] = e;
            sum += e;
            for (let d = 0; d < hd; d++) acc[d] += e * vc[r * kvw + h * hd + d];
          }
          for (let d = 0; d < hd; d++) out[t * qw + g * hd + d] = acc[d] / sum;
          for (let r = 0; r < n; r++) gained[r] += s[r] / sum;
        }
        for (let r = 0; r < n; r++) m.floats[2 * (r * kvHeads + h) + 1] += gained[r];
      }
    }
    return { out, kcache: kc, vcache: vc, rows };
  },
  /** Token-pairs (a token and a kept row) times heads; eviction scans every row per token. */
  cost(a, step) {
    const kvw = a.kvHeads * a.headDim;
    let pairs = 0;
    for (let t = 0; t < step.T; t++) pairs += Math.min(step.pos + t + 1, a.budget);
    const eviction = step.T * a.budget * a.kvHeads;
    return {
      flops: pairs * a.heads * (4 * a.headDim + 6) + 2 * eviction,
      // q, k, v in; each kept row's k and v once per token; positions and scores scanned to evict.
      bytesRead: 4 * (step.T * (a.heads * a.headDim + 2 * kvw) + pairs * 2 * kvw) + 8 * eviction,
      bytesWritten:
        4 * (step.T * (a.heads * a.headDim + 2 * kvw + 2 * a.kvHeads) + pairs * a.kvHeads),
    };
  },
};
