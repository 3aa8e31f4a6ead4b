/**
 * A plain CPU forward of DiffusionGemma's text model (f64 arithmetic over the f32 weights), read
 * through src/import/hf-diffusion-gemma.ts's config reader and tensor map. It is a test oracle,
 * not strata's pipeline: it pins the semantics the lowering reproduces, written independently of
 * it and checked against transformers' own logits (test/golden/diffusion-gemma.test.ts). It implements the sampler's BlockDiffusionModel: a
 * causal encoder appending to a KV cache, and a denoiser reading it.
 */
import { activate } from '../../src/ops/math.ts';
import { ropeInvFreq } from '../../src/ops/rope.ts';
import {
  selfConditionProbs,
  type BlockDiffusionModel,
  type EntropyBoundRun,
  type SelfCondition,
} from '../../src/ops/diffusion-entropy.ts';
import type {
  DiffusionGemmaLayer,
  DiffusionGemmaText,
} from '../../src/import/hf-diffusion-gemma.ts';

type Vec = Float64Array;

/** x·(mean(x²) + eps)^−½ · w (w null: weightless), as DiffusionGemmaRMSNorm. */
function rms(x: ArrayLike<number>, eps: number, w: ArrayLike<number> | null): Vec {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  const r = 1 / Math.sqrt(s / x.length + eps);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * r * (w ? w[i] : 1);
  return out;
}

/** y = W x for W [rows, cols] stored row-major from `off`. */
function matvec(w: Float32Array, x: ArrayLike<number>, rows: number, off = 0): Vec {
  const cols = x.length;
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const b = off + r * cols;
    for (let c = 0; c < cols; c++) s += w[b + c] * x[c];
    y[r] = s;
  }
  return y;
}

/**
 * RoPE over the whole head, pairs (i, i + D/2), with strata's HF-exact inv_freq (src/ops/rope.ts,
 * whose 'proportional' scaling gives the pairs past ⌊f·D/2⌋ frequency 0).
 */
function rope(x: Vec, off: number, D: number, l: DiffusionGemmaLayer, pos: number): void {
  const half = D / 2;
  const invFreq = ropeInvFreq(l.rope).invFreq;
  for (let i = 0; i < half; i++) {
    // HF computes the angle in float32.
    const a = Math.fround(invFreq[i] * pos);
    const c = Math.fround(Math.cos(a));
    const s = Math.fround(Math.sin(a));
    const x1 = x[off + i];
    const x2 = x[off + i + half];
    x[off + i] = x1 * c - x2 * s;
    x[off + i + half] = x2 * c + x1 * s;
  }
}

interface CacheRows {
  pos: number[];
  k: Vec[];
  v: Vec[];
}

/**
 * The diffusion_gemma golden's generate settings (its metadata `generate`: the keywords
 * make_golden.py passed to generate()) as a run over canvases of `canvasLength`.
 */
export function goldenRun(meta: Record<string, string>, canvasLength: number): EntropyBoundRun {
  const g = JSON.parse(meta.generate) as Record<string, number>;
  return {
    canvasLength,
    genLength: g.max_new_tokens,
    maxSteps: g.max_denoising_steps,
    tMin: g.t_min,
    tMax: g.t_max,
    entropyBound: g.entropy_bound,
    stabilityThreshold: g.stability_threshold,
    confidenceThreshold: g.confidence_threshold,
    eos: [],
    pad: null,
    seed: 0,
  };
}

export class DiffusionGemmaRef implements BlockDiffusionModel {
  readonly vocab: number;
  private cache: CacheRows[];
  private length = 0;

  constructor(
    readonly t: DiffusionGemmaText,
    private readonly w: (canonical: string) => Float32Array,
  ) {
    this.vocab = t.vocab;
    this.cache = t.layers.map(() => ({ pos: [], k: [], v: [] }));
  }

  reset(): void {
    this.cache = this.t.layers.map(() => ({ pos: [], k: [], v: [] }));
    this.length = 0;
  }

  private embed(id: number): Vec {
    const d = this.t.dim;
    const e = this.w('embed.weight');
    const out = new Float64Array(d);
    for (let i = 0; i < d; i++) out[i] = e[id * d + i] * this.t.embeddingScale;
    return out;
  }

  async encode(ids: Uint32Array): Promise<void> {
    const xs = Array.from(ids, (id) => this.embed(id));
    const positions = xs.map((_, i) => this.length + i);
    this.layers(xs, positions, 'encode');
    this.length += ids.length;
  }

