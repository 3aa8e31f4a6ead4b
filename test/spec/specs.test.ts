/** The specs shipped in specs/: what they resolve to, and that every form of them agrees. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import type { AttentionSpec, LayerSpec, MlpSpec, ModelIR } from '../../src/spec/model.ts';
import { printSpec } from '../../src/spec/print.ts';

const SPECS = [
  'tiny-llama',
  'tiny-hybrid',
  'llama-3.2-1b',
  'mamba-2.8b',
  'mamba2-2.7b',
  'lfm2-1.2b',
  'bamba-9b',
  'nemotron-h-8b',
  'gpt-oss-20b',
  'gemma-3-1b',
  'qwen3-next-80b-a3b',
];

const base = (o: Partial<AttentionSpec>): AttentionSpec => ({
  kind: 'attention',
  heads: 4,
  kvHeads: 2,
  headDim: 16,
  rope: { theta: 10000, rotaryDim: 16, scaling: { kind: 'none' } },
  qkNorm: false,
  qkvBias: false,
  outBias: false,
  causal: true,
  window: null,
  sinkTokens: null,
  evict: null,
  scale: 0.25,
  softcap: null,
  sinks: false,
  outputGate: false,
  ...o,
});

const swiglu = (hidden: number): MlpSpec => ({
  kind: 'mlp',
  hidden,
  act: 'silu',
  gated: true,
  bias: false,
});

describe('specs/tiny-llama.strata', () => {
  it('resolves to the expected ModelIR', () => {
    const layer = (index: number): LayerSpec => ({
      index,
      mixerName: 'attn',
      mixer: base({}),
      ffnName: 'mlp',
      ffn: swiglu(160),
    });
    const expected: ModelIR = {
      version: 1,
      name: 'tiny-llama',
      vocab: 256,
      dim: 64,
      norm: { kind: 'rms', eps: 1e-5, unitOffset: false, bias: false },
      postNorms: false,
      tieEmbeddings: true,
      embeddingScale: 1,
      residualScale: 1,
      logitScale: 1,
      logitSoftcap: null,
      maxContext: 512,
      layers: [layer(0), layer(1), layer(2)],
    };
    expect(loadSpec('specs/tiny-llama.strata')).toEqual(expected);
  });
});

describe('specs/tiny-hybrid.strata', () => {
  const m = loadSpec('specs/tiny-hybrid.strata');

  it('has local and global attention in a 2:1 ratio with alternating ffns', () => {
    expect(m).toMatchObject({ vocab: 256, dim: 64, maxContext: 512, tieEmbeddings: true });
    expect(m.layers.map((l) => `${l.mixerName}/${l.ffnName}`)).toEqual([
      'local/mlp',
      'local/wide',
      'global/mlp',
      'local/wide',
      'local/mlp',
      'global/wide',
    ]);
  });

  it('resolves each block, the override included', () => {
    const local = base({ kvHeads: 1, window: 32 });
    const global = base({ rope: { theta: 100000, rotaryDim: 16, scaling: { kind: 'none' } } });
    const wide: MlpSpec = { kind: 'mlp', hidden: 256, act: 'relu2', gated: false, bias: false };
    expect(m.layers.map((l) => l.mixer)).toEqual([
      local,
      local,
      global,
      { ...local, window: 64 },
      local,
      global,
    ]);
    expect(m.layers.map((l) => l.ffn)).toEqual([
      swiglu(128),
      wide,
      swiglu(128),
      wide,
      swiglu(128),
      wide,
    ]);
  });
});

describe('specs/llama-3.2-1b.strata', () => {
  it("has Llama-3.2-1B's hyperparameters in all 16 layers", () => {
    const m = loadSpec('specs/llama-3.2-1b.strata');
    expect(m).toMatchObject({
      name: 'llama-3.2-1b',
      vocab: 128256,
      dim: 2048,
      norm: { kind: 'rms', eps: 1e-5, unitOffset: false, bias: false },
      postNorms: false,
      tieEmbeddings: true,
      embeddingScale: 1,
      residualScale: 1,
      logitScale: 1,
      logitSoftcap: null,
      maxContext: 131072,
    });
    expect(m.layers).toHaveLength(16);
    for (const [i, layer] of m.layers.entries()) {
      expect(layer).toEqual({
        index: i,
        mixerName: 'attn',
        mixer: base({
          heads: 32,
          kvHeads: 8,
          headDim: 64,
          scale: 0.125,
          rope: {
            theta: 500000,
            rotaryDim: 64,
            scaling: {
              kind: 'llama3',
              factor: 32,
              lowFreqFactor: 1,
              highFreqFactor: 4,
              originalMaxPositions: 8192,
            },
          },
        }),
        ffnName: 'mlp',
        ffn: swiglu(8192),
      });
    }
  });
});

describe.each(SPECS)('specs/%s.strata in every form', (name) => {
  const path = `specs/${name}.strata`;
  const model = loadSpec(path);

  it('round-trips through printSpec', () => {
    const printed = printSpec(model);
    expect(parseSpec(printed, `${name}.strata`)).toEqual(model);
    // Printing is stable: the printed spec prints to itself.
    expect(printSpec(parseSpec(printed, `${name}.strata`))).toBe(printed);
  });

  it('loads identically from YAML and JSON', () => {
    expect(parseSpec(YAML.stringify(model), `${name}.yaml`)).toEqual(model);
    expect(parseSpec(JSON.stringify(model, null, 2), `${name}.json`)).toEqual(model);
  });
});

describe('hand-written YAML/JSON fixtures', () => {
  it('tiny-llama.yaml (with anchors) equals the .strata spec', () => {
    expect(loadSpec('test/spec/fixtures/tiny-llama.yaml')).toEqual(
      loadSpec('specs/tiny-llama.strata'),
    );
  });

  it('tiny-hybrid.json equals the .strata spec', () => {
    expect(loadSpec('test/spec/fixtures/tiny-hybrid.json')).toEqual(
      loadSpec('specs/tiny-hybrid.strata'),
    );
  });

  it('the .yml extension reads as YAML', () => {
    const text = readFileSync('test/spec/fixtures/tiny-llama.yaml', 'utf8');
    expect(parseSpec(text, 'x.yml')).toEqual(loadSpec('specs/tiny-llama.strata'));
  });
});
