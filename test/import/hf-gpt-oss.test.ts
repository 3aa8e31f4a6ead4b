/**
 * gpt_oss import: the config (required keys, layer types, YaRN without truncation, the MoE with
 * biases and clamp), the fused expert tensors' slices (unit and through a checkpoint
 * folder with deliberately non-square shapes, BF16 included), and the released 20b layout.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serializeSafetensors, type TensorToWrite } from '../../formats/safetensors.ts';
import { openSafetensors } from '../../formats/node/safetensors-file.ts';
import { finishSlice, slicedShape, sliceYields } from '../../src/import/convert.ts';
import { sliceSpan } from '../../formats/tensor-slice.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { countParams } from '../../src/spec/params.ts';
import type { MoeSpec } from '../../src/spec/model.ts';
import { fixtureConfig, tinyConfig } from '../helpers/hf-config.ts';

const TINY = tinyConfig('gpt_oss');
const RELEASED = fixtureConfig('configs/gpt-oss-20b.json');
/** The released config without its MXFP4 quantization_config (the dequantized checkpoint). */
const { quantization_config: _, ...DEQUANTIZED } = RELEASED;

describe('gpt_oss config', () => {
  it('imports the tiny fixture: sinks, sliding then full, untruncated YaRN, clamped MoE', () => {
    const { model } = importHfConfig(TINY, 'tiny');
    expect(model.layers.map((l) => l.mixerName)).toEqual(['sliding_attention', 'full_attention']);
    const [a0, a1] = model.layers.map((l) => l.mixer);
    expect(a0).toMatchObject({ heads: 4, kvHeads: 2, headDim: 16, window: 8, sinks: true });
    expect(a1).toMatchObject({ window: null, sinks: true, qkvBias: true, outBias: true });
    expect(a0?.kind === 'attention' && a0.rope?.scaling).toMatchObject({
      kind: 'yarn',
      factor: 32,
      originalMaxPositions: 4096,
      truncate: false,
    });
    expect(model.layers[0].ffn).toEqual({
      kind: 'moe',
      experts: 4,
      topK: 2,
      expert: { kind: 'mlp', hidden: 32, act: 'silu', gated: true, bias: true },
      clamp: { limit: 7, alpha: 1.702 },
      router: {
        scoring: 'softmax',
        normalize: true,
        scale: 1,
        bias: true,
        correctionBias: false,
        groups: 1,
        topkGroups: 1,
      },
      shared: null,
      sharedGate: false,
    });
  });

  it('reads swiglu_limit / swiglu_alpha, and layer_types defaults to sliding on even layers', () => {
    const { layer_types: _t, ...noTypes } = TINY;
    const { model } = importHfConfig(
      { ...noTypes, num_hidden_layers: 3, swiglu_limit: 5, swiglu_alpha: 2 },
      'x',
    );
    expect(model.layers.map((l) => l.mixerName)).toEqual([
      'sliding_attention',
      'full_attention',
      'sliding_attention',
    ]);
    expect((model.layers[0].ffn as MoeSpec).clamp).toEqual({ limit: 5, alpha: 2 });
  });

  it('requires the keys whose class defaults are the 120b model, not the released 20b', () => {
    for (const key of ['num_hidden_layers', 'num_local_experts', 'num_experts_per_tok']) {
      const { [key]: _k, ...rest } = TINY;
      expect(() => importHfConfig(rest, 'x')).toThrow(`config key '${key}' is required`);
    }
    const { rope_parameters: _r, ...noRope } = TINY;
    expect(() => importHfConfig(noRope, 'x')).toThrow(/'rope_parameters' is required/);
  });

  it('names inconsistent or unsupported settings', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...DEQUANTIZED, experts_per_token: 2 }, /'experts_per_token' disagrees/],
      [{ ...DEQUANTIZED, initial_context_length: 8192 }, /'initial_context_length' \(8192\)/],
      [{ ...TINY, hidden_act: 'gelu' }, /'hidden_act' is 'gelu'/],
      [{ ...TINY, layer_types: ['full_attention'] }, /has 1 entries for 2 layers/],
      [{ ...TINY, layer_types: ['sliding_attention', 'chunked'] }, /"chunked" is not/],
      [{ ...TINY, num_experts_per_tok: 5 }, /exceeds the number of experts/],
      [{ ...TINY, mystery: 1 }, /'mystery' is not understood/],
    ];
    for (const [cfg, error] of cases) expect(() => importHfConfig(cfg, 'x')).toThrow(error);
    // The MXFP4 release imports as it is (test/import/quantized-checkpoints.test.ts); its
    // quantization_config still must name a method strata reads.
    expect(() =>
      importHfConfig({ ...RELEASED, quantization_config: { quant_method: 'mxfp8' } }, 'x'),
    ).toThrow(/quant_method 'mxfp8'\): strata reads/);
  });

  it('imports gpt-oss-20b: 20.91B parameters, 3.61B active besides the embedding', () => {
    const { model } = importHfConfig(DEQUANTIZED, 'gpt-oss-20b');
    const c = countParams(model);
    // OpenAI's gpt-oss model card: 20.91B total, 3.61B active (its active count leaves out the
    // embedding table; the untied unembedding is active).
    expect(Math.abs(c.total - 20.91e9) / 20.91e9).toBeLessThan(0.005);
    expect(Math.abs(c.total - 21e9) / 21e9).toBeLessThan(0.005);
    expect(Math.abs(c.active - c.embedding - 3.61e9) / 3.61e9).toBeLessThan(0.005);
    expect(
      model.layers.filter((l) => l.mixer?.kind === 'attention' && l.mixer.window === 128),
    ).toHaveLength(12);
    // specs/gpt-oss-20b.strata is this import, printed.
    expect(loadSpec('specs/gpt-oss-20b.strata')).toEqual(model);
  });

  it('maps the router and the fused experts, with a slice per expert tensor', () => {
    const { weightMap, storedShapes, storedSlices } = importHfConfig(TINY, 'tiny');
    const p = 'model.layers.1.mlp';
    expect(weightMap[`${p}.gate.weight`]).toBe(`${p}.router.weight`);
    expect(weightMap[`${p}.gate.bias`]).toBe(`${p}.router.bias`);
    expect(weightMap['model.layers.1.self_attn.sinks']).toBe('model.layers.1.self_attn.sinks');
    expect(weightMap[`${p}.experts.3.up_proj.weight`]).toBe(`${p}.experts.gate_up_proj`);
    expect(storedShapes[`${p}.experts.3.up_proj.weight`]).toEqual([4, 64, 64]);
    expect(storedSlices[`${p}.experts.3.up_proj.weight`]).toEqual({
      start: [3, 0, 0],
      size: [1, 64, 64],
      columns: { offset: 1, stride: 2 },
      transpose: true,
    });
    expect(storedSlices[`${p}.experts.2.gate_proj.bias`]).toEqual({
      start: [2, 0],
      size: [1, 64],
      columns: { offset: 0, stride: 2 },
    });
    expect(weightMap[`${p}.experts.0.down_proj.weight`]).toBe(`${p}.experts.down_proj`);
    expect(storedShapes[`${p}.experts.0.down_proj.weight`]).toEqual([4, 32, 64]);
    expect(storedShapes[`${p}.experts.0.down_proj.bias`]).toEqual([4, 64]);
  });
});

