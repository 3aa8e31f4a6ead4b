/**
 * The decode fusions' CPU check: the compiled (fused) decode graph beside the lowered, unfused
 * decode graph on the interpreter, from one prefilled state, for several greedy steps. Both
 * sides run the op references with f32 results, so they agree to rounding: `tol` relative to
 * each row's largest logit, the same token each step, and (with `states`) every f32 state
 * buffer left within `tol` of its largest element.
 */
import { expect } from 'vitest';
import { compileModel, type CompiledModel } from '../../codegen/compile.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { rowErrors } from './golden.ts';

export async function expectFusedDecodeMatchesUnfused(
  m: ModelIR,
  weights: Parameters<typeof Interpreter.create>[1],
  prompt: Uint32Array,
  { steps, tol = 1e-5, states = true }: { steps: number; tol?: number; states?: boolean },
): Promise<CompiledModel> {
  const T = prompt.length;
  const compiled = compileModel(m, { caps: BASELINE_CAPS, maxT: T, capacity: 64 });
  const prefill = await Interpreter.create(
    lower(m, { phase: 'prefill', maxT: T, capacity: 64 }),
    weights,
  );
  const plain = await Interpreter.create(
    lower(m, { phase: 'decode', maxT: 1, capacity: 64 }),
    weights,
  );
  const fused = await Interpreter.create(compiled.graphs.decode, weights);
  const a = prefill.newState();
  let tok = prefill.step(prompt, 0, T, a).token;
  const b = structuredClone(a);
  for (let i = 0; i < steps; i++) {
    const p = plain.step(Uint32Array.of(tok), T + i, 1, a);
    const f = fused.step(Uint32Array.of(tok), T + i, 1, b);
    expect(rowErrors(f.logits, p.logits, m.vocab).rel).toBeLessThan(tol);
    expect(f.token).toBe(p.token);
    tok = p.token;
  }
  if (states) {
    for (const [name, v] of a) {
      const w = b.get(name);
      if (v instanceof Float32Array && w instanceof Float32Array) {
        const scale = Math.max(1e-6, ...Array.from(v, Math.abs));
        const worst = Math.max(...Array.from(v, (x, j) => Math.abs(x - w[j])));
        expect(worst / scale, name).toBeLessThan(tol);
      }
    }
  }
  return compiled;
}
