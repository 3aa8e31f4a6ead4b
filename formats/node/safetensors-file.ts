/**
 * safetensors on disk (Node): one file, or a folder holding `model.safetensors` or a sharded
 * checkpoint (`model.safetensors.index.json` plus its shards). Only headers are read up
 * front; each tensor is then read by offset through a file handle, so checkpoints of many
 * GB never sit in one Buffer.
 */
import { open, readFile, readdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import {
  DTYPE_BYTES,
  decodeF32,
  decodeI32,
  parseHeaderJson,
  readHeaderLength,
  type SafetensorsDtype,
  type SafetensorsHeader,
  type TensorInfo,
} from '../safetensors.ts';
import { jsonSyntaxError } from '../json-error.ts';
import { readExactly } from './read-exactly.ts';
import { gatherSlice, sliceSpan, type TensorSlice } from '../tensor-slice.ts';

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** The file that holds it. */
  file: string;
}

export interface SafetensorsSource {
  /** What was opened (file or folder). */
  readonly path: string;
  /** Every tensor of every shard, sorted by name. */
  listTensors(): TensorEntry[];
  has(name: string): boolean;
  info(name: string): TensorEntry;
  /** `__metadata__` of a single file, or the `metadata` object of a sharded index. */
  readonly metadata: Record<string, unknown>;
  readTensorBytes(name: string): Promise<Uint8Array>;
  /** Bytes [begin, end) of tensor `name`'s data (a part of a large quantised tensor). */
  readTensorByteRange(name: string, begin: number, end: number): Promise<Uint8Array>;
  readTensorF32(name: string): Promise<Float32Array>;
  /**
   * A box of tensor `name` as f32 (see formats/tensor-slice.ts), reading only the bytes from its
   * first to its last element; errors name the tensor when the box does not fit its shape.
   */
  readTensorSliceF32(name: string, slice: TensorSlice): Promise<Float32Array>;
  readTensorI32(name: string): Promise<Int32Array>;
  close(): Promise<void>;
}

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

interface Shard {
  file: string;
  handle: FileHandle;
  header: SafetensorsHeader;
}

async function openShard(file: string): Promise<Shard> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const first8 = await readExactly(handle, 0, Math.min(8, size), file);
    const headerLen = readHeaderLength(first8, file);
    if (8 + headerLen > size) {
      throw new Error(
        `${file}: header length ${headerLen} runs past the end of the ${size}-byte file`,
      );
    }
    const json = await readExactly(handle, 8, headerLen, file);
    const header = parseHeaderJson(json, 8 + headerLen, size - 8 - headerLen, file);
    return { file, handle, header };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** Opens a .safetensors file, or a folder with a single-file or sharded checkpoint. */
export async function openSafetensors(path: string): Promise<SafetensorsSource> {
  const st = await stat(path);
  if (!st.isDirectory()) return makeSource(path, [await openShard(path)], null);

  const names = await readdir(path);
  if (names.includes(INDEX_FILE)) return openSharded(path);
  if (names.includes(SINGLE_FILE))
    return makeSource(path, [await openShard(join(path, SINGLE_FILE))], null);
  const candidates = names.filter((n) => n.endsWith('.safetensors'));
  if (candidates.length === 1)
    return makeSource(path, [await openShard(join(path, candidates[0]))], null);
  throw new Error(
    candidates.length === 0
      ? `${path}: no ${SINGLE_FILE}, ${INDEX_FILE} or other .safetensors file`
      : `${path}: ${candidates.length} .safetensors files (${candidates.join(', ')}) but no ${INDEX_FILE} saying how they fit together`,
  );
}

