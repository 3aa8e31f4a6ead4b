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
 * With kvType 'f16' the caches are stored as f16 (see KvType): kv_write and the matmul's ropeKv
 * epilogue store each value rounded to f16, and attention reads the caches as they are, so the
 * reference sees exactly the values the kernels unpack.
 */
import {
  kvTypeOf,
  kvWriteWidth,
  type AttentionAttrs,
  type Cost,
  type KvWriteAttrs,
  type StepShape,
} from '../graph/ops.ts';
import { dtypeBytes } from '../graph/dtype.ts';
import { roundF16 } from './math.ts';
import { f32, inPlace, rule, type Arrays, type OpDefinition, type TensorRule } from './types.ts';

/**
 * An f16 cache packs element pairs into u32 words and its writers write whole pairs, so every
 * width that places a pair must be even (a row of odd width would share a word with the next).
 */
function checkEven(op: string, widths: Record<string, number>): void {
  for (const [name, v] of Object.entries(widths)) {
    if (v % 2 !== 0) {
      throw new Error(
        `${op}: kvType 'f16' stores element pairs in u32 words and needs an even ${name}, got ${v}`,
      );
    }
  }
}

/**
 * Keys [lo, hi) that query position p may see; every key inside is visible.
 * Shared by the reference, the cost model and (in WGSL form) the kernels.
 */
export function visibleKeys(
  a: Pick<AttentionAttrs, 'causal' | 'window'>,
  p: number,
  step: Pick<StepShape, 'T' | 'pos'>,
): [number, number] {
  const n = step.pos + step.T;
  const w = a.window;
  const lo = w === null ? 0 : Math.max(0, p - w + 1);
  if (a.causal) return [lo, p + 1];
  return [lo, w === null ? n : Math.min(n, p + w)];
}

function checkCapacity(a: AttentionAttrs, step: StepShape): void {
  if (step.pos + step.T > a.capacity) {
    throw new Error(
      `attention: pos + T = ${step.pos + step.T} exceeds cache capacity ${a.capacity}`,
    );
  }
}

export const attention: OpDefinition<AttentionAttrs> = {
  check(a) {
    if (a.heads % a.kvHeads !== 0) {
      throw new Error(`attention: heads (${a.heads}) must be a multiple of kvHeads (${a.kvHeads})`);
    }
    if (a.window !== null && a.window < 1) throw new Error(`attention: window must be >= 1`);
    if (kvTypeOf(a) === 'f16') {
      checkEven('attention', { headDim: a.headDim, vHeadDim: a.vHeadDim });
    }
  },
  inputs(a) {
    const kv = kvTypeOf(a);
    const r: Record<string, TensorRule> = {
      q: rule(['T', a.heads * a.headDim]),
      kcache: rule([a.capacity, a.kvHeads * a.headDim], 'read', kv),
      vcache: rule([a.capacity, a.kvHeads * a.vHeadDim], 'read', kv),
    };
    if (a.sinks) r.sinks = rule([a.heads]);
    return r;
  },
  outputs: (a) => ({ out: rule(['T', a.heads * a.vHeadDim]) }),
  reference(a: AttentionAttrs, inputs: Arrays, step: StepShape): Arrays {
    attention.check(a);
    checkCapacity(a, step);
    const q = f32(inputs, 'q');
    const kc = f32(inputs, 'kcache');
    const vc = f32(inputs, 'vcache');
    const sinks = a.sinks ? f32(inputs, 'sinks') : null;
    const { heads, kvHeads, headDim: hd, vHeadDim: vd } = a;
    const qw = heads * hd;
    const kvw = kvHeads * hd;
    const vw = kvHeads * vd;
    const ow = heads * vd;
    const group = heads / kvHeads;
    const out = new Float32Array(step.T * ow);
    const scores = new Float64Array(step.pos + step.T);
    const acc = new Float64Array(vd);
    for (let t = 0; t < step.T; t++) {
      const p = step.pos + t;
      const [lo, hi] = visibleKeys(a, p, step);
      for (let h = 0; h < heads; h++) {
        const qo = t * qw + h * hd;
        const kvh = Math.floor(h / group);
        const ko = kvh * hd;
        const vo = kvh * vd;
        const sink = sinks ? sinks[h] : -Infinity;
        let max = sink;
        for (let j = lo; j < hi; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[qo + d] * kc[j * kvw + ko + d];
          s *= a.scale;
          if (a.softcap !== null) s = a.softcap * Math.tanh(s / a.softcap);
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = sinks ? Math.exp(sink - max) : 0;
        acc.fill(0);
        for (let j = lo; j < hi; j++) {
          const e = Math.exp(scores[j] - max);
          sum += e;
          for (let d = 0; d < vd; d++) acc[d] += e * vc[j * vw + vo + d];
        }
        for (let d = 0; d < vd; d++) out[t * ow + h * vd + d] = acc[d] / sum;
      }
    }
    return { out };
  },
  cost(a: AttentionAttrs, step: StepShape): Cost {
    let pairs = 0;
    let kvLo = Infinity;
    let kvHi = 0;
    for (let t = 0; t < step.T; t++) {
      const [lo, hi] = visibleKeys(a, step.pos + t, step);
      pairs += hi - lo;
      kvLo = Math.min(kvLo, lo);
      kvHi = Math.max(kvHi, hi);
    }
    const kvRows = Math.max(0, kvHi - kvLo);
    const qBytes = 4 * step.T * a.heads * a.headDim;
    return {
      // q·k and p·v: 2 FLOPs per element each, plus ~5 for the softmax per score.
      flops: pairs * a.heads * (2 * a.headDim + 2 * a.vHeadDim + 5),
      bytesRead: qBytes + dtypeBytes(kvTypeOf(a), kvRows * a.kvHeads * (a.headDim + a.vHeadDim)),
      bytesWritten: 4 * step.T * a.heads * a.vHeadDim,
    };
  },
};

export const kvWrite: OpDefinition<KvWriteAttrs> = {
  /** The column ranges must lie inside each head's share of the row. */
  check(a) {
    const c = a.columns;
    const f16 = kvTypeOf(a) === 'f16';
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
  /** Rows pos .. pos+T-1 of the cache, written in place (as f16 values when kvType is 'f16'). */
  outputs: (a) => ({ cache: inPlace([a.capacity, a.width], kvTypeOf(a)) }),
  reference(a: KvWriteAttrs, inputs: Arrays, step: StepShape): Arrays {
    kvWrite.check(a);
    const xIn = f32(inputs, 'x');
    // The cache holds what the kernel stores: each value rounded to f16 under kvType 'f16'.
    const x = kvTypeOf(a) === 'f16' ? xIn.map(roundF16) : xIn;
    const cache = f32(inputs, 'cache');
    if (step.pos + step.T > a.capacity) {
      throw new Error(`kv_write: pos + T = ${step.pos + step.T} exceeds capacity ${a.capacity}`);
    }
    const c = a.columns;
    if (c === null) {
      cache.set(x.subarray(0, step.T * a.width), step.pos * a.width);
      return { cache };
    }
    const xw = kvWriteWidth(a);
    const stride = a.width / c.heads;
    for (let t = 0; t < step.T; t++) {
      for (let h = 0; h < c.heads; h++) {
        const from = t * xw + (c.broadcast ? 0 : h * c.cols);
        const to = (step.pos + t) * a.width + h * stride + c.offset;
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
