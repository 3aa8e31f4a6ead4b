/**
 * The spec settings DiffusionGemma brought (grammar/README.md): attention `phased`, the MoE's
 * `branch_norms` and Gemma 4 router (`input_scale`, `expert_scale`), and `diffusion
 * entropy_bound(...)`: each resolves, prints back to the same model (DSL and JSON schema), and is
 * refused where it cannot work, naming the setting. The imported fixture round-trips too.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { importHfConfig } from '../../src/import/hf.ts';
import { assertModel } from '../../src/spec/load-data.ts';
import { resolve, roundTrip, specError } from './helpers.ts';

const GEMMA4 = `
mixer attn = attention(heads: 2, kv_heads: 1, head_dim: 16, qk_norm: true, phased: true, window: 4, scale: 1, value_norm: true)
ffn moe = moe(experts: 4, top_k: 2, expert: geglu(hidden: 8), router: softmax(input_scale: true, expert_scale: true), shared: geglu(hidden: 16), branch_norms: true)
post_norms true
layers 2 x attn with ffn moe
diffusion entropy_bound(canvas_length: 8, gen_length: 16, self_condition: geglu(hidden: 16), t_min: 0, t_max: 0)`;

describe('DiffusionGemma spec settings', () => {
  it('resolve with their defaults and print back to the same model', () => {
    const m = resolve(GEMMA4);
    const a = m.layers[0].mixer;
    expect(a?.kind === 'attention' && a.phased && a.causal).toBe(true);
    const f = m.layers[0].ffn;
    expect(f?.kind === 'moe' && f.branchNorms).toBe(true);
    expect(f?.kind === 'moe' && f.router).toMatchObject({ inputScale: true, expertScale: true });
    expect(m.diffusion).toMatchObject({
      kind: 'entropy_bound',
      canvasLength: 8,
      genLength: 16,
      maxSteps: 48,
      entropyBound: 0.1,
      selfCondition: { kind: 'mlp', hidden: 16, gated: true, act: 'gelu' },
    });
    const text = roundTrip(m);
    expect(text).toMatch(/phased: true/);
    expect(text).toMatch(/branch_norms: true/);
    expect(text).toMatch(/diffusion entropy_bound\(\s*canvas_length: 8/);
    // The JSON form passes the schema and the checks.
    expect(assertModel(JSON.parse(JSON.stringify(m)), 'json')).toEqual(m);
  });

  it('refuses what cannot work, naming the setting', () => {
    expect(
      specError(() => resolve(GEMMA4.replace('phased: true', 'phased: true, causal: false')))
        .message,
    ).toMatch(/phased cannot be combined with causal false/);
    expect(specError(() => resolve(GEMMA4.replace(', phased: true', ''))).message).toMatch(
      /every layer needs attention with phased: true/,
    );
    expect(
      specError(() => resolve(GEMMA4.replace('shared: geglu(hidden: 16), ', ''))).message,
    ).toMatch(/branch_norms needs shared experts/);
    expect(
      specError(() => resolve(GEMMA4.replace('gen_length: 16', 'gen_length: 12'))).message,
    ).toMatch(/must be a multiple of canvas_length/);
    expect(
      specError(() =>
        resolve(
          GEMMA4.replace(
            'self_condition: geglu(hidden: 16)',
            'self_condition: mlp(hidden: 16, act: gelu)',
          ),
        ),
      ).message,
    ).toMatch(/self_condition must be a gated MLP/);
  });

  it('the imported fixture prints and parses back to the same model', () => {
    const config = JSON.parse(
      readFileSync(join('test', 'fixtures', 'hf', 'diffusion_gemma', 'config.json'), 'utf8'),
    ) as object;
    const { model, weightMap } = importHfConfig(config, 'dgemma');
    roundTrip(model);
    expect(weightMap['model.layers.0.mlp.experts.1.up_proj.weight']).toBe(
      'model.decoder.layers.0.experts.gate_up_proj',
    );
    expect(weightMap['model.layers.1.post_mixer_layernorm.weight']).toBe(
      'model.decoder.layers.1.post_attention_layernorm.weight',
    );
    expect(weightMap['model.layers.1.post_attention_layernorm.weight']).toBe(
      'model.decoder.layers.1.pre_feedforward_layernorm.weight',
    );
    expect(weightMap['model.self_condition.pre_norm.weight']).toBe(
      'model.decoder.self_conditioning.pre_norm.weight',
    );
  });
});
