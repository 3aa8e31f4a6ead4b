/** Memory bandwidth figures for the decode bound: a device copy and a streaming read. */
import { STEP_BINDING, STEP_WGSL } from '../codegen/kernel-ir.ts';
import { createStorage, type GpuContext } from '../runtime/gpu.ts';
import { median, timeLaunches } from './gpu-timer.ts';

/** Device copy bandwidth (read + write bytes per second) for the decode bandwidth bound. */
export async function copyBandwidth(gpu: GpuContext): Promise<number> {
  const bytes = 1 << 30;
  const a = createStorage(gpu.device, bytes, 'a');
  const b = createStorage(gpu.device, bytes, 'b');
  const times = [];
  for (let i = 0; i < 6; i++) {
    const enc = gpu.device.createCommandEncoder();
    enc.copyBufferToBuffer(a, 0, b, 0, bytes);
    const t0 = performance.now();
    gpu.device.queue.submit([enc.finish()]);
    await gpu.device.queue.onSubmittedWorkDone();
    if (i > 0) times.push(performance.now() - t0);
  }
  a.destroy();
  b.destroy();
  return (2 * bytes) / (median(times) * 1e-3);
}

/** Streaming-read bandwidth: every thread sums vec4s over a 1 GiB buffer (what decode's GEMVs do). */
export async function readBandwidth(gpu: GpuContext, bytes = 1 << 30): Promise<number> {
  const threads = 256 * 4096;
  const launch = {
    kernel: {
      name: 'read_bandwidth',
      bindings: [
        STEP_BINDING,
        { name: 'src', access: 'read' as const },
        { name: 'dst', access: 'read_write' as const },
      ],
      workgroupSize: [256, 1, 1] as [number, number, number],
      code: `${STEP_WGSL}
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u) {
  // Reading step keeps binding 0 in the auto layout every strata kernel shares.
  if (step.T == 0u) { return; }
  var acc = vec4<f32>(0.0);
  for (var i = g.x; i < ${bytes / 16}u; i += ${threads}u) { acc += src[i]; }
  dst[g.x] = acc.x + acc.y + acc.z + acc.w;
}`,
    },
    grid: [threads / 256, 1, 1] as [number, number, number],
  };
  const t = await timeLaunches(
    gpu,
    [launch],
    { src: bytes, dst: threads * 4 },
    { T: 1, pos: 0, L: 1 },
    { reps: 10, samples: 5 },
  );
  return bytes / ((t.gpuMs ?? t.wallMs) * 1e-3);
}
