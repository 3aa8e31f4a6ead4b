/**
 * Import a GGUF file (Node): the header is read and checked against the model before any tensor
 * is; tensors are then read one at a time, dequantised to f32 and, for llama's q/k, put back in
 * HF's row order (gguf.ts says why), under strata's canonical names.
 */
import { basename } from 'node:path';
import { openGguf } from '../../formats/node/gguf-file.ts';
import type { HfFolder } from './hf-folder.ts';
import { ROPE_FREQS, ggufRowsToHf, importGgufMetadata } from './gguf.ts';

export async function importGgufFile(path: string): Promise<HfFolder> {
  const name = basename(path).replace(/\.gguf$/i, '');
  const source = await openGguf(path);
  let imported;
  try {
    const ropeFreqs = source.has(ROPE_FREQS) ? await source.readTensorF32(ROPE_FREQS) : null;
    imported = importGgufMetadata(source.metadata, source.listTensors(), path, name, ropeFreqs);
  } catch (e) {
    await source.close();
    throw e;
  }
  const { model, weightMap, ropeRows, tensors } = imported;
  const shapes = new Map(tensors.map((t) => [t.name, t.shape]));
  return {
    model,
    weightMap,
    tensors,
    readTensorF32: async (canonical) => {
      const shape = shapes.get(canonical);
      if (!shape) throw new Error(`${path}: model '${name}' has no tensor '${canonical}'`);
      const stored = weightMap[canonical];
      const values = await source.readTensorF32(stored);
      if (!Object.hasOwn(ropeRows, canonical)) return values;
      const cols = shape.length === 2 ? shape[1] : 1;
      return ggufRowsToHf(values, ropeRows[canonical], cols, stored);
    },
    close: () => source.close(),
  };
}
