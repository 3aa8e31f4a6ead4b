/**
 * The web entry: load a bundle from a URL and stream text from it.
 *
 *   const model = await loadModel('/bundle/', { onProgress });
 *   for await (const text of model.generate('Hello', { maxTokens: 32 })) out.append(text);
 *   model.dispose();
 *
 * The manifest and shaders are fetched whole (small); weights.safetensors is read as one
 * streamed body, tensor by tensor in file order, each piece written straight into its GPU buffer
 * (runtime/weights-stream.ts), so the JS heap never holds the file or even a whole tensor.
 * Browser-safe; any fetch and GpuContext may be passed in (Node tests use dawn.node).
 */
import type { BundleManifest, BundleSource } from '../codegen/manifest.ts';
import { BundleError, checkManifest } from './manifest-check.ts';
import { GpuModel, type GenerateOptions, type StopReason } from './model.ts';
import { openBrowserDevice, type GpuContext } from './gpu.ts';
import { byteTokenizer, hfTokenizer, type Tokenizer } from './tokenizer.ts';
import { streamSafetensors } from './weights-stream.ts';
import { canvasView } from './canvas-view.ts';
import {
  canvasMaskId,
  diffusionGenerate,
  settingsOf,
  type CanvasProgress,
  type WebDiffusionSettings,
} from './web-diffusion.ts';

export type { CanvasProgress, WebDiffusionSettings } from './web-diffusion.ts';

/** A diffusion step as onCanvas sees it: CanvasProgress and the canvas as `strata run` prints it. */
export interface WebCanvasProgress extends CanvasProgress {
  /** The generated region: text with masks as ░ (ids and _ without a tokenizer). */
  line: string;
}

/** Where a load stands. During 'weights', `loaded`/`total` are bytes; 'pipelines' counts kernels. */
export interface LoadProgress {
  stage: 'manifest' | 'weights' | 'pipelines' | 'ready';
  loaded: number;
  total: number;
  /** True when the weights come from the cache (LoadModelOptions.cache). */
  fromCache: boolean;
}

export interface LoadModelOptions {
  onProgress?: (p: LoadProgress) => void;
  /** Aborts the load: fetches stop, what was allocated is freed, the promise rejects. */
  signal?: AbortSignal;
  /** The device to load on; default: navigator.gpu's (and dispose() then destroys it). */
  gpu?: GpuContext;
  /** Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /**
   * Where weights are cached between page loads: 'cache-api' (default where `caches` exists) keeps
   * the weights Response under its URL and reuses it while the server's ETag (or Last-Modified)
   * and length are unchanged, or when the server cannot be reached; 'opfs' does the same with a
   * file in the origin private file system (for browsers whose Cache API quota is smaller);
   * 'none' fetches every time.
   */
  cache?: 'cache-api' | 'opfs' | 'none';
  /** Cache API cache, or OPFS folder, name (default 'strata-weights'). */
  cacheName?: string;
}

export interface WebGenerateOptions extends Partial<GenerateOptions> {
  /** Stops generation: the loop ends by throwing the signal's reason. */
  signal?: AbortSignal;
  /** Called with each generated id and its text (possibly '' mid-character). */
  onToken?: (id: number, text: string) => void;
  /** Keep going past the tokenizer's EOS ids (default: stop there). */
  ignoreEos?: boolean;
  /**
   * Diffusion bundles (a spec with `diffusion bd3lm(...)`, `llada(...)` or `dream(...)`): sampler
   * settings over the bundle's defaults (runtime/web-diffusion.ts); maxTokens is the generated
   * length, temperature and seed apply as given.
   */
  diffusion?: WebDiffusionSettings;
  /** Diffusion bundles: each sampler step's commits and the canvas after them. */
  onCanvas?: (p: WebCanvasProgress) => void;
}

function fail(url: string, r: Response): BundleError {
  return new BundleError(`${url}: HTTP ${r.status} ${r.statusText}`.trimEnd());
}

