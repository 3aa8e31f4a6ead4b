import { describe, expect, it } from 'vitest';
import type {
  CallValue,
  DefinitionStmt,
  LayersStmt,
  ModelAst,
  OverrideStmt,
  SettingStmt,
  Value,
} from '../../grammar/ast.ts';
import { SpecError } from '../../grammar/diagnostics.ts';
import { parseStrata } from '../../grammar/parse.ts';

const EXAMPLE = `model "tiny-llama" {
  vocab 512
  dim 128
  max_context 2048
  norm rms(eps: 1e-5)            # or layer(eps: 1e-5, bias: true)
  tie_embeddings true
  embedding_scale 1.0            // optional
  logit_softcap 30.0

  mixer attn  = attention(heads: 4, kv_heads: 2, head_dim: 32, rope: rope(theta: 10000, rotary_dim: 32,
                          scaling: llama3(factor: 32, low_freq_factor: 1, high_freq_factor: 4,
                          original_max_positions: 8192)), qk_norm: false, qkv_bias: false, window: none)
  mixer local = attention(heads: 4, kv_heads: 1, window: 64)
  ffn mlp  = swiglu(hidden: 256)
  ffn wide = mlp(hidden: 512, act: relu2)

  layers 2 x [3 local : 1 attn at 3] with ffn [mlp, wide]
  override layer 3 { attn.window: 128 }
  override layers [0, 5] { ffn: wide }
}
`;

function body(statements: string): ModelAst {
  return parseStrata(`model "m" {\n${statements}\n}`, 't.strata');
}

function only<T>(ast: ModelAst, type: string): T {
  const found = ast.statements.filter((s) => s.type === type);
  expect(found).toHaveLength(1);
  return found[0] as T;
}

/** The AST without spans, for comparing shapes. */
function strip(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (k, x: unknown) => (k === 'span' ? undefined : x)));
}