describe('fused tensor slices with a post-step', () => {
  // A [2, 3, 4] stored tensor: value = 100·e + 10·row + col; an expert's box is [1, 3, 4].
  const stored = [2, 3, 4];
  const slab = (e: number) =>
    new Float32Array(12).map((_, i) => 100 * e + 10 * Math.floor(i / 4) + (i % 4));
  const expert = (e: number) => ({ start: [e, 0, 0], size: [1, 3, 4] });

  it('de-interleaves and transposes one expert', () => {
    const gate = { ...expert(1), columns: { offset: 0, stride: 2 }, transpose: true };
    expect(slicedShape('t', gate)).toEqual([2, 3]);
    // Columns 0 and 2 of expert 1, transposed: rows are columns.
    expect(Array.from(finishSlice('t', slab(1), gate))).toEqual([100, 110, 120, 102, 112, 122]);
    const up = { ...gate, columns: { offset: 1, stride: 2 } };
    expect(Array.from(finishSlice('t', slab(1), up))).toEqual([101, 111, 121, 103, 113, 123]);
    const down = { ...expert(0), transpose: true };
    expect(slicedShape('t', down)).toEqual([4, 3]);
    expect(Array.from(finishSlice('t', slab(0), down)).slice(0, 4)).toEqual([0, 10, 20, 1]);
    expect(sliceYields('t', down, [4, 3])).toBe(true);
    expect(sliceYields('t', down, [3, 4])).toBe(false);
  });

  it('selects columns of a bias row without transposing', () => {
    const c = { start: [1, 0], size: [1, 6], columns: { offset: 1, stride: 2 } };
    expect(slicedShape('b', c)).toEqual([1, 3]);
    expect(sliceYields('b', c, [3])).toBe(true);
    expect(Array.from(finishSlice('b', new Float32Array([6, 7, 8, 9, 10, 11]), c))).toEqual([
      7, 9, 11,
    ]);
  });

  it('refuses slices that do not fit the stored tensor, naming it', () => {
    const ok = { ...expert(0), columns: { offset: 0, stride: 2 }, transpose: true };
    expect(() => sliceSpan('t', stored, { ...ok, start: [2, 0, 0] })).toThrow(
      /'t'.*runs past dimension 0/,
    );
    expect(() => slicedShape('t', { ...ok, size: [1, 3, 5] })).toThrow(
      /'t'.*do not split into stride 2/,
    );
    expect(() => slicedShape('t', { ...ok, size: [2, 3, 4] })).toThrow(
      /'t'.*only a 2-D box transposes/,
    );
    expect(() => finishSlice('t', new Float32Array(8), ok)).toThrow(
      /'t'.*8 values read for a slice of size \[1, 3, 4\]/,
    );
  });
});

