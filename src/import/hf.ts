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
import { configKeyFor, HARMLESS_CONFIG_KEYS } from './hf-keys.ts';
import { IMPORTERS, type HfImport } from './registry.ts';
import {
  DIFFUSION_GEMMA_TYPES,
  importDiffusionGemma,
  readDiffusionGemmaConfig,
} from './hf-diffusion-gemma.ts';
import { readQuantization, type CheckpointQuant } from './quantized.ts';

export type { HfImport } from './registry.ts';

/** Every model_type strata imports, in the registry's order. */
export const SUPPORTED_MODEL_TYPES: readonly string[] = IMPORTERS.map((i) => i.modelType);

/**
 * `source` names the checkpoint in messages and becomes the model's name; `origin`, when the
 * config was read from a file, lets errors name config.json with the key's line and column.
 * Every problem is a SpecError, and the model is checked like any spec before it is returned.
 */
export function importHfConfig(
  config: object,
  source: string,
  origin?: ConfigOrigin,
  /** How a key is named in messages where the config was translated from another format. */
  written?: (key: string) => string,
): HfImport {
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
  const importer = IMPORTERS.find((i) => i.modelType === modelType);
  if ((DIFFUSION_GEMMA_TYPES as readonly string[]).includes(modelType)) {
    // Its own reader (a top-level config around text_config), which reports its own errors.
    const imported = importDiffusionGemma(readDiffusionGemmaConfig(config, source, origin), source);
    const issue = firstModelIssue(imported.model);
    if (issue) fail(`gives an invalid model: ${formatPath(issue.path)}: ${issue.message}`);
    return { storedSlices: {}, ...imported, quantization: null };
  }
  if (!importer) {
    return fail(
      `model_type '${modelType}' is not known to strata (supported: ${[...SUPPORTED_MODEL_TYPES, ...DIFFUSION_GEMMA_TYPES].join(', ')})`,
      'model_type',
    );
  }
  // Quantised weights strata dequantises itself (src/import/quantized.ts); anything else is refused.
  let quantization: CheckpointQuant | null = null;
  try {
    quantization = readQuantization(config.quantization_config, modelType);
  } catch (e) {
    fail(`config key 'quantization_config' ${(e as Error).message}`, 'quantization_config');
  }

  const cfg = new ConfigReader(config, where, origin ?? null, written);
  cfg.ignore('model_type', 'quantization_config');
  const imported = importer.import(cfg, source);
  cfg.finish(HARMLESS_CONFIG_KEYS, modelType);
  checkImported(imported.model, config, cfg);
  return { storedSlices: {}, ...imported, quantization };
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
