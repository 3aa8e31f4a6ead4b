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

export interface ModelInput {
  model: ModelIR;
  weights: WeightProvider;
  describe: string;
}

export function isBundleDir(path: string): boolean {
  return existsSync(join(path, 'manifest.json'));
}

export async function loadModelInput(path: string, opts: { seed: number; weightsFile?: string; hf?: boolean }): Promise<ModelInput> {
  if (!existsSync(path)) throw new UserError(`no such file or folder: ${path}`);
  const isDir = statSync(path).isDirectory();
  if (opts.hf || (isDir && existsSync(join(path, 'config.json'))) || path.endsWith('config.json')) {
    const { importHfFolder } = await import('../import/hf-folder.ts');
    const dir = isDir ? path : join(path, '..');
    const imported = await importHfFolder(dir);
    return { model: imported.model, weights: imported.weights, describe: `HuggingFace model ${dir}` };
  }
  if (isDir) throw new UserError(`${path} is a folder but has neither config.json (HuggingFace) nor manifest.json (bundle)`);
  const model = await loadSpec(path);
  if (opts.weightsFile) {
    const { weightsFromSafetensors } = await import('../import/weights-file.ts');
    return { model, weights: await weightsFromSafetensors(model, opts.weightsFile), describe: `${path} with ${opts.weightsFile}` };
  }
  return { model, weights: randomWeights(model, opts.seed), describe: `${path} (random weights, seed ${opts.seed})` };
}
