/** Worker threads that run TypeScript modules, from tsx, vitest or plain node alike. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';

// Workers do not inherit a loader registered by the parent (vitest has none to give), so each
// one registers tsx itself before importing its module.
// require.resolve would give the CommonJS build; the ESM one is named by tsx's exports map.
const TSX_API = ((): string => {
  const pkgFile = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as {
    exports: Record<string, { import: { default: string } | string }>;
  };
  const entry = pkg.exports['./esm/api']!.import;
  const rel = typeof entry === 'string' ? entry : entry.default;
  return pathToFileURL(join(dirname(pkgFile), rel)).href;
})();

export function spawnTsWorker(
  module: URL,
  workerData?: unknown,
  resourceLimits?: ResourceLimits,
): Worker {
  const boot =
    `import(${JSON.stringify(TSX_API)})` +
    `.then((m) => { m.register(); return import(${JSON.stringify(module.href)}); })`;
  return new Worker(boot, { eval: true, workerData, resourceLimits, stdout: false });
}
