/**
 * Whole-model harness: compile a model with seeded random weights for the test
 * device, and run prefill + greedy decode on WebGPU beside the CPU interpreter,
 * asserting logits (max relative error) and tokens step by step.
 */
import { expect } from 'vitest';
import { compileModel, type CompileOptions, type CompiledModel } from '../../codegen/compile.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { GpuModel, type Sequence } from '../../runtime/model.ts';
import { Interpreter, type CpuState } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { WeightProvider } from '../../src/graph/params.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import { testGpu } from './gpu.ts';
import { maxRelError } from './numeric.ts';

export interface LoadedModel {
  compiled: CompiledModel;
  weights: WeightProvider;
  gm: GpuModel;
}

/** What gpuModel compiles with unless told otherwise, and the seed of its weights. */
export const GPU_MODEL_DEFAULTS = { maxT: 16, capacity: 96 };
export const GPU_MODEL_SEED = 7;

export async function gpuModel(
  model: ModelIR,
  opts: Partial<CompileOptions> = {},
  seed = GPU_MODEL_SEED,
): Promise<LoadedModel> {
  const gpu = await testGpu();
  const compiled = compileModel(model, { caps: gpu.caps, ...GPU_MODEL_DEFAULTS, ...opts });
  const weights = randomWeights(model, seed);
  const gm = await GpuModel.load(gpu, memorySource(compiled, weights));
  return { compiled, weights, gm };
}

/**
 * Prefill `prompt` then `steps` greedy decode steps on both; returns both sides' state.
 * `cpuChunk` prefills the interpreter in chunks of that many tokens (its state carried across
 * chunks) and compares the last chunk's logits.
 */
export async function expectMatchesInterpreter(
  m: LoadedModel,
  prompt: Uint32Array,
  steps: number,
  tol: number,
  cpuChunk: number = prompt.length,
): Promise<{ seq: Sequence; state: CpuState }> {
  const prefill = await Interpreter.create(m.compiled.graphs.prefill, m.weights);
  const decode = await Interpreter.create(m.compiled.graphs.decode, m.weights);
  const state = prefill.newState();
  const first = prompt.slice(0, cpuChunk);
  let cpu = prefill.step(first, 0, first.length, state);
  for (let at = cpuChunk; at < prompt.length; at += cpuChunk) {
    const chunk = prompt.slice(at, at + cpuChunk);
    cpu = prefill.step(chunk, at, chunk.length, state);
  }
  const seq = m.gm.newSequence();
  const gpu = await seq.forward(prompt);
  expect(maxRelError(gpu.logits.slice(-cpu.logits.length), cpu.logits)).toBeLessThan(tol);
  expect(gpu.token).toBe(cpu.token);
  let cpuTok = cpu.token;
  let gpuTok = gpu.token;
  for (let i = 0; i < steps; i++) {
    const c = decode.step(Uint32Array.of(cpuTok), prompt.length + i, 1, state);
    const g = await seq.next([gpuTok], GREEDY, true);
    expect(maxRelError(g.logits!, c.logits)).toBeLessThan(tol);
    expect(g.token).toBe(c.token);
    cpuTok = c.token;
    gpuTok = g.token;
  }
  return { seq, state };
}

/**
 * Compiles `model` fused and unfused (its other options alike), runs `ids` through both and
 * expects the same logits within `tol`; returns both builds and the fused logits.
 */
export async function expectFusedMatchesUnfused(
  model: ModelIR,
  ids: number[],
  tol: number,
  opts: Partial<CompileOptions> = {},
): Promise<{ fused: LoadedModel; plain: LoadedModel; logits: Float32Array }> {
  const fused = await gpuModel(model, { ...opts, fuse: true });
  const plain = await gpuModel(model, { ...opts, fuse: false });
  const a = await fused.gm.newSequence().forward(ids);
  const b = await plain.gm.newSequence().forward(ids);
  expect(maxRelError(a.logits, b.logits)).toBeLessThan(tol);
  return { fused, plain, logits: a.logits };
}

/**
 * Teacher forcing (both sides read the same tokens): `ids[0, prompt)` through seq.forward() and
 * through the interpreters in chunks of maxT, then the rest of `ids` as decode steps, queued
 * `batch` at a time on the GPU (next() reads the batch's last logits). `state` carries the
 * interpreter's caches, so the caller can inspect them after. Returns the worst relative logit
 * error seen.
 */
export async function teacherForcedWorst(
  seq: Sequence,
  cpu: { prefill: Interpreter; decode: Interpreter; state: CpuState },
  ids: Uint32Array,
  prompt: number,
  maxT: number,
  batch: number,
): Promise<number> {
  const gpu = await seq.forward(ids.subarray(0, prompt));
  let want: Float32Array = new Float32Array();
  for (let at = 0; at < prompt; at += maxT) {
    const chunk = ids.subarray(at, Math.min(prompt, at + maxT));
    const run = chunk.length > 1 ? cpu.prefill : cpu.decode;
    want = run.step(chunk, at, chunk.length, cpu.state).logits;
  }
  let worst = maxRelError(gpu.logits.slice(-want.length), want);
  for (let at = prompt; at < ids.length; at += batch) {
    const end = Math.min(ids.length, at + batch);
    for (let pos = at; pos < end; pos++) {
      want = cpu.decode.step(ids.subarray(pos, pos + 1), pos, 1, cpu.state).logits;
    }
    const got = await seq.next(ids.subarray(at, end), GREEDY, true);
    worst = Math.max(worst, maxRelError(got.logits!, want));
  }
  return worst;
}

/**
 * Last-row logits of a prefill of `ids` in chunks of `chunk` tokens on `prefill`, then `steps`
 * decode steps on `decode` feeding tokens 1, 2, … (the same tokens in every run compared: greedy
 * choices could part on near ties), one CPU state carried through both.
 */
export function chunkedThenDecode(
  prefill: Interpreter,
  decode: Interpreter,
  ids: Uint32Array,
  chunk: number,
  steps: number,
): Float32Array[] {
  const state = prefill.newState();
  let r = prefill.step(ids.slice(0, chunk), 0, 1, state);
  for (let at = chunk; at < ids.length; at += chunk) {
    r = prefill.step(ids.slice(at, at + chunk), at, 1, state);
  }
  const out = [r.logits];
  for (let i = 0; i < steps; i++) {
    out.push(decode.step(Uint32Array.of(i + 1), ids.length + i, 1, state).logits);
  }
  return out;
}
