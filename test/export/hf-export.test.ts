/**
 * `strata export --hf`: every exported config imports back (through config.json's text and
 * strata's own importer) to the very ModelIR it was written from, for each HF and fla type's
 * golden config and for edited designs; and what a type cannot express is refused by name.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { readConfigJson } from '../../src/import/json.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { printSpec } from '../../src/spec/print.ts';
import type { AttentionSpec, ModelIR } from '../../src/spec/model.ts';
import type { GlaSpec } from '../../src/mixers/gla.ts';
import {
  ExportError,
  exportHfConfig,
  hfConfigText,
  HF_EXPORT_TYPES,
} from '../../src/export/hf-config.ts';

const FIXTURES = 'test/fixtures/hf';
/** fla's golden configs, a folder each (named by type, or a variant such as gla_hybrid). */
const FLA_FIXTURES = 'test/fixtures/fla';
const FLA_EXPORTS = readdirSync(FLA_FIXTURES).filter((d) => d !== 'nsa');

function flaType(fixture: string): string {
  const cfg = JSON.parse(readFileSync(`${FLA_FIXTURES}/${fixture}/config.json`, 'utf8')) as {
    model_type: string;
  };
  return cfg.model_type;
}

function importText(text: string, name: string): ModelIR {
  const { config, origin } = readConfigJson(text, 'config.json');
  return importHfConfig(config as object, name, origin).model;
}

/** The fixture's model as a design: imported, printed as a spec and parsed back. */
function fixtureDesign(type: string, dir = FIXTURES): ModelIR {
  const model = importText(readFileSync(`${dir}/${type}/config.json`, 'utf8'), type);
  return parseSpec(printSpec(model), `${type}.strata`);
}

/** The exported config, read back as strata reads any config.json. */
function roundTrip(model: ModelIR, type?: string): { type: string; back: ModelIR } {
  const out = exportHfConfig(model, type);
  return { type: out.modelType, back: importText(out.text, model.name) };
}

/** A spec's design with `let` values replaced, as `strata explore --vary` writes them. */
function specWith(path: string, lets: Record<string, string | number>): ModelIR {
  let text = readFileSync(path, 'utf8');
  for (const [k, v] of Object.entries(lets)) {
    const re = new RegExp(`let ${k} = .*`);
    expect(text).toMatch(re);
    text = text.replace(re, `let ${k} = ${v}`);
  }
  return parseSpec(text, path);
}

/** The model without the names a config does not carry (mixer / FFN definition names). */
function unnamed(m: ModelIR): unknown {
  return { ...m, layers: m.layers.map((l) => ({ ...l, mixerName: '', ffnName: '' })) };
}

