/**
 * Every reproducer in test/fuzz/corpus must now pass the fuzzer's properties (tools/fuzz/
 * properties.ts, under the sandbox's time budget): a located user error or an accepted spec that
 * round-trips. Hand-written entries come from issue 10; the fuzzer adds the rest.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readCorpus } from '../../tools/fuzz/corpus.ts';
import { Sandbox } from '../../tools/fuzz/sandbox.ts';
import { lineColOf } from '../../tools/fuzz/properties.ts';
import type { FuzzInput, Outcome } from '../../tools/fuzz/types.ts';
import { SpecError } from '../../grammar/diagnostics.ts';
import { parseSpec } from '../../src/spec/load.ts';

const sandbox = new Sandbox();
afterAll(() => sandbox.close());

function verdict(o: Outcome): string {
  return o.status === 'failure' ? `${o.signature}: ${o.reason}` : o.status;
}

describe('fuzz corpus', () => {
  for (const entry of readCorpus()) {
    it(`${entry.file} (${entry.reason.split(' | ')[0]})`, async () => {
      const o = await sandbox.run(entry.input);
      expect(['accepted', 'rejected'], `${entry.reason}\n  got: ${verdict(o)}`).toContain(
        verdict(o),
      );
    });
  }

  // Generated rather than committed: 1.4 MB of JSON that is invalid only at its very end. The
  // YAML pre-parse of .json files made this take 8 s.
  it('a 1.4 MB invalid JSON spec is rejected within the budget, with line:col', async () => {
    const layers = Array.from({ length: 7600 }, (_, i) => ({
      index: i,
      mixerName: 'attn',
      mixer: { kind: 'attention', heads: 4, kvHeads: 2, headDim: 16, window: null, scale: 0.25 },
    }));
    const text = JSON.stringify({ version: 1, name: 'big', layers }, null, 1).slice(0, -1);
    expect(text.length).toBeGreaterThan(1_400_000);
    const input: FuzzInput = { kind: 'json', text, origin: 'generated' };
    expect(verdict(await sandbox.run(input))).toBe('rejected');
  });

  it('reports a syntax error after lone CR line endings at its line and column', () => {
    const text = 'model "m" {\r  vocab 8\r  dim 8\r  layers 1 x )\r}\r';
    const offset = text.indexOf(')');
    let caught: unknown;
    try {
      parseSpec(text, 'cr.strata');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(SpecError);
    const span = (caught as SpecError).span;
    expect(span?.offset).toBe(offset);
    expect(lineColOf(text, offset)).toEqual({ line: 4, col: 14 });
    expect({ line: span?.line, col: span?.col }).toEqual({ line: 4, col: 14 });
  });
});
