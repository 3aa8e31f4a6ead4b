/**
 * The mixer definitions by kind name, for the modules that only look a kind up (names, checks,
 * tables, random init). It imports nothing at run time, so those modules can be imported by a
 * mixer's own lowering (through src/graph/blocks/common.ts) without an import cycle; and the
 * browser runtime, which reads canonical names, does not load every mixer with it.
 * src/mixers/index.ts fills it when it loads; the spec loaders and the lowering import that.
 */
import type { MixerDef } from './define.ts';

/** A definition seen through its kind name only (what the registries iterate over). */
export type AnyMixerDef = MixerDef<{ kind: string }>;

let registered: readonly AnyMixerDef[] | null = null;

export function registerMixers(defs: readonly AnyMixerDef[]): void {
  registered = defs;
}

/** The definition of a mixer kind, or null for a kind there is none of. */
export function mixerDef(kind: string): AnyMixerDef | null {
  if (!registered) {
    throw new Error(
      `internal error: mixer kind '${kind}' looked up before src/mixers/index.ts registered the definitions`,
    );
  }
  return registered.find((d) => d.kind.name === kind) ?? null;
}
