/**
 * Importers written one file per HF model type (src/import/<type>.ts), listed once here; hf.ts
 * dispatches on model_type through this array, and SUPPORTED_MODEL_TYPES is its types in this
 * order. Each maps the config's keys to a ModelIR through ConfigReader (which reports unknown and
 * unsupported keys by name) and the checkpoint's tensor names to strata's canonical ones, which
 * the model's lowering declares. What the types share lives in helper modules: hf-decoder.ts
 * (the Llama-layout decoder types), hf-ssm-shared.ts (the Mamba conv/SSM readers and rule-based
 * weight maps), hf-attention.ts, hf-rope.ts, hf-moe.ts, hf-model.ts, fla-common.ts.
 */
import type { ModelIR } from '../spec/model.ts';
import type { ConfigReader } from './config-reader.ts';
import type { StoredSlice } from './convert.ts';
import type { CheckpointQuant } from './quantized.ts';
import type { AdaLnFold } from './adaln-fold.ts';
import { importLlama } from './hf-llama.ts';
import { importMistral } from './hf-mistral.ts';
import { importQwen3 } from './hf-qwen3.ts';
import { importMixtral } from './hf-mixtral.ts';
import { importQwen3Moe } from './hf-qwen3-moe.ts';
import { importMamba } from './hf-mamba.ts';
import { importMamba2 } from './hf-mamba2.ts';
import { importBamba } from './hf-bamba.ts';
import { importJamba } from './hf-jamba.ts';
import { importLfm2 } from './hf-lfm2.ts';
import { importNemotronH } from './hf-nemotron-h.ts';
import { importZamba2 } from './hf-zamba2.ts';
import { importGraniteMoeHybrid } from './hf-granite.ts';
import { importDeepseekV3, importDeepseekV32 } from './hf-deepseek.ts';
import { importGemma3Text } from './hf-gemma3.ts';
import { importGptOss } from './hf-gpt-oss.ts';
import { importFalconH1 } from './hf-falcon-h1.ts';
import { importQwen3Next } from './hf-qwen3-next.ts';
import { importLinearAttn } from './fla-linear-attn.ts';
import { importRetNet } from './fla-retnet.ts';
import { importFlaDeltaNet } from './fla-delta-net.ts';
import { importFlaGatedDeltaNet } from './fla-gated-deltanet.ts';
import { importFlaGla } from './fla-gla.ts';
import { importFlaHgrn2 } from './fla-hgrn2.ts';
import { importFlaRwkv7 } from './fla-rwkv7.ts';
import { importLlada } from './hf-llada.ts';
import { importDream } from './hf-dream.ts';
import { importFlaNsa } from './fla-nsa.ts';
import { importBd3lm } from './hf-bd3lm.ts';

export interface ModelTypeImporter {
  /** config.json's model_type. */
  modelType: string;
  /**
   * Where the type comes from, for `strata import --help` and errors: 'transformers', 'fla', or
   * 'remote code' (a checkpoint's own modeling files: llada, Dream).
   */
  origin: string;
  import: FamilyImporter;
}

/** A whole import: the model and where each of its canonical tensors is in the checkpoint. */
export interface HfImport {
  model: ModelIR;
  /** Canonical strata tensor name → tensor name in the HF checkpoint. */
  weightMap: Record<string, string>;
  /**
   * Canonical name → the checkpoint tensor's shape where it differs: the same elements in
   * another shape (HF conv weights [C, 1, K] for strata's [C, K]), or the whole fused tensor
   * a slice reads from; absent names match exactly.
   */
  storedShapes: Record<string, number[]>;
  /**
   * Canonical name → the part of its stored tensor (weightMap's name) that holds it, where the
   * checkpoint fuses several canonical tensors into one: a box (Granite's gate and up rows of
   * input_linear), optionally de-interleaved and transposed (gpt_oss's gate_up_proj); its
   * storedShapes entry is then the whole stored tensor's shape.
   */
  storedSlices: Record<string, StoredSlice>;
  /** How the checkpoint's weights are quantised (hf.ts reads it; null: stored as floats). */
  quantization: CheckpointQuant | null;
  /** Canonical name → the constant adaLN modulation folded into it (BD3-LM); absent: none. */
  folds?: Record<string, AdaLnFold>;
  /**
   * Checkpoint tensors strata does not read because they must equal one it does (checkpoint
   * name → the read tensor's checkpoint name): DiffusionGemma's encoder layer_scalar buffers,
   * untied copies of the denoiser's. The folder reader checks each equal. Absent: none.
   */
  duplicates?: Record<string, string>;
}

/**
 * What an importer returns: the whole import, storedSlices left out where nothing is sliced
 * (the quantisation is hf.ts's, the same for every family).
 */
export type FamilyImport = Omit<HfImport, 'storedSlices' | 'quantization'> &
  Partial<Pick<HfImport, 'storedSlices'>>;

/** Reads the config through `cfg` (which hf.ts then finishes) for a model called `name`. */
export type FamilyImporter = (cfg: ConfigReader, name: string) => FamilyImport;

export const IMPORTERS: readonly ModelTypeImporter[] = [
  { modelType: 'llama', origin: 'transformers', import: importLlama },
  { modelType: 'mistral', origin: 'transformers', import: importMistral },
  { modelType: 'qwen3', origin: 'transformers', import: importQwen3 },
  { modelType: 'mixtral', origin: 'transformers', import: importMixtral },
  { modelType: 'qwen3_moe', origin: 'transformers', import: importQwen3Moe },
  { modelType: 'mamba', origin: 'transformers', import: importMamba },
  { modelType: 'mamba2', origin: 'transformers', import: importMamba2 },
  { modelType: 'bamba', origin: 'transformers', import: importBamba },
  { modelType: 'jamba', origin: 'transformers', import: importJamba },
  { modelType: 'lfm2', origin: 'transformers', import: importLfm2 },
  { modelType: 'nemotron_h', origin: 'transformers', import: importNemotronH },
  { modelType: 'zamba2', origin: 'transformers', import: importZamba2 },
  { modelType: 'granitemoehybrid', origin: 'transformers', import: importGraniteMoeHybrid },
  { modelType: 'deepseek_v3', origin: 'transformers', import: importDeepseekV3 },
  { modelType: 'gemma3_text', origin: 'transformers', import: importGemma3Text },
  { modelType: 'gpt_oss', origin: 'transformers', import: importGptOss },
  { modelType: 'falcon_h1', origin: 'transformers', import: importFalconH1 },
  { modelType: 'qwen3_next', origin: 'transformers', import: importQwen3Next },
  { modelType: 'deepseek_v32', origin: 'transformers', import: importDeepseekV32 },
  { modelType: 'retnet', origin: 'fla', import: importRetNet },
  { modelType: 'linear_attn', origin: 'fla', import: importLinearAttn },
  { modelType: 'delta_net', origin: 'fla', import: importFlaDeltaNet },
  { modelType: 'gated_deltanet', origin: 'fla', import: importFlaGatedDeltaNet },
  { modelType: 'gla', origin: 'fla', import: importFlaGla },
  { modelType: 'hgrn2', origin: 'fla', import: importFlaHgrn2 },
  { modelType: 'rwkv7', origin: 'fla', import: importFlaRwkv7 },
  { modelType: 'llada', origin: 'remote code', import: importLlada },
  { modelType: 'Dream', origin: 'remote code', import: importDream },
  { modelType: 'nsa', origin: 'fla', import: importFlaNsa },
  { modelType: 'bd3lm', origin: 'remote code', import: importBd3lm },
];
