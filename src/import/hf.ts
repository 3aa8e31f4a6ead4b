/**
 * HuggingFace config.json → ModelIR, plus the map from strata's canonical tensor names to
 * the checkpoint's. Browser-safe: reading the folder is hf-folder.ts's job.
 */
import type { ModelIR } from '../spec/model.ts';
import { ConfigReader, isConfigObject, show } from './config-reader.ts';
import { unsupportedMessage } from './families.ts';
import { DECODER_FAMILIES, decoderWeightName, importDecoder } from './hf-decoder.ts';
import { HARMLESS_CONFIG_KEYS } from './hf-keys.ts';
import { SSM_FAMILIES, type FamilyImporter } from './hf-ssm.ts';
import { importQwen3Next } from './hf-qwen3-next.ts';
import { expectedTensors } from './names.ts';

export interface HfImport {
  model: ModelIR;
  /** Canonical strata tensor name → tensor name in the HF checkpoint. */
  weightMap: Record<string, string>;
  /**
   * Canonical name → the checkpoint's shape where it stores the same elements in another
   * shape (HF conv weights [C, 1, K] for strata's [C, K]); absent names match exactly.
   */
  storedShapes: Record<string, number[]>;
}

/** Families with their own importer module, beside the decoder table and the SSM hybrids. */
const OWN_IMPORTERS: Readonly<Record<string, FamilyImporter>> = {
  ...SSM_FAMILIES,
  qwen3_next: importQwen3Next,
};

export const SUPPORTED_MODEL_TYPES: readonly string[] = [
  ...Object.keys(DECODER_FAMILIES),
  ...Object.keys(OWN_IMPORTERS),
];

/** `source` names the checkpoint in messages and becomes the model's name. */
export function importHfConfig(config: object, source: string): HfImport {
  const where = `${source} config`;
  if (!isConfigObject(config)) throw new Error(`${where}: config.json is not a JSON object`);
  const modelType = config.model_type;
  if (typeof modelType !== 'string') {
    throw new Error(`${where}: no model_type (got ${show(modelType)})`);
  }
  const unsupported = unsupportedMessage(modelType);
  if (unsupported) throw new Error(`${where}: ${unsupported}`);
  if (!SUPPORTED_MODEL_TYPES.includes(modelType)) {
    throw new Error(
      `${where}: model_type '${modelType}' is not known to strata (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`,
    );
  }
  const quant = config.quantization_config;
  if (quant !== undefined && quant !== null) {
    const method = isConfigObject(quant) ? ` (quant_method ${show(quant.quant_method)})` : '';
    throw new Error(
      `${where}: config key 'quantization_config'${method}: quantized checkpoints are not supported; use an unquantized (f32/f16/bf16) one`,
    );
  }

  const cfg = new ConfigReader(config, where);
  cfg.ignore('model_type');
  if (Object.hasOwn(OWN_IMPORTERS, modelType)) {
    const imported = OWN_IMPORTERS[modelType](cfg, source);
    cfg.finish(HARMLESS_CONFIG_KEYS, modelType);
    return imported;
  }
  const model = importDecoder(cfg, modelType, source);
  cfg.finish(HARMLESS_CONFIG_KEYS, modelType);
  // These families store every tensor under strata's canonical (HF Llama) name, or rename a few.
  const weightMap = Object.fromEntries(
    expectedTensors(model).map((t) => [t.name, decoderWeightName(modelType, t.name)]),
  );
  return { model, weightMap, storedShapes: {} };
}