describe('export --hf round trip', () => {
  const types = readdirSync(FIXTURES).filter((t) => HF_EXPORT_TYPES.includes(t));
  it('covers every transformers and fla type strata imports (fla: all but nsa)', () => {
    const fla = new Set(FLA_EXPORTS.map(flaType));
    expect([...types, ...fla].sort()).toEqual([...HF_EXPORT_TYPES].sort());
  });

  for (const fixture of FLA_EXPORTS) {
    it(`fla ${fixture}: golden config → spec → config → the same ModelIR, as ${flaType(fixture)}`, () => {
      const design = fixtureDesign(fixture, FLA_FIXTURES);
      const { type, back } = roundTrip(design);
      expect(type).toBe(flaType(fixture));
      expect(unnamed(back)).toEqual(unnamed(design));
    });
  }

  for (const type of types) {
    it(`${type}: golden config → spec → config → the same ModelIR`, () => {
      const design = fixtureDesign(type);
      const { back } = roundTrip(design, type);
      expect(back).toEqual(design);
      // The type picked from the layer kinds expresses it too, as the same model.
      const auto = roundTrip(design);
      expect(unnamed(auto.back)).toEqual(unnamed(design));
    });
  }

  it('picks the family of the golden config where a plainer type cannot express it', () => {
    const picked = Object.fromEntries(
      types.map((t) => [t, exportHfConfig(fixtureDesign(t)).modelType]),
    );
    expect(picked).toEqual(Object.fromEntries(types.map((t) => [t, t])));
  });

  for (const ratio of [1, 3, 7, 15]) {
    it(`jamba-v0.1 at ratio ${ratio} (an explore design) exports as jamba`, () => {
      const design = specWith('specs/jamba-v0.1.strata', { ratio });
      const { type, back } = roundTrip(design);
      expect(type).toBe('jamba');
      expect(unnamed(back)).toEqual(unnamed(design));
    });
  }

  for (const [spec, type] of [
    ['specs/nemotron-h-8b.strata', 'nemotron_h'],
    ['specs/bamba-9b.strata', 'bamba'],
    ['specs/qwen3-next-80b-a3b.strata', 'qwen3_next'],
    ['specs/gpt-oss-20b.strata', 'gpt_oss'],
    ['specs/deepseek-v3.strata', 'deepseek_v3'],
    ['specs/deepseek-v3.2.strata', 'deepseek_v32'],
    ['specs/zamba2-2.7b.strata', 'zamba2'],
    ['specs/falcon-h1-7b.strata', 'falcon_h1'],
    ['specs/gemma-3-1b.strata', 'gemma3_text'],
    ['specs/llama-3.2-1b.strata', 'llama'],
    ['specs/gla-1.3b-hybrid.strata', 'gla'],
    ['specs/retnet-1.3b.strata', 'retnet'],
    ['specs/rwkv7-1.5b-world.strata', 'rwkv7'],
  ] as const) {
    it(`${spec} exports as ${type} and imports back unchanged`, () => {
      const design = parseSpec(readFileSync(spec, 'utf8'), spec);
      const { type: got, back } = roundTrip(design);
      expect(got).toBe(type);
      expect(unnamed(back)).toEqual(unnamed(design));
    });
  }

  it('writes transformers 5 spelling: rope_parameters, dtype, layer types, inf as __float__', () => {
    const out = exportHfConfig(fixtureDesign('nemotron_h'), 'nemotron_h');
    expect(out.config.layers_block_type).toEqual([
      'linear_attention',
      'full_attention',
      'mlp',
      'moe',
    ]);
    expect(out.config.dtype).toBe('bfloat16');
    const llama = exportHfConfig(fixtureDesign('llama'), 'llama').config;
    expect(llama.rope_parameters).toMatchObject({ rope_type: 'llama3', rope_theta: 10000 });
    expect(llama).not.toHaveProperty('rope_theta');
    expect(hfConfigText({ time_step_limit: [0, Infinity] })).toContain(
      '{\n      "__float__": "Infinity"\n    }',
    );
  });

  it('notes the context length an SSM-only config cannot carry', () => {
    const design = { ...fixtureDesign('mamba'), maxContext: 4096 };
    const out = exportHfConfig(design);
    expect(out.modelType).toBe('mamba');
    expect(out.notes.join()).toMatch(/max_context 4096 is not written/);
  });
});

