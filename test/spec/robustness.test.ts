/**
 * Hostile and accidental inputs (issue 10): each must fail fast with a located SpecError, never a
 * TypeError, a stack overflow, a hang or an out-of-memory.
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { SpecError } from '../../src/spec/errors.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { expectedTensors, tensorElements } from '../../src/import/names.ts';
import { countParams } from '../../src/spec/params.ts';
import type { MoeSpec } from '../../src/spec/model.ts';
import { printSpec } from '../../src/spec/print.ts';
import { source, specError } from './helpers.ts';

const A = 'mixer a = attention(heads: 4)';

/**
 * The SpecError of a text, checked to carry file:line:col. (How fast rejection is belongs to the
 * fuzzer's 2 s property, which runs in a worker it can stop, not to a timed assertion here.)
 */
function located(text: string, file = 'm.strata'): SpecError & { at: string } {
  const e = specError(() => parseSpec(text, file));
  expect(e).toBeInstanceOf(SpecError);
  expect(e.span).not.toBeNull();
  expect(e.message.startsWith(`${file}:${e.span!.line}:${e.span!.col}: error: `)).toBe(true);
  return Object.assign(e, { at: text.slice(e.span!.offset, e.span!.offset + e.span!.length) });
}

describe('Object.prototype names', () => {
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    it(`'${name}' is an unknown parameter and an unknown setting`, () => {
      const param = located(source(`mixer a = attention(heads: 4, ${name}: 1)\nlayers 2 x a`));
      expect(param.reason).toBe(`unknown parameter '${name}' for attention(...)`);
      expect(param.at).toBe(name);
      const setting = located(source(`${name} 3\n${A}\nlayers 2 x a`));
      expect(setting.reason).toBe(`unknown setting '${name}' for the model`);
      expect(setting.span).toMatchObject({ line: 6, col: 3 });
    });
  }

  it('are unknown properties in YAML and JSON', () => {
    const yaml = located('constructor: 1\nversion: 1\n', 'm.yaml');
    expect(yaml.reason).toBe("constructor: unknown property 'constructor'");
    expect(yaml.span).toMatchObject({ line: 1, col: 1 });
    const json = located('{"version": 1, "__proto__": {"dim": 4}}', 'm.json');
    expect(json.reason).toBe("__proto__: unknown property '__proto__'");
    expect(json.at).toBe('"__proto__"');
  });
});

