/**
 * The package as a user gets it: built once into a staging folder (never the repo's dist/),
 * packed with npm, installed from the tarball into an empty project, then used there as a CLI
 * (`npx strata`) and as a library (`import` from an .mjs file), and installed into a copy of
 * examples/web, which must type-check and `vite build`. The installs read npm's cache
 * (--prefer-offline): CI's `npm ci` has just filled it with the same dependencies.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import {
  copyFileSync,
  cpSync,
  readdirSync,
  symlinkSync,
  mkdirSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleRuntime } from '../../src/cli/web-runtime.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  exports: Record<string, { default: string } | string>;
};
const SPEC = join(ROOT, 'specs', 'demo-hybrid.strata');

/**
 * The environment without what `npm test` sets for its own script: a child npm would take the
 * repo's package and prefix for its own.
 */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env))
    if (/^npm_(package_|lifecycle_|config_local_prefix$|config_global_prefix$)/.test(k))
      delete env[k];
  delete env.INIT_CWD;
  return env;
}

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, env: childEnv(), encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(' ')} (in ${cwd}) failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`,
    );
  }
}

interface Packed {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

/** A package.json's fields this test reads or rewrites. */
interface Manifest {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  [k: string]: unknown;
}

let tmp: string;
let project: string;
let packed: Packed;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'strata-pack-'));
  const stage = join(tmp, 'stage');
  // Only what `files` lists, plus package.json: the build goes here, so the repo is untouched.
  run(
    process.execPath,
    [
      join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      join(ROOT, 'tsconfig.build.json'),
      '--outDir',
      join(stage, 'dist'),
    ],
    ROOT,
  );
  // As `npm run build` does after tsc: the chat page's runtime, one ES module (tools/build-web.ts).
  mkdirSync(join(stage, 'dist', 'web'), { recursive: true });
  writeFileSync(join(stage, 'dist', 'web', 'strata-runtime.js'), await bundleRuntime());
  for (const f of ['package.json', 'README.md']) copyFileSync(join(ROOT, f), join(stage, f));
  // --ignore-scripts: prepack would build again, into the staging folder's missing sources.
  const out = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], stage);
  packed = (JSON.parse(out) as Packed[])[0];
  project = join(tmp, 'project');
  run('mkdir', [project], tmp);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'strata-user', private: true, type: 'module' }),
  );
  run(
    'npm',
    ['install', join(tmp, packed.filename), '--no-audit', '--no-fund', '--prefer-offline'],
    project,
  );
  copyFileSync(SPEC, join(project, 'demo.strata'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('holds only the built code, the README and package.json', () => {
    const top = new Set(packed.files.map((f) => f.path.split('/')[0]));
    expect([...top].sort()).toEqual(['README.md', 'dist', 'package.json']);
    expect(
      packed.files.some((f) => /\.test\.|fixtures|\.ts$/.test(f.path.replace(/\.d\.ts$/, ''))),
    ).toBe(false);
    // 1.0 MB on 2026-12-07 (292 modules and their declarations, 2.7 MB unpacked), grown with
    // the code; the source checkout's tarball was 10 MB and the test fixtures alone are 35 MB.
    expect(packed.size).toBeLessThan(2_000_000);
    for (const target of Object.values(PKG.bin))
      expect(packed.files.map((f) => f.path)).toContain(target.replace(/^\.\//, ''));
    // `serve`'s page runtime, prebuilt: an installed CLI has no bundler.
    expect(packed.files.map((f) => f.path)).toContain('dist/web/strata-runtime.js');
  });

  it('declares every package its built code imports, and no other', () => {
    const dist = join(project, 'node_modules', ...PKG.name.split('/'), 'dist');
    const used = new Set<string>();
    for (const f of packed.files.filter((x) => x.path.endsWith('.js'))) {
      // Comments may quote `from '…'` in prose; only code imports count.
      const code = readFileSync(join(dist, '..', f.path), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/^\s*\/\/.*$/gm, '');
      // Relative and absolute specifiers ('./x', '/strata-runtime.js' in serve's page) are no packages.
      // Static imports are statements (`import … from '…'`, `export … from '…'`); a message string
      // that says "from '…'" is none.
      const specifiers = [
        ...code.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"./][^'"]*)['"]/gm),
        ...code.matchAll(/^\s*import\s*['"]([^'"./][^'"]*)['"]/gm),
        ...code.matchAll(/\bimport\s*\(\s*['"]([^'"./][^'"]*)['"]/g),
      ];
      for (const m of specifiers) {
        if (m[1].startsWith('node:')) continue;
        used.add(m[1].startsWith('@') ? m[1].split('/').slice(0, 2).join('/') : m[1].split('/')[0]);
      }
    }
    // @webgpu/types: the .d.ts files name GPUDevice and friends; nothing imports it at run time.
    const deps = Object.keys(PKG.dependencies).filter((d) => d !== '@webgpu/types');
    // esbuild: `serve` bundles the page's runtime on the fly only in a source checkout (a
    // devDependency there); the package ships it prebuilt (dist/web/strata-runtime.js).
    used.delete('esbuild');
    expect([...used].sort()).toEqual(deps.sort());
  });

  it('runs as a CLI without tsx: check and inspect', () => {
    const check = run('npx', ['--no', 'strata', 'check', 'demo.strata'], project);
    expect(check).toMatch(/mamba1/);
    const inspect = run(
      'npx',
      ['--no', 'strata', 'inspect', 'demo.strata', '--target', 'baseline'],
      project,
    );
    expect(inspect).toMatch(/model demo-hybrid: [\d.]+[KMB]? parameters \([\d,]+\)/);
  });

  it('imports as a library: compiles a spec in memory and checks it against a device budget', () => {
    writeFileSync(
      join(project, 'use.mjs'),
      `