function failure(text: string): SpecError {
  try {
    parseStrata(text, 'bad.strata');
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  throw new Error('expected a SpecError');
}

describe('parser: the full example', () => {
  const ast = parseStrata(EXAMPLE, 'tiny.strata');

  it('reads the model name and every statement in order', () => {
    expect(ast.name.value).toBe('tiny-llama');
    expect(ast.statements.map((s) => s.type)).toEqual([
      ...Array<string>(7).fill('setting'),
      ...Array<string>(4).fill('definition'),
      'layers',
      'override',
      'override',
    ]);
  });

  it('gives every node a span with file, line, column, offset and length', () => {
    const dim = ast.statements[1] as SettingStmt;
    expect(dim.key.span).toEqual({ file: 'tiny.strata', line: 3, col: 3, offset: 35, length: 3 });
    expect(EXAMPLE.slice(dim.span.offset, dim.span.offset + dim.span.length)).toBe('dim 128');
    const attn = ast.statements[7] as DefinitionStmt;
    const call = attn.value as CallValue;
    const rope = call.args![3]!;
    expect(rope.name!.name).toBe('rope');
    const scaling = (rope.value as CallValue).args![2]!;
    expect(scaling.span.line).toBe(11);
    expect(EXAMPLE.slice(scaling.span.offset, scaling.span.offset + 8)).toBe('scaling:');
    // A span covering several lines runs from its first to its last token.
    const text = EXAMPLE.slice(call.span.offset, call.span.offset + call.span.length);
    expect(text.startsWith('attention(heads: 4')).toBe(true);
    expect(text.endsWith('window: none)')).toBe(true);
  });

  it('reads nested calls, booleans, none and numbers', () => {
    const attn = ast.statements[7] as DefinitionStmt;
    expect(strip(attn.value)).toMatchObject({
      type: 'call',
      kind: { name: 'attention' },
      args: [
        { name: { name: 'heads' }, value: { type: 'number', value: 4, text: '4' } },
        { name: { name: 'kv_heads' }, value: { type: 'number', value: 2 } },
        { name: { name: 'head_dim' }, value: { type: 'number', value: 32 } },
        {
          name: { name: 'rope' },
          value: {
            type: 'call',
            kind: { name: 'rope' },
            args: [
              { name: { name: 'theta' } },
              { name: { name: 'rotary_dim' } },
              { name: { name: 'scaling' }, value: { kind: { name: 'llama3' } } },
            ],
          },
        },
        { name: { name: 'qk_norm' }, value: { type: 'bool', value: false } },
        { name: { name: 'qkv_bias' }, value: { type: 'bool', value: false } },
        { name: { name: 'window' }, value: { type: 'none' } },
      ],
    });
  });

  it('reads the layers statement with its ffn schedule', () => {
    expect(strip(only<LayersStmt>(ast, 'layers'))).toEqual({
      type: 'layers',
      pattern: {
        type: 'repeat',
        count: { type: 'number', value: 2, text: '2' },
        unit: {
          type: 'ratio',
          parts: [
            { count: { type: 'number', value: 3, text: '3' }, name: { name: 'local' }, at: null },
            {
              count: { type: 'number', value: 1, text: '1' },
              name: { name: 'attn' },
              at: { type: 'number', value: 3, text: '3' },
            },
          ],
        },
        placements: [],
      },
      ffn: { base: { type: 'cycle', refs: [{ name: 'mlp' }, { name: 'wide' }] }, modifiers: [] },
    });
  });

  it('reads both override forms', () => {
    const [one, two] = ast.statements.filter((s) => s.type === 'override') as OverrideStmt[];
    expect(strip(one)).toEqual({
      type: 'override',
      layers: [{ type: 'number', value: 3, text: '3' }],
      entries: [
        {
          target: { name: 'attn' },
          field: { name: 'window' },
          value: { type: 'number', value: 128, text: '128' },
        },
      ],
    });
    expect(two!.layers.map((n) => n.value)).toEqual([0, 5]);
    expect(strip(two!.entries)).toEqual([
      {
        target: { name: 'ffn' },
        field: null,
        value: { type: 'call', kind: { name: 'wide' }, args: null },
      },
    ]);
  });
});

describe('parser: layer patterns', () => {
  const pattern = (text: string) =>
    strip(only<LayersStmt>(body(`layers ${text}`), 'layers').pattern);

  it('reads N x name', () => {
    expect(pattern('16 x attn')).toMatchObject({
      type: 'repeat',
      count: { value: 16 },
      unit: { type: 'name', name: { name: 'attn' } },
      placements: [],
    });
  });

  it('reads explicit sequences, bare and repeated', () => {
    expect(pattern('[a, b, a]')).toMatchObject({
      type: 'repeat',
      count: null,
      unit: { type: 'sequence', items: [{ name: 'a' }, { name: 'b' }, { name: 'a' }] },
    });
    expect(pattern('4 x [a, b]')).toMatchObject({
      count: { value: 4 },
      unit: { type: 'sequence' },
    });
  });

  it('reads ratio groups with three parts and placements', () => {
    expect(pattern('4 x [7 mamba : 1 attn at 4]')).toMatchObject({
      unit: { type: 'ratio', parts: [{ name: { name: 'mamba' }, at: null }, { at: { value: 4 } }] },
    });
    expect(pattern('[1 a : 2 b : 3 c]')).toMatchObject({
      count: null,
      unit: {
        type: 'ratio',
        parts: [{ count: { value: 1 } }, { count: { value: 2 } }, { count: { value: 3 } }],
      },
    });
  });

  it('reads index-list placements', () => {
    expect(pattern('32 x mamba, attn at [9, 18, 27], local at 3')).toMatchObject({
      placements: [
        { name: { name: 'attn' }, indices: [{ value: 9 }, { value: 18 }, { value: 27 }] },
        { name: { name: 'local' }, indices: [{ value: 3 }] },
      ],
    });
  });

  it('reads the total form and pattern strings', () => {
    expect(pattern('24 as [5 local : 1 global]')).toMatchObject({
      type: 'total',
      count: { value: 24 },
      group: { type: 'ratio' },
    });
    expect(pattern('"M-M*-"')).toEqual({
      type: 'pattern',
      pattern: { type: 'string', value: 'M-M*-' },
      symbols: null,
    });
  });

  it('reads a pattern string with its symbol mapping, names and quoted symbols alike', () => {
    expect(pattern('"M-M*-" with { M: mamba, "*": attn, "-": mlp, x: other, }')).toEqual({
      type: 'pattern',
      pattern: { type: 'string', value: 'M-M*-' },
      symbols: [
        { symbol: { name: 'M' }, name: { name: 'mamba' } },
        { symbol: { type: 'string', value: '*' }, name: { name: 'attn' } },
        { symbol: { type: 'string', value: '-' }, name: { name: 'mlp' } },
        { symbol: { name: 'x' }, name: { name: 'other' } },
      ],
    });
    expect(pattern('"M" with {}')).toMatchObject({ symbols: [] });
  });

  it('tells a symbol mapping from an ffn schedule after a pattern string', () => {
    const stmt = only<LayersStmt>(body('layers "M-" with ffn mlp'), 'layers');
    expect(strip(stmt.pattern)).toMatchObject({ type: 'pattern', symbols: null });
    expect(strip(stmt.ffn)).toMatchObject({ base: { ref: { name: 'mlp' } } });
    const both = only<LayersStmt>(body('layers "M-" with { M: a } with ffn mlp'), 'layers');
    expect(strip(both.pattern)).toMatchObject({ symbols: [{ symbol: { name: 'M' } }] });
    expect(both.ffn).not.toBeNull();
  });

  it('spans a pattern statement up to the closing brace of its mapping', () => {
    const text = 'layers "M-" with { M: a }';
    const p = only<LayersStmt>(body(text), 'layers').pattern;
    expect(p.span.length).toBe(text.length - 'layers '.length);
  });

  it('keeps several layers statements in order', () => {
    const ast = body('layers 2 x a\nlayers [b, c] with ffn none');
    expect(ast.statements.map((s) => s.type)).toEqual(['layers', 'layers']);
  });
});

describe('parser: ffn schedules', () => {
  const schedule = (text: string) =>
    strip(only<LayersStmt>(body(`layers 8 x a with ffn ${text}`), 'layers').ffn);

  it('reads a single ffn, none and a cycle that may contain none', () => {
    expect(schedule('mlp')).toEqual({
      base: { type: 'single', ref: { name: 'mlp' } },
      modifiers: [],
    });
    expect(schedule('none')).toEqual({
      base: { type: 'single', ref: { type: 'none' } },
      modifiers: [],
    });
    expect(schedule('[mlp, none]')).toMatchObject({
      base: { type: 'cycle', refs: [{ name: 'mlp' }, { type: 'none' }] },
    });
  });

  it('reads first, every/offset and at modifiers', () => {
    expect(schedule('moe, first 3 mlp')).toMatchObject({
      modifiers: [{ type: 'first', count: { value: 3 }, ref: { name: 'mlp' } }],
    });
    expect(schedule('mlp, moe every 2 offset 1, moe every 4')).toMatchObject({
      modifiers: [
        { type: 'every', ref: { name: 'moe' }, every: { value: 2 }, offset: { value: 1 } },
        { type: 'every', every: { value: 4 }, offset: null },
      ],
    });
    expect(schedule('mlp, none at [0, 7]')).toMatchObject({
      modifiers: [{ type: 'at', ref: { type: 'none' }, indices: [{ value: 0 }, { value: 7 }] }],
    });
  });

  it('leaves the schedule null when there is none', () => {
    expect(only<LayersStmt>(body('layers 2 x a'), 'layers').ffn).toBeNull();
  });
});

describe('parser: values and overrides', () => {
  const setting = (text: string): Value => only<SettingStmt>(body(`k ${text}`), 'setting').value;

  it('reads lists, strings, positional arguments and trailing commas', () => {
    expect(strip(setting('[1, "two", none,]'))).toEqual({
      type: 'list',
      items: [
        { type: 'number', value: 1, text: '1' },
        { type: 'string', value: 'two' },
        { type: 'none' },
      ],
    });
    expect(strip(setting('parallel(attn, mamba, weight: 0.5,)'))).toMatchObject({
      args: [
        { name: null, value: { kind: { name: 'attn' } } },
        { name: null, value: { kind: { name: 'mamba' } } },
        { name: { name: 'weight' } },
      ],
    });
    expect(strip(setting('f()'))).toEqual({ type: 'call', kind: { name: 'f' }, args: [] });
  });

  it('accepts the keyword layer as a kind name (norm layer(...))', () => {
    expect(strip(setting('layer(eps: 1e-5, bias: true)'))).toMatchObject({
      type: 'call',
      kind: { name: 'layer' },
      args: [{ name: { name: 'eps' } }, { name: { name: 'bias' } }],
    });
  });

  it('accepts keywords as parameter names', () => {
    expect(strip(setting('f(offset: 2, first: 1)'))).toMatchObject({
      args: [{ name: { name: 'offset' } }, { name: { name: 'first' } }],
    });
  });

  it('reads override entries with or without commas, and mixer/ffn targets', () => {
    const o = only<OverrideStmt>(
      body('override layers 4 { mixer: local\n mixer.window: 8, ffn.hidden: 3, ffn: none, }'),
      'override',
    );
    expect(o.layers.map((n) => n.value)).toEqual([4]);
    expect(strip(o.entries)).toMatchObject([
      { target: { name: 'mixer' }, field: null },
      { target: { name: 'mixer' }, field: { name: 'window' } },
      { target: { name: 'ffn' }, field: { name: 'hidden' } },
      { target: { name: 'ffn' }, field: null, value: { type: 'none' } },
    ]);
  });
});

describe('parser errors', () => {
  it('formats file:line:col, the source line and a caret', () => {
    const e = failure('model "m" {\n  mixer a = attention(heads 4)\n}');
    expect(e.message).toBe(
      [
        "bad.strata:2:29: error: expected ')' but found '4'",
        ' 2 |   mixer a = attention(heads 4)',
        '   |                             ^',
      ].join('\n'),
    );
  });

  it('names what a statement may be', () => {
    expect(failure('model "m" {\n  vocab 5\n  : 3\n}').message).toMatch(
      /^bad\.strata:3:3: error: expected a statement \(a setting such as 'dim 128', or 'mixer', 'ffn', 'layers', 'override'\) or '}' but found ':'/,
    );
  });

  it('says what value was expected', () => {
    expect(failure('model "m" { mixer a = }').reason).toMatch(
      /^expected a value \(.*\) but found '}'$/,
    );
  });

  it('reports end of file at the last line', () => {
    const e = failure('model "m" {\n  vocab 5\n\n\n');
    expect(e.reason).toMatch(/but found end of file$/);
    expect(e.span).toMatchObject({ line: 2, col: 10 });
  });

  it('explains a definition without its mixer/ffn keyword', () => {
    expect(failure('model "m" {\n  a = attention()\n}').reason).toBe(
      "unexpected '=': definitions are written 'mixer NAME = kind(...)' or 'ffn NAME = kind(...)'",
    );
  });

  it('suggests the statement keyword a typo was meant to be', () => {
    const e = failure('model "m" {\n  layres 2 x attn\n}');
    expect(e.reason).toBe("unknown statement 'layres', did you mean 'layers'?");
    expect(e.span).toMatchObject({ line: 2, col: 3, length: 6 });
    expect(failure('model "m" {\n  mixr a = attention()\n}').reason).toBe(
      "unknown statement 'mixr', did you mean 'mixer'?",
    );
    expect(failure('modle "m" { }').reason).toBe(
      "unknown statement 'modle', did you mean 'model'?",
    );
  });

  it('rejects text after the model block', () => {
    expect(failure('model "m" { }\nmodel "n" { }').message).toMatch(
      /^bad\.strata:2:1: error: unexpected 'model' after the end of the model block/,
    );
  });

  it('rejects an empty override body', () => {
    expect(failure('model "m" { override layer 1 { } }').reason).toMatch(
      /^expected an override such as 'attn.window: 128'.* but found '}'$/,
    );
  });

  it('rejects malformed layer patterns and schedules', () => {
    expect(failure('model "m" { layers 4 x }').reason).toMatch(/^expected a mixer name or a group/);
    expect(failure('model "m" { layers 4 x [3 a, b] }').reason).toBe("expected ']' but found ','");
    expect(failure('model "m" { layers 4 x a with ffn mlp, every 2 }').reason).toMatch(
      /^expected 'first N name', 'name every N'.* but found 'every'$/,
    );
    expect(failure('model "m" { layers 4 x a with mlp }').reason).toBe(
      "expected 'ffn' but found 'mlp'",
    );
    expect(failure('model "m" { layers "M-" with { M mamba } }').reason).toBe(
      "expected ':' but found 'mamba'",
    );
    expect(failure('model "m" { layers "M-" with { M: "mamba" } }').reason).toMatch(
      /^expected a name but found '"mamba"'$/,
    );
    expect(failure('model "m" { layers "M-" with { M: a }').reason).toMatch(/found end of file$/);
    expect(failure('model "m" { layers "M-" with { 1: a } }').reason).toMatch(/but found '1'$/);
  });

  it('is a SpecError with no stack trace in its message', () => {
    const e = failure('model "m" { vocab }');
    expect(e).toBeInstanceOf(SpecError);
    expect(e.name).toBe('SpecError');
    expect(e.message).not.toMatch(/\bat .*\.ts:\d+/);
  });
});
