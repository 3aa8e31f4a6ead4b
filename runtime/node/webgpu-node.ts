/**
 * Node adapter: WebGPU through Dawn (npm `webgpu`). Hardware adapter first; when
 * none is found, the SwiftShader CPU Vulkan driver (set up once by
 * tools/setup.sh into .cache/swiftshader) is used, and that choice is reported.
 */
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { deviceLoss, openDevice, type GpuContext } from '../gpu.ts';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SWIFTSHADER_ICD = join(
  projectRoot,
  '.cache',
  'swiftshader',
  'vk_swiftshader_icd.json',
);
const SETUP_SCRIPT = join(projectRoot, 'tools', 'setup.sh');

/**
 * Dawn toggles that native engines use for speed; `--gpu-flags fast` selects them. Timestamp
 * quantization goes too: Dawn rounds timestamps to 2^16 ns by default, which turned every
 * per-dispatch decode time on the H200 into 0 or 65.5 µs.
 */
export const FAST_DAWN_FLAGS = [
  'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,use_vulkan_memory_model,skip_validation,disable_robustness,disable_workgroup_init,disable_polyfills_on_integer_div_and_mod',
  'disable-dawn-features=timestamp_quantization',
];

export interface NodeGpuOptions {
  /**
   * Strings passed to Dawn's create(); 'fast' expands to FAST_DAWN_FLAGS. Default: the
   * comma-separated STRATA_GPU_FLAGS, so the test suite can run with the tensor-core features
   * on (STRATA_GPU_FLAGS=fast on the GPU machine).
   */
  flags?: string[];
  /** Skip the hardware probe and use SwiftShader (STRATA_SWIFTSHADER=1 does the same). */
  forceFallback?: boolean;
  /** Log set-up steps (SwiftShader install) to stderr. */
  log?: (msg: string) => void;
}

type DawnModule = { create(flags: string[]): GPU; globals: object };
let dawn: DawnModule | null = null;

async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const mod = (await import('webgpu')) as unknown as DawnModule;
  Object.assign(globalThis, mod.globals);
  dawn = mod;
  return mod;
}

export function expandFlags(flags: string[] = []): string[] {
  return flags.flatMap((f) => (f === 'fast' ? FAST_DAWN_FLAGS : [f]));
}

function ensureSwiftShader(log: (m: string) => void): void {
  if (existsSync(SWIFTSHADER_ICD)) return;
  log('strata: no GPU adapter found; setting up SwiftShader (one time) ...');
  const r = spawnSync('bash', [SETUP_SCRIPT], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0 || !existsSync(SWIFTSHADER_ICD)) {
    throw new Error(
      `no WebGPU adapter found and the SwiftShader fallback could not be set up (${SETUP_SCRIPT} exited ${r.status}); ` +
        'install a Vulkan driver, or run tools/setup.sh as root',
    );
  }
}

/** Where the Vulkan loader looks for driver manifests on Linux (XDG and system folders). */
const ICD_DIRS = [
  '/etc/vulkan/icd.d',
  '/usr/local/etc/vulkan/icd.d',
  '/usr/share/vulkan/icd.d',
  '/usr/local/share/vulkan/icd.d',
];

/**
 * Whether a hardware probe can find anything. On Linux without a Vulkan driver manifest, Dawn's
 * probe only prints "Found no drivers" warnings, so it is skipped; other platforms use their own
 * backends (Metal, D3D12) and always probe.
 */
function mayHaveHardwareDriver(): boolean {
  if (process.platform !== 'linux') return true;
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES) return true;
  return ICD_DIRS.some((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.json')));
}

/**
 * Every GPU object create() returned. Dawn's async runner keeps polling the instance behind
 * it while a device lives, but does not keep it alive: once the JS object is garbage-collected,
 * the next mapAsync/onSubmittedWorkDone that waits on running GPU work crashes the process
 * (SIGSEGV in CallbackTaskManager::Flush, std::system_error, glibc mutex assertions).
 */
const instances: GPU[] = [];
function createInstance(create: DawnModule['create'], flags: string[]): GPU {
  const gpu = create(flags);
  instances.push(gpu);
  return gpu;
}

/** One shared device per set of Dawn flags and adapter choice (see nodeGpu). */
const shared = new Map<string, Promise<GpuContext>>();

/** The flags and fallback choice acquire() will use, from the options or the environment. */
function resolve(opts: NodeGpuOptions): { flags: string[]; force: boolean } {
  return {
    flags: expandFlags(opts.flags ?? process.env.STRATA_GPU_FLAGS?.split(',').filter(Boolean)),
    force: !!opts.forceFallback || process.env.STRATA_SWIFTSHADER === '1',
  };
}

/**
 * One device per process and flag set: Dawn instances are heavy, and a device keeps the
 * pipelines it compiled (runtime/gpu.ts pipelineFor), so a second model or CLI command in the
 * same process (the tests, an embedding app) reuses them instead of compiling again. Different
 * --gpu-flags get their own device. A lost device is not handed out again: the next call acquires
 * a fresh one, so a process can reload its models after a loss; a failed acquire is not kept.
 */
export function nodeGpu(opts: NodeGpuOptions = {}): Promise<GpuContext> {
  const key = JSON.stringify(resolve(opts));
  const prev = shared.get(key);
  const next = prev
    ? prev.then((ctx) => (deviceLoss(ctx.device) ? acquire(opts) : ctx))
    : acquire(opts);
  shared.set(key, next);
  next.catch(() => {
    if (shared.get(key) === next) shared.delete(key);
  });
  return next;
}

export async function acquire(opts: NodeGpuOptions = {}): Promise<GpuContext> {
  const log = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const { create } = await loadDawn();
  const { flags, force } = resolve(opts);
  if (!force && mayHaveHardwareDriver()) {
    const probe = createInstance(create, flags);
    const adapter = await probe.requestAdapter({ powerPreference: 'high-performance' });
    if (adapter && !adapter.info.description.toLowerCase().includes('swiftshader')) {
      return openDevice(adapter, false, probe.wgslLanguageFeatures);
    }
  }
  ensureSwiftShader(log);
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  const instance = createInstance(create, flags);
  const adapter = await instance.requestAdapter();
  if (!adapter)
    throw new Error(`SwiftShader did not provide a WebGPU adapter (ICD ${SWIFTSHADER_ICD})`);
  return openDevice(adapter, true, instance.wgslLanguageFeatures);
}