/** What a cached copy is checked against: the server's validators and length when it was fetched. */
interface CachedMeta {
  etag: string | null;
  lastModified: string | null;
  /** The file's bytes; null where the response did not say (compressed, or no Content-Length). */
  length: number | null;
}

/**
 * The file's length from a response's Content-Length, or null where it does not say: absent, or
 * the length of a compressed body (Content-Encoding), which fetch hands over decoded.
 */
function fileLength(r: Response): number | null {
  const len = r.headers.get('content-length');
  const encoding = r.headers.get('content-encoding');
  if (encoding !== null && encoding.trim().toLowerCase() !== 'identity') return null;
  return len !== null && /^\d+$/.test(len) ? Number(len) : null;
}

/**
 * A cached copy is still the server's file: same validator (ETag, else Last-Modified) and, where
 * both sides know it, length (a compressed transfer's Content-Length is not the file's).
 */
function stillFresh(meta: CachedMeta, head: Response | null): boolean {
  if (!head) return true; // offline: the copy serves
  if (!head.ok) return false;
  const length = fileLength(head);
  if (meta.length !== null && length !== null && meta.length !== length) return false;
  if (meta.etag !== null) return meta.etag === head.headers.get('etag');
  return meta.lastModified !== null && meta.lastModified === head.headers.get('last-modified');
}

/**
 * Weights kept as a file in OPFS (`<cacheName>/<sha-256 of the URL>`, with a `.json` of what it
 * was checked against, written only once the file is complete, so a cut download is never
 * trusted).
 */
async function opfsWeights(
  url: string,
  f: typeof fetch,
  opts: LoadModelOptions,
): Promise<{ response: Response; fromCache: boolean; stored?: Promise<void> }> {
  const root = await navigator.storage.getDirectory();
  const dir = await root.getDirectoryHandle(opts.cacheName ?? 'strata-weights', { create: true });
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(url));
  const key = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
  const cached = await (async () => {
    try {
      const meta = JSON.parse(
        await (await (await dir.getFileHandle(`${key}.json`)).getFile()).text(),
      ) as CachedMeta;
      const file = await (await dir.getFileHandle(key)).getFile();
      return file.size === meta.length ? { meta, file } : null;
    } catch {
      return null; // not cached (or unreadable): fetch
    }
  })();
  if (cached) {
    const head = await f(url, { method: 'HEAD', signal: opts.signal }).catch(() => null);
    if (stillFresh(cached.meta, head)) {
      const headers = { 'content-length': String(cached.file.size) };
      return { response: new Response(cached.file.stream(), { headers }), fromCache: true };
    }
  }
  const r = await f(url, { signal: opts.signal });
  if (!r.ok || !r.body) throw fail(url, r);
  await dir.removeEntry(`${key}.json`).catch(() => undefined);
  const [mine, toDisk] = r.body.tee();
  const stored = (async () => {
    const handle = await dir.getFileHandle(key, { create: true });
    await toDisk.pipeTo(await handle.createWritable());
    const meta: CachedMeta = {
      etag: r.headers.get('etag'),
      lastModified: r.headers.get('last-modified'),
      length: (await handle.getFile()).size,
    };
    if (meta.etag === null && meta.lastModified === null) return; // nothing to check it against
    const w = await (await dir.getFileHandle(`${key}.json`, { create: true })).createWritable();
    await w.write(JSON.stringify(meta));
    await w.close();
  })().catch(() => undefined);
  return { response: new Response(mine, { headers: r.headers }), fromCache: false, stored };
}

