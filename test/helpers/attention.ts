/**
 * The attention kernel tests' common pieces: attrs from a case's head shape (the settings every
 * test leaves at their plain values in one place) and the dense masked-softmax reference the
 * sparse-mask tests write their masks into.
 */
import type { AttentionAttrs } from '../../src/graph/ops.ts';

export interface HeadShape {
  heads: number;
  kvHeads: number;
  /** Key (and by default value) head width. */
  hd: number;
  /** Value head width; default hd. */
  vd?: number;
}

/** One kernel call of a test: T query rows at positions pos.., from a build for maxT rows. */
export interface AttentionCase extends HeadShape {
  T: number;
  maxT: number;
  pos: number;
  /** Default true. */
  causal?: boolean;
}

/**
 * Attention attrs of `c`'s heads, scale 1/sqrt(hd), causal, no window, softcap or sinks, then
 * `over` (the capacity and whatever the test varies).
 */
export function attentionAttrs(
  c: HeadShape,
  over: Partial<AttentionAttrs> & { capacity: number },
): AttentionAttrs {
  return {
    op: 'attention',
    heads: c.heads,
    kvHeads: c.kvHeads,
    headDim: c.hd,
    vHeadDim: c.vd ?? c.hd,
    scale: 1 / Math.sqrt(c.hd),
    causal: true,
    window: null,
    softcap: null,
    sinks: false,
    ...over,
  };
}

/**
 * Dense attention in f64 over keys [0, n): q [T, heads, hd], k and v [n, kvHeads, hd]; query t
 * (at position pos + t) of head h sees key j where `visible(t, j, h)`, every other score is −∞.
 */
export function maskedSoftmax(
  c: HeadShape & { T: number },
  n: number,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  visible: (t: number, j: number, h: number) => boolean,
): Float32Array {
  const { heads, kvHeads, hd } = c;
  const out = new Float32Array(c.T * heads * hd);
  for (let t = 0; t < c.T; t++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / (heads / kvHeads));
      const s = new Float64Array(n).fill(-Infinity);
      for (let j = 0; j < n; j++) {
        if (!visible(t, j, h)) continue;
        let dot = 0;
        for (let d = 0; d < hd; d++)
          dot += q[(t * heads + h) * hd + d] * k[(j * kvHeads + kvh) * hd + d];
        s[j] = dot / Math.sqrt(hd);
      }
      const mx = Math.max(...s);
      let sum = 0;
      for (let j = 0; j < n; j++) sum += Math.exp(s[j] - mx);
      for (let d = 0; d < hd; d++) {
        let o = 0;
        for (let j = 0; j < n; j++) o += Math.exp(s[j] - mx) * v[(j * kvHeads + kvh) * hd + d];
        out[(t * heads + h) * hd + d] = o / sum;
      }
    }
  }
  return out;
}
