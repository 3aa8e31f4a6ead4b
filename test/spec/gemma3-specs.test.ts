/** specs/gemma-3-1b.strata: the released layout, and the same ModelIR as the HF config import. */
import { describe, expect, it } from 'vitest';
import { loadSpec } from '../../src/spec/load.ts';
import { countParams } from '../../src/spec/params.ts';
import { importConfigFile } from '../helpers/hf-config.ts';

describe('specs/gemma-3-1b.strata', () => {
  it('has a global layer every sixth, sandwich norms, 999.9M parameters, as imported', () => {
    const m = loadSpec('specs/gemma-3-1b.strata');
    expect(
      m.layers.map((l) => (l.mixer?.kind === 'attention' && l.mixer.window ? 'l' : 'G')).join(''),
    ).toBe('lllllGlllllGlllllGlllllGll');
    expect(m.postNorms).toBe(true);
    expect(m.norm).toEqual({ kind: 'rms', eps: 1e-6, unitOffset: true, bias: false });
    const file = 'test/fixtures/configs/gemma-3-1b.json';
    const hf = importConfigFile(file, 'gemma-3-1b');
    // The whole ModelIR: names, RoPE bases, scales and windows all agree.
    expect(m).toEqual(hf.model);
    expect(countParams(m).total).toBe(999_885_952);
  });
});
