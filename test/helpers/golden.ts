/**
 * Golden-fixture harness shared by the transformers (test/fixtures/hf) and fla
 * (test/fixtures/fla) suites: each fixture folder is imported, run (on WebGPU, or on the CPU
 * interpreter over the unfused graphs) for its prompt plus greedy decode steps, and compared with
 * the reference's logits: max |Δlogit| ≤ 1e-3 and per-row max |Δ| / max|logit| ≤ 1e-4 (f32 on
 * both sides; the fixtures' own kernel-vs-reference floors are ≤ 2.5e-5 abs), tokens identical.
 */
import { expect } from 'vitest';
import { join } from 'node:path';
import { importHfFolder, type HfFolder } from '../../src/import/hf-folder.ts';
import { compileModel } from '../../codegen/compile.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { GpuModel } from '../../runtime/model.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import { lower } from '../../src/graph/lower.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { assignPrecision, type Precision } from '../../src/passes/precision.ts';
import { BASELINE_CAPS, type DeviceCaps } from '../../src/target.ts';
import type { Graph } from '../../src/graph/ir.ts';
import { testGpu } from './gpu.ts';

export interface Golden {
  prompt: number[];
  prefill: Float32Array;
  tokens: number[];
  decode: Float32Array;
}

export interface GoldenRun {
  prefill: Float32Array;
  /** The token the model chose before each decode step (the argmax of the row before it). */
  tokens: number[];
  decode: Float32Array;
  /** Whether the prefill rounded matmul inputs to f16 (tensor cores under --precision f16). */
  xF16: boolean;
}

/** How a golden run goes: weight precision (default f32), and tokens to feed instead of its own. */
export interface GoldenRunOptions {
  precision?: Precision;
  /** Decode step i feeds feed[i] (teacher forcing) rather than the token the model chose. */
  feed?: readonly number[];
  /**
   * The device the precision pass compiles for on the CPU (default: WebGPU's minimums); on the GPU
   * the device the kernels are generated for (default: the test device's), which must not exceed
   * the test device's limits: a smaller one picks the kernels a smaller device would run.
   */
  caps?: DeviceCaps;
}

export async function readGolden(dir: string): Promise<Golden> {
  const g = await openSafetensors(join(dir, 'golden.safetensors'));
  const golden = {
    prompt: Array.from(await g.readTensorI32('prompt_ids')),
    prefill: await g.readTensorF32('prefill_logits'),
    tokens: Array.from(await g.readTensorI32('decode_tokens')),
    decode: await g.readTensorF32('decode_logits'),
  };
  await g.close();
  return golden;
}

/** Worst absolute and row-relative (to the row's max |logit|) differences. */
export function rowErrors(
  got: Float32Array,
  want: Float32Array,
  vocab: number,
): { abs: number; rel: number } {
  let abs = 0;
  let rel = 0;
  for (let r = 0; r < want.length / vocab; r++) {
    let maxRef = 0;
    let maxDiff = 0;
    for (let j = r * vocab; j < (r + 1) * vocab; j++) {
      maxRef = Math.max(maxRef, Math.abs(want[j]));
      maxDiff = Math.max(maxDiff, Math.abs(got[j] - want[j]));
    }
    abs = Math.max(abs, maxDiff);
    rel = Math.max(rel, maxDiff / maxRef);
  }
  return { abs, rel };
}

/** Prompt and decode steps on WebGPU; each decode step feeds the token the model chose. */
export async function runGoldenGpu(
  hf: HfFolder,
  golden: Golden,
  opts: GoldenRunOptions = {},
): Promise<GoldenRun> {
  const [run] = await runGoldenGpuFeeds(hf, golden, [opts.feed ?? null], opts.precision, opts.caps);
  return run;
}

/**
 * Several runs of one compiled and loaded model (compiling and loading cost more than a run on
 * SwiftShader): feeds[i] is the decode stream run i feeds, or null for the model's own choices.
 */
