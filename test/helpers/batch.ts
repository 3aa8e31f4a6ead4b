/**
 * Pieces the batched tests (test/model/batch*.test.ts) share: each sequence's greedy run alone on
 * the CPU interpreter, the small DSL models they batch.
 */
import { expect } from 'vitest';
import { compileModel, type CompileOptions } from '../../codegen/compile.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { GPU_MODEL_DEFAULTS, GPU_MODEL_SEED } from './compare.ts';
import { testGpu } from './gpu.ts';
import { parseSpec } from '../../src/spec/load.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { maxRelError } from './numeric.ts';

/** One sequence's greedy run: `steps` tokens (the prompt's next, then each decode step's) and logits. */
export interface AloneRun {
  tokens: number[];
  logits: Float32Array<ArrayBufferLike>[];
}

/**
 * Each prompt run alone, greedily, on the CPU interpreter of `model`'s one-sequence build (the
 * options of the batched build under test, without its batch; the weights gpuModel draws):
 * `steps` tokens each and their logits rows, the prompt prefilled in chunks of maxT. The
 * interpreter is the reference every model test holds the GPU to, and it spares each family a
 * second GPU build whose kernels SwiftShader would compile only for this comparison.
 */
export async function aloneOnCpu(
  model: ModelIR,
  opts: Partial<CompileOptions>,
  prompts: number[][],
  steps: number,
): Promise<AloneRun[]> {
  const { caps } = await testGpu();
  const compiled = compileModel(model, { caps, ...GPU_MODEL_DEFAULTS, ...opts, batch: 1 });
  const weights = randomWeights(model, GPU_MODEL_SEED);
  const prefill = await Interpreter.create(compiled.graphs.prefill, weights);
  const decode = await Interpreter.create(compiled.graphs.decode, weights);
  const maxT = compiled.graphs.prefill.maxT;
  const vocab = model.vocab;
  return prompts.map((prompt) => {
    const state = prefill.newState();
    let last: { logits: Float32Array<ArrayBufferLike>; token: number } = {
      logits: new Float32Array(),
      token: -1,
    };
    for (let at = 0; at < prompt.length; at += maxT) {
      const chunk = Uint32Array.from(prompt.slice(at, at + maxT));
      last = (chunk.length > 1 ? prefill : decode).step(chunk, at, chunk.length, state);
    }
    const tokens = [last.token];
    const logits = [last.logits.slice(-vocab)];
    for (let pos = prompt.length; tokens.length < steps; pos++) {
      const r = decode.step(Uint32Array.of(tokens[tokens.length - 1]), pos, 1, state);
      tokens.push(r.token);
      logits.push(r.logits.slice(-vocab));
    }
    return { tokens, logits };
  });
}

/**
 * How far a batched GPU logit may sit from the one-sequence interpreter's, relative: the f32
 * tolerance every model test holds the GPU to (test/model/e2e.test.ts); the batched matmuls
 * only change the order of the sums (about 1e-6 against a one-sequence GPU run).
 */
export const BATCH_VS_CPU_TOL = 1e-4;

/**
 * A batch's generation (BatchSequence.generate with logits) against each sequence alone: the
 * same tokens, every logits row within `tol` relative.
 */
export function expectBatchMatchesAlone(
  got: { tokens: number[][]; logits?: Float32Array<ArrayBufferLike>[][] },
  alone: AloneRun[],
  steps: number,
  tol = BATCH_VS_CPU_TOL,
): void {
  let worst = 0;
  for (let s = 0; s < alone.length; s++) {
    expect(got.tokens[s]).toEqual(alone[s].tokens);
    for (let k = 0; k < steps; k++)
      worst = Math.max(worst, maxRelError(got.logits![s][k], alone[s].logits[k]));
  }
  expect(worst).toBeLessThan(tol);
}

/** A DSL model of vocab 256, dim 32, RMS norm; `body` gives its mixers, ffns and layers. */
export function tinySpec(name: string, body: string): ModelIR {
  return parseSpec(
    `model "${name}" {
  vocab 256
  dim 32
  max_context 256
  norm rms(eps: 1e-5)
${body}
}`,
    `${name}.strata`,
  );
}

/** A (sparse-attention) mixer beside plain attention, one layer each; `extra`: lines before layers. */
export function besideAttention(name: string, mixer: string, extra = ''): ModelIR {
  return tinySpec(
    name,
    `  mixer a = attention(heads: 4, kv_heads: 2)
  mixer s = ${mixer}
  ffn mlp = swiglu(hidden: 48)
  ${extra}layers 1 x [1 s : 1 a] with ffn mlp`,
  );
}

/** MLA on its latent cache (DeepSeek-V3's form) beside LFM2's gated short conv, with an MoE FFN. */
export const LATENT_AND_CONV = tinySpec(
  'latent-conv',
  `  mixer m = mla(heads: 4, q_rank: 16, kv_rank: 16, nope_dim: 8, rope_dim: 4, v_dim: 8)
  mixer c = shortconv(l_cache: 3)
  ffn mlp = swiglu(hidden: 48)
  ffn experts = moe(experts: 4, top_k: 2, expert: swiglu(hidden: 16))
  layers 1 x [1 m : 1 c] with ffn [mlp, experts]`,
);
