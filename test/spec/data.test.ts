/** YAML/JSON specs: the schema and semantic errors, with JSON paths and source positions. */
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { SpecError } from '../../src/spec/errors.ts';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { modelIrSchema } from '../../src/spec/schema.ts';
import { MIXER_LIST } from '../../src/mixers/index.ts';
import { resolve, specError } from './helpers.ts';

const hybrid = loadSpec('specs/tiny-hybrid.strata');
const yaml = YAML.stringify(hybrid);
const json = JSON.stringify(hybrid, null, 2);

/** A YAML spec with one line of the written-out tiny-hybrid changed. */
function yamlWith(from: string, to: string): string {
  expect(yaml).toContain(from);
  return yaml.replace(from, to);
}

function jsonWith(from: string, to: string): string {
  expect(json).toContain(from);
  return json.replace(from, to);
}

function failure(text: string, file: string): SpecError & { at: string } {
  const e = specError(() => parseSpec(text, file));
  const at = e.span ? text.slice(e.span.offset, e.span.offset + e.span.length) : '';
  return Object.assign(e, { at });
}

describe('the JSON Schema', () => {
  const validate = new Ajv({ discriminator: true, allowUnionTypes: true }).compile(modelIrSchema);

  it('accepts every resolved spec', () => {
    for (const name of ['tiny-llama', 'tiny-hybrid', 'llama-3.2-1b', 'deepseek-v3']) {
      expect(validate(loadSpec(`specs/${name}.strata`)), name).toBe(true);
    }
  });

  it('accepts every optional shape: null rope and ffn, scalings, layer norm', () => {
    const m = resolve(
      'mixer a = attention(heads: 4, rope: none, window: 8, softcap: 20)\nmixer b = attention(heads: 4, rope: rope(scaling: yarn(factor: 4, original_max_positions: 64)))\nmixer c = attention(heads: 4, rope: rope(scaling: linear(factor: 2)))\nmixer d = attention(heads: 4, rope: rope(scaling: proportional(pairs: 2, factor: 2)))\nlayers [a, b, c, d]',
      'vocab 8\n  dim 64\n  max_context 8\n  norm layer(eps: 1e-5)\n  logit_softcap 30',
    );
    expect(validate(m)).toBe(true);
  });

  it('requires every ModelIR field but the later additions with defaults, and allows no others', () => {
    const m = loadSpec('specs/tiny-llama.strata');
    // Fields added later have a default, so specs written before them keep loading.
    const defaulted = ['postNorms', 'residualScale', 'logitScale'];
    for (const key of Object.keys(m).filter((k) => !defaulted.includes(k))) {
      const partial: Record<string, unknown> = { ...m };
      delete partial[key];
      expect(validate(partial), key).toBe(false);
    }
    // sinks, outputGate, sinkTokens and evict came after specs were written: optional, the loader
    // fills false (sinkTokens, evict: null).
    const optional = new Set(['sinks', 'outputGate', 'sinkTokens', 'evict']);
    for (const key of Object.keys(m.layers[0]!.mixer!).filter((k) => !optional.has(k))) {
      const layer = { ...m.layers[0]!, mixer: { ...m.layers[0]!.mixer, [key]: undefined } };
      const json = JSON.parse(JSON.stringify({ ...m, layers: [layer] }));
      expect(validate(json), key).toBe(optional.has(key));
    }
    expect(validate({ ...m, extra: 1 })).toBe(false);
    for (const key of defaulted) {
      const partial: Record<string, unknown> = { ...m };
      delete partial[key];
      expect(validate(partial), key).toBe(true);
    }
  });

  it('fills a defaulted field that a YAML spec leaves out', () => {
    const m = loadSpec('specs/tiny-llama.strata');
    const { postNorms, ...older } = m;
    expect(postNorms).toBe(false);
    expect(parseSpec(YAML.stringify(older), 'older.yaml')).toEqual(m);
    expect(parseSpec(YAML.stringify({ ...older, postNorms: true }), 'new.yaml').postNorms).toBe(
      true,
    );
  });

  it('fills the defaults of optional fields when loading: sinks false, yarn truncate true', () => {
    const m = resolve(
      'mixer a = attention(heads: 4, rope: rope(scaling: yarn(factor: 4, original_max_positions: 64)))\nlayers [a]',
    );
    const old = JSON.parse(JSON.stringify(m));
    delete old.layers[0].mixer.sinks;
    delete old.layers[0].mixer.rope.scaling.truncate;
    expect(parseSpec(JSON.stringify(old), 'old.json')).toEqual(m);
    expect(m.layers[0].mixer).toMatchObject({
      sinks: false,
      rope: { scaling: { truncate: true } },
    });
  });
});

