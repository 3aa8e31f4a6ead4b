/**
 * The block kinds the DSL knows, by family. Adding a kind is one entry here (plus its file);
 * reserved kinds parse everywhere a block can appear and fail with "not supported yet".
 */
import { futureKind, type Family } from '../kind.ts';
import type { FfnSpec, MixerSpec } from '../model.ts';
import { geglu, mlp, rwkv7Cmix, swiglu } from './mlp.ts';
import { moe } from './moe.ts';
import { MIXER_LIST } from '../../mixers/index.ts';
import type { Kind } from '../kind.ts';

export { NORMS } from './norm.ts';

export const MIXERS: Family<MixerSpec> = {
  noun: 'mixer',
  example: 'a mixer kind such as attention(...)',
  // Each defined in one file of src/mixers; messages list them in MIXER_DEFS order.
  kinds: MIXER_LIST.map((d) => d.kind as Kind<MixerSpec>),
};

/** Printing picks the first kind that can express a spec, so the specific ones come first. */
export const FFNS: Family<FfnSpec> = {
  noun: 'ffn',
  example: 'an ffn kind such as swiglu(...)',
  kinds: [moe, swiglu, geglu, rwkv7Cmix, mlp],
};

/** Kinds reserved for later, by family noun, for the YAML/JSON loader's messages. */
export function futureKindNames(family: Family<unknown>): string[] {
  return family.kinds.filter((k) => !k.supported).map((k) => k.name);
}
