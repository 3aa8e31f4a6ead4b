/**
 * The mixer families, each defined in one file (src/mixers/<kind>.ts). Adding one is a line here;
 * the DSL, the schema, the checks, the table, the lowering and the weight names all read this list.
 * Messages list the kinds in this order ("expected attention, mla, ...").
 */
import type { MixerDef } from './define.ts';
import { mixerDef, registerMixers, type AnyMixerDef } from './lookup.ts';
import { attention } from './attention.ts';
import { deltanet } from './deltanet.ts';
import { gatedDeltaNet } from './gated-deltanet.ts';
import { glaMixer } from './gla.ts';
import { hgrn2Mixer } from './hgrn2.ts';
import { linearAttn } from './linear-attn.ts';
import { mamba1 } from './mamba1.ts';
import { mamba2 } from './mamba2.ts';
import { mla } from './mla.ts';
import { nsa } from './nsa.ts';
import { parallel } from './parallel.ts';
import { retnet } from './retnet.ts';
import { rwkv7 } from './rwkv7.ts';
import { shortconv } from './shortconv.ts';

export const MIXER_DEFS = [
  attention,
  mla,
  mamba1,
  mamba2,
  shortconv,
  parallel,
  gatedDeltaNet,
  glaMixer,
  hgrn2Mixer,
  retnet,
  linearAttn,
  deltanet,
  rwkv7,
  nsa,
] as const;

type SpecOf<D> = D extends MixerDef<infer S> ? S : never;

/** The ModelIR form of every mixer. */
export type DefinedMixerSpec = SpecOf<(typeof MIXER_DEFS)[number]>;

/** Every mixer definition, for the tables that list them all (kinds, schema). */
export const MIXER_LIST: readonly AnyMixerDef[] = MIXER_DEFS as readonly unknown[] as AnyMixerDef[];

registerMixers(MIXER_LIST);

export { mixerDef, type AnyMixerDef };