describe('YAML errors', () => {
  it('locates a value written without a node of its own at its key', () => {
    // `{kind, ...}` gives kind the value null, with no source range of its own.
    const spec = yaml.replace(
      /^norm:\n(  .*\n)+/m,
      'norm: {kind, eps: 1, unitOffset: false, bias: false}\n',
    );
    const e = failure(spec, 'h.yaml');
    expect(e.reason).toBe('norm.kind: must be one of rms, layer, got null');
    expect(e.at).toBe('kind');
  });

  it('names the path, the line and the column, with a caret', () => {
    const e = failure(yamlWith('heads: 4\n', 'heads: 4.5\n'), 'h.yaml');
    expect(e.message).toMatch(
      /^h\.yaml:\d+:14: error: layers\[0\]\.mixer\.heads: must be an integer, got 4\.5\n \d+ \| {7}heads: 4\.5\n +\| {14}\^\^\^$/,
    );
  });

  it('reports unknown properties with a suggestion, before the missing one', () => {
    const e = failure(yamlWith('      heads: 4\n', '      hedas: 4\n'), 'h.yaml');
    expect(e.reason).toBe("layers[0].mixer.hedas: unknown property 'hedas', did you mean 'heads'?");
    expect(e.at).toBe('hedas');
    const snake = failure(yamlWith('kvHeads: 1', 'kv_heads: 1'), 'h.yaml');
    expect(snake.reason).toBe(
      "layers[0].mixer.kv_heads: unknown property 'kv_heads', did you mean 'kvHeads'?",
    );
  });

  it('reports missing properties at the mapping that lacks them', () => {
    const e = failure(yamlWith('      kvHeads: 1\n', ''), 'h.yaml');
    expect(e.reason).toBe("layers[0].mixer: missing property 'kvHeads'");
    expect(e.at.startsWith('kind: attention')).toBe(true);
  });

  it('reports wrong types, ranges, enums and constants', () => {
    expect(failure(yamlWith('window: 32', 'window: "32"'), 'h.yaml').reason).toBe(
      'layers[0].mixer.window: must be an integer or null, got "32"',
    );
    expect(failure(yamlWith('window: 32', 'window: 0'), 'h.yaml').reason).toBe(
      'layers[0].mixer.window: must be >= 1, got 0',
    );
    expect(failure(yamlWith('act: relu2', 'act: relu3'), 'h.yaml').reason).toBe(
      'layers[1].ffn.act: must be one of silu, gelu, gelu_tanh, relu, relu2, got "relu3"',
    );
    expect(failure(yamlWith('version: 1', 'version: 2'), 'h.yaml').reason).toBe(
      'version: must be 1, got 2',
    );
    expect(failure(yamlWith('eps: 0.000001', 'eps: 0'), 'h.yaml').reason).toBe(
      'norm.eps: must be > 0, got 0',
    );
    expect(failure(yamlWith('tieEmbeddings: true', 'tieEmbeddings: yes'), 'h.yaml').reason).toBe(
      'tieEmbeddings: must be true or false, got "yes"',
    );
  });

  it('reports unknown and not-yet-supported kinds', () => {
    // The kinds in MIXER_DEFS order: the older ones where they always were, then the rest.
    const kinds = MIXER_LIST.map((d) => d.kind.name);
    expect(kinds.slice(0, 7).join(', ')).toBe(
      'attention, mla, mamba1, mamba2, shortconv, parallel, gated_deltanet',
    );
    expect(failure(yamlWith('kind: attention', 'kind: atention'), 'h.yaml').reason).toBe(
      `layers[0].mixer: unknown kind 'atention', did you mean 'attention'? (expected ${kinds.join(', ')})`,
    );
    // A supported kind whose fields are another kind's: the schema names what it lacks.
    expect(failure(yamlWith('kind: attention', 'kind: mamba1'), 'h.yaml').reason).toMatch(
      /^layers\[0\]\.mixer\.heads: unknown property 'heads'/,
    );
    expect(failure(yamlWith('kind: mlp', 'kind: moe'), 'h.yaml').reason).toMatch(
      /^layers\[0\]\.ffn\.hidden: unknown property 'hidden'/,
    );
    expect(failure(yamlWith('kind: none', 'kind: llama4'), 'h.yaml').reason).toBe(
      "layers[0].mixer.rope.scaling: unknown kind 'llama4', did you mean 'llama3'? (expected none, linear, llama3, yarn, proportional)",
    );
    expect(failure(yamlWith('kind: none', 'kind: 3'), 'h.yaml').reason).toBe(
      "layers[0].mixer.rope.scaling: 'kind' must be a string",
    );
  });

  it('reports semantic errors the schema cannot express', () => {
    const kv = failure(yamlWith('kvHeads: 1', 'kvHeads: 3'), 'h.yaml');
    expect(kv.reason).toBe('layers[0].mixer.kvHeads: heads (4) must be a multiple of kvHeads (3)');
    expect(kv.at).toBe('3');
    expect(failure(yamlWith('rotaryDim: 16', 'rotaryDim: 15'), 'h.yaml').reason).toBe(
      'layers[0].mixer.rope.rotaryDim: rotaryDim must be even (rotation acts on pairs), got 15',
    );
    expect(failure(yamlWith('rotaryDim: 16', 'rotaryDim: 32'), 'h.yaml').reason).toBe(
      'layers[0].mixer.rope.rotaryDim: rotaryDim (32) must not exceed headDim (16)',
    );
    expect(failure(yamlWith('index: 3', 'index: 4'), 'h.yaml').reason).toBe(
      'layers[3].index: must be 3: layers are listed in order',
    );
    expect(failure(yamlWith('ffnName: wide', 'ffnName: null'), 'h.yaml').reason).toBe(
      'layers[1].ffnName: ffnName and ffn must both be null (no ffn) or both be set',
    );
    expect(failure(yamlWith('mixerName: global', 'mixerName: wide'), 'h.yaml').reason).toBe(
      "layers[2].mixerName: 'wide' names both a mixer and an ffn",
    );
    expect(failure(yamlWith('mixerName: global', 'mixerName: x'), 'h.yaml').reason).toBe(
      "layers[2].mixerName: 'x' is a reserved word and cannot name a mixer",
    );
    expect(failure(yamlWith('mixerName: global', 'mixerName: "glo bal"'), 'h.yaml').reason).toBe(
      'layers[2].mixerName: must match pattern "^[A-Za-z_][A-Za-z0-9_]*$", got "glo bal"',
    );
    expect(
      failure(
        yamlWith('unitOffset: false\n  bias: false', 'unitOffset: false\n  bias: true'),
        'h.yaml',
      ).reason,
    ).toBe('norm.bias: bias must be false for rms norm');
    const layerNorm = yamlWith(
      'kind: rms\n  eps: 0.000001\n  unitOffset: false',
      'kind: layer\n  eps: 0.000001\n  unitOffset: true',
    );
    expect(failure(layerNorm, 'h.yaml').reason).toBe(
      'norm.unitOffset: unitOffset must be false for layer norm',
    );
  });

  it('follows aliases to the anchored node the error is in', () => {
    const fixture = readFileSync('test/spec/fixtures/tiny-llama.yaml', 'utf8');
    const text = fixture
      .replace('  - index: 0\n', '  - &first\n    index: 0\n')
      .replace(
        '  - { index: 1, mixerName: attn, mixer: *attn, ffnName: mlp, ffn: *mlp }',
        '  - *first',
      );
    expect(text).toContain('  - *first');
    const e = failure(text, 'a.yaml');
    expect(e.reason).toBe('layers[1].index: must be 1: layers are listed in order');
    expect(e.span!.line).toBe(text.split('\n').indexOf('    index: 0') + 1);
    expect(e.at).toBe('0');
  });

  it('blames an alias used where its value is wrong', () => {
    const fixture = readFileSync('test/spec/fixtures/tiny-llama.yaml', 'utf8');
    const text = fixture
      .replace('headDim: 16', 'headDim: &sixteen 16')
      .replace(
        '{ index: 2, mixerName: attn, mixer: *attn',
        '{ index: 2, mixerName: *sixteen, mixer: *attn',
      );
    const e = failure(text, 'b.yaml');
    expect(e.reason).toBe('layers[2].mixerName: must be a string, got 16');
    expect(e.at).toBe('*sixteen');
  });

  it('reports YAML syntax errors with their position', () => {
    const bad = failure('version: 1\nlayers: [1, 2\nname: x\n', 'bad.yaml');
    expect(bad.reason).toMatch(/^invalid YAML: /);
    expect(bad.span!.line).toBe(3);
    expect(failure('a: 1\na: 2\n', 'dup.yaml').reason).toBe(
      'invalid YAML: Map keys must be unique',
    );
  });

  it('reports an empty document', () => {
    const e = specError(() => parseSpec('# nothing\n', 'e.yaml'));
    expect(e.message).toMatch(
      /^e\.yaml:1:1: error: the spec is empty: expected a ModelIR mapping\n/,
    );
  });

  it('reports a document that is not a mapping', () => {
    expect(failure('- 1\n- 2\n', 'l.yaml').reason).toBe(
      '(top level): must be a mapping, got [1,2]',
    );
  });
});

