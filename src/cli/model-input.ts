/**
 * What the compile/run/inspect commands accept: a spec file (.strata, .yaml,
 * .json), a HuggingFace folder or config.json (--hf), a Hub name ORG/NAME[@REVISION] (found in
 * or downloaded into the Hugging Face cache: src/cli/hub.ts), a .gguf file, or (run only) a
 * bundle folder. Resolves it to a ModelIR plus a weight provider.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { ModelIR } from '../spec/model.ts';
import type { WeightProvider } from '../graph/params.ts';
import { loadSpec } from '../spec/load.ts';
import { randomWeights } from '../import/random-init.ts';
import { UserError } from './command.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { checkDuplicates, checkTensors } from '../import/check.ts';
import { expectedTensors } from '../import/names.ts';
import { hubNameOf, offlineFromEnv, resolveHubModel } from './hub.ts';
import { readTokenizerFiles, type ModelTokenizer } from '../import/tokenizer-files.ts';
import { mappedTensorReader, parseWeightMap } from '../import/weight-map.ts';
import { readJsonObject } from '../../formats/node/json-file.ts';

export interface ModelInput {
  model: ModelIR;
  weights: WeightProvider;
  describe: string;
  /** The files and folders read to build it: what a compile must never overwrite. */
  inputs: string[];
  /** What its text goes through (a spec: bytes; a checkpoint: its tokenizer files, or none). */
  tokenizer: ModelTokenizer;
  /** Closes the weight files it holds open. */
  close(): Promise<void>;
}

export function isBundleDir(path: string): boolean {
  return existsSync(join(path, 'manifest.json'));
}

export async function loadModelInput(
  path: string,
  opts: {
    seed: number;
    weightsFile?: string;
    hf?: boolean;
    offline?: boolean;
    /**
     * The caller reads no weights (inspect): a Hub model is fetched without its weights and a
     * checkpoint's weights are not opened. Its weight provider refuses to be read.
     */
    configOnly?: boolean;
    /** The model's name (a Hub model: NAME, not the snapshot folder's commit). */
    name?: string;
  },
): Promise<ModelInput> {
  if (opts.weightsFile !== undefined && !existsSync(opts.weightsFile))
    throw new UserError(`--weights: no such file: ${opts.weightsFile}`);
  const hub = hubNameOf(path);
  if (hub) {
    if (opts.weightsFile !== undefined)
      throw new UserError(`--weights goes with a spec; ${path} brings its own weights`);
    const dir = await resolveHubModel(hub, {
      offline: opts.offline === true || offlineFromEnv(),
      need: opts.configOnly ? 'config' : 'model',
    });
    const input = await loadModelInput(dir, {
      seed: opts.seed,
      hf: true,
      configOnly: opts.configOnly,
      name: hub.repo.split('/')[1],
    });
    return { ...input, describe: `Hugging Face model ${path} (${dir})` };
  }
  if (!existsSync(path)) throw new UserError(`no such file or folder: ${path}`);
  const isDir = statSync(path).isDirectory();
  if (opts.hf || (isDir && existsSync(join(path, 'config.json'))) || path.endsWith('config.json')) {
    const { importHfFolder, readHfConfig } = await import('../import/hf-folder.ts');
    const dir = isDir ? path : join(path, '..');
    if (opts.weightsFile !== undefined)
      throw new UserError(`--weights goes with a spec; ${path} brings its own weights`);
    if (opts.configOnly) {
      const { importHfConfig } = await import('../import/hf.ts');
      const { config, origin } = await readHfConfig(dir);
      const { model } = importHfConfig(
        config as object,
        opts.name ?? basename(resolve(dir)),
        origin,
      );
      return {
        model,
        weights: () => {
          throw new Error(`${dir}: weights are not read here (configOnly)`);
        },
        describe: `HuggingFace config ${dir}`,
        inputs: [dir],
        tokenizer: 'none',
        close: async () => {},
      };
    }
    const imported = await importHfFolder(dir, opts.name);
    return {
      model: imported.model,
      weights: (n) => imported.readTensorF32(n),
      describe: `HuggingFace model ${dir}`,
      inputs: [dir],
      tokenizer: (await readTokenizerFiles(dir)) ?? 'none',
      close: () => imported.close(),
    };
  }
  if (!isDir && /\.gguf$/i.test(path)) {
    if (opts.weightsFile !== undefined)
      throw new UserError(`--weights goes with a spec; ${path} brings its own weights`);
    const { importGgufFile } = await import('../import/gguf-file.ts');
    const imported = await importGgufFile(path);
    return {
      model: imported.model,
      weights: (n) => imported.readTensorF32(n),
      describe: `GGUF model ${path}`,
      inputs: [path],
      // GGUF carries its tokenizer as metadata (tokenizer.ggml.*), which strata does not read yet.
      tokenizer: 'none',
      close: () => imported.close(),
    };
  }
  if (isDir)
    throw new UserError(
      `${path} is a folder but has neither config.json (HuggingFace) nor manifest.json (bundle)`,
    );
  const model = loadSpec(path);
  if (opts.weightsFile) {
    const weightsFile = opts.weightsFile;
    // `import -o spec.strata` wrote the checkpoint's names beside the spec: read through them.
    const mapFile = `${path}.weights.json`;
    const map = existsSync(mapFile)
      ? parseWeightMap(await readJsonObject(mapFile, { error: UserError }), mapFile)
      : null;
    const src = await openSafetensors(weightsFile);
    const tensors = expectedTensors(model);
    const copies = map?.duplicates ?? {};
    try {
      checkTensors(
        tensors,
        map?.weightMap ?? Object.fromEntries(tensors.map((t) => [t.name, t.name])),
        src.listTensors().filter((t) => !Object.hasOwn(copies, t.name)),
        map ? `${weightsFile} (names from ${mapFile})` : weightsFile,
        () => '',
        map?.storedShapes,
        map?.storedSlices,
        map?.folds,
      );
      await checkDuplicates(src, copies, weightsFile);
    } catch (e) {
      await src.close();
      throw e;
    }
    // A checkpoint folder's own tokenizer goes with its weights.
    const dirTokenizer = statSync(weightsFile).isDirectory()
      ? await readTokenizerFiles(weightsFile)
      : null;
    return {
      model,
      weights: map
        ? mappedTensorReader(src, map, new Set(tensors.map((t) => t.name)), weightsFile)
        : (name) => src.readTensorF32(name),
      describe: `${path} with ${weightsFile}${map ? ` (names from ${mapFile})` : ''}`,
      inputs: [path, weightsFile, ...(map ? [mapFile] : [])],
      tokenizer: dirTokenizer ?? 'bytes',
      close: () => src.close(),
    };
  }
  return {
    model,
    weights: randomWeights(model, opts.seed),
    describe: `${path} (random weights, seed ${opts.seed})`,
    inputs: [path],
    tokenizer: 'bytes',
    close: async () => {},
  };
}