  async denoise(canvas: Uint32Array, sc: SelfCondition | null): Promise<Float32Array> {
    const t = this.t;
    const d = t.dim;
    const soft = sc ? selfConditionProbs(sc, t.vocab) : null;
    const E = this.w('embed.weight');
    const xs = Array.from(canvas, (id, p) => {
      const x = this.embed(id);
      if (soft) {
        // soft embedding = softmax · E · sqrt(dim), then the GeGLU MLP after its RMSNorm.
        const s = new Float64Array(d);
        for (let v = 0; v < t.vocab; v++) {
          const pr = soft[p * t.vocab + v];
          if (pr !== 0) for (let i = 0; i < d; i++) s[i] += pr * E[v * d + i];
        }
        for (let i = 0; i < d; i++) s[i] *= t.embeddingScale;
        const n = rms(s, t.eps, this.w('self_conditioning.pre_norm.weight'));
        const y = this.mlp(n, 'self_conditioning');
        for (let i = 0; i < d; i++) x[i] += y[i];
      }
      // With no signal the MLP's output is 0 (act(0)·0), so only the weightless norm remains.
      return rms(x, t.eps, null);
    });
    const positions = xs.map((_, i) => this.length + i);
    const hs = this.layers(xs, positions, 'denoise');
    const logits = new Float32Array(canvas.length * t.vocab);
    const lm = this.w(t.tie ? 'embed.weight' : 'lm_head.weight');
    hs.forEach((h, p) => {
      const n = rms(h, t.eps, this.w('norm.weight'));
      const l = matvec(lm, n, t.vocab);
      for (let v = 0; v < t.vocab; v++) {
        const c = t.logitSoftcap;
        logits[p * t.vocab + v] = c * Math.tanh(l[v] / c);
      }
    });
    return logits;
  }

  private mlp(x: Vec, p: string): Vec {
    const H = this.t.hidden;
    const g = matvec(this.w(`${p}.gate.weight`), x, H);
    const u = matvec(this.w(`${p}.up.weight`), x, H);
    for (let i = 0; i < H; i++) g[i] = activate(this.t.act, g[i]) * u[i];
    return matvec(this.w(`${p}.down.weight`), g, this.t.dim);
  }

  private moe(r: Vec, p: string): Vec {
    const t = this.t;
    const d = t.dim;
    const rr = rms(r, t.eps, null);
    const scale = this.w(`${p}.router.scale`);
    for (let i = 0; i < d; i++) rr[i] *= scale[i] * Math.pow(d, -0.5);
    const scores = matvec(this.w(`${p}.router.weight`), rr, t.experts);
    const m = Math.max(...scores);
    const ex = Array.from(scores, (s) => Math.exp(s - m));
    const z = ex.reduce((a, b) => a + b, 0);
    const probs = ex.map((e) => e / z);
    const top = probs
      .map((pr, e) => ({ pr, e }))
      .sort((a, b) => b.pr - a.pr || a.e - b.e)
      .slice(0, t.topK);
    const sum = top.reduce((a, b) => a + b.pr, 0);
    const xe = rms(r, t.eps, this.w(`${p}.pre_feedforward_layernorm_2.weight`));
    const gu = this.w(`${p}.experts.gate_up`);
    const dn = this.w(`${p}.experts.down`);
    const es = this.w(`${p}.router.expert_scale`);
    const H = t.expertHidden;
    const out = new Float64Array(d);
    for (const { pr, e } of top) {
      const both = matvec(gu, xe, 2 * H, e * 2 * H * d);
      const h = new Float64Array(H);
      for (let i = 0; i < H; i++) h[i] = activate(t.act, both[i]) * both[H + i];
      const y = matvec(dn, h, d, e * d * H);
      const wgt = (pr / sum) * es[e];
      for (let i = 0; i < d; i++) out[i] += wgt * y[i];
    }
    return out;
  }

