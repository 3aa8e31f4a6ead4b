/**
 * Import a HuggingFace checkpoint folder (Node): config.json plus model.safetensors or a
 * sharded set. The tensor list is checked against the config before anything is loaded;
 * tensors are then read one at a time, converted to f32 (quantised ones dequantised,
 * src/import/quantized.ts), under strata's canonical names.
 */
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import type { ModelIR } from '../spec/model.ts';
import { checkDuplicates, checkTensors } from './check.ts';
import { mappedTensorReader } from './weight-map.ts';
import { importHfConfig } from './hf.ts';
import { SpecError } from '../../grammar/diagnostics.ts';
import type { ConfigOrigin } from './config-reader.ts';
import { readConfigJson } from './json.ts';
import { dequantizingSource, type TensorSource } from './quantized.ts';
import { LM_HEAD, expectedTensors, type TensorSpec } from './names.ts';

export interface HfFolder {
  model: ModelIR;
  /** Canonical strata tensor name → checkpoint tensor name. */
  weightMap: Record<string, string>;
  /** The tensors the model needs, under canonical names. */
  tensors: TensorSpec[];
  /** Reads one tensor by its canonical name, as f32 (F16/BF16 converted, MXFP4/FP8 dequantised). */
  readTensorF32(name: string): Promise<Float32Array>;
  /** Closes the safetensors file handles. */
  close(): Promise<void>;
}

/** config.json's value, and where its keys are written so errors can name their line. */
export async function readHfConfig(
  dir: string,
): Promise<{ config: unknown; origin: ConfigOrigin }> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new SpecError(`cannot read config.json (${(e as Error).message})`, dir);
  }
  return readConfigJson(text, path);
}

/** `name`: the model's name (default: the folder's; a Hub snapshot folder is named by a commit). */
export async function importHfFolder(
  dir: string,
  name = basename(resolve(dir)),
): Promise<HfFolder> {
  const { config, origin } = await readHfConfig(dir);
  const { model, weightMap, storedShapes, storedSlices, quantization, folds, duplicates } =
    importHfConfig(config as object, name, origin);
  const tensors = expectedTensors(model);
  const file = await openSafetensors(dir);
  let source: TensorSource = file;
  try {
    // A quantised checkpoint is read as the dense tensors it stands for (its scales consumed).
    if (quantization) source = dequantizingSource(file, quantization, dir);
    const copies = duplicates ?? {};
    checkTensors(
      tensors,
      weightMap,
      source.listTensors().filter((t) => !Object.hasOwn(copies, t.name)),
      dir,
      (unused) =>
        model.tieEmbeddings && unused.includes(LM_HEAD)
          ? ` (config.json has tie_word_embeddings, so '${LM_HEAD}' would be ignored)`
          : '',
      storedShapes,
      storedSlices,
      folds,
    );
    await checkDuplicates(source, copies, dir);
  } catch (e) {
    await file.close();
    throw e;
  }
  const known = new Set(tensors.map((t) => t.name));
  return {
    model,
    weightMap,
    tensors,
    readTensorF32: mappedTensorReader(
      source,
      { weightMap, storedShapes, storedSlices, folds },
      known,
      `${dir} (model '${name}')`,
    ),
    close: () => file.close(),
  };
}
