/**
 * `strata serve BUNDLE|SPEC|HF-FOLDER`: a static server on 127.0.0.1 with a chat page that
 * loads the bundle in the browser through the web runtime (runtime/web.ts). A spec or a
 * HuggingFace folder is compiled first into a temporary bundle, removed when the server stops.
 *
 * Routes: `/` the page (serve-page.ts), `/strata-runtime.js` the runtime as one ES module
 * (web-runtime.ts), `/bundle/<file>` the bundle's files (only regular files inside the folder;
 * ETag and Content-Length, which the page's weights cache compares; HEAD).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, realpathSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from './command.ts';
import { UserError } from './command.ts';
import {
  COMMON_COMPILE_HELP,
  COMMON_COMPILE_OPTIONS,
  compileWithOptions,
  gpuFlags,
  intOption,
  targetCaps,
} from './compile-cmd.ts';
import { isBundleDir, loadModelInput } from './model-input.ts';
import { writeBundle } from '../../codegen/bundle.ts';
import { chatPage } from './serve-page.ts';
import { runtimeScript } from './web-runtime.ts';

const TYPES: Record<string, string> = {
  '.json': 'application/json',
  '.wgsl': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

export interface Served {
  url: string;
  server: Server;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-cache' });
  res.end(body);
}

/** A file of the bundle folder `root` (a realpath) for URL path `rel`, or null. */
function bundleFile(
  root: string,
  rel: string,
): { path: string; size: number; mtime: number } | null {
  let path: string;
  try {
    path = realpathSync(join(root, decodeURIComponent(rel)));
  } catch {
    return null;
  }
  if (!path.startsWith(root + sep)) return null;
  const st = statSync(path);
  return st.isFile() ? { path, size: st.size, mtime: st.mtimeMs } : null;
}

/** Serve `bundleDir` and the chat page on host:port (port 0: any free one). */
export async function startServer(
  bundleDir: string,
  opts: { host?: string; port?: number; title?: string } = {},
): Promise<Served> {
  const root = realpathSync(bundleDir);
  const script = await runtimeScript();
  const page = chatPage({ title: opts.title ?? bundleDir });
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return send(res, 405, 'text/plain', 'GET or HEAD only\n');
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/' || path === '/index.html')
      return send(res, 200, 'text/html; charset=utf-8', page);
    if (path === '/strata-runtime.js')
      return send(res, 200, 'text/javascript; charset=utf-8', script);
    if (path.startsWith('/bundle/')) {
      const f = bundleFile(root, path.slice('/bundle/'.length));
      if (!f) return send(res, 404, 'text/plain', `no such bundle file: ${path}\n`);
      const ext = /\.[^./]+$/.exec(f.path)?.[0] ?? '';
      res.writeHead(200, {
        'content-type': TYPES[ext] ?? 'application/octet-stream',
        'content-length': String(f.size),
        etag: `"${f.size.toString(16)}-${Math.floor(f.mtime).toString(16)}"`,
        'cache-control': 'no-cache',
      });
      if (req.method === 'HEAD') return res.end();
      createReadStream(f.path)
        .on('error', () => res.destroy())
        .pipe(res);
      return;
    }
    send(res, 404, 'text/plain', `not found: ${path}\n`);
  };
  const server = createServer(handle);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return {
    url: `http://${host}:${port}/`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Serve a bundle (or a spec, compiled first) with a chat page on 127.0.0.1',
  usage: `usage: strata serve <bundle-dir|spec|hf-folder> [--port N] [options]

Starts a static server on 127.0.0.1 with a chat page that runs the model in the browser on
WebGPU: prompt box, streamed tokens, load progress, tokens/s, the adapter and its limits.
The page's URL is printed on stdout; Ctrl-C stops the server.

  --port N           port to listen on (default 8080; 0 picks a free one)
(spec and HuggingFace inputs are compiled into a temporary bundle first:)
${COMMON_COMPILE_HELP}`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...COMMON_COMPILE_OPTIONS, port: { type: 'string' } },
    });
    if (positionals.length !== 1)
      throw new UserError('serve takes one bundle folder, spec or HuggingFace folder (see --help)');
    const port = intOption(values.port, 'port', 8080, 0)!;
    if (port > 65535) throw new UserError(`--port must be at most 65535, got ${port}`);
    const inputPath = positionals[0];
    let dir = inputPath;
    let temp: string | null = null;
    if (!isBundleDir(inputPath)) {
      const input = await loadModelInput(inputPath, {
        seed: intOption(values.seed, 'seed', 0) ?? 0,
        weightsFile: values.weights,
        hf: values.hf,
      });
      try {
        const caps = await targetCaps(values.target, gpuFlags(values['gpu-flags']));
        const compiled = compileWithOptions(input.model, caps, values);
        temp = await mkdtemp(join(tmpdir(), 'strata-serve-'));
        dir = join(temp, 'bundle');
        await writeBundle(compiled, input.weights, dir, undefined, {}, input.tokenizer);
        console.error(`strata serve: compiled ${input.describe} into ${dir}`);
      } finally {
        await input.close();
      }
    }
    let served: Served;
    try {
      served = await startServer(dir, { port, title: inputPath });
    } catch (e) {
      if (temp) await rm(temp, { recursive: true, force: true });
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') throw new UserError(`port ${port} is in use (try --port 0)`);
      throw e;
    }
    console.log(`strata serve: ${served.url} (bundle ${dir})`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await served.close();
    if (temp) await rm(temp, { recursive: true, force: true });
    return 0;
  },
};
