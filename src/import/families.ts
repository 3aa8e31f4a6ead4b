/**
 * HF model types strata knows of but cannot run yet, each with what it lacks. When a
 * family lands, its entry moves from here to an importer in hf.ts.
 */
export const UNSUPPORTED_MODEL_TYPES: Readonly<Record<string, string>> = {};

export function unsupportedMessage(modelType: string): string | null {
  if (!Object.hasOwn(UNSUPPORTED_MODEL_TYPES, modelType)) return null;
  return `model_type '${modelType}' needs ${UNSUPPORTED_MODEL_TYPES[modelType]}, not supported yet`;
}
