/**
 * Open a bundle folder from disk as a BundleSource: manifest checked in full
 * (runtime/manifest-check.ts), every file it names resolved inside the folder
 * (bundle-paths.ts), every shader and tensor checked to exist and have the
 * shape the manifest says, with errors that name the file or tensor and never
 * quote a file's contents.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { storedEntry, type BundleManifest, type BundleSource } from '../../codegen/manifest.ts';
import { BundleError, checkManifest } from '../manifest-check.ts';
import { jsonSyntaxError } from '../../formats/json-error.ts';
import { bundleFile } from './bundle-paths.ts';
import { readJsonObject } from '../../formats/node/json-file.ts';
import { openSafetensors, type SafetensorsSource } from '../../formats/node/safetensors-file.ts';

export { BundleError } from '../manifest-check.ts';

function readManifest(realDir: string, manifestPath: string): unknown {
  const file = bundleFile(realDir, 'manifest.json', 'manifest.json', manifestPath);
  if (!file.exists) throw new BundleError(`${manifestPath}: missing (not a strata bundle folder)`);
  if (!statSync(file.path).isFile()) throw new BundleError(`${manifestPath}: not a regular file`);
  let text: string;
  try {
    text = readFileSync(file.path, 'utf8');
  } catch (e) {
    throw new BundleError(`${manifestPath}: unreadable (${(e as NodeJS.ErrnoException).code})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BundleError(`${manifestPath}: ${jsonSyntaxError(e)}`);
  }
}

/**
 * Tensor `name` is in the weights file as a weight of `dtype` and `shape` is stored
 * (codegen/manifest.ts storedEntry); `entry` names the manifest entry that says so, when known
 * (`tensors[3]`).
 */
function checkTensor(
  weights: SafetensorsSource,
  t: BundleManifest['tensors'][number],
  weightsPath: string,
  entry?: string,
): void {
  const { name } = t;
  if (!weights.has(name))
    throw new BundleError(
      `${weightsPath}: tensor '${name}'${entry ? ` (manifest ${entry})` : ''} is missing`,
    );
  const want = storedEntry(t.dtype, t.shape);
  const stored = weights.info(name);
  const same =
    stored.dtype === want.dtype &&
    stored.shape.length === want.shape.length &&
    stored.shape.every((d, j) => d === want.shape[j]);
  if (!same)
    throw new BundleError(
      `${weightsPath}: tensor '${name}' is stored as ${stored.dtype} [${stored.shape}], the manifest${entry ? `'s ${entry}` : ''} (${t.dtype} [${t.shape}]) needs ${want.dtype} [${want.shape}]`,
    );
}

export async function openBundle(dir: string): Promise<BundleSource> {
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(dir)) throw new BundleError(`${dir}: no such bundle folder`);
  const realDir = realpathSync(dir);
  const manifest = checkManifest(readManifest(realDir, manifestPath), manifestPath);

  const shaders = new Map<string, string>();
  manifest.kernels.forEach((k, i) => {
    const f = bundleFile(realDir, k.file, `kernels[${i}].file`, manifestPath);
    if (!f.exists)
      throw new BundleError(`${join(dir, k.file)}: missing shader of kernel ${k.name}`);
    shaders.set(k.file, f.path);
  });
  let tokenizerFiles: { file: string; config: string } | null = null;
  if (manifest.tokenizer.kind === 'file') {
    const t = manifest.tokenizer;
    const f = bundleFile(realDir, t.file, 'tokenizer.file', manifestPath);
    if (!f.exists) throw new BundleError(`${join(dir, t.file)}: missing tokenizer file`);
    const c = bundleFile(realDir, t.config, 'tokenizer.config', manifestPath);
    if (!c.exists) throw new BundleError(`${join(dir, t.config)}: missing tokenizer config file`);
    tokenizerFiles = { file: f.path, config: c.path };
  }
  const weightsFile = bundleFile(realDir, manifest.weightsFile, 'weightsFile', manifestPath);
  const weightsPath = join(dir, manifest.weightsFile);
  if (!weightsFile.exists) throw new BundleError(`${weightsPath}: missing weights file`);
  const weights = await openSafetensors(weightsFile.path);
  try {
    // Every tensor now, so a damaged bundle fails at open, not midway through the upload.
    manifest.tensors.forEach((t, i) => checkTensor(weights, t, weightsPath, `tensors[${i}]`));
  } catch (e) {
    await weights.close();
    throw e;
  }
  return {
    manifest,
    shader: (file) => {
      // Only the files vetted above: a caller's name never reaches the file system unchecked.
      const path = shaders.get(file);
      if (path === undefined)
        return Promise.reject(new BundleError(`${manifestPath}: no kernel's file is '${file}'`));
      return readFile(path, 'utf8');
    },
    async tensor(name, shape) {
      const t = manifest.tensors.find((e) => e.name === name);
      if (!t) throw new BundleError(`${manifestPath}: no tensor '${name}' in tensors`);
      if (t.shape.join() !== shape.join())
        throw new BundleError(`${manifestPath}: tensor '${name}' is [${t.shape}], not [${shape}]`);
      checkTensor(weights, t, weightsPath);
      return weights.readTensorBytes(name);
    },
    async tokenizer() {
      if (!tokenizerFiles || manifest.tokenizer.kind !== 'file') return null;
      const json = (path: string, what: string) =>
        readJsonObject(path, { shownAs: join(dir, what), error: BundleError });
      return {
        tokenizer: await json(tokenizerFiles.file, manifest.tokenizer.file),
        config: await json(tokenizerFiles.config, manifest.tokenizer.config),
        eos: manifest.tokenizer.eos,
      };
    },
    close: () => weights.close(),
  };
}
