/**
 * Browser-safe WebGPU helpers shared by the runtime and the kernel tests:
 * device capabilities, pipelines from KernelIR, buffers, one-shot launches.
 * Nothing here imports Node modules.
 */
import type { Kernel, KernelLaunch, StepParams, SamplingParams } from '../codegen/kernel-ir.ts';
import type { DeviceCaps, SubgroupMatrixConfig } from '../src/target.ts';
import { encodeStep, resolveGridDim, STEP_BYTES } from '../codegen/kernel-ir.ts';

export interface GpuContext {
  device: GPUDevice;
  caps: DeviceCaps;
  adapterInfo: { vendor: string; architecture: string; device: string; description: string };
  /** True when running on the SwiftShader CPU fallback. */
  fallback: boolean;
  features: string[];
}

/** Limits we ask for: everything the adapter offers that kernels or large weights can use. */
export const REQUESTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
] as const;

const WANTED_FEATURES = [
  'shader-f16',
  'subgroups',
  'timestamp-query',
  'chromium-experimental-subgroup-matrix',
] as const;

/** What an adapter's info may carry beyond the standard fields (Dawn's experimental ones). */
interface AdapterInfoExtras {
  subgroupMaxSize?: number;
  subgroupMatrixConfigs?: ReadonlyArray<SubgroupMatrixConfig>;
}

export function capsFromLimits(
  limits: GPUSupportedLimits,
  features: ReadonlySet<string>,
  info: AdapterInfoExtras = {},
  wgsl: ReadonlySet<string> = new Set(),
): DeviceCaps {
  const subgroupMatrix = features.has('chromium-experimental-subgroup-matrix');
  return {
    maxInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    maxWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
    maxWorkgroupSizeY: limits.maxComputeWorkgroupSizeY,
    maxWorkgroupStorageBytes: limits.maxComputeWorkgroupStorageSize,
    maxStorageBindingBytes: limits.maxStorageBufferBindingSize,
    maxBufferBytes: limits.maxBufferSize,
    maxStorageBuffersPerStage: limits.maxStorageBuffersPerShaderStage,
    maxWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
    subgroups: features.has('subgroups'),
    shaderF16: features.has('shader-f16'),
    subgroupMatrix,
    bufferView: wgsl.has('buffer_view'),
    subgroupMaxSize: info.subgroupMaxSize ?? 0,
    subgroupMatrixConfigs: subgroupMatrix
      ? (info.subgroupMatrixConfigs ?? []).map((c) => ({
          componentType: String(c.componentType),
          resultComponentType: String(c.resultComponentType),
          M: c.M,
          N: c.N,
          K: c.K,
        }))
      : [],
  };
}

/**
 * Request a device with the adapter's full limits and the features we can use; `wgsl` is the
 * GPU's wgslLanguageFeatures (navigator.gpu's, or Dawn's GPU object in Node).
 */
export async function openDevice(
  adapter: GPUAdapter,
  fallback: boolean,
  wgsl: ReadonlySet<string> = new Set(),
): Promise<GpuContext> {
  const requiredLimits: Record<string, number> = {};
  for (const k of REQUESTED_LIMITS) requiredLimits[k] = adapter.limits[k];
  const requiredFeatures = WANTED_FEATURES.filter((f) =>
    adapter.features.has(f),
  ) as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  watchDevice(device);
  const info = adapter.info;
  const features = [...device.features].map(String).sort();
  return {
    device,
    caps: capsFromLimits(device.limits, new Set(features), info as AdapterInfoExtras, wgsl),
    adapterInfo: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
    },
    fallback,
    features,
  };
}

/**
 * What went wrong on a device outside any error scope the runtime pushed: the first uncaptured
 * error, and the loss, once `device.lost` has resolved.
 */
export interface DeviceWatch {
  firstError: { kind: string; message: string } | null;
  lost: { reason: string; message: string } | null;
}

const watches = new WeakMap<GPUDevice, DeviceWatch>();

function errorKind(e: GPUError): string {
  const n = e.constructor.name;
  return n === 'GPUOutOfMemoryError'
    ? 'out-of-memory'
    : n === 'GPUInternalError'
      ? 'internal'
      : n === 'GPUValidationError'
        ? 'validation'
        : n;
}

