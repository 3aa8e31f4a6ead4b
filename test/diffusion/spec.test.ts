/** The diffusion setting: DSL and YAML/JSON forms, its checks with positions, printing back. */
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import type { DiffusionSpec } from '../../src/spec/model.ts';
import { printSpec } from '../../src/spec/print.ts';
import { parseDataSpec } from '../../src/spec/load-data.ts';
import { specError } from '../spec/helpers.ts';

const spec = (diffusion: string, causal = 'false') => `model "tiny-llada" {
  vocab 64
  dim 32
  max_context 128
  norm rms(eps: 1e-5)
  diffusion ${diffusion}
  mixer attn = attention(heads: 4, kv_heads: 2, causal: ${causal})
  ffn mlp = swiglu(hidden: 64)
  layers 2 x attn
}
`;

/** The message of the SpecError the text raises (fails the test on no error or another error). */
const error = (text: string) => specError(() => parseSpec(text, 'm.strata')).message;

describe('diffusion setting', () => {
  it('resolves with the reference defaults and prints back to the same model', () => {
    const m = parseSpec(spec('llada(mask_id: 63, gen_length: 16, block_length: 8)'), 'm.strata');
    expect(m.diffusion).toEqual({
      kind: 'llada',
      maskId: 63,
      genLength: 16,
      blockLength: 8,
      steps: 16,
      remasking: 'low_confidence',
      temperature: 0,
      cfgScale: 0,
    });
    expect(m.layers[0]!.mixer).toMatchObject({ kind: 'attention', causal: false });
    const printed = printSpec(m);
    expect(printed).toContain('diffusion llada(mask_id: 63, gen_length: 16, block_length: 8)');
    expect(parseSpec(printed, 'p.strata')).toEqual(m);
    // The YAML/JSON form is the ModelIR itself.
    expect(parseDataSpec(JSON.stringify(m), 'm.json', 'json')).toEqual(m);
  });

  it('leaves autoregressive models without the field', () => {
    const m = parseSpec(spec('none'), 'm.strata');
    expect('diffusion' in m).toBe(false);
  });

  it('refuses a broken schedule at the argument, in the reference rules', () => {
    expect(error(spec('llada(mask_id: 63, gen_length: 16, block_length: 5)'))).toMatch(
      /m\.strata:6:\d+: .*block_length \(5\) must divide gen_length \(16\)/,
    );
    expect(error(spec('llada(mask_id: 63, gen_length: 16, block_length: 4, steps: 6)'))).toMatch(
      /m\.strata:6:\d+: .*steps \(6\) must be a multiple of the number of blocks 4/,
    );
    expect(
      (parseSpec(spec('llada(mask_id: 63, cfg_scale: 1.5)'), 'm.strata').diffusion as DiffusionSpec)
        .cfgScale,
    ).toBe(1.5);
    expect(error(spec('llada(mask_id: 63, remasking: lowconf)'))).toMatch(/unknown remasking/);
    expect(error(spec('llada(mask_id: 64)'))).toMatch(/mask_id 64 must be a token id below vocab/);
  });

  it('needs bidirectional attention in every layer', () => {
    expect(error(spec('llada(mask_id: 63)', 'true'))).toMatch(
      /m\.strata:7:\d+: .*layer 0 uses causal attention 'attn' \(set causal: false\)/,
    );
  });

  it('checks YAML specs with the same rules, naming the field', () => {
    const m = parseSpec(spec('llada(mask_id: 63, gen_length: 16, block_length: 8)'), 'm.strata');
    const bad = { ...m, diffusion: { ...m.diffusion!, blockLength: 6 } };
    expect(() => parseDataSpec(JSON.stringify(bad, null, 1), 'm.json', 'json')).toThrow(
      /blockLength \(6\) must divide genLength \(16\)/,
    );
    const causal = structuredClone(m);
    (causal.layers[1]!.mixer as { causal: boolean }).causal = true;
    expect(() => parseDataSpec(JSON.stringify(causal), 'm.json', 'json')).toThrow(
      /layer 1 uses causal attention/,
    );
    const unknown = { ...m, diffusion: { ...m.diffusion!, remasking: 'lowest' } };
    expect(() => parseDataSpec(JSON.stringify(unknown), 'm.json', 'json')).toThrow(/remasking/);
  });

  it('refuses a batched build: batched decode is autoregressive', () => {
    for (const file of ['specs/tiny-llada.strata', 'specs/tiny-bd3lm.strata'])
      expect(() => compileModel(loadSpec(file), { caps: BASELINE_CAPS, batch: 2 })).toThrow(
        /batch 2: batched decode is autoregressive, and .* is a (llada|bd3lm) diffusion model/,
      );
  });
});
