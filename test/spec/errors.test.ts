/** Every error the resolver can raise for a .strata spec: its wording and the text it points at. */
import { describe, expect, it } from 'vitest';
import { SpecError } from '../../src/spec/errors.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { blamed, bodyError, HEADER, specError } from './helpers.ts';

const A = 'mixer a = attention(heads: 4)';

/** [statements, expected reason, text the caret is under]. */
type Case = [string, string | RegExp, string];

function check([statements, reason, at]: Case, header = HEADER): void {
  const e = bodyError(statements, header);
  if (typeof reason === 'string') expect(e.reason).toBe(reason);
  else expect(e.reason).toMatch(reason);
  expect(blamed(e)).toBe(at);
}

describe('the error format', () => {
  it('is file:line:col: error:, then the source line and a caret under the culprit', () => {
    const text =
      'model "m" {\n  vocab 8\n  dim 8\n  max_context 8\n  norm rms(eps: 1e-5)\n  mixer attn = attention(heads: 2)\n  layers 4 x [3 atn : 1 attn]\n}\n';
    const e = specError(() => parseSpec(text, 'specs/x.strata'));
    expect(e).toBeInstanceOf(SpecError);
    expect(e.name).toBe('SpecError');
    expect(e.message).toBe(
      [
        "specs/x.strata:7:17: error: unknown mixer 'atn', did you mean 'attn'?",
        ' 7 |   layers 4 x [3 atn : 1 attn]',
        '   |                 ^^^',
      ].join('\n'),
    );
    expect(e.file).toBe('specs/x.strata');
    expect(e.span).toEqual({ file: 'specs/x.strata', line: 7, col: 17, offset: 119, length: 3 });
  });
});

describe('settings', () => {
  it('rejects unknown, duplicate and missing settings', () => {
    check([
      `vocb 5\n${A}\nlayers 1 x a`,
      "unknown setting 'vocb' for the model, did you mean 'vocab'?",
      'vocb',
    ]);
    check([
      `vocab 5\n${A}\nlayers 1 x a`,
      "setting 'vocab' is given twice (first at 2:3)",
      'vocab',
    ]);
    check(
      [`${A}\nlayers 1 x a`, "the model needs 'max_context'", '"m"'],
      'vocab 256\n  dim 64\n  norm rms(eps: 1e-5)',
    );
  });

  it('rejects ill-typed setting values', () => {
    const header = (line: string) => HEADER.replace('vocab 256', line);
    check(
      [`${A}\nlayers 1 x a`, 'vocab must be an integer of at least 1, got 0', '0'],
      header('vocab 0'),
    );
    check(
      [`${A}\nlayers 1 x a`, 'vocab must be an integer of at least 1, got 2.5', '2.5'],
      header('vocab 2.5'),
    );
    check(
      [`${A}\nlayers 1 x a`, 'tie_embeddings must be true or false, got 1', '1'],
      header('vocab 256\n  tie_embeddings 1'),
    );
    check(
      [`${A}\nlayers 1 x a`, 'logit_softcap must be a number greater than 0 or none, got -3', '-3'],
      header('vocab 256\n  logit_softcap -3'),
    );
    check(
      [`${A}\nlayers 1 x a`, 'norm must be rms(eps: ...) or layer(eps: ...), got 3', '3'],
      HEADER.replace('rms(eps: 1e-5)', '3'),
    );
    check(
      [`${A}\nlayers 1 x a`, "unknown norm kind 'rsm', did you mean 'rms'?", 'rsm'],
      HEADER.replace('rms(eps: 1e-5)', 'rsm(eps: 1e-5)'),
    );
    check(
      [`${A}\nlayers 1 x a`, "unknown parameter 'bias' for rms(...)", 'bias'],
      HEADER.replace('rms(eps: 1e-5)', 'rms(eps: 1e-5, bias: true)'),
    );
    check(
      [`${A}\nlayers 1 x a`, 'eps must be a number greater than 0, got 0', '0'],
      HEADER.replace('1e-5', '0'),
    );
  });

  it('rejects an empty model name', () => {
    const e = specError(() => parseSpec(`model "" {\n  ${HEADER}\n}`, 'e.strata'));
    expect(e.reason).toBe('the model name must not be empty');
  });
});

