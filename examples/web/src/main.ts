/**
 * A page that runs a strata bundle with the package's browser runtime: it opens a WebGPU device,
 * streams the bundle's weights into it (progress in bytes), then streams generated text into the
 * page with tokens/s. The bundle's URL is `?bundle=URL` (default `bundle/`, i.e. public/bundle/
 * under Vite); `?cache=opfs|none` picks where weights are kept between visits (default: the
 * Cache API). The page's state is also in body[data-state] and #output[data-ids], for tests.
 */
import {
  loadModel,
  openDevice,
  type GpuContext,
  type LoadProgress,
  type WebModel,
} from '@strata-llm/strata/runtime';

type State = 'starting' | 'no-webgpu' | 'loading' | 'ready' | 'generating' | 'done' | 'error';

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`index.html has no #${id}`);
  return e as T;
}

const ui = {
  bundle: el('bundle'),
  adapter: el('adapter'),
  limits: el('limits'),
  progress: el<HTMLProgressElement>('progress'),
  load: el('load'),
  error: el('error'),
  form: el<HTMLFormElement>('form'),
  prompt: el<HTMLTextAreaElement>('prompt'),
  max: el<HTMLInputElement>('max'),
  temp: el<HTMLInputElement>('temp'),
  go: el<HTMLButtonElement>('go'),
  stop: el<HTMLButtonElement>('stop'),
  speed: el('speed'),
  output: el('output'),
};

function setState(s: State): void {
  document.body.dataset.state = s;
}

function showError(message: string, state: State = 'error'): void {
  ui.error.textContent = message;
  ui.error.hidden = false;
  setState(state);
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(b < 2 ** 20 ? 3 : 1)} MiB`;

/** The adapter, or null after telling the user why there is none. */
async function adapterOrExplain(): Promise<GPUAdapter | null> {
  if (!('gpu' in navigator)) {
    showError(
      'WebGPU is not available in this browser (navigator.gpu is missing). Use a recent Chrome, ' +
        'Edge or Safari, over https or http://localhost; in Chromium on Linux start it with ' +
        '--enable-unsafe-webgpu.',
      'no-webgpu',
    );
    return null;
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter)
    showError(
      'WebGPU is present but no GPU adapter was found (navigator.gpu.requestAdapter() returned ' +
        'null): the GPU may be blocklisted or disabled; in Chromium try --enable-unsafe-webgpu.',
      'no-webgpu',
    );
  return adapter;
}

function describeDevice(gpu: GpuContext): void {
  const i = gpu.adapterInfo;
  ui.adapter.textContent =
    [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' · ') ||
    '(unnamed adapter)';
  const c = gpu.caps;
  ui.limits.textContent =
    `storage binding ${mib(c.maxStorageBindingBytes)}, buffer ${mib(c.maxBufferBytes)}, ` +
    `${c.maxStorageBuffersPerStage} storage buffers/stage; features: ${gpu.features.join(', ') || 'none'}`;
}

function showProgress(p: LoadProgress): void {
  ui.progress.max = p.total || 1;
  ui.progress.value = p.loaded;
  ui.load.textContent =
    p.stage === 'weights'
      ? `weights ${mib(p.loaded)} / ${mib(p.total)}${p.fromCache ? ' (from the cache)' : ''}`
      : `${p.stage} ${p.loaded} / ${p.total}`;
}

/** Generate on submit, streaming text and the rate into the page; Stop aborts. */
function wire(model: WebModel): void {
  let abort: AbortController | null = null;
  ui.stop.onclick = () => abort?.abort();
  ui.form.onsubmit = async (ev) => {
    ev.preventDefault();
    ui.go.disabled = true;
    ui.stop.disabled = false;
    ui.error.hidden = true;
    ui.output.textContent = '';
    const ids: number[] = [];
    abort = new AbortController();
    setState('generating');
    const start = performance.now();
    let first = 0;
    try {
      const stream = model.generate(ui.prompt.value, {
        maxTokens: Number(ui.max.value),
        temperature: Number(ui.temp.value),
        signal: abort.signal,
        onToken: (id) => {
          ids.push(id);
          if (ids.length === 1) first = performance.now();
          ui.output.dataset.ids = ids.join(',');
          // The rate counts from the first token on: the prompt's prefill is the wait before it.
          const secs = (performance.now() - first) / 1000;
          const rate = ids.length > 1 ? `, ${((ids.length - 1) / secs).toFixed(1)} tokens/s` : '';
          ui.speed.textContent = `${ids.length} tokens${rate} (first after ${((first - start) / 1000).toFixed(2)} s)`;
        },
      });
      for await (const text of stream) ui.output.textContent += text;
      setState('done');
    } catch (e) {
      if ((e as Error)?.name === 'AbortError') setState('done');
      else showError(String((e as Error)?.message ?? e));
    } finally {
      ui.go.disabled = false;
      ui.stop.disabled = true;
    }
  };
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const bundle = params.get('bundle') ?? 'bundle/';
  const cache = params.get('cache');
  ui.bundle.textContent = new URL(bundle, location.href).href;
  const adapter = await adapterOrExplain();
  if (!adapter) return;
  const gpu = await openDevice(
    adapter,
    /swiftshader/i.test(`${adapter.info.description} ${adapter.info.device}`),
  );
  describeDevice(gpu);
  setState('loading');
  const t0 = performance.now();
  const model = await loadModel(bundle, {
    gpu,
    cache: cache === 'opfs' || cache === 'none' ? cache : 'cache-api',
    onProgress: showProgress,
  });
  const m = model.manifest;
  ui.load.textContent =
    `loaded ${m.model.name} (${m.tensors.length} tensors, ${m.kernels.length} kernels) in ` +
    `${((performance.now() - t0) / 1000).toFixed(1)} s${model.fromCache ? ', weights from the cache' : ''}`;
  // The page owns the device it opened: free both when it goes.
  addEventListener('pagehide', () => {
    model.dispose();
    gpu.device.destroy();
  });
  wire(model);
  ui.go.disabled = false;
  setState('ready');
}

main().catch((e: unknown) => showError(String((e as Error)?.message ?? e)));
