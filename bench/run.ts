/**
 * strata's side of the benchmark suites (the peers run in bench/peers.py in the
 * same device call). Usage:
 *   tsx bench/run.ts [--suites matmul,attention,compile,e2e,hybrid,scan,linear,sparse,batch] [--gpu-flags fast] [--out FILE]
 * Writes one JSON object: device, toggles, date, and each suite's figures.
 */
import { parseArgs } from 'node:util';
import { existsSync, writeFileSync } from 'node:fs';
import { importHfFolder } from '../src/import/hf-folder.ts';
import { openSafetensors } from '../formats/node/safetensors-file.ts';
import { plainMatmul, type MatmulAttrs } from '../src/graph/ops.ts';
import { matmulKernel, matmulWeightBytes, tensorUnsupported } from '../codegen/kernels/matmul.ts';
import { matmulData, timeMatmul } from './matmul-cases.ts';
import { attentionKernel } from '../codegen/kernels/attention.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import type { GpuContext } from '../runtime/gpu.ts';
import { GpuModel, type Sequence } from '../runtime/model.ts';
import { memorySource } from '../codegen/bundle.ts';
import { compileModel } from '../codegen/compile.ts';
import { loadSpec, parseSpec } from '../src/spec/load.ts';
import { randomWeights } from '../src/import/random-init.ts';
import type { ModelIR } from '../src/spec/model.ts';
import type { WeightProvider } from '../src/graph/params.ts';
import { report } from '../src/cli/report.ts';
import { median, PassTimer, timeLaunches } from './gpu-timer.ts';
import { profilePhase } from '../runtime/dispatch-profile.ts';
import { copyBandwidth, readBandwidth } from './bandwidth.ts';
import { benchLinear, benchSsdVsRecurrence } from './linear-cases.ts';
import { benchBlockSparse } from './sparse-cases.ts';
import { benchAttentionAttrs, benchAttentionBytes } from './attention-shape.ts';
import { benchBatch } from './batch.ts';
import type { Precision } from '../src/passes/precision.ts';
import { tensorBytes, usedTensors, type Graph } from '../src/graph/ir.ts';
import { gpuFlags } from './args.ts';

const { values } = parseArgs({
  options: {
    suites: { type: 'string', default: 'matmul,attention,compile,e2e,hybrid,scan' },
    'gpu-flags': { type: 'string', default: '' },
    out: { type: 'string' },
  },
});
const flags = gpuFlags(values['gpu-flags']);
const suites = new Set(values.suites!.split(','));
const log = (m: string) => process.stderr.write(m + '\n');

// Decode GEMVs first (the MLP's up and down shapes at 14336): timed after the 4096³ runs, in
// one process, the same GEMV kernels measured up to 2.3× slower than in a fresh one.
const MATMUL_SHAPES: [number, number, number][] = [
  [1, 4096, 4096],
  [1, 14336, 4096],
  [1, 4096, 14336],
  [1024, 1024, 1024],
  [2048, 2048, 2048],
  [4096, 4096, 4096],
];

/**
 * Each shape in f32, and in f16: f16 × f16 on the tensor cores for prefill shapes where the
 * device has subgroup matrices, f16 weights with f32 x on the GEMV for decode shapes. Random
 * data; every row's output is checked at sampled positions.
 */
async function benchMatmul(gpu: GpuContext) {
  const rows = [];
  for (const [M, N, K] of MATMUL_SHAPES) {
    const d = matmulData(M, N, K, M + N + K);
    const f32 = plainMatmul(N, K);
    const f16: MatmulAttrs = { ...f32, wType: 'f16', xType: M === 1 ? 'f32' : 'f16' };
    for (const a of [f32, f16]) {
      const precision = a.wType === 'f32' ? 'f32' : M === 1 ? 'f16 weights' : 'f16';
      const shape = `${M}x${N}x${K}`;
      const unsupported = M > 1 && a.xType === 'f16' ? tensorUnsupported(a, gpu.caps) : null;
      if (unsupported) {
        rows.push({ shape, precision, error: `no tensor-core kernel: ${unsupported}` });
        continue;
      }
      const gen = matmulKernel(a, { caps: gpu.caps, maxT: M });
      const { ms, err } = await timeMatmul(gpu, a, gen.launches, M, d);
      rows.push({
        shape,
        precision,
        kernel: gen.launches[0].kernel.name,
        ms,
        tflops: (2 * M * N * K) / (ms * 1e-3) / 1e12,
        gbps: (matmulWeightBytes(a) + (M * K + M * N) * 4) / (ms * 1e-3) / 1e9,
        sampledRelErr: err,
      });
      log(
        `matmul ${precision} ${shape}: ${ms.toFixed(3)} ms, sampled rel err ${err.toExponential(1)}`,
      );
    }
  }
  return rows;
}