import { readFileSync } from 'node:fs';
import { parseSpec, compileModel, toManifest, BASELINE_CAPS } from '${PKG.name}';
import { GpuModel, checkBundleFits } from '${PKG.name}/runtime';
import { openBundle, acquire } from '${PKG.name}/node';
const model = parseSpec(readFileSync('demo.strata', 'utf8'), 'demo.strata');
const compiled = compileModel(model, { caps: BASELINE_CAPS, maxT: 8, capacity: 64 });
const manifest = toManifest(compiled);
checkBundleFits(BASELINE_CAPS, manifest);
console.log(JSON.stringify({
  name: manifest.model.name,
  kernels: manifest.kernels.length,
  dispatches: manifest.phases.decode.dispatches.length,
  entries: [typeof GpuModel.load, typeof openBundle, typeof acquire],
}));
`,
    );
    const got = JSON.parse(run(process.execPath, ['use.mjs'], project)) as {
      name: string;
      kernels: number;
      dispatches: number;
      entries: string[];
    };
    expect(got.name).toBe('demo-hybrid');
    expect(got.kernels).toBeGreaterThan(0);
    expect(got.dispatches).toBeGreaterThan(0);
    expect(got.entries).toEqual(['function', 'function', 'function']);
  });

  it('type-checks a strict TypeScript user of all three entries against the shipped .d.ts', () => {
    writeFileSync(
      join(project, 'use.ts'),
      `
