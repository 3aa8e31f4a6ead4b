import { describe, expect, it } from 'vitest';
import { STEP_BINDING, STEP_WGSL, storageDecl, type KernelLaunch } from '../codegen/kernel-ir.ts';
import { runLaunch, testGpu } from './helpers/gpu.ts';

describe('webgpu device', () => {
  it('opens an adapter with the limits we rely on', async () => {
    const gpu = await testGpu();
    expect(gpu.caps.maxStorageBindingBytes).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(gpu.caps.maxStorageBuffersPerStage).toBeGreaterThanOrEqual(8);
  });

  it('runs a kernel whose grid depends on T, reading the Step uniform', async () => {
    const launch: KernelLaunch = {
      kernel: {
        name: 'scale_by_pos',
        bindings: [STEP_BINDING, { name: 'x', access: 'read_write' }],
        workgroupSize: [64, 1, 1],
        code: `${STEP_WGSL}\n${storageDecl(1, 'x', 'read_write')}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < step.T) { x[g.x] = x[g.x] * f32(step.pos); }
}`,
      },
      grid: [{ sym: 'T', div: 64 }, 1, 1],
    };
    const x = new Float32Array(100).fill(1);
    const out = await runLaunch(launch, { inputs: { x }, step: { T: 70, pos: 3, L: 1 } });
    expect(out.x[0]).toBe(3);
    expect(out.x[69]).toBe(3);
    expect(out.x[70]).toBe(1);
  });
});
