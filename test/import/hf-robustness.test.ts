/**
 * Hostile and broken HuggingFace configs (issue 10): each fails fast with a SpecError that names
 * config.json, the key, and where the key is written.
 */
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { readConfigJson } from '../../src/import/json.ts';
import { SpecError } from '../../src/spec/errors.ts';
import { tinyConfig } from '../helpers/hf-config.ts';

const FILE = 'ckpt/config.json';

/** The config written as Python's json.dumps would (NaN and Infinity bare), one key per line. */
function pythonJson(config: Record<string, unknown>, raw: Record<string, string> = {}): string {
  const lines = Object.entries(config).map(([k, v]) => {
    const value = Object.hasOwn(raw, k) ? raw[k] : JSON.stringify(v);
    return `  ${JSON.stringify(k)}: ${value}`;
  });
  return `{\n${lines.join(',\n')}\n}\n`;
}

/** The SpecError of importing a config.json text, checked to name the file and a line. */
function importError(text: string): SpecError & { at: string } {
  let error: unknown;
  try {
    const { config, origin } = readConfigJson(text, FILE);
    importHfConfig(config as object, 'ckpt', origin);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(SpecError);
  const e = error as SpecError;
  expect(e.span).not.toBeNull();
  expect(e.message.startsWith(`${FILE}:${e.span!.line}:${e.span!.col}: error: `)).toBe(true);
  return Object.assign(e, { at: text.slice(e.span!.offset, e.span!.offset + e.span!.length) });
}

describe('HF import size caps', () => {
  it('caps num_hidden_layers before building the layers', () => {
    for (const n of [1e9, 2 ** 32]) {
      const e = importError(pythonJson({ ...tinyConfig('llama'), num_hidden_layers: n }));
      expect(e.reason).toBe(`num_hidden_layers (${n}) exceeds the limit of 4096`);
      expect(e.at).toBe('"num_hidden_layers"');
    }
  });

  it('caps the experts, alone and over all layers', () => {
    const mixtral = tinyConfig('mixtral');
    const e = importError(pythonJson({ ...mixtral, num_local_experts: 100_000 }));
    expect(e.reason).toBe('num_local_experts (100000) exceeds the limit of 4096');
    const total = importError(
      pythonJson({ ...mixtral, num_hidden_layers: 4000, num_local_experts: 4000 }),
    );
    expect(total.reason).toMatch(/^16000000 routed experts over all layers exceed the limit/);
  });

  it('caps the sizes of the model it builds, like any spec', () => {
    const e = importError(pythonJson({ ...tinyConfig('llama'), vocab_size: 2_000_000 }));
    expect(e.reason).toBe(
      "config key 'vocab_size' gives an invalid model: vocab: vocab (2000000) exceeds the limit of 1048576",
    );
    expect(e.at).toBe('"vocab_size"');
  });
});

describe('HF non-finite values', () => {
  it('reports NaN and Infinity by name, not as null', () => {
    const llama = tinyConfig('llama');
    const nan = importError(pythonJson(llama, { rms_norm_eps: 'NaN' }));
    expect(nan.reason).toBe('NaN is not a valid value for rms_norm_eps');
    expect(nan.at).toBe('"rms_norm_eps"');
    const inf = importError(pythonJson(llama, { hidden_size: 'Infinity' }));
    expect(inf.reason).toBe('Infinity is not a valid value for hidden_size');
  });
});

describe('HF imports are validated like specs', () => {
  it('refuses a llama3 rope whose high_freq_factor is not above low_freq_factor', () => {
    const llama = tinyConfig('llama');
    const rope = { ...(llama.rope_parameters as object), high_freq_factor: 1 };
    const e = importError(pythonJson({ ...llama, rope_parameters: rope }));
    expect(e.reason).toMatch(
      /^config key 'rope_parameters\.high_freq_factor' gives an invalid model: .*highFreqFactor \(1\) must be greater than lowFreqFactor \(1\)/,
    );
    expect(e.at).toBe('"high_freq_factor"');
  });

  it('refuses a one-tap conv', () => {
    const e = importError(pythonJson({ ...tinyConfig('mamba'), conv_kernel: 1 }));
    expect(e.reason).toMatch(
      /^config key 'conv_kernel' gives an invalid model: .*dConv must be at least 2/,
    );
    expect(e.at).toBe('"conv_kernel"');
  });
});

describe('HF Object.prototype names', () => {
  it('are unknown keys and unknown layer types', () => {
    const unknown = importError(pythonJson({ ...tinyConfig('llama'), constructor: 1 }));
    expect(unknown.reason).toMatch(/^config key 'constructor' is not understood/);
    const zamba = tinyConfig('zamba2');
    const types = (zamba.layers_block_type as string[]).map((t, i) =>
      i === 0 ? 'constructor' : t,
    );
    const layer = importError(pythonJson({ ...zamba, layers_block_type: types }));
    expect(layer.reason).toBe(
      'config key \'layers_block_type\' unknown layer type "constructor" (mamba or hybrid)',
    );
  });
});

describe('HF errors without a key to point at', () => {
  it('blame a missing key on the config object', () => {
    const llama = tinyConfig('llama');
    delete llama.hidden_size;
    const e = importError(pythonJson(llama));
    expect(e.reason).toBe("config key 'hidden_size' is required (an integer)");
    expect(e.span).toMatchObject({ line: 1, col: 1 });
  });
});

describe("Gemma 3's per-layer-type RoPE dicts", () => {
  // Read by a derived reader: its errors must still name and locate the key as written.
  const gemma = tinyConfig('gemma3_text');
  const params = gemma.rope_parameters as Record<string, Record<string, unknown>>;
  const withDict = (type: string, dict: Record<string, unknown>) =>
    pythonJson({ ...gemma, rope_parameters: { ...params, [type]: { ...params[type], ...dict } } });

  it('locates a bad value inside a layer type dict', () => {
    const e = importError(withDict('full_attention', { rope_type: 0 }));
    expect(e.reason).toBe(
      "config key 'rope_parameters.full_attention.rope_type' must be a string, got 0",
    );
    expect(e.at).toBe('"rope_type"');
  });

  it('locates an unknown key and a non-positive base', () => {
    const unknown = importError(withDict('sliding_attention', { spin: 1 }));
    expect(unknown.reason).toBe(
      "config key 'rope_parameters.sliding_attention.spin' is not a RoPE setting strata knows",
    );
    expect(unknown.at).toBe('"spin"');
    const theta = importError(withDict('full_attention', { rope_theta: 0 }));
    expect(theta.reason).toBe(
      "config key 'rope_parameters.full_attention.rope_theta' must be positive, got 0",
    );
    expect(theta.at).toBe('"rope_theta"');
  });

  it('blames a legacy base that fills a dict on the legacy key', () => {
    const sliding = { ...params.sliding_attention };
    delete sliding.rope_theta;
    const text = pythonJson({
      ...gemma,
      rope_local_base_freq: 0,
      rope_parameters: { ...params, sliding_attention: sliding },
    });
    const e = importError(text);
    expect(e.reason).toBe("config key 'rope_local_base_freq' must be positive, got 0");
    expect(e.at).toBe('"rope_local_base_freq"');
  });
});

describe('HF config text', () => {
  it('reads a config.json that starts with a byte-order mark (the 1M fuzz run found it refused without a place)', () => {
    const text = `\uFEFF${JSON.stringify({ ...tinyConfig('llama'), rms_norm_eps: 1e-5 }, null, 1)}`;
    const { config, origin } = readConfigJson(text, 'config.json');
    expect(importHfConfig(config as object, 'bom', origin).model.dim).toBe(64);
  });
});