describe('nesting depth', () => {
  it('refuses deeply nested calls and lists before the parser recurses', () => {
    const calls = located(
      source(`mixer a = ${'attention(rope: '.repeat(1000)}${')'.repeat(1000)}\nlayers 2 x a`),
    );
    expect(calls.reason).toBe('brackets nest deeper than the limit of 32');
    expect(calls.at).toBe('(');
    expect(calls.span).toMatchObject({ line: 6 });
    const lists = located(source(`mixer a = attention(heads: ${'['.repeat(5000)})\nlayers 2 x a`));
    expect(lists.reason).toBe('brackets nest deeper than the limit of 32');
  });

  it('refuses deeply nested YAML and JSON', () => {
    const json = located('['.repeat(100_000), 'm.json');
    expect(json.reason).toBe('invalid JSON: values nest deeper than the limit of 32');
    expect(json.span).toMatchObject({ line: 1, col: 33 });
    const flow = located('['.repeat(100_000), 'm.yaml');
    expect(flow.reason).toBe('collections nest deeper than the limit of 32');
    const block = Array.from({ length: 40 }, (_, i) => `${' '.repeat(i)}k${i}:\n`).join('');
    const yaml = located(block, 'm.yaml');
    expect(yaml.reason).toBe('collections nest deeper than the limit of 32');
    expect(yaml.span).toMatchObject({ line: 33, col: 33 });
  });

  it('refuses YAML whose keys nest on one line before the parser recurses', () => {
    // `k: k: k: ...` after a `- ` overflowed the yaml parser's stack (a RangeError, no location).
    const inline = located(`layers:\n  - index: ${'rope(scaling: '.repeat(3000)}1\n`, 'm.yaml');
    expect(inline.reason).toBe('collections nest deeper than the limit of 32');
    expect(inline.span!.line).toBe(2);
    const block = Array.from({ length: 300 }, (_, i) => `${' '.repeat(i)}- k:\n`).join('');
    expect(located(block, 'm.yaml').reason).toBe('collections nest deeper than the limit of 32');
  });

  it('refuses YAML mapping keys that are collections, where they are written', () => {
    const warn = process.emitWarning;
    const warnings: unknown[] = [];
    process.emitWarning = (w: string | Error) => void warnings.push(w);
    try {
      const flow = located('version: 1\n[a, b]: 1\n', 'm.yaml');
      expect(flow.reason).toBe('a mapping key must be a plain value, not a list or mapping');
      expect(flow.at).toBe('[a, b]');
      const alias = located('version: 1\nx: &k {a: 1}\nlayers:\n  - *k : 2\n', 'm.yaml');
      expect(alias.reason).toBe('a mapping key must be a plain value, not a list or mapping');
      expect(alias.span).toMatchObject({ line: 4, col: 5 });
    } finally {
      process.emitWarning = warn;
    }
    expect(warnings).toEqual([]);
  });

  it('does not count quoted text, comments or block scalars as nesting', () => {
    const deepText = 'a: b: '.repeat(100);
    for (const name of [
      `name: '${deepText}'`,
      `name: "${deepText}"`,
      `name: |\n  ${deepText}\n  ${deepText}`,
      `name: llama # ${deepText}`,
    ]) {
      const e = located(`version: 1\n${name}\n`, 'm.yaml');
      expect(e.reason).not.toMatch(/nest/);
    }
  });
});

describe('size caps', () => {
  it('caps a kind parameter where it is written', () => {
    const e = located(
      source(
        `${A}\nffn f = moe(experts: 100000, top_k: 2, expert: swiglu(hidden: 8))\nlayers 2 x a`,
      ),
    );
    expect(e.reason).toBe('experts (100000) exceeds the limit of 4096');
    expect(e.at).toBe('experts: 100000');
    expect(
      located(source(`${A}\nlayers 2 x a`).replace('vocab 256', 'vocab 2147483648')).reason,
    ).toBe('vocab (2147483648) exceeds the limit of 1048576');
    expect(
      located(source('mixer a = attention(heads: 4, rope: rope(rotary_dim: 100000))\nlayers 1 x a'))
        .reason,
    ).toBe('rotary_dim (100000) exceeds the limit of 4096');
  });

  it('caps the layers of all statements together', () => {
    const e = located(source(`${A}\n${'layers 1000 x a\n'.repeat(5)}`));
    expect(e.reason).toBe('5000 layers exceed the limit of 4096');
    expect(e.at).toBe('layers 1000 x a');
    expect(e.span).toMatchObject({ line: 11, col: 3 });
  });

  it('caps the routed experts summed over the layers', () => {
    const e = located(
      source(`${A}\nffn f = moe(experts: 4096, top_k: 2, expert: swiglu(hidden: 8))\nlayers 7 x a`),
    );
    expect(e.reason).toBe('28672 routed experts over all layers exceed the limit of 24576');
    expect(e.at).toBe('moe(experts: 4096, top_k: 2, expert: swiglu(hidden: 8))');
  });

  it('enumerates the tensors of a huge mixture of experts without overflowing the stack', () => {
    // Built directly, past the resolver's caps: names.ts must not depend on them to survive.
    const model = parseSpec(
      source(`${A}\nffn f = moe(experts: 4096, top_k: 2, expert: swiglu(hidden: 8))\nlayers 1 x a`),
      'm.strata',
    );
    const ffn = model.layers[0]!.ffn as MoeSpec;
    ffn.experts = 100_000;
    expect(expectedTensors(model).length).toBeGreaterThan(100_000 * 3);
  });

  it('counts the parameters of a model at the expert cap, as the tensor list does', () => {
    // 6 × 4096 experts is the cap exactly. (Speed at the caps is the fuzzer's 2 s property, not
    // a timed assertion here.)
    const model = parseSpec(
      source(`${A}\nffn f = moe(experts: 4096, top_k: 2, expert: swiglu(hidden: 8))\nlayers 6 x a`),
      'm.strata',
    );
    const count = countParams(model);
    const listed = expectedTensors(model).reduce((n, t) => n + tensorElements(t), 0);
    expect(count.total).toBe(listed);
    expect(count.perLayer).toHaveLength(6);
  });

  it('caps sizes in YAML and JSON through the schema', () => {
    const model = parseSpec(source(`${A}\nlayers 2 x a`), 'm.strata');
    const json = JSON.stringify({ ...model, dim: 1e6 }, null, 1);
    const e = located(json, 'm.json');
    expect(e.reason).toBe('dim: dim (1000000) exceeds the limit of 65536');
    expect(e.at).toBe('1000000');
    const layers = Array.from({ length: 5000 }, (_, i) => ({ ...model.layers[0]!, index: i }));
    const many = located(JSON.stringify({ ...model, layers }), 'm.json');
    expect(many.reason).toBe('layers: 5000 layers exceed the limit of 4096');
  });
});

