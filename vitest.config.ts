import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // SwiftShader runs WGSL on two CPU cores: GPU tests are slow but must not time out.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    setupFiles: ['test/helpers/setup-env.ts'],
    fileParallelism: true,
    // Test files share their worker's modules, so the shared WebGPU device (runtime/node
    // nodeGpu) and the pipelines it compiled outlive a file: on SwiftShader compiling a kernel
    // costs 0.1-1.4 s, most of a tiny model's test, and many files compile the same kernels.
    // A full run took 1,573 s against 1,780 s isolated (2 cores, 2026-12-06); no test file
    // stubs globals or mocks modules, and the one that destroys the device (reliability) leaves
    // nodeGpu a fresh one.
    isolate: false,
    maxWorkers: 2,
  },
});
