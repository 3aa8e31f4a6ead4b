/**
 * The runtime never answers silently wrong: non-finite logits, a full KV cache, WebGPU errors
 * and a lost device all end generation with an error (or a stop reason) that names the step.
 * Tiny models (vocab 64, dim 48, 2 layers) keep SwiftShader fast.
 */
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import { memorySource } from '../../codegen/bundle.ts';
import {
  CapacityError,
  DeviceError,
  DeviceLostError,
  GpuModel,
  NonFiniteError,
} from '../../runtime/model.ts';
import type { BundleSource } from '../../codegen/manifest.ts';
import type { GpuContext } from '../../runtime/gpu.ts';
import { acquire, nodeGpu } from '../../runtime/node/webgpu-node.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { WeightProvider } from '../../src/graph/params.ts';
import { testGpu } from '../helpers/gpu.ts';
import { attention, tinyLlama } from '../helpers/models.ts';

const MODEL = tinyLlama({ vocab: 64, tieEmbeddings: false }, 2);
const PROMPT = [5, 17, 3, 9, 30];
const OPTS = { maxT: 8, capacity: 32 };

/** Random weights with `plant` applied to one tensor. */
function weightsWith(name: string, plant: (w: Float32Array) => void): WeightProvider {
  const base = randomWeights(MODEL, 7);
  return async (n) => {
    const w = await base(n);
    if (n !== name) return w;
    const copy = w.slice();
    plant(copy);
    return copy;
  };
}

function source(gpu: GpuContext, weights: WeightProvider = randomWeights(MODEL, 7)): BundleSource {
  return memorySource(compileModel(MODEL, { caps: gpu.caps, ...OPTS }), weights);
}

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

async function cleanTokens(n: number): Promise<number[]> {
  const gpu = await testGpu();
  const gm = await GpuModel.load(gpu, source(gpu));
  try {
    return await collect(gm.newSequence().generate(PROMPT, { maxTokens: n }));
  } finally {
    gm.destroy();
  }
}

describe('non-finite logits stop generation with an error naming the step', () => {
  it('a NaN in layer 1 down_proj: generate, next and forward throw at prefill; the scan names the dispatch', async () => {
    const gpu = await testGpu();
    const w = weightsWith('model.layers.1.mlp.down_proj.weight', (x) => (x[100] = NaN));
    const gm = await GpuModel.load(gpu, source(gpu, w));
    const gen = collect(gm.newSequence().generate(PROMPT, { maxTokens: 4 }));
    await expect(gen).rejects.toThrow(NonFiniteError);
    await expect(gen).rejects.toThrow(
      /non-finite logits .* in prefill of positions 0\.\.4 at position 4/,
    );
    await expect(
      gm.newSequence().next(PROMPT, { seed: 1, draw: 0, temperature: 0.8, topK: 0, topP: 1 }),
    ).rejects.toThrow(/non-finite logits .* prefill .* at position 4/);
    await expect(gm.newSequence().forward(PROMPT)).rejects.toThrow(
      /prefill .* at position 0: logit \d+ is NaN/,
    );

    const site = await gm.findFirstNonFinite(PROMPT);
    expect(site).toMatchObject({
      phase: 'prefill',
      step: 'prefill of positions 0..4',
      label: 'l1.mlp.down+residual',
      layer: 1,
      binding: 'out',
    });
    expect(site!.buffer).toMatch(/^slot:\d+$/);
    expect(Number.isFinite(site!.value)).toBe(false);
    gm.destroy();
  });

  it('a NaN reached only in decode names the decode step, its position and the embedding dispatch', async () => {
    // Poison the embedding row of generated token k, the first one new to the sequence: it is
    // sampled from finite logits, then fed in decode step k + 1.
    const clean = await cleanTokens(8);
    const k = clean.findIndex(
      (t, i) => i > 0 && !PROMPT.includes(t) && !clean.slice(0, i).includes(t),
    );
    expect(k).toBeGreaterThan(0);
    const bad = clean[k];
    const gpu = await testGpu();
    const w = weightsWith('model.embed_tokens.weight', (x) =>
      x.fill(Infinity, bad * 48, (bad + 1) * 48),
    );
    const gm = await GpuModel.load(gpu, source(gpu, w));
    const got: number[] = [];
    const run = async () => {
      for await (const t of gm.newSequence().generate(PROMPT, { maxTokens: 8 })) got.push(t);
    };
    await expect(run()).rejects.toThrow(
      `non-finite logits (NaN or Inf) in decode step ${k + 1} at position ${PROMPT.length + k}`,
    );
    expect(got).toEqual(clean.slice(0, k + 1));

    const site = await gm.findFirstNonFinite(PROMPT, got);
    expect(site).toMatchObject({
      phase: 'decode',
      step: `decode at position ${PROMPT.length + k}`,
      dispatch: 0,
      label: 'embed',
      layer: null,
      value: Infinity,
    });
    gm.destroy();
  });

  it('an overflowing attention scale (scores past the f32 range) is caught the same way', async () => {
    const gpu = await testGpu();
    const base = tinyLlama({ vocab: 64 }, 1);
    const model = {
      ...base,
      layers: base.layers.map((l) => ({ ...l, mixer: attention({ scale: 1e38 }) })),
    };
    const gm = await GpuModel.load(
      gpu,
      memorySource(compileModel(model, { caps: gpu.caps, ...OPTS }), randomWeights(model, 7)),
    );
    await expect(collect(gm.newSequence().generate(PROMPT, { maxTokens: 3 }))).rejects.toThrow(
      NonFiniteError,
    );
    const site = await gm.findFirstNonFinite(PROMPT);
    expect(site?.layer).toBe(0);
    expect(site?.label).toMatch(/^l0\.attn/);
    gm.destroy();
  });

  it('a healthy model scans clean', async () => {
    const gpu = await testGpu();
    const gm = await GpuModel.load(gpu, source(gpu));
    expect(await gm.findFirstNonFinite(PROMPT, [1, 2])).toBeNull();
    gm.destroy();
  });
});

