/**
 * The chat page `strata serve` serves: plain HTML and one module script that imports the runtime
 * bundle (/strata-runtime.js) and loads /bundle/. Its state is also in the DOM for tests:
 * body[data-state] (no-webgpu, loading, ready, generating, done, error), #output[data-ids], and for a
 * diffusion bundle #canvas (the canvas as it fills in, as `strata run` prints it) with data-steps.
 * `?cache=opfs` or `?cache=none` chooses where the weights are cached (LoadModelOptions.cache).
 */

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const SCRIPT = String.raw`
const $ = (id) => document.getElementById(id);
const setState = (s) => (document.body.dataset.state = s);
const showError = (msg) => {
  $('error').textContent = msg;
  $('error').hidden = false;
  setState('error');
};
const noWebGpu = (msg) => {
  showError(msg);
  setState('no-webgpu');
};
async function main() {
  if (!('gpu' in navigator)) {
    return noWebGpu('WebGPU is not available in this browser (navigator.gpu is missing). ' +
      'Use a recent Chrome, Edge or Safari over http://127.0.0.1 or https; in Chromium on Linux ' +
      'start it with --enable-unsafe-webgpu.');
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    return noWebGpu('WebGPU is present but no GPU adapter was found (navigator.gpu.requestAdapter() returned null): ' +
      'the GPU may be blocklisted or disabled; in Chromium try --enable-unsafe-webgpu.');
  }
  const rt = await import('/strata-runtime.js');
  const info = adapter.info ?? {};
  const gpu = await rt.openDevice(adapter, /swiftshader/i.test(info.description + ' ' + info.device), navigator.gpu.wgslLanguageFeatures);
  const c = gpu.caps;
  const mib = (b) => (b / 2 ** 20).toFixed(b < 2 ** 20 ? 3 : 0) + ' MiB';
  $('adapter').textContent = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' · ') || '(unnamed adapter)';
  $('limits').textContent =
    'storage binding ' + mib(c.maxStorageBindingBytes) + ', buffer ' + mib(c.maxBufferBytes) +
    ', ' + c.maxStorageBuffersPerStage + ' storage buffers/stage, ' + c.maxInvocationsPerWorkgroup +
    ' invocations/workgroup, ' + (c.maxWorkgroupStorageBytes / 1024) + ' KiB workgroup memory; features: ' +
    (gpu.features.join(', ') || 'none');
  setState('loading');
  const bar = $('progress');
  const t0 = performance.now();
  // ?cache=opfs|none picks where weights are kept between loads (default: the Cache API).
  const cache = new URLSearchParams(location.search).get('cache') || undefined;
  const model = await rt.loadModel('bundle/', {
    gpu,
    cache,
    onProgress: (p) => {
      bar.max = p.total || 1;
      bar.value = p.loaded;
      $('load').textContent = p.stage === 'weights'
        ? 'weights ' + mib(p.loaded) + ' / ' + mib(p.total) + (p.fromCache ? ' (from cache)' : '')
        : p.stage + ' ' + p.loaded + ' / ' + p.total;
    },
  });
  window.strataModel = model;
  const m = model.manifest;
  $('load').textContent = 'loaded ' + m.model.name + ' (' + m.tensors.length + ' tensors, ' + m.kernels.length +
    ' kernels) in ' + ((performance.now() - t0) / 1000).toFixed(1) + ' s' + (model.fromCache ? ', weights from the cache' : '');
  $('go').disabled = false;
  setState('ready');
  let abort = null;
  $('stop').onclick = () => abort?.abort();
  $('form').onsubmit = async (ev) => {
    ev.preventDefault();
    $('go').disabled = true;
    $('stop').disabled = false;
    const out = $('output');
    out.textContent = '';
    const canvas = $('canvas');
    canvas.textContent = '';
    canvas.hidden = !m.model.diffusion;
    let steps = 0;
    $('error').hidden = true;
    const ids = [];
    abort = new AbortController();
    setState('generating');
    const start = performance.now();
    let first = 0;
    try {
      for await (const text of model.generate($('prompt').value, {
        maxTokens: Number($('max').value),
        temperature: Number($('temp').value),
        signal: abort.signal,
        // Diffusion bundles: each sampler step's canvas (masks as ░).
        onCanvas: m.model.diffusion ? (p) => {
          canvas.textContent = p.line;
          canvas.dataset.steps = String(++steps);
        } : undefined,
        onToken: (id) => {
          ids.push(id);
          if (ids.length === 1) first = performance.now();
          out.dataset.ids = ids.join(',');
          const secs = (performance.now() - first) / 1000;
          $('speed').textContent = ids.length + ' tokens' + (ids.length > 1
            ? ', ' + ((ids.length - 1) / secs).toFixed(1) + ' tokens/s' : '') +
            ' (first after ' + ((first - start) / 1000).toFixed(2) + ' s)';
        },
      })) out.textContent += text;
      setState('done');
    } catch (e) {
      if (e?.name === 'AbortError') setState('done');
      else showError(String(e?.message ?? e));
    } finally {
      $('go').disabled = false;
      $('stop').disabled = true;
    }
  };
}
main().catch((e) => showError(String(e?.message ?? e)));
`;

export function chatPage(opts: { title: string }): string {
  const title = escapeHtml(opts.title);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>strata · ${title}</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.3rem; } .muted { color: #666; font-size: 0.9em; }
  #error { background: #fee; border: 1px solid #c33; padding: 0.6rem; white-space: pre-wrap; }
  #canvas { white-space: pre-wrap; font-family: ui-monospace, monospace; margin-bottom: 0.4rem; }
  #output { white-space: pre-wrap; border: 1px solid #ccc; min-height: 6rem; padding: 0.6rem; font-family: ui-monospace, monospace; }
  textarea { width: 100%; box-sizing: border-box; font: inherit; } progress { width: 100%; }
  form > * { margin: 0.3rem 0; } input[type=number] { width: 5rem; }
</style>
</head>
<body data-state="starting">
<h1>strata · ${title}</h1>
<p class="muted">Adapter: <span id="adapter">…</span><br>Limits: <span id="limits">…</span></p>
<progress id="progress" value="0" max="1"></progress>
<div id="load" class="muted">starting…</div>
<div id="error" hidden></div>
<form id="form">
  <textarea id="prompt" rows="3">The quick brown fox</textarea>
  <div>max tokens <input id="max" type="number" min="1" value="64"> temperature
  <input id="temp" type="number" min="0" step="0.1" value="0">
  <button id="go" type="submit" disabled>Generate</button> <button id="stop" type="button" disabled>Stop</button>
  <span id="speed" class="muted"></span></div>
</form>
<div id="canvas" class="muted" hidden></div>
<div id="output"></div>
<script type="module">${SCRIPT}</script>
</body>
</html>
`;
}