async function openSharded(dir: string): Promise<SafetensorsSource> {
  const indexPath = join(dir, INDEX_FILE);
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new Error(`${indexPath}: ${jsonSyntaxError(e)}`);
  }
  const weightMap = (index as { weight_map?: unknown }).weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new Error(`${indexPath}: no weight_map object`);
  }
  const byFile = new Map<string, string[]>();
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string')
      throw new Error(`${indexPath}: weight_map['${tensor}'] is not a file name`);
    const full = resolve(dir, file);
    // A shard name that climbs out of the folder is a malformed (or hostile) index.
    if (!full.startsWith(resolve(dir) + sep)) {
      throw new Error(`${indexPath}: weight_map['${tensor}'] names '${file}', outside the folder`);
    }
    const list = byFile.get(full) ?? [];
    list.push(tensor);
    byFile.set(full, list);
  }
  const shards: Shard[] = [];
  try {
    for (const [file, tensors] of byFile) {
      const shard = await openShard(file);
      shards.push(shard);
      const present = new Set(shard.header.tensors.map((t) => t.name));
      const absent = tensors.filter((t) => !present.has(t));
      if (absent.length > 0) {
        throw new Error(
          `${indexPath}: weight_map puts ${absent.map((t) => `'${t}'`).join(', ')} in ${basename(file)}, which has no such tensor`,
        );
      }
    }
  } catch (e) {
    await Promise.all(shards.map((s) => s.handle.close()));
    throw e;
  }
  const meta = (index as { metadata?: unknown }).metadata;
  return makeSource(
    dir,
    shards,
    typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : {},
  );
}

function makeSource(
  path: string,
  shards: Shard[],
  indexMetadata: Record<string, unknown> | null,
): SafetensorsSource {
  const where = new Map<string, { shard: Shard; info: TensorInfo }>();
  for (const shard of shards) {
    for (const info of shard.header.tensors) {
      const prev = where.get(info.name);
      if (prev) {
        throw new Error(
          `${path}: tensor '${info.name}' is in both ${basename(prev.shard.file)} and ${basename(shard.file)}`,
        );
      }
      where.set(info.name, { shard, info });
    }
  }
  const lookup = (name: string) => {
    const hit = where.get(name);
    if (!hit) throw new Error(`${path}: no tensor named '${name}'`);
    return hit;
  };
  const entry = (name: string): TensorEntry => {
    const { shard, info } = lookup(name);
    return { name, dtype: info.dtype, shape: [...info.shape], file: shard.file };
  };
  const readBytes = (name: string): Promise<Uint8Array> => {
    const { shard, info } = lookup(name);
    return readExactly(
      shard.handle,
      shard.header.dataStart + info.begin,
      info.end - info.begin,
      shard.file,
    );
  };
  const sorted = [...where.keys()].sort();
  return {
    path,
    metadata: indexMetadata ?? shards[0].header.metadata,
    listTensors: () => sorted.map(entry),
    has: (name) => where.has(name),
    info: entry,
    readTensorBytes: readBytes,
    readTensorByteRange: (name, begin, end) => {
      const { shard, info } = lookup(name);
      const size = info.end - info.begin;
      if (!(
        Number.isInteger(begin) &&
        Number.isInteger(end) &&
        0 <= begin &&
        begin <= end &&
        end <= size
      ))
        return Promise.reject(
          new Error(
            `${path}: tensor '${name}' has ${size} bytes; cannot read bytes [${begin}, ${end})`,
          ),
        );
      return readExactly(
        shard.handle,
        shard.header.dataStart + info.begin + begin,
        end - begin,
        shard.file,
      );
    },
    // The bytes are a fresh buffer, so the decoders' zero-copy views alias nothing shared.
    readTensorF32: async (name) => decodeF32(lookup(name).info, await readBytes(name)),
    readTensorSliceF32: async (name, slice) => {
      const { shard, info } = lookup(name);
      const span = sliceSpan(name, info.shape, slice);
      const bytes = DTYPE_BYTES[info.dtype];
      const begin = info.begin + span.first * bytes;
      const end = info.begin + span.end * bytes;
      const raw = await readExactly(
        shard.handle,
        shard.header.dataStart + begin,
        end - begin,
        shard.file,
      );
      const values = decodeF32({ ...info, shape: [span.end - span.first], begin, end }, raw);
      return gatherSlice(values, span.first, info.shape, slice);
    },
    readTensorI32: async (name) => decodeI32(lookup(name).info, await readBytes(name)),
    close: async () => {
      await Promise.all(shards.map((s) => s.handle.close()));
    },
  };
}
