/**
 * The one place importers assemble a ModelIR: the model-level fields every family sets, plus
 * only the whole-model scalings a family changes (Gemma's post-norms and sqrt(dim) embedding
 * scale, Granite's and Falcon-H1's multipliers, logit softcaps); the rest are the plain
 * pre-norm decoder's.
 */
import { MODEL_IR_VERSION, type LayerSpec, type ModelIR, type NormSpec } from '../spec/model.ts';

export interface ModelShape {
  vocab: number;
  dim: number;
  /** tie_word_embeddings. */
  tie: boolean;
  maxContext: number;
}

/** The model-level settings a family may change from the plain decoder's. */
export type ModelOptions = Partial<
  Pick<ModelIR, 'postNorms' | 'embeddingScale' | 'residualScale' | 'logitScale' | 'logitSoftcap'>
>;

/** HF's RMSNorm (weight · x/rms), or Gemma's and Qwen3-Next's (1 + weight) · x/rms. */
export function rmsNorm(eps: number, unitOffset = false): NormSpec {
  return { kind: 'rms', eps, unitOffset, bias: false };
}

export function modelIR(
  name: string,
  layers: LayerSpec[],
  norm: NormSpec,
  shape: ModelShape,
  options: ModelOptions = {},
): ModelIR {
  return {
    version: MODEL_IR_VERSION,
    name,
    vocab: shape.vocab,
    dim: shape.dim,
    norm,
    postNorms: false,
    tieEmbeddings: shape.tie,
    embeddingScale: 1,
    residualScale: 1,
    logitScale: 1,
    logitSoftcap: null,
    maxContext: shape.maxContext,
    layers,
    ...options,
  };
}
