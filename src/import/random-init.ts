/**
 * Seeded random weights for any ModelIR model: the default when a spec is
 * compiled without real weights. Each tensor's values depend only on the seed
 * and the tensor's name, so any subset can be produced lazily and in any order.
 */
import type { ModelIR } from '../spec/model.ts';
import { expectedTensors } from './names.ts';
import { mixerDef } from '../mixers/lookup.ts';
import type { WeightProvider } from '../graph/params.ts';

function hashName(name: string, seed: number): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** Mulberry32: a small seeded generator of numbers in [0, 1); the same seed, the same stream. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi) from a seeded Mulberry32 stream. */
export function uniform(n: number, seed: number, lo: number, hi: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + next() * (hi - lo);
  return out;
}

/**
 * A mixer's own range for this weight (decay parameters, say), if it gives one: the weight's layer
 * is read from its name (model.layers.<i>.…), so a lookup costs the same at any depth.
 */
function initRange(model: ModelIR, name: string): [number, number] | null {
  const written = /^model\.layers\.(\d+)\./.exec(name)?.[1];
  if (written === undefined) return null;
  const i = Number(written);
  // Layers are stored in index order; the search only covers a list that is not.
  const layer =
    model.layers[i]?.index === i ? model.layers[i] : model.layers.find((l) => l.index === i);
  const init = layer?.mixer ? mixerDef(layer.mixer.kind)?.init : undefined;
  if (!init) return null;
  for (const [suffix, range] of Object.entries(init)) if (name.endsWith(suffix)) return range;
  return null;
}

/**
 * Norm weights near 1, biases small, matrices with variance 1/fan_in (so
 * activations keep their scale through depth), embeddings of unit scale.
 */
export function randomWeights(model: ModelIR, seed: number): WeightProvider {
  const shapes = new Map(expectedTensors(model).map((t) => [t.name, t.shape]));
  return (name: string) => {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`random init: model has no weight named '${name}'`);
    const n = shape.reduce((a, b) => a * b, 1);
    const s = hashName(name, seed);
    const special = initRange(model, name);
    if (special) return uniform(n, s, special[0], special[1]);
    if (name.endsWith('.bias')) return uniform(n, s, -0.05, 0.05);
    if (shape.length === 1) return uniform(n, s, 0.8, 1.2);
    if (name === 'model.embed_tokens.weight') return uniform(n, s, -1, 1);
    const r = Math.sqrt(3 / shape[1]);
    return uniform(n, s, -r, r);
  };
}
