/**
 * Kernel test harness: run one KernelLaunch on the shared test device with
 * named input arrays and read named outputs back.
 */
import {
  ROW_POS,
  type KernelLaunch,
  type StepParams,
  type SamplingParams,
} from '../../codegen/kernel-ir.ts';
import {
  bindGroupFor,
  checkKernel,
  createStepBuffer,
  createStorage,
  gridFor,
  pipelineFor,
  readBuffer,
  upload,
  writeStep,
  type GpuContext,
} from '../../runtime/gpu.ts';
import { nodeGpu } from '../../runtime/node/webgpu-node.ts';

export function testGpu(): Promise<GpuContext> {
  return nodeGpu();
}

export type HostArray = Float32Array | Uint32Array | Int32Array;

export interface LaunchIO {
  /** Buffers with initial contents (inputs, and in/out state such as caches). */
  inputs: Record<string, HostArray>;
  /** Output-only buffers: element counts (f32). */
  outputs?: Record<string, number>;
  step: StepParams;
  sampling?: SamplingParams;
}

/**
 * Runs launches in order on shared buffers (a later launch sees earlier writes)
 * and returns every buffer's final contents as Float32Array (reinterpret with
 * `new Uint32Array(x.buffer)` for u32 data).
 */
export async function runLaunches(
  launches: KernelLaunch[],
  io: LaunchIO,
): Promise<Record<string, Float32Array>> {
  const { device, caps } = await testGpu();
  const buffers: Record<string, GPUBuffer> = {};
  const sizes: Record<string, number> = {};
  for (const [name, data] of Object.entries(io.inputs)) {
    buffers[name] = createStorage(device, data.byteLength, name);
    sizes[name] = data.byteLength;
    upload(device, buffers[name], data);
  }
  for (const [name, n] of Object.entries(io.outputs ?? {})) {
    buffers[name] = createStorage(device, n * 4, name);
    sizes[name] = n * 4;
  }
  // A batched kernel's row_pos (each row's position offset) reads as zeros unless a test gives
  // it: every row at step.pos, as before rows could sit apart.
  if (!buffers[ROW_POS] && launches.some((l) => l.kernel.bindings.some((b) => b.name === ROW_POS)))
    buffers[ROW_POS] = createStorage(device, 4 * Math.max(1, io.step.T), ROW_POS);
  const stepBuf = createStepBuffer(device);
  buffers.step = stepBuf;
  writeStep(device, stepBuf, io.step, io.sampling);
  device.pushErrorScope('validation');
  const enc = device.createCommandEncoder();
  for (const launch of launches) {
    await checkKernel(device, launch.kernel);
    const grid = gridFor(launch, io.step);
    for (const g of grid) {
      if (g > caps.maxWorkgroupsPerDimension) throw new Error(`grid ${grid} over device limit`);
    }
    if (grid.some((g) => g === 0)) continue;
    const pass = enc.beginComputePass();
    pass.setPipeline(pipelineFor(device, launch.kernel));
    pass.setBindGroup(0, bindGroupFor(device, launch.kernel, buffers));
    pass.dispatchWorkgroups(...grid);
    pass.end();
  }
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err) throw new Error(`WebGPU validation error: ${err.message}`);
  const out: Record<string, Float32Array> = {};
  for (const name of Object.keys(sizes)) {
    out[name] = new Float32Array(await readBuffer(device, buffers[name], sizes[name]));
  }
  for (const b of Object.values(buffers)) b.destroy();
  return out;
}

export function runLaunch(
  launch: KernelLaunch,
  io: LaunchIO,
): Promise<Record<string, Float32Array>> {
  return runLaunches([launch], io);
}