describe('definitions', () => {
  it('rejects unknown kinds with a suggestion', () => {
    check([
      'mixer a = atention(heads: 4)',
      "unknown mixer kind 'atention', did you mean 'attention'?",
      'atention',
    ]);
    check([
      'ffn f = swiglo(hidden: 4)',
      "unknown ffn kind 'swiglo', did you mean 'swiglu'?",
      'swiglo',
    ]);
  });

  it('rejects a kind of the other family', () => {
    check(['mixer a = swiglu(hidden: 4)', "'swiglu' is an ffn kind, not a mixer kind", 'swiglu']);
    check([
      'ffn f = attention(heads: 4)',
      "'attention' is a mixer kind, not an ffn kind",
      'attention',
    ]);
  });

  it("checks moe's cross-field rules where the argument is written", () => {
    check([
      'ffn e = moe(experts: 16, top_k: 17, expert: swiglu(hidden: 64))',
      'top_k (17) must not exceed experts (16)',
      'top_k: 17',
    ]);
  });

  it('rejects a definition that is not a kind call', () => {
    check(['mixer a = 5', "mixer 'a' must be a mixer kind such as attention(...), got 5", '5']);
    check(['ffn f = [1]', "ffn 'f' must be an ffn kind such as swiglu(...), got a list", '[1]']);
  });

  it('rejects duplicate definitions, within and across roles', () => {
    check([`${A}\nmixer a = attention(heads: 2)`, "'a' is already defined as a mixer at 6:9", 'a']);
    check([`${A}\nffn a = swiglu(hidden: 2)`, "'a' is already defined as a mixer at 6:9", 'a']);
  });
});

describe('parameters', () => {
  it('rejects unknown parameters with a suggestion', () => {
    check([
      'mixer a = attention(hedas: 4)',
      "unknown parameter 'hedas' for attention(...), did you mean 'heads'?",
      'hedas',
    ]);
    check([
      'mixer a = attention(heads: 4, flash: true)',
      "unknown parameter 'flash' for attention(...)",
      'flash',
    ]);
    check([
      'mixer a = attention(heads: 4, rope: rope(thetta: 5))',
      "unknown parameter 'thetta' for rope(...), did you mean 'theta'?",
      'thetta',
    ]);
  });

  it('rejects duplicate, missing and positional parameters', () => {
    check([
      'mixer a = attention(heads: 4, heads: 2)',
      "parameter 'heads' is given twice (first at 6:23)",
      'heads',
    ]);
    check(['mixer a = attention(kv_heads: 2)', "attention(...) needs 'heads'", 'attention']);
    check(['mixer a = attention', "attention(...) needs 'heads'", 'attention']);
    check([
      'mixer a = attention(heads: 4, rope: rope(scaling: llama3(factor: 8)))',
      "llama3(...) needs 'low_freq_factor'",
      'llama3',
    ]);
    check([
      'mixer a = attention(4)',
      "attention(...) takes named parameters such as 'heads: ...'",
      '4',
    ]);
  });

  it('rejects values of the wrong type or range', () => {
    check([
      'mixer a = attention(heads: 4.5)',
      'heads must be an integer of at least 1, got 4.5',
      '4.5',
    ]);
    check(['mixer a = attention(heads: 0)', 'heads must be an integer of at least 1, got 0', '0']);
    check([
      'mixer a = attention(heads: "4")',
      'heads must be an integer of at least 1, got "4"',
      '"4"',
    ]);
    check([
      'mixer a = attention(heads: 4, qk_norm: yes)',
      'qk_norm must be true or false, got yes',
      'yes',
    ]);
    check([
      'mixer a = attention(heads: 4, window: -1)',
      'window must be an integer of at least 1 or none, got -1',
      '-1',
    ]);
    check(['mixer a = attention(heads: 4, rope: 5)', 'rope must be rope(...) or none, got 5', '5']);
    check([
      'mixer a = attention(heads: 4, rope: rop(theta: 5))',
      "unknown rope kind 'rop', did you mean 'rope'?",
      'rop',
    ]);
    check([
      'mixer a = attention(heads: 4, rope: rope(scaling: lama3))',
      "unknown rope scaling kind 'lama3', did you mean 'llama3'?",
      'lama3',
    ]);
    check([
      'mixer a = attention(heads: 4, scale: 0)',
      'scale must be a number greater than 0, got 0',
      '0',
    ]);
    check([
      'ffn f = mlp(hidden: 8, act: relu3)',
      "unknown activation 'relu3', did you mean 'relu2'?",
      'relu3',
    ]);
    check([
      'ffn f = mlp(hidden: 8, act: tanh)',
      "unknown activation 'tanh' (expected one of silu, gelu, gelu_tanh, relu, relu2)",
      'tanh',
    ]);
    check([
      'ffn f = geglu(hidden: 8, act: silu)',
      "unknown activation 'silu' (expected one of gelu, gelu_tanh)",
      'silu',
    ]);
    check([
      'ffn f = mlp(hidden: 8, act: gelu(x: 1))',
      'act must be one of silu, gelu, gelu_tanh, relu, relu2, got gelu(...)',
      'gelu(x: 1)',
    ]);
  });

  it('rejects inconsistent attention shapes', () => {
    check([
      'mixer a = attention(heads: 3)',
      'dim 64 is not divisible by heads 3; give head_dim explicitly',
      'heads: 3',
    ]);
    check([
      'mixer a = attention(heads: 4, kv_heads: 3)',
      'heads (4) must be a multiple of kv_heads (3)',
      'kv_heads: 3',
    ]);
    check([
      'mixer a = attention(heads: 4, rope: rope(rotary_dim: 9))',
      'rotary_dim must be even (rotation acts on pairs), got 9',
      'rotary_dim: 9',
    ]);
    check([
      'mixer a = attention(heads: 4, rope: rope(rotary_dim: 32))',
      'rotary_dim (32) must not exceed head_dim (16)',
      'rotary_dim: 32',
    ]);
    check([
      'mixer a = attention(heads: 4, rope: rope(scaling: llama3(factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_positions: 8)))',
      'high_freq_factor (1) must be greater than low_freq_factor (4)',
      'high_freq_factor: 1',
    ]);
    check([
      'mixer a = attention(heads: 4, rope: rope(scaling: proportional(pairs: 9)))',
      'pairs (9) must not exceed half of rotary_dim (8)',
      'pairs: 9',
    ]);
  });
});