/** Weights from the Cache API when it holds the same file, else from the network (and cached). */
async function weightsResponse(
  url: string,
  f: typeof fetch,
  opts: LoadModelOptions,
): Promise<{ response: Response; fromCache: boolean; stored?: Promise<void> }> {
  const kind = opts.cache ?? 'cache-api';
  if (kind === 'opfs' && typeof globalThis.navigator?.storage?.getDirectory === 'function')
    return opfsWeights(url, f, opts);
  const useCache = kind === 'cache-api' && typeof globalThis.caches !== 'undefined';
  if (!useCache) {
    const r = await f(url, { signal: opts.signal });
    if (!r.ok || !r.body) throw fail(url, r);
    return { response: r, fromCache: false };
  }
  const cache = await caches.open(opts.cacheName ?? 'strata-weights');
  const hit = await cache.match(url);
  if (hit?.body) {
    // A HEAD request says whether the file changed since it was cached; offline, the copy serves.
    const head = await f(url, { method: 'HEAD', signal: opts.signal }).catch(() => null);
    const meta: CachedMeta = {
      etag: hit.headers.get('etag'),
      lastModified: hit.headers.get('last-modified'),
      length: fileLength(hit),
    };
    const checkable = meta.etag !== null || meta.lastModified !== null;
    if (checkable && stillFresh(meta, head)) return { response: hit, fromCache: true };
  }
  const r = await f(url, { signal: opts.signal });
  if (!r.ok || !r.body) throw fail(url, r);
  // One copy streams into the cache while the other is read: tee() buffers only the lag between.
  await cache.delete(url);
  const stored = cache.put(url, r.clone()).catch(() => undefined);
  return { response: r, fromCache: false, stored };
}

/** A BundleSource over HTTP: the checked manifest, shaders fetched on demand, weights streamed. */
async function fetchBundle(
  base: string,
  f: typeof fetch,
  opts: LoadModelOptions,
  report: (p: Omit<LoadProgress, 'fromCache'>) => void,
): Promise<{ src: BundleSource; fromCache: () => boolean }> {
  const manifestUrl = new URL('manifest.json', base).href;
  report({ stage: 'manifest', loaded: 0, total: 1 });
  const r = await f(manifestUrl, { signal: opts.signal });
  if (!r.ok) throw fail(manifestUrl, r);
  let json: unknown;
  try {
    json = await r.json();
  } catch (e) {
    throw new BundleError(`${manifestUrl}: not JSON (${(e as Error).message})`);
  }
  const manifest: BundleManifest = checkManifest(json, manifestUrl);
  const files = new Set(manifest.kernels.map((k) => k.file));
  const weightsUrl = new URL(manifest.weightsFile, base).href;
  let fromCache = false;
  const getJson = async (file: string): Promise<object> => {
    const u = new URL(file, base).href;
    const res = await f(u, { signal: opts.signal });
    if (!res.ok) throw fail(u, res);
    try {
      return (await res.json()) as object;
    } catch (e) {
      throw new BundleError(`${u}: not JSON (${(e as Error).message})`);
    }
  };
  const src: BundleSource = {
    manifest,
    async shader(file) {
      // Only the manifest's files (checked relative, without '..'), never a caller's URL.
      if (!files.has(file)) throw new BundleError(`${manifestUrl}: no kernel's file is '${file}'`);
      const u = new URL(file, base).href;
      const res = await f(u, { signal: opts.signal });
      if (!res.ok) throw fail(u, res);
      return res.text();
    },
    tensor() {
      return Promise.reject(new Error('fetched bundles stream their tensors (streamTensors)'));
    },
    async streamTensors(sink) {
      const w = await weightsResponse(weightsUrl, f, opts);
      fromCache = w.fromCache;
      const length = fileLength(w.response);
      let total = length ?? 0;
      let loaded = 0;
      report({ stage: 'weights', loaded, total });
      await streamSafetensors(w.response.body!, weightsUrl, manifest.tensors, sink, {
        fileBytes: length,
        signal: opts.signal,
        onBytes: (n) => {
          loaded += n;
          report({ stage: 'weights', loaded, total: Math.max(total, loaded) });
        },
        onFileBytes: (n) => {
          if (length === null) total = n;
        },
      });
      // The cached copy is complete once its body is; a reload right after must find it.
      await w.stored;
    },
    async tokenizer() {
      const t = manifest.tokenizer;
      if (t.kind !== 'file') return null;
      const [tokenizer, config] = await Promise.all([getJson(t.file), getJson(t.config)]);
      return { tokenizer, config, eos: t.eos };
    },
  };
  return { src, fromCache: () => fromCache };
}

