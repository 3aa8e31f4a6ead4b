/**
 * The mamba1-decode fusion on real checkpoints: the HF mamba and jamba fixtures' fused decode
 * graph (mamba1_step in place of x_proj, the dt/B/C norms, dt_proj and the scan) run on the CPU
 * interpreter beside the lowered, unfused decode graph, from the same prefilled state, for
 * several greedy steps. Both sides run the op references in f64 with f32 results, so they agree
 * to rounding (tolerance 1e-5 relative to each row's largest logit); the GPU side of the same
 * fixtures is test/golden/hf-golden.test.ts (1e-4 against transformers).
 */
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { readGolden, rowErrors } from '../helpers/golden.ts';

describe('mamba1 fused decode on the HF fixtures', () => {
  for (const type of ['mamba', 'jamba']) {
    it(`${type}: fused decode graph = unfused decode graph on the interpreter`, async () => {
      const dir = `test/fixtures/hf/${type}`;
      const hf = await importHfFolder(dir);
      try {
        const golden = await readGolden(dir);
        const weights = (n: string) => hf.readTensorF32(n);
        const T = golden.prompt.length;
        const compiled = compileModel(hf.model, { caps: BASELINE_CAPS, maxT: T, capacity: 64 });
        const fusedGraph = compiled.graphs.decode;
        const ops = fusedGraph.nodes.map((n) => n.attrs.op);
        expect(ops).toContain('mamba1_step');
        expect(ops).not.toContain('selective_scan');
        const prefill = await Interpreter.create(
          lower(hf.model, { phase: 'prefill', maxT: T, capacity: 64 }),
          weights,
        );
        const plain = await Interpreter.create(
          lower(hf.model, { phase: 'decode', maxT: 1, capacity: 64 }),
          weights,
        );
        const fused = await Interpreter.create(fusedGraph, weights);
        const a = prefill.newState();
        let tok = prefill.step(Uint32Array.from(golden.prompt), 0, T, a).token;
        const b = structuredClone(a);
        const vocab = hf.model.vocab;
        for (let i = 0; i < 4; i++) {
          const p = plain.step(Uint32Array.of(tok), T + i, 1, a);
          const f = fused.step(Uint32Array.of(tok), T + i, 1, b);
          expect(rowErrors(f.logits, p.logits, vocab).rel).toBeLessThan(1e-5);
          expect(f.token).toBe(p.token);
          tok = p.token;
        }
      } finally {
        await hf.close();
      }
    });
  }
});
