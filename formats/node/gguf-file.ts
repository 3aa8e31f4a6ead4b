/**
 * A GGUF file on disk (Node). @huggingface/gguf parses the header (metadata and tensor infos) from
 * the local file through its allowLocalFile reader, which reads it in 2 MB chunks and never
 * touches the network; each tensor is then read by offset through a file handle and dequantised
 * (formats/gguf.ts), so a model of many GB never sits in one buffer.
 */
import { open } from 'node:fs/promises';
import { readExactly } from './read-exactly.ts';
import { gguf, type GGUFParseOutput, type MetadataValue } from '@huggingface/gguf';
import { dequantize, ggufTensorIndex, unreadableReason, type GgufTensor } from '../gguf.ts';

/** A metadata value as the parser returns it (u64/i64 as bigint, arrays as arrays). */
export type GgufValue = MetadataValue;

export interface GgufSource {
  readonly path: string;
  /** Every key-value pair of the header, including version / tensor_count / kv_count. */
  readonly metadata: Readonly<Record<string, GgufValue>>;
  /** The tensors in file order. */
  listTensors(): GgufTensor[];
  has(name: string): boolean;
  info(name: string): GgufTensor;
  /** Tensor `name` as f32; refused, naming the tensor and its type, where strata cannot read it. */
  readTensorF32(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function openGguf(path: string): Promise<GgufSource> {
  const handle = await open(path, 'r');
  let tensors: GgufTensor[];
  let metadata: Record<string, GgufValue>;
  try {
    const { size } = await handle.stat();
    let parsed: GGUFParseOutput;
    try {
      parsed = await gguf(path, { allowLocalFile: true });
    } catch (e) {
      throw new Error(`${path}: cannot read the GGUF header (${(e as Error).message})`);
    }
    tensors = ggufTensorIndex(parsed, size, path);
    metadata = parsed.metadata as unknown as Record<string, GgufValue>;
  } catch (e) {
    await handle.close();
    throw e;
  }
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const lookup = (name: string): GgufTensor => {
    const t = byName.get(name);
    if (!t) throw new Error(`${path}: no tensor named '${name}'`);
    return t;
  };
  return {
    path,
    metadata,
    listTensors: () => tensors.map((t) => ({ ...t, shape: [...t.shape] })),
    has: (name) => byName.has(name),
    info: (name) => ({ ...lookup(name), shape: [...lookup(name).shape] }),
    readTensorF32: async (name) => {
      const t = lookup(name);
      const why = unreadableReason(t);
      if (why !== null || t.byteLength === null) throw new Error(`${path}: ${why}`);
      const bytes = await readExactly(handle, t.offset, t.byteLength, path);
      try {
        return dequantize(t, bytes);
      } catch (e) {
        throw new Error(`${path}: ${(e as Error).message}`);
      }
    },
    close: () => handle.close(),
  };
}
