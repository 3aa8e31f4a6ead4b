/**
 * strata's side of the benchmark suites (the peers run in bench/peers.py in the
 * same device call). Usage:
 *   tsx bench/run.ts [--suites matmul,attention,e2e,compile] [--gpu-flags fast] [--out FILE]
 * Writes one JSON object: device, toggles, date, and each suite's figures.
 */
import { parseArgs } from 'node:util';
import { existsSync, writeFileSync } from 'node:fs';
import { importHfFolder } from '../src/import/hf-folder.ts';
import { openSafetensors } from '../runtime/node/safetensors-file.ts';
import { plainMatmul, type AttentionAttrs } from '../src/graph/ops.ts';
import { matmulKernel } from '../codegen/kernels/matmul.ts';
import { attentionKernel } from '../codegen/kernels/attention.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import type { GpuContext } from '../runtime/gpu.ts';
import { GpuModel } from '../runtime/model.ts';
import { memorySource } from '../codegen/bundle.ts';
import { compileModel } from '../src/compile.ts';
import { loadSpec, parseSpec } from '../src/spec/load.ts';
import { randomWeights } from '../src/import/random-init.ts';
import { report } from '../src/report.ts';
import { median, PassTimer, timeLaunches } from './gpu-timer.ts';
import { copyBandwidth, readBandwidth } from './bandwidth.ts';

const { values } = parseArgs({
  options: {
    suites: { type: 'string', default: 'matmul,attention,e2e,compile,scan' },
    'gpu-flags': { type: 'string', default: '' },
    out: { type: 'string' },
  },
});
const flags = values['gpu-flags'] ? values['gpu-flags'].split(',') : [];
const suites = new Set(values.suites!.split(','));
const log = (m: string) => process.stderr.write(m + '\n');

async function benchMatmul(gpu: GpuContext) {
  const shapes: [number, number, number][] = [
    [1024, 1024, 1024],
    [2048, 2048, 2048],
    [4096, 4096, 4096],
    [1, 4096, 4096],
    [1, 14336, 4096],
  ];
  const rows = [];
  for (const [M, N, K] of shapes) {
    const a = plainMatmul(N, K);
    const gen = matmulKernel(a, { caps: gpu.caps, maxT: M });
    const bytes = { x: M * K * 4, w: N * K * 4, out: M * N * 4, ...gen.scratch };
    const reps = M === 1 ? 200 : Math.max(3, Math.round(2e11 / (2 * M * N * K)));
    const t = await timeLaunches(
      gpu,
      gen.launches,
      bytes,
      { T: M, pos: 0, L: M },
      { reps, samples: 5 },
    );
    const ms = t.gpuMs ?? t.wallMs;
    rows.push({
      shape: `${M}x${N}x${K}`,
      kernel: gen.launches[0].kernel.name,
      ms,
      wallMs: t.wallMs,
      gpuMs: t.gpuMs,
      tflops: (2 * M * N * K) / (ms * 1e-3) / 1e12,
      gbps: ((N * K + M * K + M * N) * 4) / (ms * 1e-3) / 1e9,
    });
    log(`matmul ${M}x${N}x${K}: ${ms.toFixed(3)} ms`);
  }
  return rows;
}

async function benchAttention(gpu: GpuContext) {
  const H = 32,
    KVH = 8,
    hd = 128;
  const rows = [];
  const cases: { name: string; T: number; pos: number; capacity: number }[] = [
    { name: 'prefill 1k', T: 1024, pos: 0, capacity: 1024 },
    { name: 'prefill 4k', T: 4096, pos: 0, capacity: 4096 },
    { name: 'prefill 16k', T: 16384, pos: 0, capacity: 16384 },
    { name: 'decode 4k', T: 1, pos: 4095, capacity: 4096 },
    { name: 'decode 32k', T: 1, pos: 32767, capacity: 32768 },
  ];
  for (const c of cases) {
    const a: AttentionAttrs = {
      op: 'attention',
      heads: H,
      kvHeads: KVH,
      headDim: hd,
      vHeadDim: hd,
      scale: 1 / Math.sqrt(hd),
      causal: true,
      window: null,
      softcap: null,
      capacity: c.capacity,
    };
    const gen = attentionKernel(a, { caps: gpu.caps, maxT: c.T });
    const bytes = {
      q: c.T * H * hd * 4,
      kcache: c.capacity * KVH * hd * 4,
      vcache: c.capacity * KVH * hd * 4,
      out: c.T * H * hd * 4,
      ...gen.scratch,
    };
    const keys = c.pos + c.T;
    const flops = 4 * H * hd * (c.T === 1 ? keys : (c.T * (c.T + 1)) / 2);
    const reps = c.T === 1 ? 100 : Math.max(2, Math.round(5e11 / flops));
    const t = await timeLaunches(
      gpu,
      gen.launches,
      bytes,
      { T: c.T, pos: c.pos, L: 1 },
      { reps, samples: 5 },
    );
    const ms = t.gpuMs ?? t.wallMs;
    rows.push({
      case: c.name,
      ms,
      wallMs: t.wallMs,
      gpuMs: t.gpuMs,
      tflops: flops / (ms * 1e-3) / 1e12,
    });
    log(`attention ${c.name}: ${ms.toFixed(3)} ms`);
  }
  return rows;
}