describe('JSON', () => {
  it('rejects a megabyte of invalid JSON quickly, with its position', () => {
    const text = `{"a": [${'1,'.repeat(700_000)}]}`;
    const e = located(text, 'm.json');
    expect(e.reason).toBe("invalid JSON: unexpected character ']' (expected a value)");
    expect(e.span).toMatchObject({ line: 1, col: 1_400_008 });
    // The excerpt shows a window of the line, not the megabyte.
    expect(e.message.length).toBeLessThan(400);
  });

  it('refuses duplicate keys, which JSON.parse would silently resolve', () => {
    const e = located('{\n  "a": 1,\n  "a": 2\n}', 'm.json');
    expect(e.reason).toBe('invalid JSON: duplicate key "a"');
    expect(e.span).toMatchObject({ line: 3, col: 3 });
  });
});

describe('line breaks', () => {
  const body = [
    'model "m" {',
    '  vocab 256',
    '  dim 64',
    '  max_context 128',
    '  norm rms(eps: 1e-5)',
    '  mixer a = attention(heads: 4)',
    '  layers 2 x b',
    '}',
  ];
  for (const [name, eol] of [
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ] as const) {
    it(`locates errors in ${name} files, in the message and the excerpt`, () => {
      const e = located(body.join(eol));
      expect(e.reason).toBe("unknown mixer 'b'");
      expect(e.span).toMatchObject({ line: 7, col: 14 });
      expect(e.message.split('\n').slice(1)).toEqual([
        ' 7 |   layers 2 x b',
        '   |              ^',
      ]);
      const yaml = located(['version: 1', 'name: m', 'bogus: 1'].join(eol), 'm.yaml');
      expect(yaml.reason).toBe("bogus: unknown property 'bogus'");
      expect(yaml.span).toMatchObject({ line: 3, col: 1 });
      const json = located(['{', '"version": 1,', '  "bogus": 1', '}'].join(eol), 'm.json');
      expect(json.reason).toBe("bogus: unknown property 'bogus'");
      expect(json.span).toMatchObject({ line: 3, col: 3 });
    });
  }
});

