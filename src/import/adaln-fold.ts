/**
 * Constant adaLN modulation folded into plain weights (BD3-LM, kuleshov-group/bd3lms
 * models/hf/modeling_bd3lm.py). A DiT block modulates its norms and gates its sublayers with
 * chunks of adaLN_modulation(c), c = silu(sigma_map(σ)); BD3-LM's released checkpoints set
 * time_conditioning false, so σ is always 0 and c, hence every chunk, is a constant vector. Then
 *
 *   LN(x)·w·(1 + scale) + shift  is a LayerNorm with weight w ⊙ (1 + scale) and bias shift,
 *   gate ⊙ (W x + b)            is a linear with rows of W and b scaled by gate,
 *
 * so the checkpoint is strata's plain pre-norm transformer once each such tensor is read as its
 * fold. The constant is computed here from the checkpoint at read time, in f64, and each folded
 * tensor rounded to f32 once:
 *   e = [cos(0)…, sin(0)…] = [1 × F/2, 0 × F/2] (TimestepEmbedder.timestep_embedding of t = 0,
 *       F = frequency_embedding_size; a zero appended when F is odd),
 *   c = silu(W2 · silu(W0 e + b0) + b2) (sigma_map.mlp.0 / .2, then DITBackbone's F.silu),
 *   m = (Wm c + bm)[chunk·width, (chunk + 1)·width) (adaLN_modulation, .chunk(chunks)).
 * A fold names its inputs so the checkpoint check (check.ts) finds and marks them, and is written
 * into spec.strata.weights.json (weight-map.ts) so `compile --weights` reads the same.
 */
import type { AvailableTensor } from './check.ts';
import type { TensorSource } from './quantized.ts';

export type FoldForm =
  /** base ⊙ (1 + m): a norm's weight under a scale chunk. */
  | 'scale'
  /** m alone: a norm's bias from a shift chunk (the canonical's stored tensor is the modulation bias). */
  | 'shift'
  /** diag(m) · base: a linear's [width, K] weight rows, or its [width] bias, under a gate chunk. */
  | 'rows';

export interface AdaLnFold {
  form: FoldForm;
  /** The modulation linear (…adaLN_modulation): .weight [chunks·width, cond], .bias [chunks·width]. */
  modulation: string;
  chunks: number;
  chunk: number;
  /** The timestep embedder's MLP (…sigma_map.mlp): .0 [cond, frequencies], .2 [cond, cond]. */
  condition: string;
  frequencies: number;
  /** The condition's width (the config's cond_dim), which the checkpoint's tensors must have. */
  cond: number;
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** The checkpoint tensors a fold reads besides its base, with the shapes they must have. */
export function foldInputs(f: AdaLnFold, width: number): AvailableTensor[] {
  const cond = f.cond;
  const t = (name: string, shape: number[]) => ({ name, shape, dtype: '' });
  return [
    t(`${f.condition}.0.weight`, [cond, f.frequencies]),
    t(`${f.condition}.0.bias`, [cond]),
    t(`${f.condition}.2.weight`, [cond, cond]),
    t(`${f.condition}.2.bias`, [cond]),
    t(`${f.modulation}.weight`, [f.chunks * width, cond]),
    t(`${f.modulation}.bias`, [f.chunks * width]),
  ];
}

/**
 * Checks a fold's inputs against the checkpoint (`byName`), for canonical tensor `canonical` of
 * `shape` (its first size is the modulated width); adds their names to `used`. Returns problems.
 */
export function checkFold(
  canonical: string,
  shape: readonly number[],
  f: AdaLnFold,
  byName: ReadonlyMap<string, AvailableTensor>,
  used: Set<string>,
): string[] {
  const problems: string[] = [];
  if (!(Number.isInteger(f.chunk) && f.chunk >= 0 && f.chunk < f.chunks))
    problems.push(`fold of strata '${canonical}': chunk ${f.chunk} is not one of ${f.chunks}`);
  for (const t of foldInputs(f, shape[0])) {
    used.add(t.name);
    const got = byName.get(t.name);
    if (!got) problems.push(`missing tensor '${t.name}' (the adaLN fold of strata '${canonical}')`);
    else if (fmt(got.shape) !== fmt(t.shape))
      problems.push(
        `tensor '${t.name}' has shape ${fmt(got.shape)}, expected ${fmt(t.shape)} (the adaLN fold of strata '${canonical}')`,
      );
  }
  return problems;
}

const silu = (x: number) => x / (1 + Math.exp(-x));

/** y = W x + b over f64 x, W [rows, x.length] row-major. */
function affine(w: Float32Array, b: Float32Array, x: Float64Array): Float64Array {
  const n = x.length;
  const rows = b.length;
  if (w.length !== rows * n)
    throw new Error(`adaLN fold: a [${rows}, ${w.length / rows}] weight applied to ${n} values`);
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = b[r];
    for (let k = 0; k < n; k++) acc += w[r * n + k] * x[k];
    y[r] = acc;
  }
  return y;
}

