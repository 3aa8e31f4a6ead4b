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
    // Full runs on 2 cores took 1,514-1,750 s shared against 1,780 s isolated (2026-12-06; runs
    // of the same code vary by 15%, so the gain is within the noise's range but every shared
    // run was faster). No test file stubs globals or mocks modules, and the one that destroys
    // the device (reliability) leaves nodeGpu a fresh one.
    isolate: false,
    maxWorkers: 2,
  },
});
