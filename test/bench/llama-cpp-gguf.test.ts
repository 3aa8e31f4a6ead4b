/**
 * The GGUF files bench/llama-cpp writes for llama.cpp must hold exactly the model and numbers
 * strata benchmarks: @huggingface/gguf parses them with the keys llama.cpp needs, strata's GGUF
 * importer reads them back to the same ModelIR, and every tensor reads back as strata stores it
 * at that precision (f32 bit for bit; f16, Q8_0 and Q4_0 equal to roundWeight of the same type,
 * also bit for bit, since both sides decode the same codes and f16 scales). Tiny llamas keep
 * it fast; the 1B spec the bench uses gets a header-only check.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gguf } from '@huggingface/gguf';
import { parseSpec, loadSpec } from '../../src/spec/load.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { importGgufFile } from '../../src/import/gguf-file.ts';
import { ggufRowsToHf, importGgufMetadata } from '../../src/import/gguf.ts';
import { roundWeight } from '../../src/ops/weight-storage.ts';
import { compileModel } from '../../codegen/compile.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import type { ParamSource } from '../../src/graph/ir.ts';
import type { WeightType } from '../../src/graph/dtype.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { ggmlBytes, ggufHeader, GGML, str } from '../../formats/gguf-write.ts';
import { ggufTensorIndex } from '../../formats/gguf.ts';
import { GgufFileWriter } from '../../formats/node/gguf-file-writer.ts';
import {
  GGML_TYPE,
  GGUF_SUFFIX,
  hfRowsToGguf,
  modelDifference,
  planGguf,
  storedType,
  writeModelGgufs,
} from '../../bench/llama-cpp/gguf-model.ts';

const PRECISIONS: readonly WeightType[] = ['f32', 'f16', 'q8', 'q4'];

/** Llama-3.2-1B's shape in miniature: tied embeddings, GQA, Llama 3 RoPE scaling. */
const TIED = `
model "tiny-llama3" {
  vocab 512
  dim 64
  max_context 4096
  norm rms(eps: 1e-5)
  tie_embeddings true
  mixer attn = attention(heads: 4, kv_heads: 2, head_dim: 16,
    rope: rope(theta: 10000, scaling: llama3(factor: 4, low_freq_factor: 1, high_freq_factor: 8, original_max_positions: 1024)))
  ffn mlp = swiglu(hidden: 96)
  layers 2 x attn with ffn mlp
}`;

/** An untied head (output.weight, q8 under q4) and no RoPE scaling. */
const UNTIED = `
model "tiny-untied" {
  vocab 520
  dim 64
  max_context 256
  norm rms(eps: 1e-6)
  tie_embeddings false
  mixer attn = attention(heads: 2, kv_heads: 2, head_dim: 32, rope: rope(theta: 50000))
  ffn mlp = swiglu(hidden: 128)
  layers 1 x attn with ffn mlp
}`;

/** Keys llama.cpp's llama loader reads (required ones, and the vocabulary's). */
const LLAMA_KEYS = [
  'general.architecture',
  'general.file_type',
  'llama.context_length',
  'llama.embedding_length',
  'llama.block_count',
  'llama.feed_forward_length',
  'llama.attention.head_count',
  'llama.attention.head_count_kv',
  'llama.rope.dimension_count',
  'llama.rope.freq_base',
  'llama.attention.layer_norm_rms_epsilon',
  'llama.vocab_size',
  'tokenizer.ggml.model',
  'tokenizer.ggml.pre',
  'tokenizer.ggml.tokens',
  'tokenizer.ggml.token_type',
  'tokenizer.ggml.merges',
  'tokenizer.ggml.bos_token_id',
  'tokenizer.ggml.eos_token_id',
];

