/**
 * HuggingFace config.json → ModelIR, plus the map from strata's canonical tensor names to
 * the checkpoint's. Browser-safe: reading the folder is hf-folder.ts's job.
 */
import type { ModelIR } from '../spec/model.ts';
import { SpecError } from '../../grammar/diagnostics.ts';
import { firstModelIssue, formatPath } from '../spec/load-data.ts';
import {
  ConfigReader,
  isConfigObject,
  show,
  type ConfigObject,
  type ConfigOrigin,
} from './config-reader.ts';
import { configKeyFor } from './hf-keys.ts';
import type { StoredSlice } from './convert.ts';
import { DECODER_FAMILIES, decoderWeightName, importDecoder } from './hf-decoder.ts';
import { HARMLESS_CONFIG_KEYS } from './hf-keys.ts';
import { importFalconH1 } from './hf-falcon-h1.ts';
import { importGptOss } from './hf-gpt-oss.ts';
import { importGemma3Text } from './hf-gemma3.ts';
import { SSM_FAMILIES, type FamilyImporter } from './hf-ssm.ts';
import { ZAMBA2_FAMILIES } from './hf-zamba2.ts';
import { GRANITE_FAMILIES } from './hf-granite.ts';
import { DEEPSEEK_FAMILIES } from './hf-deepseek.ts';
import { importQwen3Next } from './hf-qwen3-next.ts';
import { expectedTensors } from './names.ts';
import { IMPORTERS } from './registry.ts';

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
}

/** Families whose importer returns the whole import, checkpoint names included. */
const FAMILY_IMPORTERS: Readonly<Record<string, FamilyImporter>> = {
  ...SSM_FAMILIES,
  ...ZAMBA2_FAMILIES,
  ...GRANITE_FAMILIES,
  ...DEEPSEEK_FAMILIES,
  gemma3_text: importGemma3Text,
  gpt_oss: importGptOss,
  falcon_h1: importFalconH1,
  qwen3_next: importQwen3Next,
  ...Object.fromEntries(IMPORTERS.map((i) => [i.modelType, i.import])),
};

export const SUPPORTED_MODEL_TYPES: readonly string[] = [
  ...Object.keys(DECODER_FAMILIES),
  ...Object.keys(FAMILY_IMPORTERS),
];

/**
 * `source` names the checkpoint in messages and becomes the model's name; `origin`, when the
 * config was read from a file, lets errors name config.json with the key's line and column.
 * Every problem is a SpecError, and the model is checked like any spec before it is returned.
 */
export function importHfConfig(config: object, source: string, origin?: ConfigOrigin): HfImport {
  const where = `${source} config`;
  const fail = (reason: string, key?: string): never => {
    if (!origin) throw new SpecError(reason, where);
    throw new SpecError(reason, origin.locate(key ?? ''), origin.text);
  };
  if (!isConfigObject(config)) return fail('config.json is not a JSON object');
  const modelType = config.model_type;
  if (typeof modelType !== 'string') {
    return fail(`no model_type (got ${show(modelType)})`, 'model_type');
  }
  if (!SUPPORTED_MODEL_TYPES.includes(modelType)) {
    fail(
      `model_type '${modelType}' is not known to strata (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`,
      'model_type',
    );
  }
  const quant = config.quantization_config;
  if (quant !== undefined && quant !== null) {
    const method = isConfigObject(quant) ? ` (quant_method ${show(quant.quant_method)})` : '';
    fail(
      `config key 'quantization_config'${method}: quantized checkpoints are not supported; use an unquantized (f32/f16/bf16) one`,
      'quantization_config',
    );
  }

  const cfg = new ConfigReader(config, where, origin ?? null);
  cfg.ignore('model_type');
  if (Object.hasOwn(FAMILY_IMPORTERS, modelType)) {
    const imported = FAMILY_IMPORTERS[modelType](cfg, source);
    cfg.finish(HARMLESS_CONFIG_KEYS, modelType);
    checkImported(imported.model, config, cfg);
    return { storedSlices: {}, ...imported };
  }
  const model = importDecoder(cfg, modelType, source);
  cfg.finish(HARMLESS_CONFIG_KEYS, modelType);
  checkImported(model, config, cfg);
  // These families store every tensor under strata's canonical (HF Llama) name, or rename a few.
  const weightMap = Object.fromEntries(
    expectedTensors(model).map((t) => [t.name, decoderWeightName(modelType, t.name)]),
  );
  return { model, weightMap, storedShapes: {}, storedSlices: {} };
}

/**
 * The rules every spec obeys (schema, caps, cross-field checks) hold for imports too: a config
 * the DSL would reject is refused, blamed on the config key that most likely set the field.
 */
function checkImported(model: ModelIR, config: ConfigObject, cfg: ConfigReader): void {
  const issue = firstModelIssue(model);
  if (!issue) return;
  const field = [...issue.path, ...(issue.key !== undefined ? [issue.key] : [])]
    .filter((p): p is string => typeof p === 'string')
    .at(-1);
  const key = field !== undefined ? configKeyFor(field, config) : null;
  const what = `${formatPath(issue.path)}: ${issue.message}`;
  throw cfg.error(
    key ? `config key '${key}' gives an invalid model: ${what}` : `gives an invalid model: ${what}`,
    key ?? undefined,
  );
}
