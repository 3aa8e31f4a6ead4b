/**
 * Timing for benchmarks: wall time from submit to queue completion, and GPU
 * time from timestamp queries written at the start and end of one compute pass.
 * Only for bench/: tests never assert on time.
 */
import type { KernelLaunch, StepParams } from '../codegen/kernel-ir.ts';
import {
  bindGroupFor,
  createStepBuffer,
  createStorage,
  gridFor,
  pipelineFor,
  readBuffer,
  upload,
  writeStep,
  type GpuContext,
} from '../runtime/gpu.ts';

export interface Timing {
  /** Median wall milliseconds per iteration (submit → onSubmittedWorkDone). */
  wallMs: number;
  /** Median GPU milliseconds per iteration from timestamp queries (null if unsupported). */
  gpuMs: number | null;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * `count` begin/end timestamp pairs, one per compute pass: the query set, its resolve and
 * readback buffers, and the milliseconds between each pair.
 */
class TimestampPairs {
  private readonly query: GPUQuerySet;
  private readonly resolveBuf: GPUBuffer;
  private readonly readBuf: GPUBuffer;

  constructor(
    device: GPUDevice,
    readonly count: number,
  ) {
    this.query = device.createQuerySet({ type: 'timestamp', count: 2 * count });
    const size = 16 * count;
    this.resolveBuf = device.createBuffer({
      size,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    this.readBuf = device.createBuffer({
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  passDescriptor(pair: number): GPUComputePassDescriptor {
    if (pair >= this.count) throw new Error(`timestamp pair ${pair} >= ${this.count}`);
    return {
      timestampWrites: {
        querySet: this.query,
        beginningOfPassWriteIndex: 2 * pair,
        endOfPassWriteIndex: 2 * pair + 1,
      },
    };
  }

  resolve(enc: GPUCommandEncoder): void {
    enc.resolveQuerySet(this.query, 0, 2 * this.count, this.resolveBuf, 0);
    enc.copyBufferToBuffer(this.resolveBuf, 0, this.readBuf, 0, 16 * this.count);
  }

  async readMs(): Promise<number[]> {
    await this.readBuf.mapAsync(GPUMapMode.READ);
    const t = new BigInt64Array(this.readBuf.getMappedRange().slice(0));
    this.readBuf.unmap();
    return Array.from({ length: this.count }, (_, i) => Number(t[2 * i + 1] - t[2 * i]) / 1e6);
  }
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
 * Timestamps around every dispatch of a step, each in its own compute pass (the runtime's
 * `perDispatch` mode): where a decode step's GPU time goes. Each read() keeps that step's
 * per-dispatch milliseconds in `samples` and returns their sum.
 */
export class DispatchTimer {
  readonly perDispatch = true;
  readonly samples: number[][] = [];
  private readonly pairs: TimestampPairs;

  constructor(gpu: GpuContext, count: number) {
    if (!gpu.features.includes('timestamp-query'))
      throw new Error('DispatchTimer needs the timestamp-query feature');
    this.pairs = new TimestampPairs(gpu.device, count);
  }

  passDescriptor(dispatch = 0): GPUComputePassDescriptor {
    return this.pairs.passDescriptor(dispatch);
  }

  resolve(enc: GPUCommandEncoder): void {
    this.pairs.resolve(enc);
  }

  async read(): Promise<number> {
    const ms = await this.pairs.readMs();
    this.samples.push(ms);
    return ms.reduce((a, b) => a + b, 0);
  }

  /** Median milliseconds of each dispatch over the steps read so far. */
  medians(): number[] {
    return Array.from({ length: this.pairs.count }, (_, i) =>
      median(this.samples.map((s) => s[i])),
    );
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
  writeStep(device, buffers.step, step);
  const calls = launches.map((l) => ({
    pipeline: pipelineFor(device, l.kernel),
    bind: bindGroupFor(device, l.kernel, buffers),
    grid: gridFor(l, step),
  }));
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
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
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