const dir = mkdtempSync(join(tmpdir(), 'strata-llama-gguf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function writeAll(model: ModelIR) {
  const files: Partial<Record<WeightType, string>> = {};
  for (const p of PRECISIONS) files[p] = join(dir, `${model.name}-${GGUF_SUFFIX[p]}.gguf`);
  await writeModelGgufs(model, randomWeights(model, 0), files);
  return files as Record<WeightType, string>;
}

describe('GGUF files for llama.cpp from strata weights', () => {
  for (const spec of [TIED, UNTIED]) {
    const model = parseSpec(spec, 'tiny.strata');
    it(`${model.name}: parse with @huggingface/gguf, with llama.cpp's keys and types`, async () => {
      const files = await writeAll(model);
      for (const p of PRECISIONS) {
        const { metadata, tensorInfos } = await gguf(files[p], { allowLocalFile: true });
        const md = metadata as unknown as Record<string, unknown>;
        for (const k of LLAMA_KEYS) expect(md[k], `${p}: ${k}`).toBeDefined();
        expect(md['general.architecture']).toBe('llama');
        expect(md['general.file_type']).toBe({ f32: 0, f16: 1, q8: 7, q4: 2 }[p]);
        expect((md['tokenizer.ggml.tokens'] as string[]).length).toBe(model.vocab);
        expect(new Set(md['tokenizer.ggml.tokens'] as string[]).size).toBe(model.vocab);
        const types = new Map(tensorInfos.map((t) => [t.name, Number(t.dtype)]));
        expect(types.get('blk.0.attn_norm.weight')).toBe(GGML.F32);
        expect(types.get('blk.0.ffn_down.weight')).toBe(GGML_TYPE[p]);
        const head = model.tieEmbeddings ? 'token_embd.weight' : 'output.weight';
        expect(types.get(head)).toBe(p === 'q4' ? GGML.Q8_0 : GGML_TYPE[p]);
        expect(types.has('rope_freqs.weight')).toBe(model.name === 'tiny-llama3');
        // GGUF lists dimensions innermost first: token_embd is [dim, vocab].
        expect(tensorInfos.find((t) => t.name === 'token_embd.weight')!.shape.map(Number)).toEqual([
          model.dim,
          model.vocab,
        ]);
      }
    });

    it(`${model.name}: re-import to the same ModelIR and the weights strata stores`, async () => {
      const files = await writeAll(model);
      const weights = randomWeights(model, 0);
      for (const p of PRECISIONS) {
        const g = await importGgufFile(files[p]);
        expect(modelDifference(g.model, model)).toBeNull();
        for (const t of g.tensors) {
          const cols = t.shape.length === 2 ? t.shape[1] : t.shape[0];
          const type = storedType(model, t.name, t.shape, p);
          const want = roundWeight(type, await weights(t.name), cols);
          const got = await g.readTensorF32(t.name);
          expect(got.length, t.name).toBe(want.length);
          let bad = -1;
          for (let i = 0; i < want.length && bad < 0; i++) if (!Object.is(got[i], want[i])) bad = i;
          expect(bad, `${p} ${t.name}: first differing element`).toBe(-1);
        }
        await g.close();
      }
    });

    it(`${model.name}: stores each weight at the type strata's --precision gives it`, () => {
      for (const p of ['f16', 'q8', 'q4'] as const) {
        const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 8, capacity: 16, precision: p });
        const names = (s: ParamSource): string[] =>
          s.kind === 'weight'
            ? [s.name]
            : s.kind === 'concat'
              ? s.parts.flatMap(names)
              : 'of' in s
                ? names(s.of)
                : [];
        let seen = 0;
        for (const param of c.params)
          for (const n of names(param.source)) {
            const shape = planGguf(model, p).tensors.find((t) => t.canonical === n)!.shape;
            expect(storedType(model, n, shape, p), `${p} ${n}`).toBe(param.dtype);
            seen++;
          }
        expect(seen).toBeGreaterThan(5);
      }
    });
  }

  it('puts q/k rows in GGML RoPE order, the inverse of the importer', () => {
    const w = Float32Array.from({ length: 4 * 8 * 3 }, (_, i) => i);
    expect(ggufRowsToHf(hfRowsToGguf(w, 4, 3), 4, 3, 'x')).toEqual(w);
    // Head 0, d = 8: GGUF row 1 is HF row 4 (i = 0, a = 1).
    expect(Array.from(hfRowsToGguf(w, 4, 3).subarray(3, 6))).toEqual([12, 13, 14]);
  });

  it('refuses what the llama GGUF form cannot express, naming it', () => {
    const noRope = parseSpec(UNTIED.replace('rope: rope(theta: 50000)', 'rope: none'), 'x.strata');
    expect(() => planGguf(noRope, 'f32')).toThrow(/without RoPE/);
    const small = parseSpec(UNTIED.replace('vocab 520', 'vocab 300'), 'x.strata');
    expect(() => planGguf(small, 'f32')).toThrow(/vocab 300 is too small/);
  });

  it('the file writer refuses tensors out of order, of the wrong size, or missing', () => {
    const infos = [
      { name: 'a', type: GGML.F32, shape: [2], byteLength: 8 },
      { name: 'b', type: GGML.F32, shape: [1], byteLength: 4 },
    ];
    const meta = { 'general.architecture': str('llama') };
    const w = new GgufFileWriter(join(dir, 'order.gguf'), meta, infos);
    expect(() => w.write('b', new Uint8Array(4))).toThrow(/'b' written where 'a' comes next/);
    expect(() => w.write('a', new Uint8Array(4))).toThrow(/4 bytes; the header says 8/);
    w.write('a', new Uint8Array(8));
    expect(() => w.close()).toThrow(/closed after 1 of 2 tensors \(next 'b'\)/);
  });
});

describe('the Llama-3.2-1B-dims files the bench writes (header only)', () => {
  it('plans every precision, and the header parses back to the spec', async () => {
    const model = loadSpec('specs/llama-3.2-1b.strata');
    for (const p of PRECISIONS) {
      const plan = planGguf(model, p);
      // rope_freqs, the embedding, 9 per layer, the final norm; tied: no output.weight.
      expect(plan.tensors.length).toBe(2 + 9 * 16 + 1);
      expect(plan.ropeFreqs?.length).toBe(32);
      const infos = plan.tensors.map((t) => ({
        name: t.name,
        type: GGML_TYPE[t.type],
        shape: t.shape,
        byteLength: ggmlBytes(
          GGML_TYPE[t.type],
          t.shape.reduce((a, b) => a * b, 1),
        ),
      }));
      const path = join(dir, `1b-${p}.header`);
      writeFileSync(path, ggufHeader(plan.metadata, infos));
      const parsed = await gguf(path, { allowLocalFile: true });
      const md = parsed.metadata as unknown as Record<string, unknown>;
      for (const k of LLAMA_KEYS) expect(md[k], `${p}: ${k}`).toBeDefined();
      const dataBytes = infos.reduce((n, t) => n + Math.ceil(t.byteLength / 32) * 32, 0);
      const index = ggufTensorIndex(parsed, Number(parsed.tensorDataOffset) + dataBytes, path);
      const back = importGgufMetadata(
        parsed.metadata as never,
        index,
        path,
        model.name,
        plan.ropeFreqs,
      );
      expect(modelDifference(back.model, model)).toBeNull();
      const q4 = plan.tensors.filter((t) => t.type === 'q4').length;
      expect(q4).toBe(p === 'q4' ? 16 * 7 : 0);
    }
  });
});
