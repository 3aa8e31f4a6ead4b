/**
 * Whether a bundle fits a device, judged by what its kernels and buffers use, not by the limits
 * recorded at compile time: a bundle compiled under Dawn-in-Node (12 storage buffers per stage)
 * whose kernels bind at most 8 loads in Chromium (10). Browser-safe.
 *
 * Not checked here, because the manifest does not record it: workgroup memory. Pipeline creation
 * reports an excess as a DeviceError naming the kernel (GpuModel.load's error scopes).
 */
import type { BundleManifest, ManifestPhase } from '../codegen/manifest.ts';
import { resolveGridDim } from '../codegen/kernel-ir.ts';
import type { DeviceCaps } from '../src/target.ts';
import { numel } from '../formats/safetensors.ts';
import { dtypeBytes } from '../src/graph/dtype.ts';
import { storageBytes } from './gpu.ts';

/** The WebGPU limits a bundle is checked against, each read from DeviceCaps. */
export const CHECKED_LIMITS = {
  maxStorageBuffersPerShaderStage: 'maxStorageBuffersPerStage',
  maxComputeInvocationsPerWorkgroup: 'maxInvocationsPerWorkgroup',
  maxComputeWorkgroupSizeX: 'maxWorkgroupSizeX',
  maxComputeWorkgroupSizeY: 'maxWorkgroupSizeY',
  maxBufferSize: 'maxBufferBytes',
  maxStorageBufferBindingSize: 'maxStorageBindingBytes',
  maxComputeWorkgroupsPerDimension: 'maxWorkgroupsPerDimension',
} as const satisfies Record<string, keyof DeviceCaps>;

export type LimitName = keyof typeof CHECKED_LIMITS;

/** The most a bundle asks of one limit, and the first kernel, buffer or dispatch that asks it. */
export interface BundleNeed {
  limit: LimitName;
  need: number;
  what: string;
}

/** One BundleNeed per checked limit: what `inspect` can print, and what load checks. */
export type BundleNeeds = Record<LimitName, BundleNeed>;

/** A bundle that needs more of a WebGPU limit than the device offers. */
export class DeviceLimitError extends Error {
  constructor(
    readonly limit: LimitName,
    readonly have: number,
    readonly need: number,
    readonly what: string,
  ) {
    super(
      `this device's ${limit} is ${have}, but ${what} needs ${need}; ` +
        'use a device with a higher limit, or recompile the bundle for this one (--target baseline fits any WebGPU device)',
    );
    this.name = 'DeviceLimitError';
  }
}

type PhaseName = 'prefill' | 'decode';
const PHASES: readonly PhaseName[] = ['prefill', 'decode'];

/** Bytes of each buffer the runtime creates, by the dispatch reference that names it. */
function bufferSizes(m: BundleManifest, phase: PhaseName): Map<string, [string, number]> {
  const ph = m.phases[phase];
  const out = new Map<string, [string, number]>();
  for (const t of m.tensors)
    out.set(`param:${t.name}`, [`weight '${t.name}'`, dtypeBytes(t.dtype, numel(t.shape))]);
  for (const s of m.state)
    out.set(`state:${s.name}`, [`state '${s.name}'`, dtypeBytes(s.dtype, numel(s.shape))]);
  ph.slots.forEach((b, i) => out.set(`slot:${i}`, [`${phase} activation slot ${i}`, b]));
  for (const [k, b] of Object.entries(ph.scratch))
    out.set(`scratch:${k}`, [`${phase} scratch '${k}'`, b]);
  for (const [k, b] of Object.entries(ph.ioBytes)) out.set(k, [`${phase} ${k} buffer`, b]);
  // As created: rounded up to whole 16-byte units (gpu.ts createStorage).
  for (const [ref, [what, b]] of out) out.set(ref, [what, storageBytes(b)]);
  return out;
}

function dispatchName(phase: PhaseName, i: number, d: ManifestPhase['dispatches'][number]): string {
  return `${phase} dispatch ${i} '${d.label}' (kernel ${d.kernel})`;
}