async function benchE2e(gpu: GpuContext) {
  const model = loadSpec('specs/llama-3.2-1b.strata');
  const c = compileModel(model, { caps: gpu.caps, maxT: 512, capacity: 16384 + 128 });
  const r = report(c);
  log(`e2e: loading ${r.parameters} random parameters`);
  const gm = await GpuModel.load(gpu, memorySource(c, randomWeights(model, 0)));
  const greedy = { seed: 0, draw: 0, temperature: 0, topK: 0, topP: 1 };
  const prefill = [];
  for (const T of [512, 4096, 16384]) {
    const ids = Array.from({ length: T }, (_, i) => (i * 7919) % model.vocab);
    const seq = gm.newSequence();
    await seq.next(ids.slice(0, 512), greedy); // warm-up
    seq.reset();
    const t0 = performance.now();
    await seq.next(ids, greedy);
    const s = (performance.now() - t0) / 1000;
    prefill.push({ tokens: T, seconds: s, tokensPerSecond: T / s });
    seq.destroy();
    log(`e2e prefill ${T}: ${(T / s).toFixed(0)} tok/s`);
  }
  const seq = gm.newSequence();
  const steps = 64;
  let tok = (await seq.next([1, 2, 3, 4, 5, 6, 7, 8], greedy)).token;
  for (let i = 0; i < 8; i++) tok = (await seq.next([tok], greedy)).token; // warm-up
  let t0 = performance.now();
  for (let i = 0; i < steps; i++) tok = (await seq.next([tok], greedy)).token;
  const unpipelinedSeconds = (performance.now() - t0) / 1000;
  const gpuMs = await seq.profileDecode(tok, 20, new PassTimer(gpu));
  seq.reset();
  t0 = performance.now();
  let n = 0;
  for await (const _ of seq.generate([1, 2, 3, 4, 5, 6, 7, 8], { maxTokens: steps + 1 })) {
    if (n++ === 0) t0 = performance.now(); // time decode only, not the prompt
  }
  const decodeSeconds = (performance.now() - t0) / 1000;
  const bw = await copyBandwidth(gpu);
  const readBw = await readBandwidth(gpu);
  const weightBytes = r.parameterBytes;
  gm.destroy();
  const decode = {
    tokensPerSecond: steps / decodeSeconds,
    msPerToken: (decodeSeconds * 1000) / steps,
    unpipelinedTokensPerSecond: steps / unpipelinedSeconds,
    readBandwidthGBs: readBw / 1e9,
    readBoundTokensPerSecond: readBw / weightBytes,
    gpuMsPerToken: gpuMs,
    dispatchesPerToken: r.dispatchesPerDecodeToken,
    weightBytesPerToken: weightBytes,
    copyBandwidthGBs: bw / 1e9,
    boundTokensPerSecond: bw / weightBytes,
  };
  log(
    `e2e decode: ${decode.tokensPerSecond.toFixed(1)} tok/s (bound ${decode.boundTokensPerSecond.toFixed(1)})`,
  );
  return {
    model: 'llama-3.2-1b dims, f32, random weights',
    parameters: r.parameters,
    prefill,
    decode,
  };
}

