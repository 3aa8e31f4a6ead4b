/** `npm run build`: write dist/web/strata-runtime.js, the runtime bundle `strata serve`'s page loads. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { bundleRuntime } from '../src/cli/web-runtime.ts';

mkdirSync('dist/web', { recursive: true });
writeFileSync('dist/web/strata-runtime.js', await bundleRuntime());
