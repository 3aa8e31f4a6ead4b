/**
 * The package's compile API (`@strata-llm/strata`, Node): a spec (or a HuggingFace folder, or a
 * GGUF file) → ModelIR → compiled model (or a HuggingFace config.json / Megatron-LM flags) → a bundle folder, or a BundleSource in memory that the
 * runtime entry (`@strata-llm/strata/runtime`) loads. It lives at the end of the compile
 * pipeline, so the layering test holds it to codegen's imports: nothing from the runtime.
 */
export { parseSpec, loadSpec, specFormat, type SpecFormat } from '../src/spec/load.ts';
export { SpecError, type Span } from '../src/spec/errors.ts';
export type { ModelIR } from '../src/spec/model.ts';
export { importHfFolder, type HfFolder } from '../src/import/hf-folder.ts';
export { importGgufFile } from '../src/import/gguf-file.ts';
export { randomWeights } from '../src/import/random-init.ts';
export {
  exportHfConfig,
  ExportError,
  HF_EXPORT_TYPES,
  type HfExport,
} from '../src/export/hf-config.ts';
export { exportMegatron, megatronText, type MegatronExport } from '../src/export/megatron.ts';
export type { WeightProvider } from '../src/graph/params.ts';
export { BASELINE_CAPS, type DeviceCaps, type SubgroupMatrixConfig } from '../src/target.ts';
export { PRECISIONS, type Precision } from '../src/passes/precision.ts';
export {
  compileModel,
  DEFAULT_CAPACITY,
  DEFAULT_MAX_T,
  type CompileOptions,
  type CompiledModel,
} from './compile.ts';
export { toManifest, memorySource, writeBundle, WEIGHTS_FILE } from './bundle.ts';
export {
  BUNDLE_FORMAT,
  BUNDLE_VERSION,
  MANIFEST_SCHEMA,
  type BundleManifest,
  type BundleSource,
  type Progress,
} from './manifest.ts';