export async function runGoldenGpuFeeds(
  hf: HfFolder,
  golden: Golden,
  feeds: readonly (readonly number[] | null)[],
  precision?: Precision,
  caps?: DeviceCaps,
): Promise<GoldenRun[]> {
  const gpu = await testGpu();
  const compiled = compileModel(hf.model, {
    caps: caps ?? gpu.caps,
    maxT: 32,
    capacity: 64,
    precision,
  });
  const gm = await GpuModel.load(
    gpu,
    memorySource(compiled, (n) => hf.readTensorF32(n)),
  );
  try {
    const vocab = hf.model.vocab;
    const runs: GoldenRun[] = [];
    for (const feed of feeds) {
      const seq = gm.newSequence();
      const first = await seq.forward(golden.prompt);
      const tokens: number[] = [];
      const decode = new Float32Array(golden.tokens.length * vocab);
      let token = first.token;
      for (let i = 0; i < golden.tokens.length; i++) {
        tokens.push(token);
        const r = await seq.next([feed?.[i] ?? token], GREEDY, true);
        decode.set(r.logits!, i * vocab);
        token = r.token;
      }
      runs.push({
        prefill: first.logits,
        tokens,
        decode,
        xF16: roundsActivations(compiled.graphs.prefill),
      });
      seq.destroy();
    }
    return runs;
  } finally {
    gm.destroy();
  }
}

/** Whether a matmul of g rounds its x rows to f16 (the tensor-core prefill under f16). */
function roundsActivations(g: Graph): boolean {
  return g.nodes.some((n) => n.attrs.op === 'matmul' && n.attrs.xType === 'f16');
}

/**
 * The same on the CPU interpreter over the lowered (unfused) graphs: the op references. A
 * precision other than f32 runs the precision pass on them (the references round the weights).
 */
export async function runGoldenCpu(
  hf: HfFolder,
  golden: Golden,
  opts: GoldenRunOptions = {},
): Promise<GoldenRun> {
  const weights = (n: string) => hf.readTensorF32(n);
  const T = golden.prompt.length;
  const graph = (phase: 'prefill' | 'decode', maxT: number) =>
    assignPrecision(
      lower(hf.model, { phase, maxT, capacity: 64 }),
      opts.precision ?? 'f32',
      opts.caps ?? BASELINE_CAPS,
    );
  const prefillGraph = graph('prefill', T);
  const prefill = await Interpreter.create(prefillGraph, weights);
  const step = await Interpreter.create(graph('decode', 1), weights);
  const state = prefill.newState();
  const first = prefill.step(Uint32Array.from(golden.prompt), 0, T, state);
  const vocab = hf.model.vocab;
  const tokens: number[] = [];
  const decode = new Float32Array(golden.tokens.length * vocab);
  let token = first.token;
  for (let i = 0; i < golden.tokens.length; i++) {
    tokens.push(token);
    const r = step.step(Uint32Array.of(opts.feed?.[i] ?? token), T + i, 1, state);
    decode.set(r.logits, i * vocab);
    token = r.token;
  }
  return { prefill: first.logits, tokens, decode, xF16: roundsActivations(prefillGraph) };
}

/**
 * Imports `dir`, runs it, compares with `goldenDir`/golden.safetensors (the fixtures keep it
 * beside the model), and returns a summary line.
 */
export async function checkGolden(
  dir: string,
  on: 'gpu' | 'cpu',
  goldenDir = dir,
): Promise<string> {
  const hf = await importHfFolder(dir);
  try {
    const golden = await readGolden(goldenDir);
    const run = await (on === 'gpu' ? runGoldenGpu : runGoldenCpu)(hf, golden);
    const vocab = hf.model.vocab;
    const pre = rowErrors(run.prefill, golden.prefill, vocab);
    const dec = rowErrors(run.decode, golden.decode, vocab);
    expect(run.tokens).toEqual(golden.tokens);
    expect(pre.abs).toBeLessThanOrEqual(1e-3);
    expect(pre.rel).toBeLessThanOrEqual(1e-4);
    expect(dec.abs).toBeLessThanOrEqual(1e-3);
    expect(dec.rel).toBeLessThanOrEqual(1e-4);
    const e = (x: number) => x.toExponential(1);
    return `prefill abs ${e(pre.abs)} rel ${e(pre.rel)}; decode abs ${e(dec.abs)} rel ${e(dec.rel)}`;
  } finally {
    await hf.close();
  }
}