describe('layers', () => {
  const B = `${A}\nmixer b = attention(heads: 2)\nffn f = swiglu(hidden: 8)`;

  it('rejects unknown mixers and ffns, and names of the other role', () => {
    check([`${B}\nlayers 2 x [1 aa : 1 b]`, "unknown mixer 'aa', did you mean 'a'?", 'aa']);
    check([`${B}\nlayers 2 x f`, "'f' is an ffn, not a mixer", 'f']);
    check([`${B}\nlayers 2 x a with ffn b`, "'b' is a mixer, not an ffn", 'b']);
    check([`${B}\nlayers 2 x a with ffn ff`, "unknown ffn 'ff', did you mean 'f'?", 'ff']);
    check([`${B}\nlayers 2 x a, c at 1`, "unknown mixer 'c'", 'c']);
  });

  it('rejects bad counts', () => {
    check([`${B}\nlayers 0 x a`, 'a repeat count must be an integer of at least 1, got 0', '0']);
    check([
      `${B}\nlayers 1.5 x a`,
      'a repeat count must be an integer of at least 1, got 1.5',
      '1.5',
    ]);
    check([
      `${B}\nlayers 2 x [0 a : 1 b]`,
      'a ratio count must be an integer of at least 1, got 0',
      '0',
    ]);
    check([`${B}\nlayers 20000 x a`, '20000 layers exceed the limit of 4096', '20000']);
    check([`${B}\nlayers 20000 as [a, b]`, '20000 layers exceed the limit of 4096', '20000']);
    check([
      `${B}\nlayers [20000 a : 1 b]`,
      '20001 layers exceed the limit of 4096',
      '[20000 a : 1 b]',
    ]);
  });

  it('rejects ratio placements that do not fit or overlap', () => {
    check([
      `${B}\nlayers 2 x [3 a : 1 b at 4]`,
      "'b' at offset 4 does not fit in a group of 4 layers (0..3)",
      '4',
    ]);
    check([
      `${B}\nlayers 2 x [3 a : 2 b at 4]`,
      "'b' at offsets 4..5 does not fit in a group of 5 layers (0..4)",
      '4',
    ]);
    check([`${B}\nlayers [2 a at 0 : 2 b at 1]`, "'b' at 1 overlaps 'a' at offset 1", '2 b at 1']);
  });

  it('rejects a total that the group does not divide', () => {
    check([
      `${B}\nlayers 10 as [2 a : 1 b]`,
      '10 layers do not divide into groups of 3; use a multiple of 3',
      '10',
    ]);
  });

  it('rejects placements out of range or placed twice', () => {
    check([
      `${B}\nlayers 4 x a, b at [1, 4]`,
      'layer index 4 is out of range: this statement has 4 layers (0..3)',
      '4',
    ]);
    check([
      `${B}\nlayers 4 x a, b at 1, a at 1`,
      "layer 1 is placed twice (also by 'b at ...')",
      '1',
    ]);
    check([
      `${B}\nlayers 4 x a, b at -1`,
      'a layer index must be an integer of at least 0, got -1',
      '-1',
    ]);
  });

  it('rejects unknown, unmapped and ambiguous pattern symbols at the character', () => {
    check([
      `${B}\nlayers "*-*X*" with { "*": a }`,
      "unknown pattern symbol 'X': map it: with { X: NAME }",
      'X',
    ]);
    check([
      `${B}\nlayers "*-*?" with { "*": a }`,
      'unknown pattern symbol \'?\': map it: with { "?": NAME }',
      '?',
    ]);
    const e = bodyError(`${B}\nlayers "a*"`);
    expect(e.message).toMatch(/^m\.strata:\d+:11: error: unknown pattern symbol 'a'/);
    expect(e.message.split('\n')[2]).toBe('   |           ^');
    check([
      `${B}\nlayers "-M"`,
      "which definition is 'M'? no Mamba mixer is defined: map it: with { M: NAME }",
      'M',
    ]);
    check([
      `${B}\nlayers "-*" with { "-": f }`,
      'which definition is \'*\'? 2 attention mixers are defined (a, b): map it: with { "*": NAME }',
      '*',
    ]);
    check([
      `${A}\nlayers "*-"`,
      'which definition is \'-\'? no dense ffn is defined: map it: with { "-": NAME }',
      '-',
    ]);
  });

  it('rejects bad pattern mappings', () => {
    check([`${B}\nlayers "ab" with { a: a, b: c }`, "unknown definition 'c'", 'c']);
    check([
      `${B}\nlayers "ab" with { a: a, b: ff }`,
      "unknown definition 'ff', did you mean 'f'?",
      'ff',
    ]);
    check([`${B}\nlayers "a" with { ab: a }`, "a pattern symbol is one character, got 'ab'", 'ab']);
    check([
      `${B}\nlayers "a" with { a: a, "a": b }`,
      /^symbol 'a' is already mapped at \d+:\d+$/,
      '"a"',
    ]);
    check([
      `${B}\nlayers "a" with { a: a, q: b }`,
      'symbol \'q\' does not occur in the pattern "a"',
      'q',
    ]);
  });

  it('rejects empty, escaped and ffn-scheduled pattern strings', () => {
    check([`${B}\nlayers ""`, 'a pattern string needs at least one symbol', '""']);
    check([
      `${B}\nlayers "a\\-" with { a: a }`,
      'a pattern string cannot contain escapes',
      '"a\\-"',
    ]);
    check([
      `${B}\nlayers "a" with { a: a } with ffn f`,
      "a pattern string gives each layer its ffn (or none): drop 'with ffn ...' and map symbols in 'with { ... }'",
      'with ffn f',
    ]);
    check([
      `${B}\nlayers "${'a'.repeat(4097)}" with { a: a }`,
      '4097 layers exceed the limit of 4096',
      `"${'a'.repeat(4097)}"`,
    ]);
  });

  it('needs one mixer-less definition for the ffn-only layers of a pattern', () => {
    check([
      `${B}\nmixer n1 = none\nmixer n2 = none\nlayers "a-" with { a: a, "-": f }`,
      'which mixer-less definition for this ffn-only layer? 2 are defined (n1, n2): keep one',
      '-',
    ]);
    check([
      `${A}\nffn no_mixer = swiglu(hidden: 8)\nlayers "*-"`,
      "'no_mixer' is taken, so this ffn-only layer has no mixer to name: define 'mixer NAME = none'",
      '-',
    ]);
  });

  it('needs at least one layer and an unambiguous ffn', () => {
    check([A, "the model has no layers: add one such as 'layers 16 x attn'", '"m"']);
    check([
      `${B}\nffn g = swiglu(hidden: 4)\nlayers 2 x a`,
      "which ffn? 2 are defined (f, g): add 'with ffn NAME'",
      'layers 2 x a',
    ]);
  });

  it('rejects ffn schedules that do not fit the statement', () => {
    check([
      `${B}\nlayers 2 x a with ffn none, first 3 f`,
      'first 3 exceeds the 2 layers of this statement',
      '3',
    ]);
    check([
      `${B}\nlayers 2 x a with ffn none, first 0 f`,
      "'first' must be an integer of at least 1, got 0",
      '0',
    ]);
    check([
      `${B}\nlayers 4 x a with ffn none, f every 2 offset 2`,
      'offset 2 must be less than every 2',
      '2',
    ]);
    check([
      `${B}\nlayers 4 x a with ffn none, f every 0`,
      "'every' must be an integer of at least 1, got 0",
      '0',
    ]);
    check([
      `${B}\nlayers 4 x a with ffn none, f at 4`,
      'layer index 4 is out of range: this statement has 4 layers (0..3)',
      '4',
    ]);
  });
});

