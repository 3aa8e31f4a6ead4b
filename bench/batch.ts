/**
 * Batched decode (issue 18 item 5; `tsx bench/run.ts --suites batch`, or `bash bench/device.sh
 * batch` on the GPU machine): B = 1, 4, 16, 64 sequences a step for the Llama-3.2-1B-dims model
 * and a hybrid at the same dims (Jamba's 7 Mamba-1 : 1 attention; its caches are a quarter of
 * Llama's per token), plus the Jamba-style checkpoint bench/peers.py saves when its hybrid
 * suite ran first. Each figure is the median of 5 runs of `STEPS` batched steps after a warm-up.
 *
 * Per row: throughput (generated tokens/s over all B sequences, and steps/s), the step's wall
 * time, and memory: the bytes the bundle allocates per sequence (its KV caches and recurrent
 * states at the compiled capacity, which a batch multiplies), the activations of the batched
 * step, and the largest B each memory budget holds at that capacity (src/cli/report.ts
 * maxBatch). Each step reads its B tokens back to the host (runtime/batch.ts), so B = 1 here
 * is the unpipelined decode, below the e2e suite's pipelined figure.
 *
 * Time to first token for B prompts of TTFT_PROMPT tokens (after the warm-up): each
 * prompt prefilled into its batch slot (ceil(T / maxT) one-sequence prefill steps per prompt,
 * then every slot has sampled its first token; runtime/batch.ts generate with maxTokens 1)
 * against feeding the prompts a token per batched step (T steps of all B, the only way before
 * slot prefill; BatchSequence.step from position 0).
 */
import { compileModel } from '../codegen/compile.ts';
import { memorySource } from '../codegen/bundle.ts';
import { BatchSequence } from '../runtime/batch.ts';
import type { GpuContext } from '../runtime/gpu.ts';
import { GpuModel } from '../runtime/model.ts';
import { report } from '../src/cli/report.ts';
import { randomWeights } from '../src/import/random-init.ts';
import { importHfFolder } from '../src/import/hf-folder.ts';
import { loadSpec, parseSpec } from '../src/spec/load.ts';
import type { WeightProvider } from '../src/graph/params.ts';
import type { ModelIR } from '../src/spec/model.ts';
import { existsSync } from 'node:fs';
import { median } from './gpu-timer.ts';

export const BATCHES = [1, 4, 16, 64];
/** KV rows per sequence: the prompt plus every step, with room to spare. */
const CAPACITY = 1024;
const PROMPT = 8;
const STEPS = 32;
/** Prompt length of the time-to-first-token figures. */
export const TTFT_PROMPT = 512;

/** Llama-3.2-1B's dims as a Jamba-style hybrid: layers 4 and 12 attention, the rest Mamba-1. */
const LLAMA_DIMS_HYBRID = `model "llama-1b-dims-hybrid" {
  vocab 128256
  dim 2048
  max_context 131072
  norm rms(eps: 1e-5)
  tie_embeddings true
  mixer mamba = mamba1(d_state: 16, d_conv: 4, expand: 2)
  mixer attn = attention(heads: 32, kv_heads: 8, head_dim: 64, rope: rope(theta: 500000))
  ffn mlp = swiglu(hidden: 8192)
  layers 2 x [7 mamba : 1 attn at 4] with ffn mlp
}`;

export interface Subject {
  label: string;
  model: ModelIR;
  weights: WeightProvider;
}

/**
 * The provider's tensors kept once made: each B compiles and loads the model again, and drawing
 * 1.2B random f32 values each time cost more of a device call than the steps it timed.
 */
function kept(weights: WeightProvider): WeightProvider {
  const made = new Map<string, Float32Array | Promise<Float32Array>>();
  return (name) => {
    if (!made.has(name)) made.set(name, weights(name));
    return made.get(name)!;
  };
}

async function subjects(log: (m: string) => void): Promise<Subject[]> {
  const llama = loadSpec('specs/llama-3.2-1b.strata');
  const hybrid = parseSpec(LLAMA_DIMS_HYBRID, 'llama-1b-dims-hybrid.strata');
  const out: Subject[] = [
    { label: 'llama-3.2-1b dims', model: llama, weights: kept(randomWeights(llama, 0)) },
    {
      label: 'llama-1b-dims hybrid (2 x [7 mamba1 : 1 attention])',
      model: hybrid,
      weights: kept(randomWeights(hybrid, 0)),
    },
  ];
  const jamba = '/tmp/strata-bench/jamba';
  if (existsSync(jamba)) {
    const hf = await importHfFolder(jamba);
    out.push({
      label: 'Jamba-style hybrid checkpoint (bench/peers.py)',
      model: hf.model,
      weights: (n) => hf.readTensorF32(n),
    });
  } else log(`batch: ${jamba} absent (run the hybrid suite first), Jamba checkpoint skipped`);
  return out;
}

