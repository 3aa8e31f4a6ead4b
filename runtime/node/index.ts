/**
 * The package's Node adapter (`@strata-llm/strata/node`): a WebGPU device through Dawn (npm
 * `webgpu`, SwiftShader when no GPU is found) and bundle folders read from disk as BundleSources
 * for the runtime entry's GpuModel.load.
 */
export {
  acquire,
  nodeGpu,
  expandFlags,
  FAST_DAWN_FLAGS,
  type NodeGpuOptions,
} from './webgpu-node.ts';
export { openBundle, BundleError } from './bundle-node.ts';
