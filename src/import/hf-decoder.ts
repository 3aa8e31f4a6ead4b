/**
 * Importers for the dense pre-norm decoder families that share Llama's layout: llama,
 * mistral and qwen3. Defaults for absent keys are those of the transformers config
 * classes, which differ between families (e.g. num_key_value_heads, head_dim).
 */
import { type Activation, type LayerSpec, type MlpSpec, type ModelIR } from '../spec/model.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { attentionSpec, readHeadDim, readKvHeads } from './hf-attention.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { readRope } from './hf-rope.ts';
import { mixtralFfns, mixtralWeightName, qwen3MoeFfns, type LayerFfn } from './hf-moe.ts';

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

interface DecoderFamily {
  family: 'llama' | 'mistral' | 'qwen3' | 'mixtral' | 'qwen3_moe';
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

const SLIDING_LAYER_TYPES = new Set(['full_attention', 'sliding_attention']);

/** Qwen3: use_sliding_window gates sliding_window; layer_types, else max_window_layers, says where. */
function qwen3Windows(cfg: ConfigReader, layers: number): (number | null)[] {
  const use = cfg.bool('use_sliding_window', false);
  const size = positiveWindow(cfg, 'sliding_window', 4096);
  const sliding = use ? size : null;
  const maxWindowLayers = cfg.int('max_window_layers', 28);
  const types = cfg.optStringList('layer_types');
  if (types) {
    if (types.length !== layers) {
      cfg.fail('layer_types', `has ${types.length} entries for ${layers} layers`);
    }
    const bad = types.find((t) => !SLIDING_LAYER_TYPES.has(t));
    if (bad !== undefined)
      cfg.fail('layer_types', `entry ${show(bad)} is not full_attention or sliding_attention`);
    return types.map((t) => (t === 'sliding_attention' ? sliding : null));
  }
  return Array.from({ length: layers }, (_, i) =>
    sliding !== null && i >= maxWindowLayers ? sliding : null,
  );
}

export const DECODER_FAMILIES: Readonly<Record<string, DecoderFamily>> = {
  llama: {
    family: 'llama',
    kvHeadsWhenAbsent: null,
    headDimWhenAbsent: null,
    maxPositions: 2048,
    rmsEps: 1e-6,
    theta: 10000,
    attentionBiasKey: true,
    mlpBiasKey: true,
    qkNorm: false,
    windows: (_cfg, layers) => Array<null>(layers).fill(null),
  },
  mistral: {
    family: 'mistral',
    kvHeadsWhenAbsent: 8,
    headDimWhenAbsent: null,
    maxPositions: 4096 * 32,
    rmsEps: 1e-6,
    theta: 10000,
    attentionBiasKey: false,
    mlpBiasKey: false,
    qkNorm: false,
    // MistralConfig defaults sliding_window to 4096 when the key is absent.
    windows: (cfg, layers) => Array(layers).fill(positiveWindow(cfg, 'sliding_window', 4096)),
  },
  qwen3: {
    family: 'qwen3',
    kvHeadsWhenAbsent: 32,
    headDimWhenAbsent: 128,
    maxPositions: 32768,
    rmsEps: 1e-6,
    theta: 10000,
    attentionBiasKey: true,
    mlpBiasKey: false,
    qkNorm: true,
    windows: qwen3Windows,
  },
  mixtral: {
    family: 'mixtral',
    kvHeadsWhenAbsent: 8,
    headDimWhenAbsent: null,
    maxPositions: 4096 * 32,
    rmsEps: 1e-5,
    theta: 1e6,
    attentionBiasKey: false,
    mlpBiasKey: false,
    qkNorm: false,
    // MixtralConfig, unlike MistralConfig, has no window when the key is absent.
    windows: (cfg, layers) => Array(layers).fill(positiveWindow(cfg, 'sliding_window', null)),
    ffns: mixtralFfns,
    weightName: mixtralWeightName,
  },
  qwen3_moe: {
    family: 'qwen3_moe',
    kvHeadsWhenAbsent: 4,
    headDimWhenAbsent: null,
    maxPositions: 32768,
    rmsEps: 1e-6,
    theta: 10000,
    attentionBiasKey: true,
    mlpBiasKey: false,
    qkNorm: true,
    // Qwen3MoeConfig applies sliding_window to every layer when use_sliding_window is set; it
    // has no max_window_layers (older configs still carry one, which nothing reads).
    windows: (cfg, layers) => {
      cfg.ignore('max_window_layers');
      const size = positiveWindow(cfg, 'sliding_window', 4096);
      return Array(layers).fill(cfg.bool('use_sliding_window', false) ? size : null);
    },
    ffns: qwen3MoeFfns,
  },
};

/** Canonical tensor name → the family's checkpoint name (most families keep the canonical one). */
export function decoderWeightName(modelType: string, canonical: string): string {
  return DECODER_FAMILIES[modelType]?.weightName?.(canonical) ?? canonical;
}

export function importDecoder(cfg: ConfigReader, modelType: string, name: string): ModelIR {
  const f = DECODER_FAMILIES[modelType];
  return readDecoder(cfg, f, name);
}