describe('gpt_oss checkpoint folder', () => {
  let dir: string;
  // Non-square on purpose (dim 8, hidden 6, 3 experts) so a transposition error cannot hide.
  const config = {
    ...TINY,
    hidden_size: 8,
    intermediate_size: 6,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 4,
    num_local_experts: 3,
    vocab_size: 10,
  };
  const [E, D, H] = [3, 8, 6];
  const value = (i: number) => (i % 29) / 8 - 1.5; // exact in BF16

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-gpt-oss-'));
    const { weightMap, storedShapes, model } = importHfConfig(config, 'x');
    const tensors: Record<string, TensorToWrite> = {};
    const shapes = new Map<string, number[]>();
    for (const t of expectedTensors(model))
      shapes.set(weightMap[t.name], storedShapes[t.name] ?? t.shape);
    let k = 0;
    for (const [name, shape] of shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      const off = 37 * k++;
      tensors[name] = {
        dtype: name.endsWith('gate_up_proj') ? 'BF16' : 'F32',
        shape,
        data: new Float32Array(n).map((_, i) => value(i + off)),
      };
    }
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await writeFile(join(dir, 'model.safetensors'), new Uint8Array(serializeSafetensors(tensors)));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads each expert as canonical [out, in] tensors from the fused, interleaved ones', async () => {
    const hf = await importHfFolder(dir);
    const raw = await openSafetensors(dir);
    try {
      const p = 'model.layers.0.mlp.experts';
      const gateUp = await raw.readTensorF32(`${p}.gate_up_proj`); // [E, D, 2H]
      const gateUpBias = await raw.readTensorF32(`${p}.gate_up_proj_bias`); // [E, 2H]
      const down = await raw.readTensorF32(`${p}.down_proj`); // [E, H, D]
      for (let e = 0; e < E; e++) {
        const gate = await hf.readTensorF32(`model.layers.0.mlp.experts.${e}.gate_proj.weight`);
        const up = await hf.readTensorF32(`model.layers.0.mlp.experts.${e}.up_proj.weight`);
        const dn = await hf.readTensorF32(`model.layers.0.mlp.experts.${e}.down_proj.weight`);
        const ub = await hf.readTensorF32(`model.layers.0.mlp.experts.${e}.up_proj.bias`);
        expect([gate.length, up.length, dn.length, ub.length]).toEqual([H * D, H * D, D * H, H]);
        for (let n = 0; n < H; n++) {
          for (let d = 0; d < D; d++) {
            expect(gate[n * D + d]).toBe(gateUp[(e * D + d) * 2 * H + 2 * n]);
            expect(up[n * D + d]).toBe(gateUp[(e * D + d) * 2 * H + 2 * n + 1]);
            expect(dn[d * H + n]).toBe(down[(e * H + n) * D + d]);
          }
          expect(ub[n]).toBe(gateUpBias[e * 2 * H + 2 * n + 1]);
        }
      }
      // A slice read equals the matching part of the whole tensor.
      const expert = (e: number) => ({ start: [e, 0, 0], size: [1, H, D] });
      const slice = await raw.readTensorSliceF32(`${p}.down_proj`, expert(2));
      expect(Array.from(slice)).toEqual(Array.from(down.subarray(2 * H * D, 3 * H * D)));
      await expect(raw.readTensorSliceF32(`${p}.down_proj`, expert(3))).rejects.toThrow(
        /runs past dimension 0/,
      );
    } finally {
      await raw.close();
      await hf.close();
    }
  });
});