  /** Runs every layer over rows at `positions`; the encoder appends its K/V to the cache. */
  private layers(xs: Vec[], positions: number[], mode: 'encode' | 'denoise'): Vec[] {
    const t = this.t;
    let hs = xs;
    for (const l of t.layers) {
      const p = `layers.${l.index}`;
      const a = `${p}.self_attn`;
      const D = l.headDim;
      const qs: Vec[] = [];
      const ks: Vec[] = [];
      const vs: Vec[] = [];
      hs.forEach((h, r) => {
        const x = rms(h, t.eps, this.w(`${p}.input_layernorm.weight`));
        const q = matvec(this.w(`${a}.q.weight`), x, l.heads * D);
        const kRaw = matvec(this.w(`${a}.k.weight`), x, l.kvHeads * D);
        const vRaw = l.valueFromKey ? kRaw : matvec(this.w(`${a}.v.weight`), x, l.kvHeads * D);
        const k = new Float64Array(kRaw.length);
        const v = new Float64Array(kRaw.length);
        const qn = new Float64Array(q.length);
        for (let h2 = 0; h2 < l.heads; h2++) {
          qn.set(
            rms(q.subarray(h2 * D, (h2 + 1) * D), t.eps, this.w(`${a}.q_norm.weight`)),
            h2 * D,
          );
          rope(qn, h2 * D, D, l, positions[r]);
        }
        for (let h2 = 0; h2 < l.kvHeads; h2++) {
          k.set(
            rms(kRaw.subarray(h2 * D, (h2 + 1) * D), t.eps, this.w(`${a}.k_norm.weight`)),
            h2 * D,
          );
          rope(k, h2 * D, D, l, positions[r]);
          v.set(rms(vRaw.subarray(h2 * D, (h2 + 1) * D), t.eps, null), h2 * D);
        }
        qs.push(qn);
        ks.push(k);
        vs.push(v);
      });
      const cache = this.cache[l.index];
      const start = positions[0];
      // Keys: the cached context (the denoiser's sliding layers: the rows within the window of
      // the canvas's first position), then the new rows.
      const ctx = cache.pos
        .map((pos, j) => ({ pos, j }))
        .filter(({ pos }) => mode === 'encode' || l.window === null || pos > start - l.window);
      const keys = [
        ...ctx.map(({ pos, j }) => ({ pos, k: cache.k[j], v: cache.v[j] })),
        ...positions.map((pos, i) => ({ pos, k: ks[i], v: vs[i] })),
      ];
      const group = l.heads / l.kvHeads;
      const out = hs.map((h, r) => {
        const qp = positions[r];
        const visible = keys.filter(
          (key) =>
            mode === 'denoise' || (key.pos <= qp && (l.window === null || key.pos > qp - l.window)),
        );
        const o = new Float64Array(l.heads * D);
        for (let h2 = 0; h2 < l.heads; h2++) {
          const kh = Math.floor(h2 / group);
          const s = visible.map((key) => {
            let dot = 0;
            for (let i = 0; i < D; i++) dot += qs[r][h2 * D + i] * key.k[kh * D + i];
            return dot; // scale 1
          });
          const m = Math.max(...s);
          const e = s.map((x) => Math.exp(x - m));
          const z = e.reduce((x, y) => x + y, 0);
          visible.forEach((key, j) => {
            for (let i = 0; i < D; i++) o[h2 * D + i] += (e[j] / z) * key.v[kh * D + i];
          });
        }
        const attn = matvec(this.w(`${a}.o.weight`), o, t.dim);
        const post = rms(attn, t.eps, this.w(`${p}.post_attention_layernorm.weight`));
        const res = new Float64Array(t.dim);
        for (let i = 0; i < t.dim; i++) res[i] = h[i] + post[i];
        // Dense MLP and MoE side by side on the residual, each normed, then their sum normed.
        const m1 = this.mlp(
          rms(res, t.eps, this.w(`${p}.pre_feedforward_layernorm.weight`)),
          `${p}.mlp`,
        );
        const h1 = rms(m1, t.eps, this.w(`${p}.post_feedforward_layernorm_1.weight`));
        const h2 = rms(this.moe(res, p), t.eps, this.w(`${p}.post_feedforward_layernorm_2.weight`));
        const sum = new Float64Array(t.dim);
        for (let i = 0; i < t.dim; i++) sum[i] = h1[i] + h2[i];
        const y = rms(sum, t.eps, this.w(`${p}.post_feedforward_layernorm.weight`));
        const scalar = this.w(`${p}.layer_scalar`)[0];
        for (let i = 0; i < t.dim; i++) res[i] = (res[i] + y[i]) * scalar;
        return res;
      });
      if (mode === 'encode') {
        positions.forEach((pos, i) => {
          cache.pos.push(pos);
          cache.k.push(ks[i]);
          cache.v.push(vs[i]);
        });
      }
      hs = out;
    }
    return hs;
  }
}
