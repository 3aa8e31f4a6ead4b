/**
 * Parameter counts of a ModelIR model, taken from the canonical tensor list so that the
 * count can never disagree with what the importer loads or the initialiser produces.
 */
import type { ModelIR } from './model.ts';
import {
  EMBED,
  LM_HEAD,
  expectedTensors,
  layerTensors,
  moeNames,
  tensorElements,
} from '../import/names.ts';

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

export function countParams(model: ModelIR): ParamCount {
  const all = expectedTensors(model);
  const size = (name: string) => {
    const t = all.find((x) => x.name === name);
    return t ? tensorElements(t) : 0;
  };
  const perLayer = model.layers.map((layer) =>
    layerTensors(model, layer).reduce((n, t) => n + tensorElements(t), 0),
  );
  const total = all.reduce((n, t) => n + tensorElements(t), 0);
  let idle = 0;
  for (const layer of model.layers) {
    const f = layer.ffn;
    if (f?.kind !== 'moe') continue;
    // Experts have equal shapes, so expert 0's tensors measure each one.
    const one = moeNames(layer.index).expert(0);
    const prefixes = [one.gate, one.up, one.down].map((p) => `${p}.`);
    const perExpert = layerTensors(model, layer)
      .filter((t) => prefixes.some((p) => t.name.startsWith(p)))
      .reduce((n, t) => n + tensorElements(t), 0);
    idle += (f.experts - f.topK) * perExpert;
  }
  return {
    total,
    active: total - idle,
    embedding: size(EMBED),
    lmHead: size(LM_HEAD),
    perLayer,
  };
}
