import { defineConfig } from 'vite';

export default defineConfig({
  // `npm install` links "@strata-llm/strata": "file:../.." to this checkout, whose dist/ then lies
  // outside this folder: the dev server may read it (an installed tarball needs no such rule).
  server: { fs: { allow: ['.', '../..'] } },
});