/**
 * Fetch a bundle (the URL of its folder, or of its manifest.json) and load it on the GPU.
 * Errors name the URL and the part at fault: an HTTP status, a manifest field, a tensor of a
 * truncated or corrupted weights file, a device limit (runtime/fits.ts).
 */
export async function loadModel(url: string | URL, opts: LoadModelOptions = {}): Promise<WebModel> {
  const f = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const href = new URL(String(url), globalThis.location?.href).href;
  const base = href.endsWith('/manifest.json')
    ? href.slice(0, -'manifest.json'.length)
    : href.endsWith('/')
      ? href
      : `${href}/`;
  let fromCache = (): boolean => false;
  const report = (p: Omit<LoadProgress, 'fromCache'>) =>
    opts.onProgress?.({ ...p, fromCache: fromCache() });
  const { src, fromCache: cached } = await fetchBundle(base, f, opts, report);
  fromCache = cached;
  const tokenizer = await tokenizerOf(src, base);
  const gpu = opts.gpu ?? (await openBrowserDevice());
  try {
    opts.signal?.throwIfAborted();
    const model = await GpuModel.load(gpu, src, (stage, done, total) => {
      if (stage === 'create pipelines') {
        opts.signal?.throwIfAborted();
        report({ stage: 'pipelines', loaded: done, total });
      }
    });
    report({ stage: 'ready', loaded: 1, total: 1 });
    return new WebModel(model, tokenizer, !opts.gpu, cached());
  } catch (e) {
    if (!opts.gpu) gpu.device.destroy();
    throw e;
  }
}

/** The bundle's tokenizer.json; UTF-8 bytes for a spec's bundle (vocab ≥ 256); else none. */
async function tokenizerOf(src: BundleSource, base: string): Promise<Tokenizer | null> {
  const t = src.manifest.tokenizer;
  const files = await src.tokenizer();
  if (files && t.kind === 'file') return hfTokenizer(files, new URL(t.file, base).href);
  const vocab = src.manifest.model.vocab;
  return t.kind === 'bytes' && vocab >= 256 ? byteTokenizer(vocab) : null;
}

/** A loaded model: generate text from it, then dispose() of its GPU memory. */
export class WebModel {
  /** Why the last generate() that ran to its end stopped. */
  lastStop: StopReason | null = null;
  private disposed = false;

  constructor(
    readonly gpuModel: GpuModel,
    /** The bundle's tokenizer; null for a bundle without one (prompts must then be ids). */
    readonly tokenizer: Tokenizer | null,
    private readonly ownsDevice: boolean,
    /** True when the weights came from the cache. */
    readonly fromCache: boolean,
  ) {}

  get manifest(): BundleManifest {
    return this.gpuModel.manifest;
  }

  get gpu(): GpuContext {
    return this.gpuModel.gpu;
  }

