/**
 * Pieces the batched tests (test/model/batch*.test.ts) share: a sequence's greedy run alone, the
 * small DSL models they batch, so each comparison runs the same single-sequence side.
 */
import { expect } from 'vitest';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import type { Sequence } from '../../runtime/model.ts';
import { parseSpec } from '../../src/spec/load.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { maxRelError } from './numeric.ts';

/**
 * One sequence run alone, greedily: `steps` tokens (the prompt's next, then each decode step's)
 * and each one's logits row.
 */
export async function soloRun(seq: Sequence, prompt: number[], steps: number) {
  seq.reset();
  const vocab = seq.model.vocab;
  const first = await seq.forward(prompt);
  const tokens = [first.token];
  const logits: Float32Array<ArrayBufferLike>[] = [first.logits.slice(-vocab)];
  while (tokens.length < steps) {
    const r = await seq.next([tokens[tokens.length - 1]], GREEDY, true);
    tokens.push(r.token);
    logits.push(r.logits!);
  }
  return { tokens, logits };
}

/**
 * A batch's generation (BatchSequence.generate with logits) against each sequence alone: the
 * same tokens, every logits row within `tol` relative (the batched matmuls sum in other orders).
 */
export function expectBatchMatchesAlone(
  got: { tokens: number[][]; logits?: Float32Array<ArrayBufferLike>[][] },
  alone: Awaited<ReturnType<typeof soloRun>>[],
  steps: number,
  tol = 1e-5,
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