/** What the bundle's kernels, buffers and dispatch grids ask of each checked limit. */
export function bundleNeeds(m: BundleManifest): BundleNeeds {
  const needs = {} as BundleNeeds;
  const note = (limit: LimitName, need: number, what: () => string) => {
    const cur = needs[limit];
    if (!cur || need > cur.need) needs[limit] = { limit, need, what: what() };
  };
  for (const l of Object.keys(CHECKED_LIMITS) as LimitName[]) note(l, 0, () => 'nothing');
  for (const k of m.kernels) {
    const storage = k.bindings.filter((b) => b.access !== 'uniform').length;
    note('maxStorageBuffersPerShaderStage', storage, () => `kernel ${k.name}`);
    const [x, y, z] = k.workgroupSize;
    note('maxComputeWorkgroupSizeX', x, () => `kernel ${k.name}`);
    note('maxComputeWorkgroupSizeY', y, () => `kernel ${k.name}`);
    note('maxComputeInvocationsPerWorkgroup', x * y * z, () => `kernel ${k.name}`);
  }
  const kernels = new Map(m.kernels.map((k) => [k.name, k]));
  for (const phase of PHASES) {
    const sizes = bufferSizes(m, phase);
    for (const [what, bytes] of sizes.values()) note('maxBufferSize', bytes, () => what);
    const ph = m.phases[phase];
    ph.dispatches.forEach((d, i) => {
      // The whole buffer is bound, so each storage binding needs its buffer's size.
      for (const b of kernels.get(d.kernel)?.bindings ?? []) {
        if (b.access === 'uniform') continue;
        const buf = sizes.get(d.bind[b.name]);
        if (buf)
          note('maxStorageBufferBindingSize', buf[1], () => {
            return `${buf[0]}, bound to '${b.name}' by ${dispatchName(phase, i, d)}`;
          });
      }
      // Grids grow with T (tokens) and L (logit rows, at most T): the extremes bound them.
      for (const T of new Set([1, ph.maxT]))
        for (const L of new Set([1, T])) {
          // keys 1: a denoising step, whose grids include those of denoising-only nodes (D = T).
          const grid = d.grid.map((g) => resolveGridDim(g, { T, pos: 0, L, keys: 1 }));
          // A non-integer or negative dimension is a damaged manifest: no device fits it.
          const worst = Math.max(
            ...grid.map((g) => (Number.isInteger(g) && g >= 0 ? g : Infinity)),
          );
          note('maxComputeWorkgroupsPerDimension', worst, () => {
            return `${dispatchName(phase, i, d)} with grid [${grid.join(', ')}] at T = ${T}`;
          });
        }
    });
  }
  return needs;
}

/** Throws DeviceLimitError for the first limit the bundle needs more of than `caps` offers. */
export function checkBundleFits(caps: DeviceCaps, m: BundleManifest): void {
  for (const n of Object.values(bundleNeeds(m))) {
    const have = caps[CHECKED_LIMITS[n.limit]];
    if (!(n.need <= have)) throw new DeviceLimitError(n.limit, have, n.need, n.what);
  }
}

/** WebGPU feature of each WGSL `enable` extension a kernel may use. */
const FEATURE_OF_EXTENSION: Record<string, string> = {
  f16: 'shader-f16',
  subgroups: 'subgroups',
  chromium_experimental_subgroup_matrix: 'chromium-experimental-subgroup-matrix',
};

/**
 * Throws naming the kernel and the feature when its WGSL enables an extension the device lacks:
 * a bundle compiled where shader-f16 or subgroups exist, loaded where they do not.
 */
export function checkKernelFeatures(kernel: string, code: string, features: readonly string[]) {
  for (const m of code.matchAll(/^\s*enable\s+([\w\s,]+);/gm)) {
    for (const ext of m[1].split(',').map((s) => s.trim())) {
      if (ext === '') continue;
      const feature = FEATURE_OF_EXTENSION[ext] ?? ext.replace(/_/g, '-');
      if (!features.includes(feature))
        throw new Error(
          `kernel ${kernel} enables WGSL '${ext}', but this device lacks the feature '${feature}'; ` +
            'recompile the bundle for this device (or --target baseline)',
        );
    }
  }
}
