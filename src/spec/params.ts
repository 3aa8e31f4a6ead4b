/**
 * Parameter counts of a ModelIR model, taken from the canonical tensor list so that the
 * count can never disagree with what the importer loads or the initialiser produces.
 */
import type { ModelIR } from './model.ts';
import { EMBED, LM_HEAD, expectedTensors, layerTensors, tensorElements } from '../import/names.ts';

export interface ParamCount {
  /** Every parameter; a tied LM head is the embedding and is counted once. */
  total: number;
  /** The token embedding table. */
  embedding: number;
  /** The untied LM head (0 when tied). */
  lmHead: number;
  /** Each layer's parameters (norms included). */
  perLayer: number[];
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
  return {
    total: all.reduce((n, t) => n + tensorElements(t), 0),
    embedding: size(EMBED),
    lmHead: size(LM_HEAD),
    perLayer,
  };
}
