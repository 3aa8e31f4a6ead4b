/** The mixer registry: every DSL mixer kind is either an older kind or defined in src/mixers. */
import { describe, expect, it } from 'vitest';
import { MIXERS } from '../../src/spec/kinds/index.ts';
import { MIXER_LIST } from '../../src/mixers/index.ts';
import { mixerDef, OLDER_KINDS } from '../../src/mixers/lookup.ts';

describe('mixer registry', () => {
  it('knows every DSL mixer kind exactly once', () => {
    for (const kind of MIXERS.kinds.filter((k) => k.supported)) {
      const defined = mixerDef(kind.name) !== null;
      expect(defined !== OLDER_KINDS.has(kind.name), kind.name).toBe(true);
    }
    const names = MIXER_LIST.map((d) => d.kind.name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(OLDER_KINDS.has(n), n).toBe(false);
  });
});
