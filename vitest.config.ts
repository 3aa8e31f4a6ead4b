import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // SwiftShader runs WGSL on two CPU cores: GPU tests are slow but must not time out.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    setupFiles: ['test/helpers/setup-env.ts'],
    fileParallelism: true,
    maxWorkers: 2,
  },
});
