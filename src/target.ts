/**
 * The compile target: what the device can do. Passes (fusion, weight splitting) and kernel
 * generators both decide by these facts, so they live before both stages; the runtime fills
 * them in from the adapter it opens.
 */

/** One matrix shape the device's subgroup-matrix (tensor core) units take: left M×K, right K×N. */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

/** Device facts that kernel generators and passes may depend on. */
export interface DeviceCaps {
  maxInvocationsPerWorkgroup: number;
  maxWorkgroupSizeX: number;
  maxWorkgroupSizeY: number;
  maxWorkgroupStorageBytes: number;
  maxStorageBindingBytes: number;
  maxBufferBytes: number;
  maxStorageBuffersPerStage: number;
  maxWorkgroupsPerDimension: number;
  subgroups: boolean;
  shaderF16: boolean;
  subgroupMatrix: boolean;
  /**
   * WGSL's buffer_view language extension (navigator.gpu.wgslLanguageFeatures): one workgroup
   * buffer read as f16 by subgroup-matrix loads and written 16 bytes a store.
   */
  bufferView: boolean;
  /** Largest subgroup the adapter runs (0 when unknown); subgroup-matrix workgroups are multiples of it. */
  subgroupMaxSize: number;
  /** Shapes subgroupMatrixMultiplyAccumulate takes on this device (empty without subgroup-matrix). */
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
}

/** WebGPU's guaranteed minimums: what a kernel may assume with no adapter in hand. */
export const BASELINE_CAPS: DeviceCaps = {
  maxInvocationsPerWorkgroup: 256,
  maxWorkgroupSizeX: 256,
  maxWorkgroupSizeY: 256,
  maxWorkgroupStorageBytes: 16384,
  maxStorageBindingBytes: 128 * 1024 * 1024,
  maxBufferBytes: 256 * 1024 * 1024,
  maxStorageBuffersPerStage: 8,
  maxWorkgroupsPerDimension: 65535,
  subgroups: false,
  shaderF16: false,
  subgroupMatrix: false,
  bufferView: false,
  subgroupMaxSize: 0,
  subgroupMatrixConfigs: [],
};

/**
 * A large discrete GPU with WebGPU's minimums everywhere except the buffer limits: for counting
 * costs without a device (`--target nominal`, `strata explore`). The baseline's 128 MiB binding
 * cannot hold one of Jamba's 28672 x 4096 f32 experts; 2 GiB - 4 is what NVIDIA adapters report.
 * Kernel choices (workgroup sizes, no f16, no subgroups) stay the baseline's, so dispatch counts
 * equal baseline's wherever both compile.
 */
export const NOMINAL_CAPS: DeviceCaps = {
  ...BASELINE_CAPS,
  maxStorageBindingBytes: 2 ** 31 - 4,
  maxBufferBytes: 2 ** 40,
};

/** The f16 → f32 shape this device's tensor cores multiply, 16×16×16 preferred; null if none. */
export function f16Config(caps: DeviceCaps): SubgroupMatrixConfig | null {
  const ok = caps.subgroupMatrixConfigs.filter(
    (c) => c.componentType === 'f16' && c.resultComponentType === 'f32',
  );
  return (
    ok.find((c) => c.M === 16 && c.N === 16 && c.K === 16) ??
    ok.sort((p, q) => q.M * q.N * q.K - p.M * p.N * p.K)[0] ??
    null
  );
}

/**
 * Why this device cannot run f16 × f16 products on tensor cores (WGSL subgroup matrices), or
 * null when it can: the precision pass asks before making prefill activations f16, the matmul
 * kernel before choosing its schedule.
 */
export function f16TensorCoresUnsupported(caps: DeviceCaps): string | null {
  if (!caps.shaderF16) return 'the device has no shader-f16';
  if (!caps.subgroupMatrix) return 'the device has no chromium-experimental-subgroup-matrix';
  if (!f16Config(caps)) return 'the device has no f16 → f32 subgroup-matrix shape';
  if (caps.subgroupMaxSize <= 0) return 'the subgroup size is unknown';
  return null;
}
