/**
 * rwkv7(...) and rwkv7_cmix(...) in the DSL, YAML, the printer and `strata check`'s table, and
 * specs/rwkv7-1.5b-world.strata against the import of the released config.
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import type { Rwkv7Spec } from '../../src/mixers/rwkv7.ts';
import type { MlpSpec } from '../../src/spec/model.ts';
import { countParams } from '../../src/spec/params.ts';
import { layerTable } from '../../src/spec/table.ts';
import { bodyError, mixerOf, resolve, roundTrip, specError } from './helpers.ts';
import { importConfigFile } from '../helpers/hf-config.ts';

const HEADER = 'vocab 256\n  dim 64\n  max_context 128\n  norm layer(eps: 1e-5)';
const MODEL = [
  'mixer tmix = rwkv7(head_dim: 16, decay_rank: 8, a_rank: 8, v_rank: 8, gate_rank: 16)',
  'ffn   cmix = rwkv7_cmix(hidden: 16)',
  'layers 3 x tmix with ffn cmix',
].join('\n');

describe('rwkv7(...)', () => {
  it("defaults like fla's RWKV7Config, heads filling the model width", () => {
    const expected: Rwkv7Spec = {
      kind: 'rwkv7',
      heads: 1,
      headDim: 64,
      valueHeadDim: 64,
      decayRank: 64,
      aRank: 64,
      vRank: 16,
      gateRank: 128,
      normEps: 1e-5,
      kkEps: 1e-6,
      normFirst: true,
    };
    expect(mixerOf('rwkv7')).toEqual(expected);
    expect((mixerOf('rwkv7(head_dim: 16)') as Rwkv7Spec).heads).toBe(4);
  });

  it('checks head_dim against the width and names misspelt parameters', () => {
    expect(bodyError('mixer m = rwkv7(head_dim: 48)\nlayers 2 x m').message).toContain(
      'head_dim (48) must divide dim (64)',
    );
    expect(bodyError('mixer m = rwkv7(decay_rnak: 8)\nlayers 2 x m').message).toContain(
      "did you mean 'decay_rank'?",
    );
  });

  it('rwkv7_cmix is an ungated relu² mlp with token shift', () => {
    const cmix: MlpSpec = {
      kind: 'mlp',
      hidden: 16,
      act: 'relu2',
      gated: false,
      bias: false,
      tokenShift: true,
    };
    expect(resolve(MODEL, HEADER).layers[0].ffn).toEqual(cmix);
  });

  it('prints back to text and YAML that resolve to the same model', () => {
    const m = resolve(MODEL, HEADER);
    const text = roundTrip(m);
    expect(text).toContain('mixer tmix = rwkv7(');
    expect(text).toContain('ffn   cmix = rwkv7_cmix(hidden: 16)');
    expect(parseSpec(YAML.stringify(m), 'm.yaml')).toEqual(m);
    expect(parseSpec(JSON.stringify(m), 'm.json')).toEqual(m);
  });

  it('has a table line', () => {
    expect(layerTable(resolve(MODEL, HEADER)).split('\n')[1]).toBe(
      '    0  tmix   rwkv7  heads 4, head_dim 16, value_head_dim 16, ranks w 8 a 8 v 8 g 16  cmix  rwkv7_cmix      16',
    );
  });

  it('allows token shift only in the channel-mix form, and never in experts', () => {
    const yaml = YAML.stringify(resolve(MODEL, HEADER));
    const gelu = yaml.replace('act: relu2', 'act: gelu');
    expect(specError(() => parseSpec(gelu, 'g.yaml')).message).toContain(
      "tokenShift needs RWKV's channel mix",
    );
    const moe = resolve(
      'mixer tmix = rwkv7(head_dim: 16)\nffn moe = moe(experts: 4, top_k: 2, expert: mlp(hidden: 8, act: relu2))\nlayers 2 x tmix with ffn moe',
      HEADER,
    );
    const shifted = YAML.stringify(moe).replace(
      'act: relu2',
      'act: relu2\n        tokenShift: true',
    );
    expect(shifted).toContain('tokenShift: true');
    expect(specError(() => parseSpec(shifted, 's.yaml')).message).toContain(
      'tokenShift is not for experts',
    );
  });
});

describe('specs/rwkv7-1.5b-world.strata', () => {
  it('is the model the importer makes of the released config', () => {
    // https://huggingface.co/fla-hub/rwkv7-1.5B-world/blob/main/config.json
    const file = 'test/fixtures/configs/rwkv7-1.5b-world.json';
    const imported = importConfigFile(file, 'x').model;
    const spec = loadSpec('specs/rwkv7-1.5b-world.strata');
    expect(spec.layers.map((l) => [l.mixer, l.ffn])).toEqual(
      imported.layers.map((l) => [l.mixer, l.ffn]),
    );
    expect(spec.norm).toEqual(imported.norm);
    expect([spec.vocab, spec.dim, spec.tieEmbeddings]).toEqual([
      imported.vocab,
      imported.dim,
      imported.tieEmbeddings,
    ]);
    // Layer 0 has pre_norm and no v_lora (published size: 1.5B).
    const count = countParams(spec);
    expect(count.total).toBe(1_527_404_544);
    expect(count.perLayer[1]! - count.perLayer[0]!).toBe(2 * 2048 * 64 + 2048 - 2 * 2048);
  });
});
