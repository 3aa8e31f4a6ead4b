/** `let` parameters: where they may stand, how they evaluate, and what a wrong one is told. */
import { describe, expect, it } from 'vitest';
import { blamed, bodyError, resolve } from './helpers.ts';

const DEFS = `mixer mamba = mamba1
mixer m2 = mamba2(heads: 2)
mixer attn = attention(heads: 4)
ffn mlp = swiglu(hidden: 128)
ffn moe = moe(experts: 4, top_k: 2, expert: swiglu(hidden: 32))`;

function kinds(statements: string): string[] {
  // Mixers only: with two ffns defined every statement would need `with ffn`.
  return resolve(`${DEFS.split('\n').slice(0, 3).join('\n')}\n${statements}`).layers.map(
    (l) => l.mixerName,
  );
}

describe('let parameters', () => {
  it('stand for ratio counts, offsets and repeat counts', () => {
    expect(kinds('let r = 3\nlet n = 2\nlet o = 1\nlayers n x [r mamba : 1 attn at o]')).toEqual(
      kinds('layers 2 x [3 mamba : 1 attn at 1]'),
    );
  });

  it('evaluate integer arithmetic on earlier parameters', () => {
    expect(kinds('let r = 7\nlet mid = (r + 1) / 2\nlayers 1 x [r mamba : 1 attn at mid]')).toEqual(
      kinds('layers 1 x [7 mamba : 1 attn at 4]'),
    );
    expect(kinds('let a = 2 * 3 - 1\nlayers a x attn')).toHaveLength(5);
  });

  it('choose a mixer by name, and a definition kind', () => {
    expect(kinds('let linear = m2\nlayers 2 x [1 linear : 1 attn]')).toEqual([
      'm2',
      'attn',
      'm2',
      'attn',
    ]);
    const m = resolve('let k = mamba2\nmixer lin = k(heads: 2)\nlayers 1 x lin');
    expect(m.layers[0].mixer?.kind).toBe('mamba2');
  });

  it('hold index lists for placements', () => {
    expect(kinds('let keep = [1, 3]\nlayers 4 x mamba, attn at keep')).toEqual([
      'mamba',
      'attn',
      'mamba',
      'attn',
    ]);
  });

  it('stand for argument values, settings and ffn schedules', () => {
    const m = resolve(
      `let w = 32\nlet e = 4\nlet period = 2\nmixer a = attention(heads: 4, window: w)\nffn moe = moe(experts: e, top_k: 1, expert: swiglu(hidden: 16))\nffn mlp = swiglu(hidden: 64)\nlayers 4 x a with ffn mlp, moe every period offset 1`,
    );
    expect(m.layers[0].mixer).toMatchObject({ window: 32 });
    expect(m.layers.map((l) => l.ffnName)).toEqual(['mlp', 'moe', 'mlp', 'moe']);
  });

  it('resolve like the literals they stand for (the released Jamba spec keeps its layers)', () => {
    const a = resolve(`${DEFS}\nlet r = 7\nlayers 4 x [r mamba : 1 attn at 4] with ffn [mlp, moe]`);
    const b = resolve(`${DEFS}\nlayers 4 x [7 mamba : 1 attn at 4] with ffn [mlp, moe]`);
    expect(a).toEqual(b);
  });
});

describe('let errors', () => {
  const cases: [string, string, string][] = [
    [
      'let ratio = 3\nlayers 2 x [ratoi mamba : 1 attn]',
      "unknown parameter 'ratoi', did you mean 'ratio'?",
      'ratoi',
    ],
    ['let r = 3\nlet r = 4\nlayers r x attn', "parameter 'r' is already defined at 11:7", 'r'],
    [
      'let r = mamba\nlayers r x attn',
      "parameter 'r' (defined at 11:7) is mamba, but a number goes here",
      'r',
    ],
    [
      'let lin = 3\nlayers 2 x [1 lin : 1 attn]',
      "parameter 'lin' (defined at 11:7) is 3, but a mixer or ffn name goes here",
      'lin',
    ],
    [
      'let a = b + 1\nlet b = 2\nlayers a x attn',
      "parameter 'b' is used before its definition at 12:7",
      'b',
    ],
    [
      'let attn = 2\nlayers 2 x mamba',
      "parameter 'attn' has the name of the definition at 8:9: rename one",
      'attn',
    ],
    ['let a = mamba + 1\nlayers 2 x attn', 'arithmetic needs numbers, got mamba', 'mamba'],
    ['let a = 1 / 0\nlayers 2 x attn', 'division by zero', '0'],
    [
      'let r = 1.5\nlayers 2 x [r mamba : 1 attn]',
      'a ratio count must be an integer of at least 1, got 1.5',
      'r',
    ],
  ];
  it.each(cases)('%s', (statements, reason, at) => {
    const e = bodyError(`${DEFS}\n${statements}`);
    expect(e.reason).toBe(reason);
    expect(blamed(e)).toBe(at);
  });
});
