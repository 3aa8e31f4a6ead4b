/**
 * Timing for benchmarks: wall time from submit to queue completion, and GPU
 * time from timestamp queries written at the start and end of one compute pass.
 * Only for bench/: tests never assert on time.
 */
import type { KernelLaunch, SamplingParams, StepParams } from '../codegen/kernel-ir.ts';
import {
  bindGroupFor,
  checkGrid,
  createStepBuffer,
  createStorage,
  gridFor,
  pipelineFor,
  readBuffer,
  upload,
  withErrorScopes,
  writeStep,
  type GpuContext,
} from '../runtime/gpu.ts';
import { median, TimestampPairs } from '../runtime/dispatch-profile.ts';

// The benches take median from here.
export { median } from '../runtime/dispatch-profile.ts';

export interface Timing {
  /** Median wall milliseconds per iteration (submit → onSubmittedWorkDone). */
  wallMs: number;
  /** Median GPU milliseconds per iteration from timestamp queries (null if unsupported). */
  gpuMs: number | null;
}

/** Resolve timestamps of pass start/end into milliseconds (null without timestamp-query). */
export class PassTimer {
  private readonly pairs: TimestampPairs | null;

  constructor(gpu: GpuContext) {
    this.pairs = gpu.features.includes('timestamp-query')
      ? new TimestampPairs(gpu.device, 1)
      : null;
  }

  passDescriptor(): GPUComputePassDescriptor {
    return this.pairs?.passDescriptor(0) ?? {};
  }

  resolve(enc: GPUCommandEncoder): void {
    this.pairs?.resolve(enc);
  }

  async read(): Promise<number | null> {
    return this.pairs ? (await this.pairs.readMs())[0] : null;
  }
}

/**
 * Time `launches` on fresh buffers, filled from `init` where given (time on real-looking data:
 * zeros can run faster than random values on tensor cores): `reps`
 * back-to-back repetitions inside one pass per sample, `samples` samples after one warm-up.
 */
export async function timeLaunches(
  gpu: GpuContext,
  launches: KernelLaunch[],
  bufferBytes: Record<string, number>,
  step: StepParams,
  opts: {
    reps: number;
    samples: number;
    init?: Record<string, ArrayBufferView>;
    /** Buffers to read back after timing (their contents after the last repetition). */
    readBack?: string[];
    /** The Step uniform's sampling fields (a sampling or draw kernel reads them). */
    sampling?: SamplingParams;
  },
): Promise<Timing & { outputs: Record<string, Float32Array> }> {
  const { device } = gpu;
  const buffers: Record<string, GPUBuffer> = {};
  for (const [name, bytes] of Object.entries(bufferBytes)) {
    buffers[name] = createStorage(device, bytes, name);
    const data = opts.init?.[name];
    if (data) upload(device, buffers[name], data);
  }
  buffers.step = createStepBuffer(device);
  writeStep(device, buffers.step, step, opts.sampling);
  // A grid past the device's limit is a validation error that skips the dispatch: its time
  // would read as ~0 (bench/mla.ts's latent prefill attention at 4096 tokens and 128 heads, 131,072
  // row blocks, did until 2026-12-06). Refuse it by name (runtime/gpu.ts checkGrid, as the
  // runtime does), and any other device error too.
  const names = launches.map((l) => l.kernel.name).join(', ');
  const grids = launches.map((l) => gridFor(l, step));
  launches.forEach((l, i) => checkGrid(l.kernel, grids[i], gpu.caps));
  let calls: {
    pipeline: ReturnType<typeof pipelineFor>;
    bind: GPUBindGroup;
    grid: ReturnType<typeof gridFor>;
  }[] = [];
  const made = await withErrorScopes(device, () => {
    calls = launches.map((l, i) => ({
      pipeline: pipelineFor(device, l.kernel),
      bind: bindGroupFor(device, l.kernel, buffers),
      grid: grids[i],
    }));
  });
  if (made) throw new Error(`${made.kind} error preparing ${names}: ${made.message}`);
  const timer = new PassTimer(gpu);
  const walls: number[] = [];
  const gpus: number[] = [];
  for (let s = 0; s <= opts.samples; s++) {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass(timer.passDescriptor());
    for (let r = 0; r < opts.reps; r++) {
      for (const c of calls) {
        pass.setPipeline(c.pipeline);
        pass.setBindGroup(0, c.bind);
        pass.dispatchWorkgroups(...c.grid);
      }
    }
    pass.end();
    timer.resolve(enc);
    const t0 = performance.now();
    const failed = withErrorScopes(device, () => device.queue.submit([enc.finish()]));
    await device.queue.onSubmittedWorkDone();
    const err = await failed;
    if (err) throw new Error(`${err.kind} error running ${names}: ${err.message}`);
    const wall = (performance.now() - t0) / opts.reps;
    const g = await timer.read();
    if (s === 0) continue; // warm-up
    walls.push(wall);
    if (g !== null) gpus.push(g / opts.reps);
  }
  const outputs: Record<string, Float32Array> = {};
  for (const name of opts.readBack ?? [])
    outputs[name] = new Float32Array(await readBuffer(device, buffers[name], bufferBytes[name]));
  for (const b of Object.values(buffers)) b.destroy();
  return { wallMs: median(walls), gpuMs: gpus.length ? median(gpus) : null, outputs };
}
