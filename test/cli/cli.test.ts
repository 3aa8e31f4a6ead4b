/**
 * The CLI end to end: compile a spec into a bundle, run it, dump logits, inspect,
 * and the failure paths a user meets (damaged bundles, failed compiles).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './run-cli.ts';
import { openBundle } from '../../runtime/node/bundle-node.ts';
import { GpuModel } from '../../runtime/model.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { compileModel } from '../../codegen/compile.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { report } from '../../src/cli/report.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError } from '../helpers/numeric.ts';

let dir: string;
let bundle: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strata-cli-'));
  bundle = join(dir, 'tiny.bundle');
  const r = await cli(
    'compile',
    'specs/tiny-llama.strata',
    '-o',
    bundle,
    '--seed',
    '3',
    '--max-t',
    '16',
    '--capacity',
    '128',
  );
  expect(r.code, r.err).toBe(0);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('strata compile', () => {
  it('writes manifest, shaders and weights, and nothing else next to them', () => {
    expect(readdirSync(bundle).sort()).toEqual(['manifest.json', 'shaders', 'weights.safetensors']);
    expect(readdirSync(dir)).toEqual(['tiny.bundle']);
  });

  it('leaves nothing behind when compilation fails', async () => {
    const bad = join(dir, 'bad.strata');
    writeFileSync(bad, readFileSync('specs/tiny-llama.strata', 'utf8').replace('swiglu', 'swiglo'));
    const r = await cli('compile', bad, '-o', join(dir, 'bad.bundle'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad\.strata:\d+:\d+/);
    expect(existsSync(join(dir, 'bad.bundle'))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('tmp'))).toEqual([]);
  });

  it('names the missing weights tensor when --weights lacks one', async () => {
    const w = join(dir, 'empty.safetensors');
    writeFileSync(w, Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')]));
    const r = await cli(
      'compile',
      'specs/tiny-llama.strata',
      '-o',
      join(dir, 'w.bundle'),
      '--weights',
      w,
    );
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/missing tensor 'model\.embed_tokens\.weight'/);
    expect(existsSync(join(dir, 'w.bundle'))).toBe(false);
  });
});

describe('strata run', () => {
  it('streams generated ids from a bundle', async () => {
    const r = await cli('run', bundle, '--prompt-ids', '5,17,3', '--max-tokens', '6', '--ids');
    expect(r.code, r.err).toBe(0);
    expect(r.out.trim().split(/\s+/).length).toBe(6);
  });

  it('dumps prefill and decode logits that match the CPU interpreter', async () => {
    const file = join(dir, 'dump.safetensors');
    const r = await cli(
      'run',
      bundle,
      '--prompt-ids',
      '5,17,3,200,9',
      '--max-tokens',
      '4',
      '--dump-logits',
      file,
    );
    expect(r.code, r.err).toBe(0);
    const dump = await openSafetensors(file);
    const prefill = await dump.readTensorF32('prefill_logits');
    const tokens = Array.from(await dump.readTensorI32('decode_tokens'));
    const decodeLogits = await dump.readTensorF32('decode_logits');
    await dump.close();

    const model = loadSpec('specs/tiny-llama.strata');
    const gpu = await testGpu();
    const c = compileModel(model, { caps: gpu.caps, maxT: 16, capacity: 128 });
    const weights = randomWeights(model, 3);
    const pre = await Interpreter.create(c.graphs.prefill, weights);
    const dec = await Interpreter.create(c.graphs.decode, weights);
    const state = pre.newState();
    const ref = pre.step(Uint32Array.of(5, 17, 3, 200, 9), 0, 5, state);
    expect(maxRelError(prefill, ref.logits)).toBeLessThan(1e-4);
    let tok = ref.token;
    for (let i = 0; i < 4; i++) {
      expect(tokens[i]).toBe(tok);
      const s = dec.step(Uint32Array.of(tok), 5 + i, 1, state);
      expect(
        maxRelError(decodeLogits.slice(i * model.vocab, (i + 1) * model.vocab), s.logits),
      ).toBeLessThan(1e-4);
      tok = s.token;
    }
  });

  it('rejects bad options with a message', async () => {
    expect((await cli('run', bundle, '--prompt-ids', '5,x')).err).toMatch(/--prompt-ids/);
    expect((await cli('run', bundle, '--temperature', '-1')).err).toMatch(/--temperature/);
    expect((await cli('run', join(dir, 'nope'))).err).toMatch(/no such file/);
  });
});

describe('damaged bundles fail with the file or tensor named', () => {
  function copyBundle(name: string): string {
    const to = join(dir, name);
    rmSync(to, { recursive: true, force: true });
    cpSync(bundle, to, { recursive: true });
    return to;
  }

  it('missing shader file', async () => {
    const b = copyBundle('noshader');
    const shader = readdirSync(join(b, 'shaders'))[0];
    unlinkSync(join(b, 'shaders', shader));
    await expect(openBundle(b)).rejects.toThrow(shader);
  });

  it('manifest of another version', async () => {
    const b = copyBundle('v99');
    const m = JSON.parse(readFileSync(join(b, 'manifest.json'), 'utf8'));
    m.version = 99;
    writeFileSync(join(b, 'manifest.json'), JSON.stringify(m));
    await expect(openBundle(b)).rejects.toThrow(/version 99/);
  });

  it('tensor of the wrong shape', async () => {
    const b = copyBundle('shape');
    const m = JSON.parse(readFileSync(join(b, 'manifest.json'), 'utf8'));
    const t = m.tensors[0];
    t.shape = [t.shape[0] + 1, ...t.shape.slice(1)];
    writeFileSync(join(b, 'manifest.json'), JSON.stringify(m));
    // Caught when the bundle is opened, before any GPU work.
    await expect(openBundle(b)).rejects.toThrow(t.name);
  });

  it('missing weights file', async () => {
    const b = copyBundle('noweights');
    unlinkSync(join(b, 'weights.safetensors'));
    await expect(openBundle(b)).rejects.toThrow(/weights\.safetensors/);
  });
});

describe('strata inspect', () => {
  it('reports fewer dispatches per decode token with fusion', async () => {
    const fused = JSON.parse((await cli('inspect', 'specs/tiny-llama.strata', '--json')).out);
    const plain = JSON.parse(
      (await cli('inspect', 'specs/tiny-llama.strata', '--json', '--no-fuse')).out,
    );
    expect(fused.dispatchesPerDecodeToken).toBeLessThan(plain.dispatchesPerDecodeToken);
    expect(fused.parameters).toBe(plain.parameters);
    expect(fused.kvBytesPerToken).toBe(3 * 2 * 2 * 16 * 4);
    expect(fused.decode.flops).toBeGreaterThan(0);
    expect(fused.peakActivationBytes).toBeLessThanOrEqual(
      fused.prefill.activationBytesWithoutReuse,
    );
  });

  it('counts dispatches for the storage buffers a kernel may bind (--storage-buffers)', async () => {
    // RWKV-7's time mix (24 layers): 7 dispatches a later layer at WebGPU's 8 storage buffers
    // (its first 6), 6 at 10 (first 5), 5 at 11 and more (src/passes/fuse-rwkv7.ts).
    const at = async (...more: string[]) =>
      JSON.parse((await cli('inspect', 'specs/rwkv7-1.5b-world.strata', '--json', ...more)).out);
    // One at a time: cli() captures the console of this process.
    const base = await at();
    const ten = await at('--storage-buffers', '10');
    const wide = await at('--storage-buffers', '11');
    expect(base.storageBuffersPerKernel).toBe(8);
    expect(wide.storageBuffersPerKernel).toBe(11);
    expect(base.dispatchesPerDecodeToken - ten.dispatchesPerDecodeToken).toBe(24);
    expect(ten.dispatchesPerDecodeToken - wide.dispatchesPerDecodeToken).toBe(23);
    const low = await cli('inspect', 'specs/rwkv7-1.5b-world.strata', '--storage-buffers', '4');
    expect(low.code).not.toBe(0);
    expect(low.err).toMatch(/--storage-buffers must be an integer >= 8/);
  });

  it('shows Jamba-v0.1 per-layer state, with KV only in its 4 attention layers', async () => {
    // Jamba's experts (28672 x 4096 f32 each) exceed the 128 MiB baseline binding, so this also
    // checks that inspect targets this machine's adapter by default, like compile.
    const r = JSON.parse((await cli('inspect', 'specs/jamba-v0.1.strata', '--json')).out);
    const layers: { layer: number; mixer: string; kvBytesPerToken: number; stateBytes: number }[] =
      r.layers;
    expect(layers).toHaveLength(32);
    const kvLayers = layers.filter((l) => l.kvBytesPerToken > 0).map((l) => l.layer);
    expect(kvLayers).toEqual([4, 12, 20, 28]);
    const perLayerKv = 2 * 8 * 128 * 4; // k and v, 8 kv heads of 128 dims, f32
    expect(r.kvBytesPerToken).toBe(4 * perLayerKv);
    // Mamba-1: conv state (d_conv - 1) x d_inner + scan state d_inner x d_state, f32.
    const mambaState = (3 * 8192 + 8192 * 16) * 4;
    for (const l of layers) {
      if (l.mixer === 'mamba1') expect(l.stateBytes).toBe(mambaState);
      else expect(l.kvBytesPerToken).toBe(perLayerKv);
    }
  });

  it('shows the graph after every pass', async () => {
    const r = await cli('inspect', 'specs/tiny-llama.strata', '--passes');
    for (const p of ['lowered', 'qkv-rope-append', 'gated-mlp', 'residual', 'norm-prologue'])
      expect(r.out).toContain(`after ${p}`);
    // A hybrid's phases differ: decode fuses each Mamba layer's step (mamba1-decode).
    const hybrid = 'specs/demo-hybrid.strata';
    const dec = await cli('inspect', hybrid, '--passes');
    const pre = await cli('inspect', hybrid, '--passes', '--phase', 'prefill');
    expect(pre.code, pre.err).toBe(0);
    const nodes = (out: string) => out.match(/== after mamba1-decode: (\d+) nodes ==/)?.[1];
    expect([nodes(pre.out), nodes(dec.out)]).toEqual(['142', '110']);
    for (const [args, message] of [
      [['--phase', 'prefill'], '--phase goes with --passes'],
      [['--passes', '--phase', 'train'], "--phase must be prefill or decode, got 'train'"],
    ] as const) {
      const bad = await cli('inspect', 'specs/tiny-llama.strata', ...args);
      expect(bad.code).toBe(1);
      expect(bad.err).toContain(message);
    }
  });
});

describe('Llama-3.2-1B within browser binding limits', () => {
  it('compiles for 128 MiB bindings by splitting the 1 GiB tied embedding and LM head', () => {
    const model = loadSpec('specs/llama-3.2-1b.strata');
    const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 64, capacity: 2048 });
    const chunks = c.params.filter((p) => p.name.startsWith('model.embed_tokens.weight#rows'));
    expect(chunks.length).toBe(8);
    for (const p of c.params)
      expect(p.shape.reduce((a, b) => a * b, 1) * 4).toBeLessThanOrEqual(
        BASELINE_CAPS.maxStorageBindingBytes,
      );
    const r = report(c);
    expect(Math.abs(r.parameters - 1_235_814_400)).toBeLessThan(1_235_814_400 * 0.005);
  });
});

describe('strata doctor and check', () => {
  it('doctor prints the adapter and limits', async () => {
    const r = await cli('doctor', '--json');
    const info = JSON.parse(r.out);
    expect(info.limits.maxStorageBindingBytes).toBeGreaterThan(0);
    expect(typeof info.shaderF16).toBe('boolean');
  });

  it('every command has --help', async () => {
    for (const c of ['check', 'compile', 'run', 'inspect', 'import', 'doctor']) {
      const r = await cli(c, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/usage: strata/);
    }
  });
});