describe('KV cache capacity', () => {
  it('refuses a prompt that does not fit, with both numbers, before running anything', async () => {
    const gpu = await testGpu();
    const gm = await GpuModel.load(gpu, source(gpu));
    const seq = gm.newSequence();
    const long = Array.from({ length: 40 }, (_, i) => i % 64);
    const gen = collect(seq.generate(long, { maxTokens: 3 }));
    await expect(gen).rejects.toThrow(CapacityError);
    await expect(gen).rejects.toThrow(
      'prompt of 40 tokens exceeds the KV cache capacity 32 (compile with --capacity 40 or more)',
    );
    expect(seq.pos).toBe(0);
    await expect(seq.forward(long)).rejects.toThrow(/40 tokens exceeds the KV cache capacity 32/);
    await expect(
      seq.next(long, { seed: 0, draw: 0, temperature: 0, topK: 0, topP: 1 }),
    ).rejects.toThrow(CapacityError);
    expect(seq.pos).toBe(0);
    gm.destroy();
  });

  it('generates up to the capacity and says so; otherwise stops at max-tokens or a stop token', async () => {
    const gpu = await testGpu();
    const gm = await GpuModel.load(gpu, source(gpu));
    const seq = gm.newSequence();
    const got = await collect(seq.generate(PROMPT, { maxTokens: 1000 }));
    // Every position is used: the prompt, then tokens 0..26 fed, then token 27 sampled at 31.
    expect(got.length).toBe(32 - PROMPT.length + 1);
    expect(seq.pos).toBe(32);
    expect(seq.lastStop).toBe('capacity');

    // Asking for exactly what fits is not a capacity stop.
    const full = gm.newSequence();
    expect(await collect(full.generate(PROMPT, { maxTokens: got.length }))).toEqual(got);
    expect(full.lastStop).toBe('max-tokens');

    const b = gm.newSequence();
    const some = await collect(b.generate(PROMPT, { maxTokens: 4 }));
    expect(some).toEqual(got.slice(0, 4));
    expect(b.lastStop).toBe('max-tokens');

    const c = gm.newSequence();
    const stopped = await collect(c.generate(PROMPT, { maxTokens: 10, stopTokens: [got[2]] }));
    expect(stopped).toEqual(got.slice(0, got.indexOf(got[2]) + 1));
    expect(c.lastStop).toBe('stop-token');
    gm.destroy();
  });
});

