/**
 * The browser runtime as one ES module, for `strata serve`'s page. A page cannot import the
 * package's dist/runtime/*.js as they are: they import bare package names (@huggingface/tokenizers,
 * ajv) that a browser resolves only through an import map, and those packages' own files
 * (CommonJS in ajv's case) would have to be mapped too. So the runtime is bundled with esbuild:
 * at build time into dist/web/strata-runtime.js (shipped in the package, so an installed CLI
 * needs no bundler), and on the fly in a source checkout, where esbuild is a devDependency.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** dist/web/strata-runtime.js seen from dist/src/cli/. */
const BUILT = new URL('../../web/strata-runtime.js', import.meta.url);

/** Bundle runtime/index (the browser-safe entry) into one ESM file's text. */
export async function bundleRuntime(): Promise<string> {
  const ts = fileURLToPath(new URL('../../runtime/index.ts', import.meta.url));
  const js = fileURLToPath(new URL('../../runtime/index.js', import.meta.url));
  const entry = existsSync(ts) ? ts : js;
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new Error(
      `the page's runtime ${fileURLToPath(BUILT)} is missing and esbuild is not installed to build it (run 'npm run build' in a checkout)`,
    );
  }
  const r = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    // Minified (names kept: errors are told apart by their class name) to keep the tarball small.
    minify: true,
    keepNames: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  return r.outputFiles[0].text;
}

/** The runtime module the page imports: the built file when present, else bundled now. */
export async function runtimeScript(): Promise<string> {
  const built = fileURLToPath(BUILT);
  return existsSync(built) ? readFile(built, 'utf8') : bundleRuntime();
}
