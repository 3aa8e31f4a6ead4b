/**
 * A strata model with its weights as a HuggingFace checkpoint, so PyTorch loads exactly the
 * numbers strata runs: config.json from strata's own HF exporter (src/export) and one
 * model.safetensors of f32 tensors under their canonical (= HF) names, streamed tensor by tensor
 * (the 1B model's 4.9 GB never sits in memory at once); and the check that reads it back through
 * strata's HF importer.
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { expectedTensors } from '../../src/import/names.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { exportHfConfig } from '../../src/export/hf-config.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import type { WeightProvider } from '../../src/graph/params.ts';
import { modelDifference } from '../llama-cpp/gguf-model.ts';

/** Writes DIR/config.json and DIR/model.safetensors (f32) of `model` with `weights`. */
export async function writeHfCheckpoint(
  model: ModelIR,
  weights: WeightProvider,
  dir: string,
): Promise<{ configType: string; bytes: number }> {
  mkdirSync(dir, { recursive: true });
  const cfg = exportHfConfig(model);
  writeFileSync(join(dir, 'config.json'), cfg.text);
  const tensors = expectedTensors(model);
  // The header first (offsets follow from the shapes alone), then each tensor's bytes in order.
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    const bytes = 4 * t.shape.reduce((a, b) => a * b, 1);
    header[t.name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // data starts 8-aligned
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  try {
    writeSync(fd, head);
    writeSync(fd, json);
    for (const t of tensors) {
      const x = await weights(t.name);
      const b = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
      for (let at = 0; at < b.byteLength;) at += writeSync(fd, b, at, b.byteLength - at);
    }
  } finally {
    closeSync(fd);
  }
  return { configType: cfg.modelType, bytes: 8 + Buffer.byteLength(json) + offset };
}

/** Reads DIR back through strata's importer; throws naming what differs from model/weights. */
export async function checkHfCheckpoint(
  model: ModelIR,
  weights: WeightProvider,
  dir: string,
  probes: string[],
): Promise<void> {
  const f = await importHfFolder(dir, model.name);
  try {
    const diff = modelDifference(f.model, model);
    if (diff) throw new Error(`${dir}: imports to a different ModelIR (${diff})`);
    for (const name of probes) {
      const want = await weights(name);
      const got = await f.readTensorF32(name);
      if (got.length !== want.length)
        throw new Error(`${dir}: ${name} has ${got.length} elements, want ${want.length}`);
      for (let i = 0; i < want.length; i++)
        if (!Object.is(got[i], want[i]))
          throw new Error(`${dir}: ${name}[${i}] reads ${got[i]}, strata has ${want[i]}`);
    }
  } finally {
    await f.close();
  }
}