describe('numbers and names', () => {
  it('reads -0 as 0, so an accepted spec prints and reads back as itself', () => {
    const m = parseSpec(source('mixer a = mamba2(dt_min: -0)\nlayers 2 x a'), 'm.strata');
    expect(parseSpec(printSpec(m), 'p.strata')).toEqual(m);
  });

  it('gives no suggestion for huge names, quickly', () => {
    const long = 'x'.repeat(200_000);
    const e = located(source(`mixer ${long} = attention(heads: 4)\nlayers 2 x ${long}y`));
    expect(e.reason).toBe(`unknown mixer '${long}y'`);
  });
});

describe('print and read back', () => {
  it('reads JSON escapes in strings as the printer writes them', () => {
    for (const name of ['a\u0001b', 'x\ry', 'tab\there', 'lone \ud800 half', 'q"\\']) {
      const m = parseSpec(
        source(`${A}\nlayers 2 x a`).replace('"m"', JSON.stringify(name)),
        'm.strata',
      );
      expect(m.name).toBe(name);
      expect(parseSpec(printSpec(m), 'p.strata')).toEqual(m);
    }
  });

  it('refuses a blank model name in YAML as the DSL does', () => {
    const m = parseSpec(source(`${A}\nlayers 2 x a`), 'm.strata');
    const e = located(JSON.stringify({ ...m, name: ' ' }, null, 1), 'm.json');
    expect(e.reason).toBe('name: the model name must not be empty');
    expect(e.at).toBe('" "');
  });

  it('names YAML .inf and .nan in messages instead of null', () => {
    const m = parseSpec(source(`${A}\nlayers 2 x a`), 'm.strata');
    const nan = located(
      `${JSON.stringify({ ...m, embeddingScale: 1 }).replace('"embeddingScale":1', '"embeddingScale": .nan')}`,
      'm.yaml',
    );
    expect(nan.reason).toBe('embeddingScale: must be a number, got NaN');
  });
});

describe('lexing', () => {
  it('shows a whole code point for an unexpected emoji, and a control character escaped', () => {
    const emoji = located(source(`${A}\nlayers 2 x a 😀`));
    expect(emoji.reason).toBe("unexpected character '😀'");
    expect(emoji.at).toBe('😀');
    expect(located(source(`${A}\nlayers 2 x a \u0001`)).reason).toBe(
      "unexpected character '\\u0001'",
    );
  });
});

describe('text size and YAML aliases', () => {
  it('refuses a spec text over its format cap, pointing where it passes it', () => {
    const text = source(`${A}\nlayers 2 x a\n${'# padding padding padding\n'.repeat(50_000)}`);
    const e = located(text);
    expect(e.reason).toBe(`the text is ${text.length} characters long, over the limit of 1048576`);
    expect(e.span!.offset).toBe(1 << 20);
  });

  it('caps YAML lower than the DSL: its parser is the slowest', () => {
    const text = `# ${'padding '.repeat(70_000)}\nname: x\n`;
    const e = specError(() => parseSpec(text, 'm.yaml'));
    expect(e.reason).toBe(`the text is ${text.length} characters long, over the limit of 524288`);
    expect(e.span!.offset).toBe(1 << 19);
  });

  it('reads a YAML spec that aliases one block in every layer', () => {
    const m = parseSpec(source(`${A}\nlayers 4096 x a`), 'm.strata');
    const shared = m.layers[0]!.mixer;
    const yaml = YAML.stringify({ ...m, layers: m.layers.map((l) => ({ ...l, mixer: shared })) });
    expect(yaml).toContain('*a');
    expect(parseSpec(yaml, 'm.yaml')).toEqual(m);
  });

  it('refuses YAML aliases that expand to billions of values', () => {
    const levels = Array.from({ length: 12 }, (_, i) =>
      i === 0
        ? 'l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]'
        : `l${i}: &l${i} [${`*l${i - 1}, `.repeat(10)}]`,
    );
    const e = located(`${levels.join('\n')}\n`, 'm.yaml');
    expect(e.reason).toBe(
      'the spec expands (through its aliases) to more than 2097152 values, the limit',
    );
  });
});
