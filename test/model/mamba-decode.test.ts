/**
 * The mamba1-decode fusion on real checkpoints: the HF mamba and jamba fixtures' fused decode
 * graph (mamba1_step in place of x_proj, the dt/B/C norms, dt_proj and the scan) run on the CPU
 * interpreter beside the lowered, unfused decode graph, from the same prefilled state, for
 * several greedy steps. Both sides run the op references in f64 with f32 results, so they agree
 * to rounding (tolerance 1e-5 relative to each row's largest logit); the GPU side of the same
 * fixtures is test/golden/hf-golden.test.ts (1e-4 against transformers). The fixtures' x_proj is
 * small enough to run inside mamba1_step; a model with a larger one (x_proj as its own matmul)
 * runs here on WebGPU against the interpreter (1e-4, the hybrid tests' tolerance: f32 sums on
 * the GPU against f64 ones).
 */
import { describe, expect, it } from 'vitest';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { readGolden, rowErrors } from '../helpers/golden.ts';
import { expectFusedDecodeMatchesUnfused } from '../helpers/decode-fusion.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { tinyLlama } from '../helpers/models.ts';
import { randInts } from '../helpers/numeric.ts';
import type { Mamba1Spec } from '../../src/spec/model.ts';

describe('mamba1 fused decode on the HF fixtures', () => {
  for (const type of ['mamba', 'jamba']) {
    it(`${type}: fused decode graph = unfused decode graph on the interpreter`, async () => {
      const dir = `test/fixtures/hf/${type}`;
      const hf = await importHfFolder(dir);
      try {
        const golden = await readGolden(dir);
        const compiled = await expectFusedDecodeMatchesUnfused(
          hf.model,
          (n: string) => hf.readTensorF32(n),
          Uint32Array.from(golden.prompt),
          { steps: 4, states: false },
        );
        const ops = compiled.graphs.decode.nodes.map((n) => n.attrs.op);
        expect(ops).toContain('mamba1_step');
        expect(ops).not.toContain('selective_scan');
      } finally {
        await hf.close();
      }
    });
  }
});

describe('mamba1 fused decode with x_proj outside mamba1_step', () => {
  // R·D·4 = (100 + 2·12)·2200·4 ≈ 1.09 MB > 1 MiB: x_proj stays a matmul; dInner and dtRank
  // are multiples of no tile; Jamba's inner norms on.
  const mixer: Mamba1Spec = {
    kind: 'mamba1',
    dInner: 2200,
    dState: 12,
    dConv: 4,
    dtRank: 100,
    convBias: true,
    projBias: false,
    innerNorms: { eps: 1e-6 },
  };
  const model = tinyLlama({
    dim: 40,
    layers: [0, 1].map((index) => ({
      index,
      mixerName: 'mamba1',
      mixer,
      ffnName: null,
      ffn: null,
    })),
  });

  it('matches the interpreter on WebGPU, and the fused graph matches the unfused one', async () => {
    const m = await gpuModel(model, { maxT: 8, capacity: 32 }, 5);
    const ops = m.compiled.graphs.decode.nodes.map((n) => n.attrs);
    expect(ops.filter((a) => a.op === 'mamba1_step').map((a) => 'xProj' in a && a.xProj)).toEqual([
      false,
      false,
    ]);
    const prompt = randInts(7, model.vocab, 2);
    const { state } = await expectMatchesInterpreter(m, prompt, 3, 1e-4);
    const plain = await Interpreter.create(
      lower(model, { phase: 'decode', maxT: 1, capacity: 32 }),
      m.weights,
    );
    const fused = await Interpreter.create(m.compiled.graphs.decode, m.weights);
    const b = structuredClone(state);
    const tok = Uint32Array.of(3);
    const p = plain.step(tok, 10, 1, state);
    const f = fused.step(tok, 10, 1, b);
    expect(rowErrors(f.logits, p.logits, model.vocab).rel).toBeLessThan(1e-5);
  });
});
