/**
 * The reader shared by the dense pre-norm decoder types that keep Llama's layout: one file per
 * type (hf-llama.ts, hf-mistral.ts, hf-qwen3.ts, hf-mixtral.ts, hf-qwen3-moe.ts) holds that
 * type's DecoderFamily (its config class's defaults for absent keys, which differ between types,
 * e.g. num_key_value_heads, head_dim; its windows, MoE layers and checkpoint renames) and
 * registers decoderImporter(family). Also the activation and window readers other importers use.
 */
import { type Activation, type LayerSpec, type MlpSpec, type ModelIR } from '../spec/model.ts';
import type { ConfigReader } from './config-reader.ts';
import { attentionSpec, readHeadDim, readKvHeads } from './hf-attention.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { readRope } from './hf-rope.ts';
import type { LayerFfn } from './hf-moe.ts';
import { expectedTensors } from './names.ts';
import type { FamilyImporter } from './registry.ts';

/** transformers ACT2FN names → strata activations (only exact equivalents). */
const ACTIVATIONS: Readonly<Record<string, Activation>> = {
  silu: 'silu',
  swish: 'silu',
  gelu: 'gelu',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  relu: 'relu',
  relu2: 'relu2',
};

export function readActivation(cfg: ConfigReader, key: string, fallback: string): Activation {
  const name = cfg.str(key, fallback);
  if (!Object.hasOwn(ACTIVATIONS, name)) {
    cfg.fail(key, `'${name}' is not supported (strata has ${Object.keys(ACTIVATIONS).join(', ')})`);
  }
  return ACTIVATIONS[name];
}

export interface DecoderFamily {
  /** The model type, as readRope names it in messages. */
  family: string;
  /** num_key_value_heads when the key is absent (null: num_attention_heads). */
  kvHeadsWhenAbsent: number | null;
  /** head_dim when absent (null: hidden_size / num_attention_heads). */
  headDimWhenAbsent: number | null;
  maxPositions: number;
  rmsEps: number;
  theta: number;
  /** Which bias switches the family's config class has. */
  attentionBiasKey: boolean;
  mlpBiasKey: boolean;
  qkNorm: boolean;
  /** Sliding window of each layer (null: full attention). */
  windows: (cfg: ConfigReader, layers: number) => (number | null)[];
  /** Each layer's FFN when not every layer has the dense MLP `dense` (MoE families). */
  ffns?: (cfg: ConfigReader, layers: number, dense: MlpSpec) => LayerFfn[];
  /** The checkpoint's name for a canonical tensor name, where the family renames it. */
  weightName?: (canonical: string) => string;
}

function readDecoder(cfg: ConfigReader, f: DecoderFamily, name: string): ModelIR {
  const vocab = cfg.positiveInt('vocab_size');
  const dim = cfg.positiveInt('hidden_size');
  const hidden = cfg.positiveInt('intermediate_size');
  const nLayers = cfg.positiveInt('num_hidden_layers');
  const heads = cfg.positiveInt('num_attention_heads');
  const kvHeads = readKvHeads(cfg, heads, f.kvHeadsWhenAbsent);
  const headDim = readHeadDim(cfg, dim, heads, f.headDimWhenAbsent);
  const act = readActivation(cfg, 'hidden_act', 'silu');
  const eps = cfg.num('rms_norm_eps', f.rmsEps);
  if (!(eps > 0)) cfg.fail('rms_norm_eps', `must be positive, got ${eps}`);
  const maxContext = cfg.positiveInt('max_position_embeddings', f.maxPositions);
  const tieEmbeddings = cfg.bool('tie_word_embeddings', false);
  const attnBias = f.attentionBiasKey ? cfg.bool('attention_bias', false) : false;
  const mlpBias = f.mlpBiasKey ? cfg.bool('mlp_bias', false) : false;
  const rope = readRope(cfg, {
    headDim,
    maxPositions: maxContext,
    defaultTheta: f.theta,
    family: f.family,
  });
  const windows = f.windows(cfg, nLayers);
  const dense: MlpSpec = { kind: 'mlp', hidden, act, gated: true, bias: mlpBias };
  const ffns: LayerFfn[] = f.ffns
    ? f.ffns(cfg, nLayers, dense)
    : windows.map(() => ({ name: 'mlp', spec: { ...dense } }));

  const layers: LayerSpec[] = windows.map((window, index) => {
    const mixer = attentionSpec(heads, kvHeads, headDim, rope, {
      qkNorm: f.qkNorm,
      bias: attnBias,
      window,
      // Not headDim ** -0.5: the two differ in the last bit for some head sizes (96).
      scale: 1 / Math.sqrt(headDim),
    });
    return {
      index,
      mixerName: window === null ? 'full_attention' : 'sliding_attention',
      mixer,
      ffnName: ffns[index].name,
      ffn: ffns[index].spec,
    };
  });
  return modelIR(name, layers, rmsNorm(eps), { vocab, dim, tie: tieEmbeddings, maxContext });
}

export function positiveWindow(
  cfg: ConfigReader,
  key: string,
  whenAbsent: number | null,
): number | null {
  const raw = cfg.raw(key);
  if (raw === undefined) return whenAbsent;
  if (raw === null) return null;
  return cfg.positiveInt(key);
}

/**
 * The importer of a decoder type: its ModelIR, and every tensor under strata's canonical (HF
 * Llama) name or the type's rename of it.
 */
export function decoderImporter(f: DecoderFamily): FamilyImporter {
  return (cfg, name) => {
    const model = readDecoder(cfg, f, name);
    const weightMap = Object.fromEntries(
      expectedTensors(model).map((t) => [t.name, f.weightName?.(t.name) ?? t.name]),
    );
    return { model, weightMap, storedShapes: {}, storedSlices: {} };
  };
}
