import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from './command.ts';
import { UserError } from './command.ts';
import { loadSpec } from '../spec/load.ts';
import { ExportError, exportHfConfig, HF_EXPORT_TYPES } from '../export/hf-config.ts';
import { exportMegatron, megatronText } from '../export/megatron.ts';

export const exportCommand: Command = {
  name: 'export',
  summary: 'Write a design as a HuggingFace config.json (--hf) or Megatron-LM flags (--megatron)',
  usage: `usage: strata export <spec> (--hf [-o DIR] [--type T] | --megatron)

  --hf             a config.json that transformers (5) loads: the model type is the first of
                   ${HF_EXPORT_TYPES.join(', ')}
                   whose layer kinds and settings express the design (or --type T); gla,
                   retnet, linear_attn, delta_net, gated_deltanet, hgrn2 and rwkv7 are
                   flash-linear-attention's (fla), loaded once \`import fla\` has registered
                   them, with attention layers under fla's hybrid \`attn\` key. The config
                   is imported back by strata's own importer and written only if it gives the
                   same model; what a type cannot express (a mixer it has no layer for, a
                   per-layer setting it cannot vary, a norm or scale it lacks) is an error
                   naming the feature, the layer and the type
  --type T         use model type T instead of picking one
  -o, --out DIR    write DIR/config.json (created if needed); without -o the config is printed
  --force          replace an existing DIR/config.json

  --megatron       print Megatron-LM's hybrid model flags: --hybrid-layer-pattern (one symbol per
                   Megatron layer: M Mamba-2, * attention, - MLP, E MoE; a strata layer with a
                   mixer and an FFN is two; older Megatron-LM spells it --hybrid-override-pattern)
                   and the block flags (--num-layers, --hidden-size, --num-attention-heads,
                   --num-query-groups, --mamba-state-dim, --ffn-hidden-size, --num-experts, ...).
                   What Megatron sets once per model must agree in every layer, or it is an error`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        hf: { type: 'boolean' },
        megatron: { type: 'boolean' },
        type: { type: 'string' },
        out: { type: 'string', short: 'o' },
        force: { type: 'boolean' },
      },
    });
    if (positionals.length !== 1) throw new UserError('export takes one spec');
    if (values.hf === values.megatron) throw new UserError('give one of --hf and --megatron');
    if (values.megatron && (values.type !== undefined || values.out !== undefined))
      throw new UserError('--type and -o go with --hf');
    if (!existsSync(positionals[0])) throw new UserError(`no such file: ${positionals[0]}`);
    const model = loadSpec(positionals[0]);
    try {
      if (values.megatron) {
        process.stdout.write(megatronText(exportMegatron(model)));
        return 0;
      }
      const out = exportHfConfig(model, values.type);
      for (const note of out.notes) console.error(`note: ${note}`);
      if (values.out === undefined) {
        process.stdout.write(out.text);
        return 0;
      }
      const file = join(values.out, 'config.json');
      if (existsSync(file) && !values.force)
        throw new UserError(`${file} exists (--force replaces it)`);
      mkdirSync(values.out, { recursive: true });
      writeFileSync(file, out.text);
      console.log(`wrote ${file} (${out.modelType}, ${model.layers.length} layers)`);
      return 0;
    } catch (e) {
      if (e instanceof ExportError) throw new UserError(`${positionals[0]}: ${e.message}`);
      throw e;
    }
  },
};