import { parseSpec, compileModel, BASELINE_CAPS, type CompiledModel } from '${PKG.name}';
import { GpuModel, type GpuContext } from '${PKG.name}/runtime';
import { acquire, openBundle } from '${PKG.name}/node';
export async function tokens(text: string, bundle: string): Promise<number> {
  const c: CompiledModel = compileModel(parseSpec(text, 'x.strata'), { caps: BASELINE_CAPS });
  const gpu: GpuContext = await acquire();
  const model = await GpuModel.load(gpu, await openBundle(bundle));
  return c.kernels.length + model.vocab;
}
`,
    );
    // No skipLibCheck: the .d.ts themselves must check. WebGPU's types come from lib.dom.
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          lib: ['es2022', 'dom'],
          types: [],
          noEmit: true,
        },
        files: ['use.ts'],
      }),
    );
    run(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'],
      project,
    );
  });

  it("the runtime entry's built import graph reaches no Node module", () => {
    const pkgDir = join(project, 'node_modules', ...PKG.name.split('/'));
    const entry = PKG.exports['./runtime'];
    const seen = new Set<string>();
    const nodeImports: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const code = readFileSync(file, 'utf8');
      for (const m of code.matchAll(/(?:from\s*|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)) {
        if (m[1].startsWith('.')) visit(resolve(dirname(file), m[1]));
        else if (m[1].startsWith('node:')) nodeImports.push(`${file}: ${m[1]}`);
      }
    };
    visit(join(pkgDir, typeof entry === 'string' ? entry : entry.default));
    expect(seen.size).toBeGreaterThan(5);
    expect(nodeImports).toEqual([]);
    expect(existsSync(join(pkgDir, 'dist', 'runtime', 'index.d.ts'))).toBe(true);
  });

  it('builds examples/web with Vite against the installed package', () => {
    // A copy of the example as a user would check it out: no node_modules, build or bundle.
    const web = join(tmp, 'web');
    const src = join(ROOT, 'examples', 'web');
    cpSync(src, web, {
      recursive: true,
      filter: (f) =>
        !/[/\\](node_modules|dist|public[/\\]bundle|package-lock\.json)$/.test(f.slice(src.length)),
    });
    const pkg = JSON.parse(readFileSync(join(web, 'package.json'), 'utf8')) as Manifest;
    expect(Object.keys(pkg.dependencies ?? {})).toEqual([PKG.name]);
    // Vite and TypeScript come from this repo (vite through vitest) rather than a second download;
    // they must be the majors the example asks for.
    const fromVitest = createRequire(join(ROOT, 'node_modules', 'vitest', 'package.json'));
    const viteDir = dirname(fromVitest.resolve('vite/package.json'));
    const tsDir = join(ROOT, 'node_modules', 'typescript');
    const major = (dir: string) =>
      (
        JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }
      ).version.split('.')[0];
    const dev = pkg.devDependencies ?? {};
    expect(dev.vite).toMatch(new RegExp(`^\\^${major(viteDir)}\\.`));
    expect(dev.typescript).toMatch(new RegExp(`^\\^${major(tsDir)}\\.`));
    // The tarball in place of the example's link to this checkout (file:../..).
    pkg.dependencies = { [PKG.name]: `file:${join(tmp, packed.filename)}` };
    delete pkg.devDependencies;
    writeFileSync(join(web, 'package.json'), JSON.stringify(pkg, null, 2));
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], web);
    symlinkSync(viteDir, join(web, 'node_modules', 'vite'), 'dir'); // vite.config.ts imports it
    // The example's own `npm run build`: tsc against the shipped .d.ts, then vite build.
    run(process.execPath, [join(tsDir, 'bin', 'tsc'), '-p', '.'], web);
    run(process.execPath, [join(viteDir, 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], web);
    const html = readFileSync(join(web, 'dist', 'index.html'), 'utf8');
    const scripts = [...html.matchAll(/<script[^>]*src="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
    expect(scripts.length).toBe(1);
    const js = readdirSync(join(web, 'dist', 'assets'))
      .filter((f) => f.endsWith('.js'))
      .map((f) => readFileSync(join(web, 'dist', 'assets', f), 'utf8'))
      .join('\n');
    // The runtime is in the build (its weights cache's name and an error it raises), with every
    // package it imports bundled: nothing is left for the browser to resolve, least of all node:.
    expect(js).toContain('strata-weights');
    expect(js).toContain('fetched bundles stream their tensors');
    const bare = [...js.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"'./][^"']*)["']/g)].map(
      (m) => m[1],
    );
    expect(bare).toEqual([]);
  });
});
