/**
 * Parameter counts of a ModelIR model, taken from the canonical tensor list so that the
 * count can never disagree with what the importer loads or the initialiser produces.
 */
import type { LayerSpec, ModelIR } from './model.ts';
import { mixerDef } from '../mixers/lookup.ts';
import { EMBED, LM_HEAD, expectedTensors, layerTensors, tensorElements } from '../import/names.ts';
import { moeNames } from '../graph/blocks/moe.ts';

export interface ParamCount {
  /** Every parameter; a tied LM head is the embedding and is counted once. */
  total: number;
  /** The token embedding table. */
  embedding: number;
  /** The untied LM head (0 when tied). */
  lmHead: number;
  /** Each layer's parameters (norms included). */
  perLayer: number[];
  /**
   * Parameters one token uses: every parameter except the routed experts its router does not
   * pick (topK of each MoE layer's experts count). Equal to total for dense models.
   */
  active: number;
}

/** A layer's parameters, and those of one of its routed experts (0 without experts). */
interface LayerCount {
  total: number;
  perExpert: number;
}

function layerCount(model: ModelIR, layer: LayerSpec): LayerCount {
  const tensors = layerTensors(model, layer);
  const total = tensors.reduce((n, t) => n + tensorElements(t), 0);
  if (layer.ffn?.kind !== 'moe') return { total, perExpert: 0 };
  // Experts have equal shapes, so expert 0's tensors measure each one.
  const one = moeNames(layer.index).expert(0);
  const prefixes = [one.gate, one.up, one.down].map((p) => `${p}.`);
  const perExpert = tensors
    .filter((t) => prefixes.some((p) => t.name.startsWith(p)))
    .reduce((n, t) => n + tensorElements(t), 0);
  return { total, perExpert };
}

export function countParams(model: ModelIR): ParamCount {
  // Everything outside the layers (embedding, shared blocks, final norm, LM head).
  const outside = expectedTensors({ ...model, layers: [] });
  const size = (name: string) => {
    const t = outside.find((x) => x.name === name);
    return t ? tensorElements(t) : 0;
  };
  // A layer's count depends on its blocks (and a defined mixer's variant), not on its index: the
  // tensor list of each distinct layer is built once, so a deep mixture of experts is counted
  // without listing every expert.
  const counts = new Map<string, LayerCount>();
  const perLayerCounts = model.layers.map((layer) => {
    const variant = layer.mixer && mixerDef(layer.mixer.kind)?.variant?.(model, layer.index);
    const key = JSON.stringify([layer.mixer, layer.ffn, layer.shared ?? null, variant ?? null]);
    let c = counts.get(key);
    if (!c) counts.set(key, (c = layerCount(model, layer)));
    return c;
  });
  const perLayer = perLayerCounts.map((c) => c.total);
  const total =
    outside.reduce((n, t) => n + tensorElements(t), 0) + perLayer.reduce((a, b) => a + b, 0);
  let idle = 0;
  model.layers.forEach((layer, i) => {
    const f = layer.ffn;
    if (f?.kind === 'moe') idle += (f.experts - f.topK) * perLayerCounts[i]!.perExpert;
  });
  return {
    total,
    active: total - idle,
    embedding: size(EMBED),
    lmHead: size(LM_HEAD),
    perLayer,
  };
}
