/**
 * The mixer families defined in one file each (src/mixers/<kind>.ts). Adding one is a line here;
 * the DSL, the schema, the checks, the table, the lowering and the weight names all read this list.
 * (The older parallel mixer still has its parts spread over src/spec, src/graph/blocks and
 * src/import/names.ts.)
 */
import type { MixerDef } from './define.ts';
import { attention } from './attention.ts';
import { mixerDef, registerMixers, type AnyMixerDef } from './lookup.ts';
import { deltanet } from './deltanet.ts';
import { gatedDeltaNet } from './gated-deltanet.ts';
import { glaMixer } from './gla.ts';
import { hgrn2Mixer } from './hgrn2.ts';
import { linearAttn } from './linear-attn.ts';
import { mamba1 } from './mamba1.ts';
import { mamba2 } from './mamba2.ts';
import { mla } from './mla.ts';
import { retnet } from './retnet.ts';
import { shortconv } from './shortconv.ts';

export const MIXER_DEFS = [
  attention,
  mla,
  mamba1,
  mamba2,
  shortconv,
  gatedDeltaNet,
  glaMixer,
  hgrn2Mixer,
  retnet,
  linearAttn,
  deltanet,
] as const;

type SpecOf<D> = D extends MixerDef<infer S> ? S : never;

/** The ModelIR form of every mixer defined here. */
export type DefinedMixerSpec = SpecOf<(typeof MIXER_DEFS)[number]>;

/** Every defined mixer, for the tables that list them all (kinds, schema). */
export const MIXER_LIST: readonly AnyMixerDef[] = MIXER_DEFS as readonly unknown[] as AnyMixerDef[];

registerMixers(MIXER_LIST);

/**
 * The order messages list the mixer kinds in ("expected attention, mla, ..."): the older kinds
 * where they always were, those moved here included, then the rest in MIXER_DEFS order.
 */
const HISTORIC_ORDER = [
  'attention',
  'mla',
  'mamba1',
  'mamba2',
  'shortconv',
  'parallel',
  'gated_deltanet',
];

/** Older and defined mixer kinds (or their names) merged in that order. */
export function inKindOrder<T>(items: readonly T[], name: (item: T) => string): T[] {
  const rank = (item: T) => {
    const i = HISTORIC_ORDER.indexOf(name(item));
    return i < 0 ? HISTORIC_ORDER.length : i;
  };
  return [...items].sort((a, b) => rank(a) - rank(b));
}

export { mixerDef, type AnyMixerDef };
