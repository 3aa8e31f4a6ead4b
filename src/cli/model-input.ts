/**
 * What the compile/run/inspect commands accept: a spec file (.strata, .yaml,
 * .json), a HuggingFace folder or config.json (--hf), or (run only) a bundle
 * folder. Resolves it to a ModelIR plus a weight provider.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelIR } from '../spec/model.ts';
import type { WeightProvider } from '../graph/params.ts';
import { loadSpec } from '../spec/load.ts';
import { randomWeights } from '../import/random-init.ts';
import { UserError } from './command.ts';
import { openSafetensors } from '../../runtime/node/safetensors-file.ts';
import { checkTensors } from '../import/check.ts';
import { expectedTensors } from '../import/names.ts';

export interface ModelInput {
  model: ModelIR;
  weights: WeightProvider;
  describe: string;
  /** The files and folders read to build it: what a compile must never overwrite. */
  inputs: string[];
}

export function isBundleDir(path: string): boolean {
  return existsSync(join(path, 'manifest.json'));
}

export async function loadModelInput(
  path: string,
  opts: { seed: number; weightsFile?: string; hf?: boolean },
): Promise<ModelInput> {
  if (!existsSync(path)) throw new UserError(`no such file or folder: ${path}`);
  const isDir = statSync(path).isDirectory();
  if (opts.hf || (isDir && existsSync(join(path, 'config.json'))) || path.endsWith('config.json')) {
    const { importHfFolder } = await import('../import/hf-folder.ts');
    const dir = isDir ? path : join(path, '..');
    const imported = await importHfFolder(dir);
    return {
      model: imported.model,
      weights: (n) => imported.readTensorF32(n),
      describe: `HuggingFace model ${dir}`,
      inputs: [dir],
    };
  }
  if (isDir)
    throw new UserError(
      `${path} is a folder but has neither config.json (HuggingFace) nor manifest.json (bundle)`,
    );
  const model = loadSpec(path);
  if (opts.weightsFile) {
    return {
      model,
      weights: await weightsFromFile(model, opts.weightsFile),
      describe: `${path} with ${opts.weightsFile}`,
      inputs: [path, opts.weightsFile],
    };
  }
  return {
    model,
    weights: randomWeights(model, opts.seed),
    describe: `${path} (random weights, seed ${opts.seed})`,
    inputs: [path],
  };
}

/** Weights under strata's canonical names from one safetensors file, checked against the model. */
async function weightsFromFile(model: ModelIR, file: string): Promise<WeightProvider> {
  const src = await openSafetensors(file);
  const tensors = expectedTensors(model);
  const identity = Object.fromEntries(tensors.map((t) => [t.name, t.name]));
  checkTensors(tensors, identity, src.listTensors(), file, () => '');
  return (name) => src.readTensorF32(name);
}