  /**
   * Stream the text of generated tokens for `prompt` (text through the bundle's tokenizer, or
   * token ids), each call on a fresh sequence. Greedy unless `temperature` is set; maxTokens
   * defaults to 64; stops at the tokenizer's EOS unless `ignoreEos`.
   */
  async *generate(
    prompt: string | readonly number[],
    options: WebGenerateOptions = {},
  ): AsyncGenerator<string, void, undefined> {
    if (this.disposed) throw new Error('generate() on a disposed model');
    const { signal, onToken, ignoreEos, diffusion, onCanvas, ...rest } = options;
    signal?.throwIfAborted();
    let ids: number[];
    if (typeof prompt === 'string') {
      if (!this.tokenizer)
        throw new Error(
          'this bundle has no tokenizer (manifest tokenizer.kind "none"): pass the prompt as token ids',
        );
      ids = this.tokenizer.encode(prompt);
    } else ids = [...prompt];
    const vocab = this.manifest.model.vocab;
    const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== undefined) throw new Error(`prompt token id ${bad} is outside [0, ${vocab})`);
    const stopTokens = [
      ...(rest.stopTokens ?? []),
      ...(ignoreEos ? [] : (this.tokenizer?.eos ?? [])),
    ];
    const step = this.tokenizer?.decodeStream() ?? (() => '');
    if (this.manifest.model.diffusion) {
      yield* this.generateDiffusion(
        ids,
        rest,
        { signal, onToken, diffusion, onCanvas },
        stopTokens,
        step,
      );
      return;
    }
    if (diffusion || onCanvas)
      throw new Error(
        `diffusion${diffusion ? '' : ' progress (onCanvas)'} options given, but the bundle is an autoregressive model`,
      );
    const seq = this.gpuModel.newSequence();
    this.lastStop = null;
    try {
      const it = seq.generate(ids, { ...rest, maxTokens: rest.maxTokens ?? 64, stopTokens });
      for await (const id of it) {
        const text = step(id);
        onToken?.(id, text);
        // Checked after the token is delivered: the GPU already computed it.
        if (signal?.aborted) throw signal.reason;
        if (text) yield text;
      }
      this.lastStop = seq.lastStop;
    } finally {
      seq.destroy();
    }
  }

  /**
   * generate() on a diffusion bundle: the sampler runs on its own while the text of the settled
   * prefix is handed out after each step (see runtime/web-diffusion.ts). Stopping early (EOS, a
   * break in the caller's loop, the signal) stops the sampler at its next step.
   */
  private async *generateDiffusion(
    ids: number[],
    rest: Partial<GenerateOptions>,
    o: Pick<WebGenerateOptions, 'signal' | 'onToken' | 'diffusion' | 'onCanvas'>,
    stopTokens: readonly number[],
    step: (id: number) => string,
  ): AsyncGenerator<string, void, undefined> {
    const d = this.manifest.model.diffusion!;
    const kind = d.kind;
    for (const k of ['topK', 'topP'] as const)
      if (rest[k] !== undefined)
        throw new Error(
          `${k}: an autoregressive sampling option, but the bundle is a ${kind} diffusion model (diffusion settings: ${settingsOf(kind)})`,
        );
    const P = ids.length;
    const view = canvasView(P, canvasMaskId(d), {
      tok: this.tokenizer,
      ids: false,
    });
    const ready: number[] = [];
    let settled = P;
    let stopped = false;
    let wake: (() => void) | null = null;
    const seq = this.gpuModel.newSequence();
    this.lastStop = null;
    let finished = false;
    let failure: { error: unknown } | null = null;
    const run = diffusionGenerate(seq, ids, o.diffusion ?? {}, rest, (p) => {
      if (stopped) throw new Error('generation stopped');
      o.signal?.throwIfAborted();
      o.onCanvas?.({ ...p, line: view.line(p.canvas) });
      while (settled < p.final) ready.push(p.canvas[settled++]);
      wake?.();
    }).then(
      () => {
        finished = true;
        wake?.();
      },
      (error: unknown) => {
        finished = true;
        failure = { error };
        wake?.();
      },
    );
    try {
      for (;;) {
        while (ready.length) {
          const id = ready.shift()!;
          const text = step(id);
          o.onToken?.(id, text);
          if (o.signal?.aborted) throw o.signal.reason;
          if (text) yield text;
          if (stopTokens.includes(id)) {
            this.lastStop = 'stop-token';
            return;
          }
        }
        if (finished) break;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
      if (failure) throw (failure as { error: unknown }).error;
      this.lastStop = 'max-tokens';
    } finally {
      stopped = true;
      await run;
      seq.destroy();
    }
  }

  /** Free the model's GPU buffers (and the device, when loadModel opened it). Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.gpuModel.destroy();
    if (this.ownsDevice) this.gpu.device.destroy();
  }
}