/**
 * Record a device's uncaptured errors and its loss (idempotent). The event is cancelled so the
 * platform does not print it (dawn.node writes it to stdout, between generated tokens); the
 * runtime checks the record after each step and throws instead.
 */
export function watchDevice(device: GPUDevice): DeviceWatch {
  const known = watches.get(device);
  if (known) return known;
  const watch: DeviceWatch = { firstError: null, lost: null };
  watches.set(device, watch);
  device.addEventListener('uncapturederror', (ev) => {
    ev.preventDefault();
    const { error } = ev as GPUUncapturedErrorEvent;
    watch.firstError ??= { kind: errorKind(error), message: error.message };
  });
  void device.lost.then((info) => {
    watch.lost = { reason: String(info.reason), message: info.message };
  });
  return watch;
}

/** The loss of a watched device, once known (null while it lives or if it was never watched). */
export function deviceLoss(device: GPUDevice): DeviceWatch['lost'] {
  return watches.get(device)?.lost ?? null;
}

/**
 * Run `body` inside validation and out-of-memory error scopes and return (without awaiting)
 * the first error either caught, with its kind. The promise never rejects.
 */
export function withErrorScopes(
  device: GPUDevice,
  body: () => void,
): Promise<{ kind: string; message: string } | null> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let pops: Promise<GPUError | null>[];
  try {
    body();
  } finally {
    // Pop even when body throws, so the scopes stay balanced; body's exception still propagates.
    pops = [device.popErrorScope(), device.popErrorScope()].map((p) => p.catch(() => null));
  }
  return Promise.all(pops).then((errs) => {
    const e = errs.find((x) => x !== null);
    return e ? { kind: errorKind(e), message: e.message } : null;
  });
}

/** Browser entry: navigator.gpu with the adapter's limits. */
export async function openBrowserDevice(): Promise<GpuContext> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new Error('WebGPU is not available in this browser (navigator.gpu is undefined)');
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned no adapter');
  return openDevice(adapter, false, gpu.wgslLanguageFeatures);
}

const pipelineCache = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** Compile (once per device and code) the pipeline of a kernel; WGSL errors name the kernel. */
export function pipelineFor(device: GPUDevice, kernel: Kernel): GPUComputePipeline {
  let cache = pipelineCache.get(device);
  if (!cache) pipelineCache.set(device, (cache = new Map()));
  const hit = cache.get(kernel.code);
  if (hit) return hit;
  const module = device.createShaderModule({ code: kernel.code, label: kernel.name });
  const pipeline = device.createComputePipeline({
    layout: 'auto',
    compute: { module, entryPoint: 'main' },
    label: kernel.name,
  });
  cache.set(kernel.code, pipeline);
  return pipeline;
}

/** Surface WGSL compile errors with the kernel name and the offending line. */
export async function checkKernel(device: GPUDevice, kernel: Kernel): Promise<void> {
  // A bad module also raises a validation error; catch it here so it is reported once, below,
  // with the line, rather than recorded as an uncaptured error for whatever runs next.
  let module: GPUShaderModule | undefined;
  const scoped = withErrorScopes(device, () => {
    module = device.createShaderModule({ code: kernel.code, label: kernel.name });
  });
  const info = await module!.getCompilationInfo();
  const moduleError = await scoped;
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length) {
    const lines = kernel.code.split('\n');
    const msg = errors
      .map(
        (e) =>
          `  ${kernel.name}:${e.lineNum}:${e.linePos}: ${e.message}\n    ${lines[e.lineNum - 1] ?? ''}`,
      )
      .join('\n');
    throw new Error(`WGSL compile error in kernel ${kernel.name}:\n${msg}`);
  }
  if (moduleError) {
    throw new Error(
      `WebGPU ${moduleError.kind} error creating the shader module of kernel ${kernel.name}: ${moduleError.message}`,
    );
  }
}

/** GPUBufferUsage is a global only after the platform installs it (dawn.node's `globals`). */
function GPUBufferUsageFlags(): typeof GPUBufferUsage {
  return globalThis.GPUBufferUsage;
}