/**
 * Milliseconds to every sequence's first token: prompts prefilled into their slots (median of
 * 3), and fed a token per batched step (once: 512 steps a run, the old way, kept for the ratio;
 * three runs of it at B = 16 took 30 s of the H100 call that cut the suite before B = 64).
 */
async function timeToFirstToken(
  batch: BatchSequence,
  prompts: number[][],
): Promise<{ prefillMs: number; tokenByTokenMs: number }> {
  const slots: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    const t0 = performance.now();
    await batch.generate(prompts, { maxTokens: 1 });
    slots.push(performance.now() - t0);
    batch.reset();
  }
  const t0 = performance.now();
  for (let k = 0; k < prompts[0].length; k++) await batch.step(prompts.map((p) => p[k]));
  return { prefillMs: median(slots), tokenByTokenMs: performance.now() - t0 };
}

/** One subject at batch B (exported for a smoke run on a tiny model). */
export async function benchOne(
  gpu: GpuContext,
  s: Subject,
  B: number,
  log: (m: string) => void,
  ttftPrompt = TTFT_PROMPT,
) {
  const c = compileModel(s.model, { caps: gpu.caps, capacity: CAPACITY, batch: B });
  const r = report(c);
  const gm = await GpuModel.load(gpu, memorySource(c, s.weights));
  const batch = new BatchSequence(gm);
  const prompts = Array.from({ length: B }, (_, i) =>
    Array.from({ length: PROMPT }, (_, j) => (1 + i * 31 + j * 7) % s.model.vocab),
  );
  await batch.generate(prompts, { maxTokens: 4 }); // warm-up: pipelines, first submissions
  const long = Array.from({ length: B }, (_, i) =>
    Array.from({ length: ttftPrompt }, (_, j) => (3 + i * 17 + j * 11) % s.model.vocab),
  );
  const ttft = await timeToFirstToken(batch, long);
  const runs: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    batch.reset();
    let feed = prompts.map((p) => p[0]);
    for (let k = 1; k < PROMPT; k++) {
      await batch.step(feed);
      feed = prompts.map((p) => p[k]);
    }
    const t0 = performance.now();
    for (let k = 0; k < STEPS; k++) feed = Array.from((await batch.step(feed)).tokens);
    runs.push((performance.now() - t0) / 1000);
  }
  batch.destroy();
  gm.destroy();
  const seconds = median(runs);
  const fit = r.batchFit.find((f) => f.context === r.capacity)!;
  const row = {
    model: s.label,
    batch: B,
    capacity: r.capacity,
    tokensPerSecond: (B * STEPS) / seconds,
    stepsPerSecond: STEPS / seconds,
    msPerStep: (seconds * 1000) / STEPS,
    msPerStepRuns: runs.map((x) => (x * 1000) / STEPS),
    dispatchesPerStep: r.dispatchesPerDecodeToken,
    weightBytes: r.parameterBytes,
    stateBytesPerSequence: r.stateBytesPerSequence,
    kvBytesPerToken: r.kvBytesPerToken,
    recurrentStateBytes: r.recurrentStateBytes,
    stepActivationBytes: r.decode.activationBytes,
    maxBatchAtCapacity: fit.maxBatch,
    ttftPromptTokens: ttftPrompt,
    prefillMaxT: batch.maxT,
    // Steps each way: B one-sequence prefills of ceil(T / maxT) chunks, or T batched steps.
    ttftSlotPrefillSteps: B * Math.ceil(ttftPrompt / batch.maxT),
    ttftTokenByTokenSteps: ttftPrompt,
    ttftSlotPrefillMs: ttft.prefillMs,
    ttftTokenByTokenMs: ttft.tokenByTokenMs,
  };
  log(
    `batch ${s.label} B=${B}: ${row.tokensPerSecond.toFixed(1)} tok/s (${row.msPerStep.toFixed(2)} ms/step), ` +
      `${(row.stateBytesPerSequence / 2 ** 20).toFixed(1)} MiB state per sequence at ${CAPACITY}; ` +
      `first token of ${B} x ${ttftPrompt}-token prompts ${ttft.prefillMs.toFixed(0)} ms prefilled into slots, ` +
      `${ttft.tokenByTokenMs.toFixed(0)} ms a token a step`,
  );
  return row;
}

export async function benchBatch(gpu: GpuContext, log: (m: string) => void) {
  const rows = [];
  for (const s of await subjects(log)) {
    for (const B of BATCHES) {
      try {
        rows.push(await benchOne(gpu, s, B, log));
      } catch (e) {
        // A batch that does not fit (or fails) is a row too; the larger ones still try.
        log(`batch ${s.label} B=${B}: ${(e as Error).message}`);
        rows.push({ model: s.label, batch: B, error: (e as Error).message });
      }
    }
  }
  return rows;
}