describe('overrides', () => {
  const B = `${A}\nmixer b = attention(heads: 2)\nffn f = swiglu(hidden: 8)\nlayers [a, b]`;

  it('rejects layers out of range, negative or listed twice', () => {
    check([
      `${B}\noverride layer 2 { a.window: 4 }`,
      'layer 2 is out of range: the model has 2 layers (0..1)',
      '2',
    ]);
    check([
      `${B}\noverride layers [0, -1] { a.window: 4 }`,
      'a layer index must be an integer of at least 0, got -1',
      '-1',
    ]);
    check([`${B}\noverride layers [1, 1] { b.window: 4 }`, 'layer 1 is listed twice', '1']);
  });

  it('rejects a field of a block the layer does not use', () => {
    check([`${B}\noverride layer 1 { a.window: 4 }`, "layer 1 uses mixer 'b', not 'a'", 'a']);
    check([
      `${A}\nffn f = swiglu(hidden: 8)\nffn g = swiglu(hidden: 4)\nlayers 2 x a with ffn f\noverride layer 0 { g.hidden: 4 }`,
      "layer 0 uses ffn 'f', not 'g'",
      'g',
    ]);
    check([`${A}\nlayers 2 x a\noverride layer 0 { ffn.hidden: 4 }`, 'layer 0 has no ffn', 'ffn']);
  });

  it('rejects unknown targets and unknown fields', () => {
    check([
      `${B}\noverride layer 0 { aa.window: 4 }`,
      "unknown definition 'aa', did you mean 'a'?",
      'aa',
    ]);
    check([
      `${B}\noverride layer 0 { a.windw: 4 }`,
      "unknown parameter 'windw' for attention(...), did you mean 'window'?",
      'windw',
    ]);
    check([
      `${B}\noverride layer 0 { a.window: 0 }`,
      'window must be an integer of at least 1 or none, got 0',
      '0',
    ]);
    check([
      `${B}\noverride layer 0 { a.kv_heads: 3 }`,
      'heads (4) must be a multiple of kv_heads (3)',
      'a.kv_heads: 3',
    ]);
  });

  it('rejects swaps to nothing or to the wrong role', () => {
    check([
      `${B}\noverride layer 0 { mixer: none }`,
      "a layer without a mixer uses a definition 'mixer NAME = none': write 'mixer: NAME'",
      'none',
    ]);
    check([`${B}\noverride layer 0 { mixer: f }`, "'f' is an ffn, not a mixer", 'f']);
    check([`${B}\noverride layer 0 { ffn: a }`, "'a' is a mixer, not an ffn", 'a']);
    check([
      `${B}\noverride layer 0 { mixer: 3 }`,
      'mixer must name a mixer definition, got 3',
      '3',
    ]);
    check([
      `${B}\noverride layer 0 { ffn: f(x: 1) }`,
      'ffn must name an ffn definition or none, got f(...)',
      'f(x: 1)',
    ]);
    check([
      `${B}\noverride layer 0 { a: b }`,
      "'a: ...' sets nothing: write 'a.FIELD: value', or 'mixer: NAME' / 'ffn: NAME' to swap a block",
      'a',
    ]);
  });
});
