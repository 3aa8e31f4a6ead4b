/** `strata check <spec>`: validate a spec and show what it resolves to. */
import { parseArgs } from 'node:util';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hubNameOf } from './hub.ts';
import { formatNumber } from '../spec/dsl-value.ts';
import { loadSpec } from '../spec/load.ts';
import type { ModelIR } from '../spec/model.ts';
import { countParams } from '../spec/params.ts';
import { layerTable } from '../spec/table.ts';
import { describeDiffusion } from '../spec/kinds/diffusion.ts';
import { UserError, type Command } from './command.ts';
import { humanCount } from './units.ts';

function summary(model: ModelIR): string {
  const norm = `${model.norm.kind}(eps ${formatNumber(model.norm.eps)})`;
  const uses = new Map<string, number>();
  for (const l of model.layers) uses.set(l.mixerName, (uses.get(l.mixerName) ?? 0) + 1);
  const mix = [...uses].map(([name, n]) => `${n} ${name}`).join(', ');
  const params = countParams(model);
  // Each shared block with the layers that run it (its weights are counted once).
  const shared = (model.sharedBlocks ?? []).map((b) => {
    const at = model.layers.filter((l) => l.shared === b.name).map((l) => l.index);
    return `${b.name} at [${at.join(', ')}]`;
  });
  return [
    `${model.name}: ${model.layers.length} layers (${mix}), dim ${model.dim}, vocab ${model.vocab}`,
    ...(shared.length ? [`shared blocks: ${shared.join('; ')}`] : []),
    ...(model.diffusion ? [describeDiffusion(model.diffusion)] : []),
    `max_context ${model.maxContext}, norm ${norm}, ${model.tieEmbeddings ? 'tied' : 'untied'} embeddings, ${humanCount(params.total)} parameters` +
      (params.active < params.total ? ` (${humanCount(params.active)} active per token)` : ''),
  ].join('\n');
}

function parse(argv: string[]): { spec: string; json: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { json: { type: 'boolean', default: false } },
      allowPositionals: true,
    });
  } catch (e) {
    throw new UserError(`strata check: ${(e as Error).message}\n\n${checkCommand.usage}`);
  }
  const [spec, ...extra] = parsed.positionals;
  if (!spec) throw new UserError(`strata check: which spec?\n\n${checkCommand.usage}`);
  if (extra.length) throw new UserError(`strata check: unexpected argument '${extra[0]}'`);
  return { spec, json: parsed.values.json ?? false };
}

/**
 * `check` reads strata specs; a Hugging Face config (a folder with config.json, a config.json,
 * a Hub name) is `import`'s input, and saying so beats a schema error about a missing 'layers'.
 */
function pointHfToImport(arg: string): void {
  const isDir = existsSync(arg) && statSync(arg).isDirectory();
  let hf = isDir && existsSync(join(arg, 'config.json'));
  if (!hf && !isDir && existsSync(arg) && /\.json$/i.test(arg)) {
    try {
      const j = JSON.parse(readFileSync(arg, 'utf8')) as Record<string, unknown>;
      hf = typeof j === 'object' && j !== null && ('model_type' in j || 'architectures' in j);
    } catch {
      // Not JSON: loadSpec reports it with its place.
    }
  }
  if (hf || hubNameOf(arg))
    throw new UserError(
      `${arg} is a Hugging Face ${hf ? 'config' : 'model name'}, and check reads strata specs: ` +
        `run 'strata import ${arg}' to turn it into a spec (or 'strata inspect ${arg}' for its costs)`,
    );
}

export const checkCommand: Command = {
  name: 'check',
  summary: 'validate a spec (.strata, .yaml, .json) and print its layers',
  usage: [
    'usage: strata check <spec> [--json]',
    '',
    '  <spec>   a .strata, .yaml/.yml or .json spec file',
    '  --json   print the resolved ModelIR as JSON instead of the layer table',
  ].join('\n'),
  async run(argv) {
    const opts = parse(argv);
    pointHfToImport(opts.spec);
    const model = loadSpec(opts.spec);
    if (opts.json) {
      console.log(JSON.stringify(model, null, 2));
    } else {
      console.log(`${layerTable(model)}\n\n${summary(model)}`);
    }
    return 0;
  },
};
