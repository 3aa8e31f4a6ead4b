/** `strata export --megatron`: MambaModel's layer pattern and block flags, or a named refusal. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { readConfigJson } from '../../src/import/json.ts';
import { parseSpec } from '../../src/spec/load.ts';
import type { AttentionSpec, ModelIR } from '../../src/spec/model.ts';
import { exportMegatron, megatronText } from '../../src/export/megatron.ts';

function fixture(type: string): ModelIR {
  const path = `test/fixtures/hf/${type}/config.json`;
  const { config, origin } = readConfigJson(readFileSync(path, 'utf8'), path);
  return importHfConfig(config as object, type, origin).model;
}

const spec = (path: string) => parseSpec(readFileSync(path, 'utf8'), path);

function flags(m: ModelIR): Record<string, string | true> {
  return Object.fromEntries(exportMegatron(m).args.map(([k, v]) => [k, v ?? true]));
}

function refusal(m: ModelIR): string {
  try {
    exportMegatron(m);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('exported');
}

describe('export --megatron', () => {
  it("writes Nemotron-H's blocks one symbol each: M mamba2, * attention, - MLP, E MoE", () => {
    const f = flags(fixture('nemotron_h'));
    expect(f).toMatchObject({
      '--num-layers': '4',
      '--hybrid-layer-pattern': 'M*-E',
      '--hidden-size': '64',
      '--num-attention-heads': '4',
      '--kv-channels': '16',
      '--group-query-attention': true,
      '--num-query-groups': '2',
      '--position-embedding-type': 'none',
      '--mamba-num-heads': '8',
      '--mamba-head-dim': '16',
      '--mamba-state-dim': '16',
      '--mamba-num-groups': '2',
      '--squared-relu': true,
      '--ffn-hidden-size': '128',
      '--num-experts': '4',
      '--moe-router-topk': '2',
      '--moe-ffn-hidden-size': '32',
      '--moe-router-score-function': 'sigmoid',
      '--moe-router-enable-expert-bias': true,
      '--moe-shared-expert-intermediate-size': '32',
    });
    expect(f).not.toHaveProperty('--swiglu');
  });

  it('splits a layer with a mixer and an FFN into two Megatron layers', () => {
    const f = flags(fixture('bamba'));
    expect(f['--hybrid-layer-pattern']).toBe('M-*-');
    expect(f['--num-layers']).toBe('4');
    expect(f).toMatchObject({ '--swiglu': true, '--rotary-percent': '0.5' });
    const real = exportMegatron(spec('specs/nemotron-h-8b.strata'));
    expect(real.pattern).toBe('M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-');
  });

  it('prints shell text with the pattern quoted', () => {
    const text = megatronText(exportMegatron(fixture('nemotron_h')));
    expect(text).toContain("--hybrid-layer-pattern 'M*-E' \\\n");
    expect(text.endsWith('\n')).toBe(true);
  });

  it('writes a softmax router that does not renormalise its top-k as pre-softmax', () => {
    const m = fixture('qwen3_moe');
    expect(flags(m)).not.toHaveProperty('--moe-router-pre-softmax');
    for (const l of m.layers) {
      if (l.ffn?.kind === 'moe')
        l.ffn = { ...l.ffn, router: { ...l.ffn.router, normalize: false } };
    }
    expect(flags(m)).toMatchObject({
      '--moe-router-pre-softmax': true,
      '--moe-router-score-function': 'softmax',
      '--qk-layernorm': true,
    });
  });

  it('refuses what Megatron cannot express, naming the layer', () => {
    expect(refusal(fixture('jamba'))).toBe(
      'Megatron-LM cannot express layer 0: the mamba1 mixer: MambaModel layers are Mamba-2 (M) or attention (*)',
    );
    expect(refusal(fixture('qwen3'))).toMatch(
      /layer 1: attention.window differing from layer 0's: Megatron sets every attention layer from the same attention flags/,
    );
    expect(refusal(fixture('gemma3_text'))).toMatch(/the \(1 \+ w\) RMSNorm/);
    expect(refusal(fixture('deepseek_v3'))).toMatch(/layer 0: the mla mixer/);
    expect(refusal(fixture('mistral'))).toMatch(
      /layer 0: attention window 8: MambaModel attention is global/,
    );
    expect(refusal(fixture('zamba2'))).toMatch(/shared blocks/);
    // Gemma 4's additions: layer scalars, and values from the keys with a value norm.
    const llama = fixture('llama');
    expect(refusal({ ...llama, layerScalars: true })).toMatch(/per-layer output scalars/);
    const attn = llama.layers[0].mixer as AttentionSpec;
    const withValues = (over: Partial<AttentionSpec>) => ({
      ...llama,
      layers: llama.layers.map((l) => ({ ...l, mixer: { ...attn, ...over } })),
    });
    expect(refusal(withValues({ valueFromKey: true }))).toMatch(
      /layer 0: values taken from the key projection/,
    );
    expect(refusal(withValues({ valueNorm: true }))).toMatch(/layer 0: the value norm/);
  });
});

describe('export --megatron routing', () => {
  it('refuses group-limited routing that Megatron would score differently', () => {
    const m = spec('specs/deepseek-v3.strata');
    // DeepSeek-V3's own routing (top-8 of 4 groups) matches; its MLA mixer does not.
    expect(refusal(m)).toMatch(/the mla mixer/);
    const n = fixture('nemotron_h');
    for (const l of n.layers) {
      if (l.ffn?.kind === 'moe')
        l.ffn = { ...l.ffn, topK: 3, router: { ...l.ffn.router, groups: 2, topkGroups: 2 } };
    }
    expect(refusal(n)).toMatch(/layer 3: group-limited routing with top-3 of 2 groups/);
  });
});
