/**
 * loadModel() over HTTP in Node (dawn.node, Node's fetch, the serve command's static server):
 * the text it streams is the Node runtime's for the same bundle (same kernels, same device:
 * exact), onToken sees every id, an AbortSignal stops generation with its reason, and dispose()
 * frees the buffers (a disposed model refuses to generate). A server that gzips the weights (as
 * `vite preview` does) is read right: its Content-Length counts encoded bytes, not the file's.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../../src/spec/load.ts';
import { compileModel } from '../../codegen/compile.ts';
import { writeBundle } from '../../codegen/bundle.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { openBundle } from '../../runtime/node/bundle-node.ts';
import { GpuModel } from '../../runtime/model.ts';
import { byteTokenizer } from '../../runtime/tokenizer.ts';
import { loadModel, type LoadProgress } from '../../runtime/web.ts';
import { startServer, type Served } from '../../src/cli/serve-cmd.ts';
import { loadModelInput } from '../../src/cli/model-input.ts';
import { testGpu } from '../helpers/gpu.ts';

describe('loadModel over HTTP', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'strata-webload-'));
  const dir = join(tmp, 'bundle');
  let served: Served;
  let expected: number[] = [];

  beforeAll(async () => {
    const gpu = await testGpu();
    const model = loadSpec('specs/tiny-llama.strata');
    const compiled = compileModel(model, { caps: gpu.caps, maxT: 16, capacity: 64 });
    await writeBundle(compiled, randomWeights(model, 3), dir);
    const gm = await GpuModel.load(gpu, await openBundle(dir));
    const seq = gm.newSequence();
    for await (const t of seq.generate(byteTokenizer(256).encode('Hi'), { maxTokens: 12 }))
      expected.push(t);
    seq.destroy();
    gm.destroy();
    served = await startServer(dir, { port: 0 });
  });
  afterAll(async () => {
    await served?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('streams the Node runtime’s tokens, reports bytes, aborts and disposes', async () => {
    const progress: LoadProgress[] = [];
    const model = await loadModel(`${served.url}bundle/`, {
      gpu: await testGpu(),
      onProgress: (p) => progress.push(p),
    });
    const weights = progress.filter((p) => p.stage === 'weights');
    const last = weights[weights.length - 1];
    expect(last.total).toBeGreaterThan(0);
    expect(last.loaded).toBe(last.total);
    expect(progress[progress.length - 1].stage).toBe('ready');

    const ids: number[] = [];
    let text = '';
    for await (const t of model.generate('Hi', { maxTokens: 12, onToken: (id) => ids.push(id) }))
      text += t;
    expect(ids).toEqual(expected);
    expect(text).toBe(byteTokenizer(256).decode(expected));
    expect(model.lastStop).toBe('max-tokens');

    const ac = new AbortController();
    const got: number[] = [];
    const run = async () => {
      for await (const _ of model.generate('Hi', {
        maxTokens: 12,
        signal: ac.signal,
        onToken: (id) => {
          got.push(id);
          if (got.length === 3) ac.abort(new Error('stopped by the test'));
        },
      }));
    };
    await expect(run()).rejects.toThrow('stopped by the test');
    expect(got).toEqual(expected.slice(0, 3));

    model.dispose();
    await expect(model.generate('Hi').next()).rejects.toThrow('disposed');
  });

  it('names the URL of a missing bundle', async () => {
    await expect(loadModel(`${served.url}nope/`, { gpu: await testGpu() })).rejects.toThrow(
      /nope\/manifest\.json: HTTP 404/,
    );
  });

  it('stops a load on abort, naming no half-loaded model', async () => {
    const ac = new AbortController();
    const load = loadModel(`${served.url}bundle/`, {
      gpu: await testGpu(),
      signal: ac.signal,
      onProgress: (p) => {
        if (p.stage === 'weights' && p.loaded > 0) ac.abort(new Error('load stopped by the test'));
      },
    });
    await expect(load).rejects.toThrow('load stopped by the test');
  });

  it('serves only the bundle folder’s files, with the ETag and length the cache compares', async () => {
    const head = await fetch(`${served.url}bundle/weights.safetensors`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('etag')).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
    for (const p of ['bundle/..%2F..%2Fetc%2Fpasswd', 'bundle/../package.json', 'bundle/shaders'])
      expect((await fetch(`${served.url}${p}`)).status).toBe(404);
    const page = await (await fetch(served.url)).text();
    expect(page).toContain("import('/strata-runtime.js')");
    const js = await fetch(`${served.url}strata-runtime.js`);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
  });

  it("streams text through a bundle's tokenizer.json", async () => {
    // The llama fixture with the Unigram test tokenizer beside it, compiled with its tokenizer.
    const hf = join(tmp, 'hf');
    cpSync('test/fixtures/hf/llama', hf, { recursive: true });
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      cpSync(join('test/fixtures/tokenizers/unigram', f), join(hf, f));
    const input = await loadModelInput(hf, { seed: 0 });
    const gpu = await testGpu();
    const out = join(tmp, 'hf-bundle');
    const compiled = compileModel(input.model, { caps: gpu.caps, maxT: 16, capacity: 64 });
    await writeBundle(compiled, input.weights, out, undefined, {}, input.tokenizer);
    await input.close();
    const srv = await startServer(out, { port: 0 });
    try {
      const model = await loadModel(`${srv.url}bundle/manifest.json`, { gpu });
      expect(model.manifest.tokenizer.kind).toBe('file');
      const ids: number[] = [];
      let text = '';
      const prompt = 'the quick fox';
      for await (const t of model.generate(prompt, {
        maxTokens: 8,
        ignoreEos: true,
        onToken: (id) => ids.push(id),
      }))
        text += t;
      const gm = await GpuModel.load(gpu, await openBundle(out));
      const seq = gm.newSequence();
      const want: number[] = [];
      for await (const t of seq.generate(model.tokenizer!.encode(prompt), { maxTokens: 8 }))
        want.push(t);
      seq.destroy();
      gm.destroy();
      expect(ids).toEqual(want);
      expect(text).toBe(model.tokenizer!.decode(want));
      model.dispose();
    } finally {
      await srv.close();
    }
  });

  it('reads weights a server sends gzip-encoded, whose Content-Length is not the file’s', async () => {
    // Every file gzipped with its encoded length, as a compressing static server sends it.
    const srv = createServer((req, res) => {
      const file = join(dir, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
      let body: Buffer;
      try {
        body = gzipSync(readFileSync(file));
      } catch {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
    try {
      const { port } = srv.address() as { port: number };
      const progress: LoadProgress[] = [];
      const model = await loadModel(`http://127.0.0.1:${port}/`, {
        gpu: await testGpu(),
        onProgress: (p) => progress.push(p),
      });
      // The total comes from the safetensors header once it is read: the bar fills, not jumps.
      const bytes = readFileSync(join(dir, 'weights.safetensors')).length;
      const weights = progress.filter((p) => p.stage === 'weights');
      expect(weights[weights.length - 1]).toMatchObject({ loaded: bytes, total: bytes });
      expect(weights.some((p) => p.total === bytes && p.loaded < bytes / 2)).toBe(true);
      const ids: number[] = [];
      for await (const _ of model.generate('Hi', { maxTokens: 12, onToken: (id) => ids.push(id) }));
      expect(ids).toEqual(expected);
      model.dispose();
    } finally {
      await new Promise((ok) => srv.close(ok));
    }
  });
});
