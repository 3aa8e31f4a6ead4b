/**
 * Open a bundle folder from disk as a BundleSource: manifest checked against
 * its schema and version, every shader and tensor checked to exist and have the
 * size the manifest says, with errors that name the file or tensor.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import {
  BUNDLE_FORMAT,
  BUNDLE_VERSION,
  MANIFEST_SCHEMA,
  type BundleManifest,
} from '../manifest.ts';
import type { BundleSource } from '../model.ts';
import { openSafetensors } from './safetensors-file.ts';

export class BundleError extends Error {
  override name = 'BundleError';
}

export async function openBundle(dir: string): Promise<BundleSource> {
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath))
    throw new BundleError(`${manifestPath}: missing (not a strata bundle folder)`);
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as BundleManifest;
  } catch (e) {
    throw new BundleError(`${manifestPath}: not valid JSON (${(e as Error).message})`);
  }
  if (manifest.format !== BUNDLE_FORMAT)
    throw new BundleError(
      `${manifestPath}: format is '${manifest.format}', expected '${BUNDLE_FORMAT}'`,
    );
  if (manifest.version !== BUNDLE_VERSION) {
    throw new BundleError(
      `${manifestPath}: bundle version ${manifest.version}, this strata reads version ${BUNDLE_VERSION}; recompile the bundle`,
    );
  }
  const ajv = new Ajv({ allErrors: true });
  if (!ajv.validate(MANIFEST_SCHEMA, manifest)) {
    const msg = (ajv.errors ?? [])
      .slice(0, 5)
      .map((e) => `  ${e.instancePath || '/'} ${e.message}`)
      .join('\n');
    throw new BundleError(`${manifestPath}: does not match the manifest schema:\n${msg}`);
  }
  for (const k of manifest.kernels) {
    if (!existsSync(join(dir, k.file)))
      throw new BundleError(`${join(dir, k.file)}: missing shader of kernel ${k.name}`);
  }
  const weightsPath = join(dir, manifest.weightsFile);
  if (!existsSync(weightsPath)) throw new BundleError(`${weightsPath}: missing weights file`);
  const weights = await openSafetensors(weightsPath);
  return {
    manifest,
    shader: (file) => readFile(join(dir, file), 'utf8'),
    async tensor(name, shape) {
      if (!weights.has(name)) throw new BundleError(`${weightsPath}: tensor '${name}' is missing`);
      const info = weights.info(name);
      const same = info.shape.length === shape.length && info.shape.every((d, i) => d === shape[i]);
      if (!same)
        throw new BundleError(
          `${weightsPath}: tensor '${name}' has shape [${info.shape}], the manifest says [${shape}]`,
        );
      return weights.readTensorF32(name);
    },
    close: () => weights.close(),
  };
}