/**
 * A reader of folded tensors over `source`; the condition vector and each modulation are computed
 * once per reader. `base` is the canonical's stored tensor (ignored for 'shift').
 */
export function adaLnFoldReader(
  source: TensorSource,
): (base: string, f: AdaLnFold, where: string) => Promise<Float32Array> {
  const conditions = new Map<string, Promise<Float64Array>>();
  const modulations = new Map<string, Promise<Float64Array>>();
  const condition = (f: AdaLnFold) => {
    const key = `${f.condition}|${f.frequencies}`;
    let c = conditions.get(key);
    if (!c) {
      c = (async () => {
        const [w0, b0, w2, b2] = await Promise.all(
          ['0.weight', '0.bias', '2.weight', '2.bias'].map((s) =>
            source.readTensorF32(`${f.condition}.${s}`),
          ),
        );
        const e = new Float64Array(f.frequencies);
        e.fill(1, 0, Math.floor(f.frequencies / 2));
        return affine(w2, b2, affine(w0, b0, e).map(silu)).map(silu);
      })();
      conditions.set(key, c);
    }
    return c;
  };
  const modulation = (f: AdaLnFold) => {
    const key = `${f.modulation}|${f.condition}`;
    let m = modulations.get(key);
    if (!m) {
      m = (async () => {
        const [w, b] = await Promise.all([
          source.readTensorF32(`${f.modulation}.weight`),
          source.readTensorF32(`${f.modulation}.bias`),
        ]);
        return affine(w, b, await condition(f));
      })();
      modulations.set(key, m);
    }
    return m;
  };
  return async (base, f, where) => {
    const all = await modulation(f);
    if (all.length % f.chunks !== 0)
      throw new Error(
        `${where}: ${f.modulation} has ${all.length} outputs, not ${f.chunks} chunks`,
      );
    const width = all.length / f.chunks;
    const m = all.subarray(f.chunk * width, (f.chunk + 1) * width);
    if (f.form === 'shift') return Float32Array.from(m);
    const x = await source.readTensorF32(base);
    if (x.length % width !== 0)
      throw new Error(`${where}: '${base}' (${x.length} values) is not ${width} rows`);
    const per = x.length / width;
    if (f.form === 'scale' && per !== 1)
      throw new Error(
        `${where}: '${base}' scaled by a chunk of ${width} is not a [${width}] vector`,
      );
    const out = new Float32Array(x.length);
    for (let r = 0; r < width; r++) {
      const k = f.form === 'scale' ? 1 + m[r] : m[r];
      for (let j = 0; j < per; j++) out[r * per + j] = x[r * per + j] * k;
    }
    return out;
  };
}

/** Reads a fold back from weights.json (weight-map.ts), with errors naming `bad`'s entry. */
export function parseFold(v: unknown, bad: (why: string) => Error): AdaLnFold {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw bad('has an adaLN that is not an object');
  const o = v as Record<string, unknown>;
  if (o.form !== 'scale' && o.form !== 'shift' && o.form !== 'rows')
    throw bad('has an adaLN form that is not scale, shift or rows');
  if (typeof o.modulation !== 'string' || typeof o.condition !== 'string')
    throw bad('has an adaLN without modulation and condition tensor prefixes');
  for (const k of ['chunks', 'chunk', 'frequencies', 'cond'] as const)
    if (!Number.isSafeInteger(o[k]) || (o[k] as number) < 0)
      throw bad(`has an adaLN ${k} that is not a whole number`);
  return {
    form: o.form,
    modulation: o.modulation,
    chunks: o.chunks as number,
    chunk: o.chunk as number,
    condition: o.condition,
    frequencies: o.frequencies as number,
    cond: o.cond as number,
  };
}
