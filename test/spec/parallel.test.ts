/**
 * Falcon-H1's constructs in the DSL, YAML and the printer: the parallel mixer, the muP scales
 * on mamba2 and the dense ffn kinds, mamba2 without its gated norm, and logit_scale.
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseSpec } from '../../src/spec/load.ts';
import { printSpec } from '../../src/spec/print.ts';
import { blamed, bodyError, HEADER, resolve, roundTrip } from './helpers.ts';

const FALCON_LIKE = [
  'mixer hybrid = parallel(',
  '  attn: attention(heads: 4, kv_heads: 2, head_dim: 16),',
  '  ssm: mamba2(head_dim: 16, d_state: 16, z_scale: 0.9, dt_scale: 1.3, gate_norm: false),',
  '  attn_in_scale: 1.2, attn_out_scale: 0.7, ssm_in_scale: 1.1, ssm_out_scale: 0.6,',
  ')',
  'ffn mlp = swiglu(hidden: 128, gate_scale: 1.5, down_scale: 0.5)',
  'layers 2 x hybrid',
].join('\n');

describe('parallel(attn: ..., ssm: ...)', () => {
  it('resolves both branches with their own defaults and the four multipliers', () => {
    const m = resolve(FALCON_LIKE, `${HEADER}\n  logit_scale 0.5`);
    expect(m.logitScale).toBe(0.5);
    expect(m.layers[0].mixer).toEqual({
      kind: 'parallel',
      attn: expect.objectContaining({ kind: 'attention', heads: 4, kvHeads: 2, scale: 0.25 }),
      ssm: expect.objectContaining({
        kind: 'mamba2',
        heads: 8,
        headDim: 16,
        projScales: [0.9, 1, 1, 1, 1.3],
        gateNorm: false,
      }),
      attnInScale: 1.2,
      attnOutScale: 0.7,
      ssmInScale: 1.1,
      ssmOutScale: 0.6,
    });
    expect(m.layers[1].ffn).toEqual({
      kind: 'mlp',
      hidden: 128,
      act: 'silu',
      gated: true,
      bias: false,
      gateScale: 1.5,
      downScale: 0.5,
    });
  });

  it('leaves defaults out of the spec, so plain mamba2 and swiglu resolve as before', () => {
    const m = resolve('mixer s = mamba2(heads: 4)\nffn f = swiglu(hidden: 8)\nlayers 1 x s');
    expect(m.layers[0].mixer).not.toHaveProperty('projScales');
    expect(m.layers[0].mixer).not.toHaveProperty('gateNorm');
    expect(m.layers[0].ffn).not.toHaveProperty('gateScale');
    expect(m.logitScale).toBe(1);
    const before = resolve('mixer s = mamba2(heads: 4, norm_before_gate: true)\nlayers 1 x s');
    expect(before.layers[0].mixer).toMatchObject({ normBeforeGate: true });
    expect(printSpec(before)).toContain('norm_before_gate: true');
  });

  it('prints back to text that resolves to the same model, and round-trips through YAML', () => {
    const m = resolve(FALCON_LIKE, `${HEADER}\n  logit_scale 0.5`);
    const text = roundTrip(m);
    expect(text).toContain('  logit_scale 0.5\n');
    expect(text).toContain('gate_scale: 1.5, down_scale: 0.5');
    expect(text).toContain('z_scale: 0.9');
    expect(text).toContain('attn_in_scale: 1.2');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
  });

  it('names wrong branch kinds, bad multipliers and scales nothing can apply', () => {
    const cases: [string, string, string][] = [
      [
        'mixer p = parallel(attn: mamba2(heads: 4), ssm: mamba2(heads: 4))\nlayers 1 x p',
        "unknown attention branch kind 'mamba2'",
        'mamba2',
      ],
      [
        'mixer p = parallel(attn: attention(heads: 4))\nlayers 1 x p',
        "parallel(...) needs 'ssm'",
        'parallel',
      ],
      [
        'mixer p = parallel(attn: attention(heads: 4), ssm: mamba2(heads: 4), ssm_in_scale: 0)\nlayers 1 x p',
        'ssm_in_scale must be a number greater than 0, got 0',
        '0',
      ],
      [
        'mixer s = mamba2(heads: 4, gate_norm: false, norm_before_gate: true)\nlayers 1 x s',
        'norm_before_gate needs the gated norm (gate_norm is false)',
        'norm_before_gate: true',
      ],
      [
        'mixer a = attention(heads: 4)\nffn f = mlp(hidden: 8, act: relu, gate_scale: 2)\nlayers 1 x a',
        'gate_scale needs a gated mlp',
        'gate_scale: 2',
      ],
      [
        'mixer a = attention(heads: 4)\nffn f = moe(experts: 4, top_k: 2, expert: swiglu(hidden: 8, down_scale: 2))\nlayers 1 x a',
        'down_scale is not supported in moe experts',
        'down_scale: 2',
      ],
    ];
    for (const [body, message, blame] of cases) {
      const e = bodyError(body);
      expect(e.message).toContain(message);
      expect(blamed(e)).toBe(blame);
    }
  });
});