describe('WebGPU errors become exceptions', () => {
  it('refuses a manifest whose scratch buffer or grid the device cannot hold, naming it and the limit', async () => {
    const gpu = await testGpu();
    const big = source(gpu);
    const scratchName = Object.keys(big.manifest.phases.decode.scratch)[0];
    expect(scratchName).toBeDefined();
    big.manifest.phases.decode.scratch[scratchName] = 2 ** 40;
    await expect(GpuModel.load(gpu, big)).rejects.toThrow(
      `this device's maxBufferSize is ${gpu.caps.maxBufferBytes}, but decode scratch '${scratchName}' needs 1099511627776`,
    );

    const wide = source(gpu);
    const d = wide.manifest.phases.prefill.dispatches[2];
    d.grid = [1e9, 1, 1];
    await expect(GpuModel.load(gpu, wide)).rejects.toThrow(
      `this device's maxComputeWorkgroupsPerDimension is ${gpu.caps.maxWorkgroupsPerDimension}, ` +
        `but prefill dispatch 2 '${d.label}' (kernel ${d.kernel}) with grid [1000000000, 1, 1] at T = 1 needs 1000000000`,
    );
  });

  it('a validation error in a step (a dispatch writing the buffer it reads) throws, naming the step', async () => {
    const gpu = await testGpu();
    const src = source(gpu);
    const d = src.manifest.phases.decode.dispatches.find((x) => x.bind.x && x.bind.out)!;
    d.bind.out = d.bind.x;
    const gm = await GpuModel.load(gpu, src);
    const got: number[] = [];
    const run = async () => {
      for await (const t of gm.newSequence().generate(PROMPT, { maxTokens: 4 })) got.push(t);
    };
    const err = await run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as Error).message).toMatch(/^WebGPU validation error during decode step 1: /);
    // The prefill's token was good; nothing after the failed step is yielded.
    expect(got.length).toBe(1);
    gm.destroy();
    // The shared device is still usable afterwards.
    expect((await cleanTokens(2)).length).toBe(2);
  });

  it('a broken shader fails the load naming the kernel, and leaves no error behind for the next load', async () => {
    const gpu = await testGpu();
    const src = source(gpu);
    const victim = src.manifest.kernels[0];
    const shader = src.shader;
    src.shader = async (file) =>
      file === victim.file ? (await shader(file)).replace('fn main', 'fn main oops') : shader(file);
    await expect(GpuModel.load(gpu, src)).rejects.toThrow(
      `WGSL compile error in kernel ${victim.name}`,
    );
    expect((await cleanTokens(2)).length).toBe(2);
  });

  it('an error raised outside the runtime (uncaptured) is reported by the next step, once', async () => {
    // The shared device: the error is reported once, so later tests do not inherit it.
    const gpu = await testGpu();
    const gm = await GpuModel.load(gpu, source(gpu));
    gpu.device.createBuffer({ size: 2 ** 40, usage: GPUBufferUsage.STORAGE });
    await expect(collect(gm.newSequence().generate(PROMPT, { maxTokens: 2 }))).rejects.toThrow(
      /WebGPU validation error during prefill of positions 0\.\.4 \(raised before it, outside the runtime's error scopes\): Buffer size \(1099511627776\)/,
    );
    expect((await collect(gm.newSequence().generate(PROMPT, { maxTokens: 2 }))).length).toBe(2);
    gm.destroy();
  });
});

describe('device loss', () => {
  it('generate() reports the loss of its device with the reason, now and on later calls', async () => {
    const gpu = await acquire();
    const gm = await GpuModel.load(gpu, source(gpu));
    gpu.device.destroy();
    const err = await collect(gm.newSequence().generate(PROMPT, { maxTokens: 5 })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DeviceLostError);
    expect((err as Error).message).toMatch(
      /^the WebGPU device was lost during prefill of positions 0\.\.4 \(reason: destroyed/,
    );
    // Later calls fail at once with the same clear error rather than hanging.
    await expect(
      gm.newSequence().next(PROMPT, { seed: 0, draw: 0, temperature: 0, topK: 0, topP: 1 }),
    ).rejects.toThrow(DeviceLostError);

    gm.destroy();
  });

  it('nodeGpu() shares one device per set of Dawn flags, as the CLI commands in one process do', async () => {
    const a = await nodeGpu();
    expect(await nodeGpu()).toBe(a);
    // Another flag set is another device (its own toggles), shared in turn.
    const flags = ['enable-dawn-features=disable_symbol_renaming'];
    const b = await nodeGpu({ flags });
    expect(b.device).not.toBe(a.device);
    expect(await nodeGpu({ flags })).toBe(b);
    expect(await nodeGpu()).toBe(a);
    b.device.destroy();
  });

  // Last in the file: it destroys the device the other tests share.
  it('nodeGpu() hands out a fresh device once the shared one is lost, and the model reloads on it', async () => {
    const want = await cleanTokens(5);
    const lostOne = await nodeGpu();
    lostOne.device.destroy();
    await lostOne.device.lost;
    const fresh = await nodeGpu();
    expect(fresh.device).not.toBe(lostOne.device);
    expect(await nodeGpu()).toBe(fresh);
    const gm = await GpuModel.load(fresh, source(fresh));
    expect(await collect(gm.newSequence().generate(PROMPT, { maxTokens: 5 }))).toEqual(want);
    gm.destroy();
  });
});
