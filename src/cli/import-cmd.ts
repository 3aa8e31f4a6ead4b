import { parseArgs } from 'node:util';
import { existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from './command.ts';
import { UserError } from './command.ts';
import { importHfConfig } from '../import/hf.ts';
import { weightMapJson } from '../import/weight-map.ts';
import { readConfigJson } from '../import/json.ts';
import { printSpec } from '../spec/print.ts';
import { BundleTargetError, checkFileTarget } from '../../codegen/bundle-target.ts';
import { countParams } from '../spec/params.ts';
import { hubNameOf, offlineFromEnv, resolveHubModel } from './hub.ts';

export const importCommand: Command = {
  name: 'import',
  summary: 'Turn a HuggingFace config.json (or model folder) into a readable .strata spec',
  usage: `usage: strata import <hf-folder|config.json|ORG/NAME[@REV]> [-o spec.strata] [--name NAME]

  <ORG/NAME[@REV]>  a Hub model: its config.json from the Hugging Face cache, downloaded there
                   when missing (a path that exists wins over a Hub name)
  --name NAME      the spec's model name (default: the folder's name, or NAME of a Hub model)
  --offline        use the Hugging Face cache only (also HF_HUB_OFFLINE=1)

  -o, --out FILE   write the spec there and the weight-name map to FILE.weights.json
                   (canonical strata name → checkpoint name, or { tensor, shape } where it is
                   stored reshaped, { tensor, start, size } for a slice of a fused checkpoint
                   tensor, plus columns { offset, stride } and transpose where the slice is
                   de-interleaved or transposed, and cumulativeSoftmax { row } where it is one
                   row of a cumulative softmax over rows: HGRN2's per-layer lower bounds);
                   without -o the spec is printed. compile/run/inspect FILE --weights
                   CHECKPOINT then read the checkpoint (a file or folder) through that map
  --force          replace existing output files (never the imported config itself)`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: 'string', short: 'o' },
        force: { type: 'boolean' },
        name: { type: 'string' },
        offline: { type: 'boolean' },
      },
    });
    if (positionals.length !== 1)
      throw new UserError('import takes one HuggingFace folder, config.json or Hub name');
    if (values.name !== undefined && values.name.trim() === '')
      throw new UserError('--name must not be empty');
    const hub = hubNameOf(positionals[0]);
    const arg = hub
      ? await resolveHubModel(hub, {
          offline: values.offline === true || offlineFromEnv(),
          need: 'config',
        })
      : positionals[0];
    if (!existsSync(arg)) throw new UserError(`no such file or folder: ${arg}`);
    const configPath = statSync(arg).isDirectory() ? join(arg, 'config.json') : arg;
    if (!existsSync(configPath)) throw new UserError(`${arg}: no config.json`);
    // Refuse a bad -o before any work, and never write over the config being imported.
    const weightsOut = `${values.out}.weights.json`;
    try {
      if (values.out)
        for (const file of [values.out, weightsOut])
          checkFileTarget(file, { force: values.force, inputs: [configPath] });
    } catch (e) {
      if (e instanceof BundleTargetError) throw new UserError(e.message);
      throw e;
    }
    const { config, origin } = readConfigJson(await readFile(configPath, 'utf8'), configPath);
    // A Hub snapshot folder is named by its commit: the model's own name reads better.
    const name =
      values.name ??
      (hub
        ? hub.repo.split('/')[1]
        : statSync(arg).isDirectory()
          ? basename(resolve(arg))
          : basename(dirname(resolve(arg))));
    // Import errors are located SpecErrors; anything else is a bug and is reported as one.
    const imported = importHfConfig(config as object, name, origin);
    const spec = printSpec(imported.model);
    const params = countParams(imported.model).total;
    if (!values.out) {
      process.stdout.write(spec);
      return 0;
    }
    await writeFile(values.out, spec);
    await writeFile(weightsOut, JSON.stringify(weightMapJson(imported), null, 1) + '\n');
    console.log(
      `wrote ${values.out} (${imported.model.layers.length} layers, ${params.toLocaleString('en')} parameters) ` +
        `and ${values.out}.weights.json`,
    );
    return 0;
  },
};