/** Size of the storage buffer createStorage makes for `bytes`: what the load checks compare. */
export function storageBytes(bytes: number): number {
  // WebGPU wants sizes that are multiples of 4 and non-zero.
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

export function createStorage(device: GPUDevice, bytes: number, label: string): GPUBuffer {
  const size = storageBytes(bytes);
  const u = GPUBufferUsageFlags();
  return device.createBuffer({ size, usage: u.STORAGE | u.COPY_SRC | u.COPY_DST, label });
}

export function createStepBuffer(device: GPUDevice): GPUBuffer {
  return device.createBuffer({
    size: STEP_BYTES,
    usage: GPUBufferUsageFlags().UNIFORM | GPUBufferUsageFlags().COPY_DST,
    label: 'step',
  });
}

export function writeStep(
  device: GPUDevice,
  stepBuf: GPUBuffer,
  p: StepParams,
  s?: SamplingParams,
): void {
  device.queue.writeBuffer(stepBuf, 0, encodeStep(p, s));
}

export function upload(device: GPUDevice, buf: GPUBuffer, data: ArrayBufferView, offset = 0): void {
  // writeBuffer wants a multiple of 4 bytes; typed arrays here are 4-byte elements.
  device.queue.writeBuffer(buf, offset, data.buffer, data.byteOffset, data.byteLength);
}

export async function readBuffer(
  device: GPUDevice,
  buf: GPUBuffer,
  bytes: number,
  offset = 0,
): Promise<ArrayBuffer> {
  const size = Math.ceil(bytes / 4) * 4;
  const staging = device.createBuffer({
    size,
    usage: GPUBufferUsageFlags().MAP_READ | GPUBufferUsageFlags().COPY_DST,
  });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, offset, staging, 0, size);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  return out;
}

export function bindGroupFor(
  device: GPUDevice,
  kernel: Kernel,
  buffers: Record<string, GPUBuffer>,
): GPUBindGroup {
  const pipeline = pipelineFor(device, kernel);
  return device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    label: kernel.name,
    entries: kernel.bindings.map((b, i) => {
      const buffer = buffers[b.name];
      if (!buffer) throw new Error(`kernel ${kernel.name}: no buffer bound to '${b.name}'`);
      return { binding: i, resource: { buffer } };
    }),
  });
}

/**
 * Records `launch`, a kernel reading a forward's logits buffer into fixed `outputs`, into a step's
 * command encoder: one pipeline, a Step uniform of its own (kernels recorded into one submission
 * each need theirs: all are written before it runs), and a bind group per logits buffer it is
 * given (the prefill phase's, or the decode phase's for a 1-token step).
 */
export function logitsKernel(
  device: GPUDevice,
  launch: KernelLaunch,
  outputs: Record<string, GPUBuffer>,
): {
  record: (enc: GPUCommandEncoder, logits: GPUBuffer, p: StepParams, s: SamplingParams) => void;
  /** Frees the Step uniform (the outputs are the caller's). */
  destroy: () => void;
} {
  const pipeline = pipelineFor(device, launch.kernel);
  const step = createStepBuffer(device);
  const groups = new Map<GPUBuffer, GPUBindGroup>();
  const record = (enc: GPUCommandEncoder, logits: GPUBuffer, p: StepParams, s: SamplingParams) => {
    let group = groups.get(logits);
    if (!group) {
      group = bindGroupFor(device, launch.kernel, { step, logits, ...outputs });
      groups.set(logits, group);
    }
    writeStep(device, step, p, s);
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(...gridFor(launch, p));
    pass.end();
  };
  return { record, destroy: () => step.destroy() };
}

/** Grid after resolving symbols; a zero-sized dimension means "skip this dispatch". */
export function gridFor(launch: KernelLaunch, p: StepParams): [number, number, number] {
  return launch.grid.map((d) => resolveGridDim(d, p)) as [number, number, number];
}

export function checkGrid(kernel: Kernel, grid: [number, number, number], caps: DeviceCaps): void {
  for (const g of grid) {
    if (g > caps.maxWorkgroupsPerDimension) {
      throw new Error(
        `kernel ${kernel.name}: dispatch of ${g} workgroups exceeds the device limit ` +
          `maxComputeWorkgroupsPerDimension = ${caps.maxWorkgroupsPerDimension}`,
      );
    }
  }
}
