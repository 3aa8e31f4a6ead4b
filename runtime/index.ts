/**
 * The package's browser-safe runtime entry (`@strata-llm/strata/runtime`): open a device, load a
 * bundle from any BundleSource (runtime/node reads one from disk; a browser will fetch one), and
 * generate. Nothing reachable from here imports Node (test/layering.test.ts checks it), so a
 * bundler can ship it to a page. loadModel(url) fetches a bundle and streams its weights to the GPU.
 */
export {
  loadModel,
  WebModel,
  type LoadModelOptions,
  type LoadProgress,
  type WebGenerateOptions,
  type WebCanvasProgress,
  type WebDiffusionSettings,
} from './web.ts';
export { streamSafetensors, type TensorSink } from './weights-stream.ts';
export {
  GpuModel,
  Sequence,
  type GenerateOptions,
  type NonFiniteSite,
  type PassProfiler,
  type StopReason,
} from './model.ts';
export {
  BatchSequence,
  type BatchGenerateOptions,
  type BatchResult,
  type BatchStep,
} from './batch.ts';
export { CapacityError, DeviceError, DeviceLostError, NonFiniteError } from './errors.ts';
export { capsFromLimits, openBrowserDevice, openDevice, type GpuContext } from './gpu.ts';
export { BundleError, checkManifest } from './manifest-check.ts';
export { byteTokenizer, hfTokenizer, type Tokenizer } from './tokenizer.ts';
export {
  bundleNeeds,
  checkBundleFits,
  DeviceLimitError,
  type BundleNeed,
  type BundleNeeds,
  type LimitName,
} from './fits.ts';
export type { BundleManifest, BundleSource, Progress } from '../codegen/manifest.ts';
export type { DeviceCaps } from '../src/target.ts';
