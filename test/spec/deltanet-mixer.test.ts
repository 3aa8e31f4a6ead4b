/** deltanet(...) (fla's DeltaNet and Gated DeltaNet) in the DSL, YAML/JSON, the schema and the table. */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { DeltaNetSpec } from '../../src/mixers/deltanet.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { modelIrSchema } from '../../src/spec/schema.ts';
import { layerTable } from '../../src/spec/table.ts';
import { blamed, bodyError, mixerOf, resolve, roundTrip } from './helpers.ts';

describe('deltanet(...)', () => {
  it("defaults like fla's DeltaNetConfig, and GatedDeltaNetConfig with decay: head", () => {
    const plain: DeltaNetSpec = {
      kind: 'deltanet',
      heads: 16,
      valueHeads: 16,
      keyHeadDim: 4,
      valueHeadDim: 4,
      dConv: 4,
      qkActivation: 'silu',
      useBeta: true,
      allowNegEigval: false,
      decay: 'none',
      outputGate: false,
      normEps: 1e-6,
    };
    // HEADER's dim is 64: DeltaNet's head widths are dim / heads (expand_k = expand_v = 1).
    expect(mixerOf('deltanet')).toEqual(plain);
    expect(mixerOf('deltanet(decay: head)')).toEqual({
      ...plain,
      heads: 6,
      valueHeads: 6,
      keyHeadDim: 256,
      valueHeadDim: 512,
      decay: 'head',
      outputGate: true,
    });
    expect(mixerOf('deltanet(heads: 2, value_heads: 4, d_conv: none)')).toMatchObject({
      keyHeadDim: 32,
      valueHeadDim: 16,
      dConv: null,
    });
  });

  it('names what is wrong: head multiples, kernels, unknown names, widths without a default', () => {
    const multiple = bodyError(
      'mixer m = deltanet(heads: 3, value_heads: 4, key_head_dim: 8, value_head_dim: 8)\nlayers 2 x m',
    );
    expect(multiple.message).toContain('value_heads (4) must be a multiple of heads (3)');
    expect(blamed(multiple)).toBe('value_heads: 4');
    expect(bodyError('mixer m = deltanet(d_conv: 1)\nlayers 2 x m').message).toContain(
      'd_conv must be at least 2',
    );
    expect(bodyError('mixer m = deltanet(qk_activation: elu)\nlayers 2 x m').message).toContain(
      "unknown qk activation 'elu'",
    );
    expect(bodyError('mixer m = deltanet(decay: key)\nlayers 2 x m').message).toContain(
      "unknown decay 'key'",
    );
    expect(bodyError('mixer m = deltanet(heads: 5)\nlayers 2 x m').message).toContain(
      'key_head_dim (dim 64) is not a multiple of heads 5; give key_head_dim',
    );
  });

  const hybrid = () =>
    resolve(
      [
        'mixer dn   = deltanet(heads: 2, value_heads: 4, key_head_dim: 16, value_head_dim: 8, decay: head, allow_neg_eigval: true)',
        'mixer lin  = deltanet(heads: 2, d_conv: none, qk_activation: relu, use_beta: false, output_gate: true)',
        'mixer attn = attention(heads: 4)',
        'layers [dn, lin, attn]',
      ].join('\n'),
    );

  it('prints back to text, YAML and JSON that resolve to the same model and fit the schema', () => {
    const m = hybrid();
    const text = roundTrip(m);
    expect(text).toContain('d_conv: none');
    expect(text).toContain('decay: head');
    expect(text).toContain('qk_activation: relu');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(parseSpec(JSON.stringify(m), 'm.json')).toEqual(m);
    const validate = new Ajv({ discriminator: true, allowUnionTypes: true }).compile(modelIrSchema);
    expect(validate(m)).toBe(true);
    const broken = structuredClone(m);
    (broken.layers[0]!.mixer as unknown as Record<string, unknown>).decay = 'key';
    expect(validate(broken)).toBe(false);
  });

  it('checks YAML specs with the same rules as the DSL', () => {
    const m = hybrid();
    (m.layers[0]!.mixer as DeltaNetSpec).valueHeads = 3;
    expect(() => parseSpec(YAML.stringify(m), 'm.yaml')).toThrow(
      'valueHeads (3) must be a multiple of heads (2)',
    );
  });

  it("has a line in strata check's table", () => {
    expect(layerTable(hybrid()).split('\n').slice(1, 3)).toEqual([
      '    0  dn     deltanet   heads 2, value_heads 4, key 16, value 8, d_conv 4, neg eigval, gated, output gate  -    -          -',
      '    1  lin    deltanet   heads 2, key 32, value 32, no conv, qk relu, β 1, output gate                      -    -          -',
    ]);
  });
});
