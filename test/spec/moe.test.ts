/**
 * MoE in ModelIR: the DSL kind and its router / clamp blocks, the cross-field rules (in .strata
 * and YAML), printing back, the canonical tensor names and the total / active parameter counts.
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseSpec } from '../../src/spec/load.ts';
import { parseDataSpec } from '../../src/spec/load-data.ts';
import { printSpec } from '../../src/spec/print.ts';
import { countParams } from '../../src/spec/params.ts';
import { layerTable } from '../../src/spec/table.ts';
import type { MoeSpec } from '../../src/spec/model.ts';
import { expectedTensors, layerTensors, layerWeightNames } from '../../src/import/names.ts';
import { bodyError, blamed, resolve } from './helpers.ts';

const A = 'mixer a = attention(heads: 4)';

function moe(def: string): MoeSpec {
  return resolve(`${A}\nffn e = ${def}\nlayers 1 x a`).layers[0]!.ffn as MoeSpec;
}

describe('moe(...) in the DSL', () => {
  it('defaults to the Mixtral router and no shared experts', () => {
    expect(moe('moe(experts: 8, top_k: 2, expert: swiglu(hidden: 32))')).toEqual({
      kind: 'moe',
      experts: 8,
      topK: 2,
      expert: { kind: 'mlp', hidden: 32, act: 'silu', gated: true, bias: false },
      clamp: null,
      router: {
        scoring: 'softmax',
        normalize: true,
        scale: 1,
        bias: false,
        correctionBias: false,
        groups: 1,
        topkGroups: 1,
      },
      shared: null,
      sharedGate: false,
    });
  });

  it('reads DeepSeek-V3, Jamba, Qwen3-Next and GPT-OSS style options', () => {
    const ds = moe(
      'moe(experts: 16, top_k: 4, expert: swiglu(hidden: 8), shared: swiglu(hidden: 16), ' +
        'router: sigmoid(correction_bias: true, groups: 4, topk_groups: 2, scale: 2.5))',
    );
    expect(ds.router).toEqual({
      scoring: 'sigmoid',
      normalize: true,
      scale: 2.5,
      bias: false,
      correctionBias: true,
      groups: 4,
      topkGroups: 2,
    });
    expect(ds.shared?.hidden).toBe(16);
    const jamba = moe(
      'moe(experts: 4, top_k: 2, expert: swiglu(hidden: 8), router: softmax(normalize: false))',
    );
    expect(jamba.router.normalize).toBe(false);
    const next = moe(
      'moe(experts: 4, top_k: 2, expert: swiglu(hidden: 8), shared: swiglu(hidden: 8), shared_gate: true)',
    );
    expect(next.sharedGate).toBe(true);
    const oss = moe(
      'moe(experts: 4, top_k: 2, expert: swiglu(hidden: 8, bias: true), ' +
        'router: softmax(bias: true), clamp: clamp(limit: 7))',
    );
    expect(oss.clamp).toEqual({ limit: 7, alpha: 1.702 });
    expect(oss.router.bias && oss.expert.bias).toBe(true);
  });

  it('schedules with ffn moe, first k mlp, and overrides a field per layer', () => {
    const m = resolve(
      `${A}\nffn mlp = swiglu(hidden: 64)\nffn moe = moe(experts: 4, top_k: 1, expert: swiglu(hidden: 8))\n` +
        'layers 4 x a with ffn moe, first 1 mlp\noverride layer 3 { moe.top_k: 2 }',
    );
    expect(m.layers.map((l) => l.ffnName)).toEqual(['mlp', 'moe', 'moe', 'moe']);
    expect(m.layers.map((l) => (l.ffn?.kind === 'moe' ? l.ffn.topK : 0))).toEqual([0, 1, 1, 2]);
    expect(layerTable(m)).toMatch(/moe\(4 experts, top 2\)\s+8/);
  });

  it('prints back to the same model, and the YAML form loads the same', () => {
    const text = `model "m" {
  vocab 256
  dim 64
  max_context 128
  norm rms(eps: 1e-5)
  ${A}
  ffn d = swiglu(hidden: 64)
  ffn e = moe(experts: 8, top_k: 2, expert: mlp(hidden: 16, act: relu2), shared: swiglu(hidden: 8),
              shared_gate: true, router: sigmoid(groups: 4, topk_groups: 2, correction_bias: true))
  ffn o = moe(experts: 4, top_k: 2, expert: swiglu(hidden: 8, bias: true), clamp: clamp(limit: 7),
              router: softmax(bias: true))
  layers 3 x a with ffn [d, e, o]
}
`;
    const m = parseSpec(text, 'm.strata');
    const printed = printSpec(m);
    expect(parseSpec(printed, 'p.strata')).toEqual(m);
    expect(printed).toContain('router: sigmoid(correction_bias: true, groups: 4, topk_groups: 2)');
    expect(parseDataSpec(stringify(m), 'm.yaml', 'yaml')).toEqual(m);
  });

  it('rejects what no router or expert defines, pointing at the argument', () => {
    const cases: Array<[string, string, string]> = [
      [
        'moe(experts: 4, top_k: 5, expert: swiglu(hidden: 8))',
        'top_k (5) must not exceed experts (4)',
        'top_k: 5',
      ],
      [
        'moe(experts: 6, top_k: 2, expert: swiglu(hidden: 8), router: sigmoid(groups: 4))',
        'groups (4) must divide experts (6) into groups of at least 2',
        'groups: 4',
      ],
      [
        'moe(experts: 4, top_k: 2, expert: swiglu(hidden: 8), shared_gate: true)',
        'shared_gate needs shared experts',
        'shared_gate: true',
      ],
      [
        'moe(experts: 4, top_k: 2, expert: geglu(hidden: 8), clamp: clamp(limit: 7))',
        'the clamped SwiGLU needs gated silu experts (swiglu)',
        'clamp: clamp(limit: 7)',
      ],
      [
        'moe(experts: 4, top_k: 2, expert: swiglu(hidden: 8), router: softmax(groups: 2))',
        "unknown parameter 'groups' for softmax(...)",
        'groups',
      ],
      [
        'moe(experts: 4, top_k: 2, expert: moe(experts: 2, top_k: 1, expert: swiglu(hidden: 4)))',
        "unknown expert kind 'moe'",
        'moe',
      ],
    ];
    for (const [def, message, at] of cases) {
      const e = bodyError(`${A}\nffn e = ${def}\nlayers 1 x a`);
      expect(e.message).toContain(message);
      expect(blamed(e)).toBe(at);
    }
  });

  it('checks the same rules in YAML', () => {
    const m = parseSpec(
      `model "m" {\n vocab 64\n dim 16\n max_context 32\n norm rms(eps: 1e-5)\n ${A}\n` +
        ` ffn e = moe(experts: 4, top_k: 2, expert: swiglu(hidden: 8))\n layers 1 x a\n}`,
      'm.strata',
    );
    const bad = structuredClone(m);
    (bad.layers[0]!.ffn as MoeSpec).router.groups = 2;
    expect(() => parseDataSpec(stringify(bad), 'b.yaml', 'yaml')).toThrow(
      /layers\[0\]\.ffn\.router\.groups: groups needs sigmoid scoring/,
    );
  });
});

describe('MoE tensors and parameter counts', () => {
  const m = parseSpec(
    `model "m" {\n vocab 100\n dim 16\n max_context 32\n norm rms(eps: 1e-5)\n ${A}\n` +
      ' ffn e = moe(experts: 6, top_k: 2, expert: swiglu(hidden: 8), shared: swiglu(hidden: 4),' +
      ' shared_gate: true, router: sigmoid(correction_bias: true))\n layers 2 x a\n}',
    'm.strata',
  );

  it('names the router, experts and shared experts like HF Qwen-MoE', () => {
    const shapes = Object.fromEntries(expectedTensors(m).map((t) => [t.name, t.shape]));
    expect(shapes['model.layers.1.mlp.gate.weight']).toEqual([6, 16]);
    expect(shapes['model.layers.1.mlp.gate.e_score_correction_bias']).toEqual([6]);
    expect(shapes['model.layers.1.mlp.experts.5.gate_proj.weight']).toEqual([8, 16]);
    expect(shapes['model.layers.1.mlp.experts.5.down_proj.weight']).toEqual([16, 8]);
    expect(shapes['model.layers.0.mlp.shared_expert.up_proj.weight']).toEqual([4, 16]);
    expect(shapes['model.layers.0.mlp.shared_expert_gate.weight']).toEqual([1, 16]);
    expect(shapes['model.layers.0.post_attention_layernorm.weight']).toEqual([16]);
    const flat = (o: unknown): string[] =>
      typeof o === 'string'
        ? [o]
        : o && typeof o === 'object'
          ? Object.values(o).flatMap(flat)
          : [];
    for (const l of m.layers) {
      expect(flat(layerWeightNames(m, l.index)).sort()).toEqual(
        layerTensors(m, l)
          .map((t) => t.name)
          .sort(),
      );
    }
  });

  it('counts all parameters and the ones a token uses', () => {
    const c = countParams(m);
    const expert = 3 * 8 * 16;
    // norm, router, correction bias, experts, shared expert, shared gate
    const moeParams = 16 + 6 * 16 + 6 + 6 * expert + 3 * 4 * 16 + 16;
    const attention = 16 + 4 * 16 * 16;
    expect(c.perLayer).toEqual([attention + moeParams, attention + moeParams]);
    expect(c.total - c.active).toBe(2 * (6 - 2) * expert);
  });
});