async function benchAttention(gpu: GpuContext) {
  const rows = [];
  const cases: { name: string; T: number; pos: number; capacity: number; kv16?: boolean }[] = [
    { name: 'prefill 1k', T: 1024, pos: 0, capacity: 1024 },
    { name: 'prefill 4k', T: 4096, pos: 0, capacity: 4096 },
    { name: 'prefill 16k', T: 16384, pos: 0, capacity: 16384 },
    { name: 'decode 4k', T: 1, pos: 4095, capacity: 4096 },
    { name: 'decode 32k', T: 1, pos: 32767, capacity: 32768 },
    // f16 caches: decode reads half the bytes; prefill pays the unpacking while staging tiles.
    { name: 'prefill 4k kv f16', T: 4096, pos: 0, capacity: 4096, kv16: true },
    { name: 'decode 4k kv f16', T: 1, pos: 4095, capacity: 4096, kv16: true },
    { name: 'decode 32k kv f16', T: 1, pos: 32767, capacity: 32768, kv16: true },
  ];
  for (const c of cases) {
    const a = benchAttentionAttrs(c.capacity, c.kv16 ? 'f16' : 'f32');
    const gen = attentionKernel(a, { caps: gpu.caps, maxT: c.T });
    const bytes = benchAttentionBytes(a, c.T, gen.scratch);
    const keys = c.pos + c.T;
    const flops = 4 * a.heads * a.headDim * (c.T === 1 ? keys : (c.T * (c.T + 1)) / 2);
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

const GREEDY_STEP = { seed: 0, draw: 0, temperature: 0, topK: 0, topP: 1 };
/** Prefill lengths; STRATA_BENCH_PREFILL=512,4096 narrows a run that must fit a device call. */
const PREFILL_TOKENS = (process.env.STRATA_BENCH_PREFILL ?? '512,4096,16384')
  .split(',')
  .map(Number);

/** What one end-to-end row measures: a model, its weights, and HF's logits to check against. */
interface E2eSubject {
  label: string;
  model: ModelIR;
  weights: WeightProvider;
  /** HF's logits of the last row after prefilling the 512-token prompt, when the peer saved them. */
  reference: Float32Array | null;
}

/**
 * Bytes of stored weights one decode step reads: every parameter of the decode graph at its
 * stored size, expert weights at topK of their experts (what a token routes to).
 */
function decodeWeightBytes(g: Graph): number {
  const share = new Map<number, number>();
  for (const n of g.nodes)
    if (n.attrs.op === 'moe_matmul') share.set(n.inputs.w, n.attrs.topK / n.attrs.experts);
  return usedTensors(g)
    .filter((t) => t.kind === 'param')
    .reduce((sum, t) => sum + tensorBytes(t, 1) * (share.get(t.id) ?? 1), 0);
}

/** Prefill tokens/s at each length, then batch-1 decode: wall, GPU time, and the bandwidth bound. */
async function benchE2e(gpu: GpuContext, s: E2eSubject, precision: Precision) {
  const { model } = s;
  const c = compileModel(model, { caps: gpu.caps, maxT: 512, capacity: 16384 + 128, precision });
  const r = report(c);
  log(`e2e ${s.label} at ${precision}: loading ${r.parameters} parameters`);
  const heapBefore = process.memoryUsage().rss;
  const gm = await GpuModel.load(gpu, memorySource(c, s.weights));
  const loadRssBytes = process.memoryUsage().rss - heapBefore;
  const prefill = [];
  let lastLogitsRelErrVsHf: number | null = null;
  for (const T of PREFILL_TOKENS) {
    const ids = benchIds(T, model.vocab);
    const seq = gm.newSequence();
    await seq.next(ids.slice(0, 512), GREEDY_STEP); // warm-up
    // The median of several runs up to 4096 tokens (llama-bench takes 20): one run of 512
    // measured 84 ms on the H100 where the 4096-token run's chunks of 512 averaged 38 ms.
    const times: number[] = [];
    for (let run = 0; run < (T <= 4096 ? 5 : 1); run++) {
      seq.reset();
      const t0 = performance.now();
      const out = await seq.next(ids, GREEDY_STEP, run === 0 && T === 512 && s.reference !== null);
      times.push((performance.now() - t0) / 1000);
      if (out.logits && s.reference) lastLogitsRelErrVsHf = relErr(out.logits, s.reference);
    }
    const secs = median(times);
    prefill.push({
      tokens: T,
      seconds: secs,
      tokensPerSecond: T / secs,
      runs: times.length,
      minSeconds: Math.min(...times),
      maxSeconds: Math.max(...times),
    });
    seq.destroy();
    log(`e2e ${s.label} prefill ${T}: ${(T / secs).toFixed(0)} tok/s`);
  }
  // The largest prefill loss by role: one 512-token chunk, each dispatch in a pass of its own.
  const prefillSeq = gm.newSequence();
  const prefillProfile = await profilePhase(gpu, gm, 'prefill', (t) =>
    prefillSeq.profilePrefill(benchIds(512, model.vocab), 5, t),
  );
  prefillSeq.destroy();
  const seq = gm.newSequence();
  const steps = 64;
  let tok = (await seq.next([1, 2, 3, 4, 5, 6, 7, 8], GREEDY_STEP)).token;
  for (let i = 0; i < 8; i++) tok = (await seq.next([tok], GREEDY_STEP)).token; // warm-up
  let t0 = performance.now();
  for (let i = 0; i < steps; i++) tok = (await seq.next([tok], GREEDY_STEP)).token;
  const unpipelinedSeconds = (performance.now() - t0) / 1000;
  const gpuMs = await seq.profileDecode(tok, 20, new PassTimer(gpu));
  const profile = await profilePhase(gpu, gm, 'decode', (t) => seq.profileDecode(tok, 10, t));
  // The median of 5 runs: host-side jitter on the GPU machines has doubled single runs.
  const runs: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    seq.reset();
    t0 = performance.now();
    let n = 0;
    for await (const _ of seq.generate([1, 2, 3, 4, 5, 6, 7, 8], { maxTokens: steps + 1 })) {
      if (n++ === 0) t0 = performance.now(); // time decode only, not the prompt
    }
    runs.push((performance.now() - t0) / 1000);
  }
  const decodeSeconds = median(runs);
  const bw = await copyBandwidth(gpu);
  const readBw = await readBandwidth(gpu);
  // Bytes a decode step must read: every weight a token uses (MoE: only its top-k experts).
  const weightBytes = decodeWeightBytes(c.graphs.decode);
  gm.destroy();
  const decode = {
    tokensPerSecond: steps / decodeSeconds,
    msPerToken: (decodeSeconds * 1000) / steps,
    msPerTokenRuns: runs.map((r) => (r * 1000) / steps),
    unpipelinedTokensPerSecond: steps / unpipelinedSeconds,
    readBandwidthGBs: readBw / 1e9,
    readBoundTokensPerSecond: readBw / weightBytes,
    gpuMsPerToken: gpuMs,
    dispatchesPerToken: r.dispatchesPerDecodeToken,
    weightBytesPerToken: weightBytes,
    copyBandwidthGBs: bw / 1e9,
    boundTokensPerSecond: bw / weightBytes,
    profile,
  };
  log(
    `e2e ${s.label} decode: ${decode.tokensPerSecond.toFixed(1)} tok/s (bound ${decode.boundTokensPerSecond.toFixed(1)})`,
  );
  return {
    model: s.label,
    precision,
    bundleWeightBytes: r.parameterBytes,
    weightBytesByType: r.parameterBytesByType,
    // Growth of the resident set across the upload (weights are made and encoded one at a time).
    loadRssBytes,
    parameters: r.parameters,
    activeParameters: r.activeParameters,
    lastLogitsRelErrVsHf,
    prefill,
    prefillProfile,
    decode,
  };
}

/** The same token ids bench/peers.py feeds HF. */
function benchIds(T: number, vocab: number): number[] {
  return Array.from({ length: T }, (_, i) => (i * 7919) % vocab);
}

/** max |a − b| / max |b|. */
function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

/** A checkpoint bench/peers.py saved under /tmp/strata-bench (it runs first, in the same call). */
async function peerCheckpoint(kind: string) {
  const dir = `/tmp/strata-bench/${kind}`;
  if (!existsSync(dir))
    throw new Error(`${dir} is missing: run bench/peers.py with the ${kind} suite first`);
  const hf = await importHfFolder(dir);
  const refFile = await openSafetensors(`${dir}/last_logits.safetensors`);
  const reference = await refFile.readTensorF32('last_logits');
  await refFile.close();
  return { hf, reference };
}

/** Each weight precision, in one run so that their ratios hold. */
const E2E_PRECISIONS = (process.env.STRATA_BENCH_PRECISIONS ?? 'f32,f16,q8,q4').split(
  ',',
) as Precision[];

async function benchLlama(gpu: GpuContext) {
  const model = loadSpec('specs/llama-3.2-1b.strata');
  const rows = [];
  for (const precision of E2E_PRECISIONS) {
    rows.push(
      await benchE2e(
        gpu,
        {
          label: 'llama-3.2-1b dims, random weights',
          model,
          weights: randomWeights(model, 0),
          reference: null,
        },
        precision,
      ),
    );
  }
  return rows;
}

/** The ~1B Jamba-style hybrid bench/peers.py builds (7 mamba : 1 attention, MoE every other layer). */
async function benchHybrid(gpu: GpuContext) {
  const { hf, reference } = await peerCheckpoint('jamba');
  const rows = [];
  for (const precision of E2E_PRECISIONS) {
    rows.push(
      await benchE2e(
        gpu,
        {
          label:
            'Jamba-style hybrid (16 layers: 7 mamba : 1 attention, MoE 16x top-2 every other layer), same weights as HF',
          model: hf.model,
          weights: (n) => hf.readTensorF32(n),
          // HF ran in f32: only the f32 row is checked against its logits.
          reference: precision === 'f32' ? reference : null,
        },
        precision,
      ),
    );
  }
  await hf.close();
  return rows;
}

/** Mamba-1 / Mamba-2 prefill on the checkpoints bench/peers.py saved (it runs first). */
async function benchScan(gpu: GpuContext) {
  const rows = [];
  for (const kind of ['mamba', 'mamba2']) {
    const { hf, reference } = await peerCheckpoint(kind);
    // Capacity bounds positions only: these models have no KV cache, so it costs no memory.
    const c = compileModel(hf.model, { caps: gpu.caps, maxT: 4096, capacity: 65536 + 64 });
    const gm = await GpuModel.load(
      gpu,
      memorySource(c, (n) => hf.readTensorF32(n)),
    );
    for (const T of [4096, 65536]) {
      const ids = benchIds(T, hf.model.vocab);
      const seq = gm.newSequence();
      await seq.next(ids.slice(0, 4096), GREEDY_STEP); // warm-up
      seq.reset();
      const t0 = performance.now();
      const r = await seq.next(ids, GREEDY_STEP, T === 4096);
      const s = (performance.now() - t0) / 1000;
      const err = r.logits ? relErr(r.logits, reference) : null;
      rows.push({
        model: kind,
        tokens: T,
        seconds: s,
        tokensPerSecond: T / s,
        lastLogitsRelErrVsHf: err,
      });
      log(
        `scan ${kind} ${T}: ${(T / s).toFixed(0)} tok/s${err === null ? '' : `, rel err vs HF ${err.toExponential(1)}`}`,
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
    { name: 'specs/jamba-v0.1.strata', load: () => loadSpec('specs/jamba-v0.1.strata') },
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
const runners: Record<string, () => Promise<unknown>> = {
  matmul: () => benchMatmul(gpu),
  attention: () => benchAttention(gpu),
  compile: async () => benchCompile(gpu),
  e2e: () => benchLlama(gpu),
  hybrid: () => benchHybrid(gpu),
  scan: () => benchScan(gpu),
  batch: () => benchBatch(gpu, log),
  linear: async () => ({
    rows: await benchLinear(gpu, log),
    ssd: await benchSsdVsRecurrence(gpu, log),
  }),
  sparse: () => benchBlockSparse(gpu, log),
};
for (const name of suites) {
  if (!runners[name])
    throw new Error(`unknown suite '${name}' (known: ${Object.keys(runners).join(', ')})`);
  try {
    out[name] = await runners[name]();
  } catch (e) {
    // One suite's failure is a result too; the others still run.
    const message = e instanceof Error ? e.message : String(e);
    out[name] = { error: message };
    log(`suite ${name} failed: ${message}`);
  }
  // Written after every suite, so a run cut short still leaves what it measured.
  if (values.out) writeFileSync(values.out, JSON.stringify(out, null, 1));
}
if (!values.out) console.log(JSON.stringify(out, null, 1));
process.exit(0);