describe('JSON errors', () => {
  it('names the path and position of schema errors', () => {
    const e = failure(jsonWith('"heads": 4', '"heads": -4'), 'h.json');
    expect(e.reason).toBe('layers[0].mixer.heads: must be >= 1, got -4');
    expect(e.message).toMatch(/^h\.json:\d+:18: error: /);
    expect(e.at).toBe('-4');
  });

  it('reports syntax errors with their position', () => {
    const number = failure('{"a": 1,\n "b" 2}', 'n.json');
    expect(number.reason).toBe(
      "invalid JSON: unexpected character '2' (expected ':' after the key)",
    );
    expect(number.span).toMatchObject({ line: 2, col: 6 });
    const end = failure('{"a": 1', 'e.json');
    expect(end.reason).toMatch(/^invalid JSON: /);
    expect(end.span).toMatchObject({ line: 1, col: 8 });
    const token = specError(() => parseSpec('{"a": }', 't.json'));
    expect(token.message).toMatch(
      /^t\.json:1:7: error: invalid JSON: unexpected character '}' \(expected a value\)/,
    );
  });

  it('rejects JSON that YAML would accept', () => {
    expect(failure("{'version': 1}", 'q.json').reason).toMatch(/^invalid JSON: /);
  });
});

describe('loadSpec', () => {
  it('rejects unknown extensions and unreadable files', () => {
    expect(specError(() => loadSpec('model.txt')).message).toBe(
      "model.txt: error: unknown spec format '.txt': use .strata, .yaml, .yml or .json",
    );
    expect(specError(() => loadSpec('Makefile')).message).toBe(
      "Makefile: error: unknown spec format '(no extension)': use .strata, .yaml, .yml or .json",
    );
    expect(specError(() => loadSpec('specs/missing.strata')).message).toBe(
      'specs/missing.strata: error: cannot read spec: no such file',
    );
    const dir = join(mkdtempSync(join(tmpdir(), 'strata-load-')), 'folder.strata');
    mkdirSync(dir);
    expect(specError(() => loadSpec(dir)).message).toBe(
      `${dir}: error: cannot read spec: is a directory`,
    );
  });

  it('parses text without a known extension as .strata', () => {
    const text = readFileSync('specs/tiny-llama.strata', 'utf8');
    expect(parseSpec(text, '<stdin>')).toEqual(loadSpec('specs/tiny-llama.strata'));
    expect(specError(() => parseSpec('version: 1', '<stdin>')).message).toMatch(
      /^<stdin>:1:1: error: /,
    );
  });

  it('reads the same model whatever the extension case', () => {
    const m: ModelIR = loadSpec('specs/tiny-llama.strata');
    expect(parseSpec(JSON.stringify(m), 'X.JSON')).toEqual(m);
  });
});
