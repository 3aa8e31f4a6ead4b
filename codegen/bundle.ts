/**
 * CompiledModel → bundle: manifest.json, shaders/*.wgsl, weights.safetensors.
 * The bundle is written into a temporary sibling folder and renamed into place
 * at the end, so a failed compile leaves nothing behind (and an existing bundle
 * is replaced only by a complete one). What may be replaced is bundle-target.ts's call.
 */
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CompiledModel } from './compile.ts';
import type { ModelTokenizer, TokenizerFiles } from '../src/import/tokenizer-files.ts';
import { materialize, type WeightProvider } from '../src/graph/params.ts';
import type { BundleManifest } from './manifest.ts';
import { BUNDLE_FORMAT, BUNDLE_VERSION, storedEntry } from './manifest.ts';
import { encodeWeight } from '../src/ops/weight-storage.ts';
import type { BundleSource, Progress } from './manifest.ts';
import {
  checkBundleTarget,
  cleanStaleSiblings,
  oldSibling,
  tempSibling,
  type BundleTargetOptions,
} from './bundle-target.ts';

export const WEIGHTS_FILE = 'weights.safetensors';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

export function toManifest(c: CompiledModel, tokenizer: ModelTokenizer = 'bytes'): BundleManifest {
  const phase = (p: CompiledModel['phases']['prefill']) => ({
    maxT: p.maxT,
    slots: p.slots,
    scratch: p.scratch,
    dispatches: p.dispatches,
    ioBytes: p.ioBytes,
  });
  return {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    createdBy: 'strata 0.1.0',
    model: c.model,
    compile: {
      maxT: c.maxT,
      capacity: c.capacity,
      ...(c.batch > 1 ? { batch: c.batch, batchPrefill: 'slot' as const } : {}),
      fused: c.fused,
      caps: c.caps,
      precision: c.precision,
    },
    weightsFile: WEIGHTS_FILE,
    tensors: c.params.map((p) => ({ name: p.name, shape: p.shape, dtype: p.dtype })),
    state: c.state,
    kernels: c.kernels.map((k) => ({
      name: k.name,
      file: `shaders/${k.name}.wgsl`,
      bindings: k.bindings,
      workgroupSize: k.workgroupSize,
    })),
    phases: { prefill: phase(c.phases.prefill), decode: phase(c.phases.decode) },
    tokenizer:
      typeof tokenizer === 'string'
        ? { kind: tokenizer }
        : { kind: 'file', file: TOKENIZER_FILE, config: TOKENIZER_CONFIG_FILE, eos: tokenizer.eos },
  };
}

/** The stored bytes of parameter `name`: its f32 values made from the weights, then encoded. */
async function checkedTensor(
  c: CompiledModel,
  weights: WeightProvider,
  name: string,
): Promise<Uint8Array> {
  const p = c.params.find((q) => q.name === name);
  if (!p) throw new Error(`bundle has no tensor named '${name}'`);
  const data = await materialize(p.source, weights);
  const want = p.shape.reduce((a, b) => a * b, 1);
  if (data.length !== want)
    throw new Error(`tensor ${name}: ${data.length} elements, shape [${p.shape}] needs ${want}`);
  try {
    return encodeWeight(p.dtype, data, p.shape[p.shape.length - 1] ?? 1);
  } catch (e) {
    throw new Error(`tensor ${name} as ${p.dtype}: ${(e as Error).message}`);
  }
}

/**
 * Run a compiled model straight from memory, without writing a bundle. `close` is what the
 * loader calls once the weights are uploaded (GpuModel.load closes its source): the checkpoint
 * file the weights are read from, say.
 */
export function memorySource(
  c: CompiledModel,
  weights: WeightProvider,
  tokenizer: ModelTokenizer = 'bytes',
  close?: () => Promise<void>,
): BundleSource {
  const code = new Map(c.kernels.map((k) => [`shaders/${k.name}.wgsl`, k.code]));
  return {
    manifest: toManifest(c, tokenizer),
    tokenizer: async (): Promise<TokenizerFiles | null> =>
      typeof tokenizer === 'string' ? null : tokenizer,
    shader: async (file) => {
      const s = code.get(file);
      if (s === undefined) throw new Error(`no shader ${file}`);
      return s;
    },
    tensor: (name) => checkedTensor(c, weights, name),
    close,
  };
}

/** safetensors header for the stored tensors laid out back to back, padded to 8 bytes. */
function safetensorsHeader(tensors: BundleManifest['tensors']): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', producer: 'strata' } };
  let off = 0;
  for (const t of tensors) {
    const { dtype, shape, bytes } = storedEntry(t.dtype, t.shape);
    header[t.name] = { dtype, shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const buf = Buffer.alloc(8 + Buffer.byteLength(json));
  buf.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  buf.write(json, 8);
  return buf;
}

export async function writeBundle(
  c: CompiledModel,
  weights: WeightProvider,
  outDir: string,
  onProgress?: Progress,
  target: BundleTargetOptions = {},
  tokenizer: ModelTokenizer = 'bytes',
): Promise<void> {
  checkBundleTarget(outDir, target);
  cleanStaleSiblings(outDir, target.inputs);
  const tmp = tempSibling(outDir);
  await rm(tmp, { recursive: true, force: true });
  try {
    await mkdir(join(tmp, 'shaders'), { recursive: true });
    const manifest = toManifest(c, tokenizer);
    if (typeof tokenizer !== 'string') {
      await writeFile(join(tmp, TOKENIZER_FILE), JSON.stringify(tokenizer.tokenizer));
      await writeFile(join(tmp, TOKENIZER_CONFIG_FILE), JSON.stringify(tokenizer.config, null, 1));
    }
    for (const k of c.kernels) await writeFile(join(tmp, 'shaders', `${k.name}.wgsl`), k.code);
    const fh = await open(join(tmp, WEIGHTS_FILE), 'w');
    try {
      await fh.write(safetensorsHeader(manifest.tensors));
      let done = 0;
      for (const t of manifest.tensors) {
        const data = await checkedTensor(c, weights, t.name);
        await fh.write(data.subarray(0, storedEntry(t.dtype, t.shape).bytes));
        onProgress?.('write weights', ++done, manifest.tensors.length);
      }
    } finally {
      await fh.close();
    }
    await writeFile(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 1));
    // Checked again now that the weights are written: the target may have changed meanwhile.
    const existing = checkBundleTarget(outDir, target);
    const old = oldSibling(outDir);
    if (existing.kind !== 'absent') await rename(outDir, old);
    await rename(tmp, outDir);
    await rm(old, { recursive: true, force: true });
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
