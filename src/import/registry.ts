/**
 * Importers written one file per HF model type (src/import/<type>.ts), listed once here; hf.ts
 * dispatches on model_type through this array. Each maps the config's keys to a ModelIR through
 * ConfigReader (which reports unknown and unsupported keys by name) and the checkpoint's tensor
 * names to strata's canonical ones, which the model's lowering declares.
 */
import type { FamilyImporter } from './hf-ssm.ts';
import { importLinearAttn } from './fla-linear-attn.ts';
import { importRetNet } from './fla-retnet.ts';
import { importFlaDeltaNet } from './fla-delta-net.ts';
import { importFlaGatedDeltaNet } from './fla-gated-deltanet.ts';
import { importFlaGla } from './fla-gla.ts';
import { importFlaHgrn2 } from './fla-hgrn2.ts';
import { importFlaRwkv7 } from './fla-rwkv7.ts';

export interface ModelTypeImporter {
  /** config.json's model_type. */
  modelType: string;
  /** Where the type comes from, for `strata import --help` and errors: 'transformers', 'fla'. */
  origin: string;
  import: FamilyImporter;
}

export const IMPORTERS: readonly ModelTypeImporter[] = [
  { modelType: 'retnet', origin: 'fla', import: importRetNet },
  { modelType: 'linear_attn', origin: 'fla', import: importLinearAttn },
  { modelType: 'delta_net', origin: 'fla', import: importFlaDeltaNet },
  { modelType: 'gated_deltanet', origin: 'fla', import: importFlaGatedDeltaNet },
  { modelType: 'gla', origin: 'fla', import: importFlaGla },
  { modelType: 'hgrn2', origin: 'fla', import: importFlaHgrn2 },
  { modelType: 'rwkv7', origin: 'fla', import: importFlaRwkv7 },
];
