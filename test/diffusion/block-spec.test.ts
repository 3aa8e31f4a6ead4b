/**
 * The bd3lm diffusion setting and block-causal attention: DSL and YAML/JSON forms, their checks
 * with positions, printing back.
 */
import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/spec/load.ts';
import type { BlockDiffusionSpec } from '../../src/spec/model.ts';
import { printSpec } from '../../src/spec/print.ts';
import { parseDataSpec } from '../../src/spec/load-data.ts';
import { specError } from '../spec/helpers.ts';

const spec = (diffusion: string, attn = 'block_causal: 4') => `model "tiny-bd3lm" {
  vocab 64
  dim 32
  max_context 128
  norm rms(eps: 1e-5)
  diffusion ${diffusion}
  mixer attn = attention(heads: 4, kv_heads: 2, ${attn})
  ffn mlp = swiglu(hidden: 64)
  layers 2 x attn
}
`;

/** The message of the SpecError the text raises (fails the test on no error or another error). */
const error = (text: string) => specError(() => parseSpec(text, 'm.strata')).message;

describe('bd3lm setting and block-causal attention', () => {
  it("resolves with bd3lms's defaults and prints back to the same model", () => {
    const m = parseSpec(spec('bd3lm(mask_id: 63, block_length: 8, gen_length: 32)'), 'm.strata');
    expect(m.diffusion).toEqual({
      kind: 'bd3lm',
      maskId: 63,
      genLength: 32,
      blockLength: 8,
      steps: 8,
      sampler: 'first_hitting',
      temperature: 1,
      nucleusP: 1,
    } satisfies BlockDiffusionSpec);
    // block_causal makes causal default to false (bidirectional inside a block).
    expect(m.layers[0]!.mixer).toMatchObject({ kind: 'attention', causal: false, blockCausal: 4 });
    const printed = printSpec(m);
    expect(printed).toContain('block_causal: 4');
    expect(printed).toContain('diffusion bd3lm(mask_id: 63, block_length: 8, gen_length: 32');
    expect(parseSpec(printed, 'p.strata')).toEqual(m);
    expect(parseDataSpec(JSON.stringify(m), 'm.json', 'json')).toEqual(m);
    const ddpm = parseSpec(
      spec('bd3lm(mask_id: 63, block_length: 4, steps: 2, sampler: ddpm, nucleus_p: 0.9)'),
      'm.strata',
    );
    expect(ddpm.diffusion).toMatchObject({ sampler: 'ddpm', steps: 2, nucleusP: 0.9 });
    expect(parseSpec(printSpec(ddpm), 'p.strata')).toEqual(ddpm);
  });

  it('refuses broken settings at the argument, naming it and the range', () => {
    expect(error(spec('bd3lm(mask_id: 63, block_length: 6)'))).toMatch(
      /m\.strata:6:\d+: .*block_length \(6\) must be a multiple of the model's attention block 4/,
    );
    expect(error(spec('bd3lm(mask_id: 63, block_length: 8, steps: 4)'))).toMatch(
      /m\.strata:6:\d+: .*steps \(4\) is below block_length \(8\).*allowed: at least 8, or sampler ddpm/,
    );
    expect(error(spec('bd3lm(mask_id: 63, block_length: 4, nucleus_p: 1.5)'))).toMatch(
      /nucleus_p must lie in \(0, 1\]/,
    );
    expect(error(spec('bd3lm(mask_id: 63, block_length: 4, sampler: greedy)'))).toMatch(
      /unknown sampler/,
    );
    expect(error(spec('bd3lm(mask_id: 63)'))).toMatch(/block_length/);
  });

  it('needs block-causal attention of one block in every layer', () => {
    expect(error(spec('bd3lm(mask_id: 63, block_length: 4)', 'causal: false'))).toMatch(
      /m\.strata:7:\d+: .*layer 0 uses attention 'attn' without block_causal/,
    );
    expect(error(spec('llada(mask_id: 63)'))).toMatch(
      /layer 0 uses block-causal attention 'attn' \(drop block_causal, or use diffusion bd3lm\)/,
    );
    expect(error(spec('none', 'block_causal: 4, causal: true'))).toMatch(
      /block_causal 4 cannot be combined with causal/,
    );
    expect(error(spec('none', 'block_causal: 4, window: 8'))).toMatch(
      /block_causal 4 cannot be combined with window/,
    );
  });

  it('checks YAML specs with the same rules, naming the field', () => {
    const m = parseSpec(spec('bd3lm(mask_id: 63, block_length: 8)'), 'm.strata');
    const bad = { ...m, diffusion: { ...m.diffusion!, blockLength: 6 } };
    expect(() => parseDataSpec(JSON.stringify(bad), 'm.json', 'json')).toThrow(
      /blockLength \(6\) must be a multiple of the model's attention block 4/,
    );
    const mixed = structuredClone(m);
    (mixed.layers[1]!.mixer as { blockCausal: number }).blockCausal = 2;
    expect(() => parseDataSpec(JSON.stringify(mixed), 'm.json', 'json')).toThrow(
      /layer 1 uses blockCausal 2, unlike the 4 of the layers before it/,
    );
    const unknown = { ...m, diffusion: { ...m.diffusion!, sampler: 'euler' } };
    expect(() => parseDataSpec(JSON.stringify(unknown), 'm.json', 'json')).toThrow(/sampler/);
    // A bd3lm section with a LLaDA field is refused by the schema.
    const wrong = { ...m, diffusion: { ...m.diffusion!, remasking: 'random' } };
    expect(() => parseDataSpec(JSON.stringify(wrong), 'm.json', 'json')).toThrow(/remasking/);
  });
});