describe('export --hf refusals name the feature, the layer and the type', () => {
  const refusal = (model: ModelIR, type?: string): string => {
    try {
      exportHfConfig(model, type);
    } catch (e) {
      expect(e).toBeInstanceOf(ExportError);
      return (e as Error).message;
    }
    throw new Error('exported');
  };

  it('a mixer no type has, and one another type has', () => {
    const nsa = parseSpec(readFileSync('specs/nsa-1b.strata', 'utf8'), 'nsa.strata');
    expect(refusal(nsa)).toMatch(/no model type --hf writes has layer 0's nsa mixer/);
    const m = parseSpec(readFileSync('specs/gla-1.3b-hybrid.strata', 'utf8'), 'gla.strata');
    expect(refusal(m, 'llama')).toMatch(/llama cannot express layer \d+: the gla mixer/);
  });

  it('fla: a setting its config shares between parts, and a decay the type lacks', () => {
    // fla's gla takes the per-head output norm's eps from norm_eps, the model's.
    const m = parseSpec(readFileSync('specs/gla-1.3b-hybrid.strata', 'utf8'), 'gla.strata');
    const g = m.layers[0].mixer as GlaSpec;
    m.layers = m.layers.map((l) =>
      l.mixer?.kind === 'gla' ? { ...l, mixer: { ...g, normEps: 1e-5 } } : l,
    );
    expect(refusal(m)).toMatch(
      /gla cannot express layer 0: mixer.normEps = 0.00001 \(a gla config gives 0.000001\)/,
    );
    // A DeltaNet with a per-head decay is fla's gated_deltanet, not its delta_net.
    const d = fixtureDesign('gated_deltanet', FLA_FIXTURES);
    expect(refusal(d, 'delta_net')).toMatch(
      /delta_net cannot express the deltanet mixer's decay 'head': DeltaNet has none/,
    );
    // An all-attention design never becomes an fla type (llama first; gla only by name).
    expect(exportHfConfig(fixtureDesign('llama')).modelType).toBe('llama');
  });

  it('an FFN kind the type lacks', () => {
    expect(refusal(fixtureDesign('mixtral'), 'llama')).toMatch(
      /llama cannot express layer 0: the moe FFN: llama has mlp FFNs/,
    );
    expect(refusal(fixtureDesign('nemotron_h'), 'bamba')).toMatch(
      /bamba cannot express layer 2: the none mixer/,
    );
  });

  it('a per-layer setting the type cannot vary', () => {
    const m = fixtureDesign('qwen3');
    const a = m.layers[1].mixer as AttentionSpec;
    m.layers[1].mixer = { ...a, kvHeads: 4 };
    expect(refusal(m, 'qwen3')).toBe(
      'qwen3 cannot express layer 1: mixer.kvHeads = 4 (a qwen3 config gives 2)',
    );
  });

  it("Gemma 4's layer scalars and value options, which no type --hf writes has", () => {
    expect(refusal({ ...fixtureDesign('llama'), layerScalars: true }, 'llama')).toBe(
      'llama cannot express layerScalars = true (a llama config gives (absent))',
    );
    const m = fixtureDesign('llama');
    m.layers[0].mixer = { ...(m.layers[0].mixer as AttentionSpec), valueNorm: true };
    expect(refusal(m, 'llama')).toBe(
      'llama cannot express layer 0: mixer.valueNorm = true (a llama config gives (absent))',
    );
  });

  it('a norm the type does not have', () => {
    expect(refusal(fixtureDesign('gemma3_text'), 'llama')).toMatch(
      /llama cannot express .*(qkNorm|unitOffset|postNorms)/,
    );
    expect(refusal(fixtureDesign('llama'), 'gemma3_text')).toMatch(
      /gemma3_text cannot express .*(qkNorm|unitOffset|postNorms|embeddingScale)/,
    );
  });

  it('a layout the type cannot place, and every candidate type says why', () => {
    const m = specWith('specs/jamba-v0.1.strata', { ratio: 7 });
    // Attention one layer later in the first group only: no period/offset places it.
    [m.layers[4], m.layers[5]] = [
      { ...m.layers[5], index: 4, ffn: m.layers[4].ffn, ffnName: m.layers[4].ffnName },
      { ...m.layers[4], index: 5, ffn: m.layers[5].ffn, ffnName: m.layers[5].ffnName },
    ];
    expect(refusal(m)).toMatch(
      /no model type --hf writes expresses this design[^]*jamba cannot express attention at layers 5, 12, 20, 28: jamba places attention at i % attn_layer_period == attn_layer_offset/,
    );
  });

  it('a model with a feature beyond every config (diffusion) and an unknown --type', () => {
    const llada = parseSpec(readFileSync('specs/tiny-llada.strata', 'utf8'), 'llada.strata');
    expect(refusal(llada)).toMatch(/masked-diffusion/);
    expect(refusal(fixtureDesign('llama'), 'gpt2')).toMatch(
      /--type gpt2 is not a type --hf writes/,
    );
  });

  it('a setting transformers hard-codes (gpt_oss swiglu alpha)', () => {
    const m = fixtureDesign('gpt_oss');
    for (const l of m.layers) {
      if (l.ffn?.kind === 'moe') l.ffn = { ...l.ffn, clamp: { limit: 7, alpha: 2 } };
    }
    expect(refusal(m)).toMatch(
      /gpt_oss cannot express swiglu alpha 2: transformers fixes it at 1.702/,
    );
  });
});

describe('config.json text', () => {
  it('writes float settings with a decimal point, as transformers reads them', () => {
    const text = exportHfConfig(fixtureDesign('falcon_h1')).text;
    expect(text).toContain('"embedding_multiplier": 2.0');
    expect(text).toContain('"rope_theta": 10000.0');
    expect(text).toContain('"hidden_size": 64,');
    expect(hfConfigText({ mlp_multipliers: [1, 0.5], num_hidden_layers: 2 })).toBe(
      '{\n  "mlp_multipliers": [\n    1.0,\n    0.5\n  ],\n  "num_hidden_layers": 2\n}\n',
    );
  });
});