/** Mamba-1 / Mamba-2 prefill on the checkpoints bench/peers.py saved (it runs first). */
async function benchScan(gpu: GpuContext) {
  const rows = [];
  for (const kind of ['mamba', 'mamba2']) {
    const dir = `/tmp/strata-bench/${kind}`;
    if (!existsSync(dir))
      throw new Error(`${dir} is missing: run bench/peers.py with the scan suite first`);
    const hf = await importHfFolder(dir);
    // Capacity bounds positions only: these models have no KV cache, so it costs no memory.
    const c = compileModel(hf.model, { caps: gpu.caps, maxT: 4096, capacity: 65536 + 64 });
    const gm = await GpuModel.load(
      gpu,
      memorySource(c, (n) => hf.readTensorF32(n)),
    );
    const refFile = await openSafetensors(`${dir}/last_logits.safetensors`);
    const ref = await refFile.readTensorF32('last_logits');
    await refFile.close();
    const greedy = { seed: 0, draw: 0, temperature: 0, topK: 0, topP: 1 };
    for (const T of [4096, 65536]) {
      const ids = Array.from({ length: T }, (_, i) => (i * 7919) % hf.model.vocab);
      const seq = gm.newSequence();
      await seq.next(ids.slice(0, 4096), greedy); // warm-up
      seq.reset();
      const t0 = performance.now();
      const r = await seq.next(ids, greedy, T === 4096);
      const s = (performance.now() - t0) / 1000;
      let relErr: number | null = null;
      if (r.logits) {
        let d = 0;
        let m = 0;
        for (let i = 0; i < ref.length; i++) {
          d = Math.max(d, Math.abs(r.logits[i] - ref[i]));
          m = Math.max(m, Math.abs(ref[i]));
        }
        relErr = d / m;
      }
      rows.push({
        model: kind,
        tokens: T,
        seconds: s,
        tokensPerSecond: T / s,
        lastLogitsRelErrVsHf: relErr,
      });
      log(
        `scan ${kind} ${T}: ${(T / s).toFixed(0)} tok/s${relErr === null ? '' : `, rel err vs HF ${relErr.toExponential(1)}`}`,
      );
      seq.destroy();
    }
    rows.push({ model: kind, prefillDispatchesPerChunk: c.phases.prefill.dispatches.length });
    gm.destroy();
    await hf.close();
  }
  return rows;
}

function benchCompile(gpu: GpuContext) {
  const hybrid64 = `model "hybrid-64" {
  vocab 32000
  dim 2048
  max_context 4096
  norm rms(eps: 1e-5)
  mixer local = attention(heads: 16, kv_heads: 4, window: 1024)
  mixer global = attention(heads: 16, kv_heads: 4)
  ffn mlp = swiglu(hidden: 5632)
  layers 16 x [3 local : 1 global] with ffn mlp
}`;
  const cases = [
    { name: 'specs/llama-3.2-1b.strata', load: () => loadSpec('specs/llama-3.2-1b.strata') },
    { name: '64-layer local/global hybrid', load: () => parseSpec(hybrid64, 'hybrid-64.strata') },
  ];
  return cases.map(({ name, load }) => {
    const times = [];
    for (let i = 0; i < 7; i++) {
      const t0 = performance.now();
      compileModel(load(), { caps: gpu.caps });
      times.push(performance.now() - t0);
    }
    log(`compile ${name}: ${median(times.slice(1)).toFixed(1)} ms`);
    return { spec: name, ms: median(times.slice(1)) };
  });
}

const gpu = await acquire({ flags });
const out: Record<string, unknown> = {
  date: new Date().toISOString(),
  device:
    `${gpu.adapterInfo.vendor} ${gpu.adapterInfo.device} ${gpu.adapterInfo.description}`.trim(),
  fallback: gpu.fallback,
  dawnFlags: flags,
  features: gpu.features,
};
if (suites.has('matmul')) out.matmul = await benchMatmul(gpu);
if (suites.has('attention')) out.attention = await benchAttention(gpu);
if (suites.has('compile')) out.compile = benchCompile(gpu);
if (suites.has('e2e')) out.e2e = await benchE2e(gpu);
if (suites.has('scan')) out.scan = await benchScan(gpu);
const json = JSON.stringify(out, null, 1);
if (values.out) writeFileSync(values.out, json);
else console.log(json);
process.exit(0);
