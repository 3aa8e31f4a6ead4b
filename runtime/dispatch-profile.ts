/**
 * Where a step's GPU time goes: timestamp queries around every dispatch of a phase, each in a
 * compute pass of its own (GpuModel's PassProfiler with `perDispatch`), summed by the role a
 * dispatch plays in its layer ("mlp.down+residual", "attn attention", ...). Shared by the
 * benchmarks (bench/run.ts) and `strata explore --measure`. Separate passes drain the GPU
 * between dispatches, so the sum is larger than the one-pass step: read it as shares.
 */
import type { GpuContext } from './gpu.ts';
import type { GpuModel } from './model.ts';

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * `count` begin/end timestamp pairs, one per compute pass: the query set, its resolve and
 * readback buffers, and the milliseconds between each pair.
 */
export class TimestampPairs {
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

  destroy(): void {
    this.query.destroy();
    this.resolveBuf.destroy();
    this.readBuf.destroy();
  }
}

/**
 * Timestamps around every dispatch of a step, each in its own compute pass (the runtime's
 * `perDispatch` mode). Each read() keeps that step's per-dispatch milliseconds in `samples` and
 * returns their sum.
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
      median(this.samples.map((s) => s[i]!)),
    );
  }

  destroy(): void {
    this.pairs.destroy();
  }
}

/** A phase's GPU time by role: the dispatches of each, and their summed median milliseconds. */
export interface PhaseProfile {
  /** Sum over the dispatches, each timed in a pass of its own. */
  dispatchSumMs: number;
  /** Largest first. */
  roles: { role: string; dispatches: number; ms: number }[];
}

/** A dispatch label's role in its layer: "l12.mlp.down+residual [q4]" → "mlp.down+residual". */
export function dispatchRole(label: string): string {
  return label.replace(/^l\d+\./, '').replace(/\s*\[[^\]]*\]/g, '');
}

/**
 * Profile `phase` of `gm` over the steps that `steps` runs with the timer it is given (e.g.
 * Sequence.profileDecode); null on an adapter without timestamp-query.
 */
export async function profilePhase(
  gpu: GpuContext,
  gm: GpuModel,
  phase: 'prefill' | 'decode',
  steps: (timer: DispatchTimer) => Promise<unknown>,
): Promise<PhaseProfile | null> {
  if (!gpu.features.includes('timestamp-query')) return null;
  const dispatches = gm.manifest.phases[phase].dispatches;
  const timer = new DispatchTimer(gpu, dispatches.length);
  try {
    await steps(timer);
    if (timer.samples.length === 0) return null;
    const ms = timer.medians();
    const roles = new Map<string, { role: string; dispatches: number; ms: number }>();
    for (const [i, d] of dispatches.entries()) {
      const role = dispatchRole(d.label);
      const r = roles.get(role) ?? { role, dispatches: 0, ms: 0 };
      r.dispatches++;
      r.ms += ms[i]!;
      roles.set(role, r);
    }
    return {
      dispatchSumMs: ms.reduce((a, b) => a + b, 0),
      roles: [...roles.values()].sort((a, b) => b.ms - a.ms),
    };
  } finally {
    timer.destroy();
  }
}
