/** The mixer registry: every DSL mixer kind is defined in src/mixers, exactly once. */
import { describe, expect, it } from 'vitest';
import { MIXERS } from '../../src/spec/kinds/index.ts';
import { MIXER_LIST } from '../../src/mixers/index.ts';
import { mixerDef } from '../../src/mixers/lookup.ts';

describe('mixer registry', () => {
  it('knows every DSL mixer kind exactly once', () => {
    for (const kind of MIXERS.kinds.filter((k) => k.supported)) {
      expect(mixerDef(kind.name)?.kind, kind.name).toBe(kind);
    }
    const names = MIXER_LIST.map((d) => d.kind.name);
    expect(new Set(names).size).toBe(names.length);
  });
});
