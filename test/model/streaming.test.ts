/**
 * StreamingLLM end to end: a long decode with window 256 and 4 sink tokens over ring KV caches
 * matches the CPU interpreter on a graph that keeps every position and recomputes attention
 * under the same mask at every step, while the runtime's state buffers keep their size.
 */
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import { report } from '../../src/cli/report.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { lower } from '../../src/graph/lower.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { gpuModel, teacherForcedWorst } from '../helpers/compare.ts';
import { randInts } from '../helpers/numeric.ts';

const WINDOW = 256;
const SINKS = 4;
/**
 * Decode steps: what runs in ~10 s on SwiftShader (~20 ms a step for this model); the issue's
 * 20k-token decode runs as STREAM_STEPS=20000 (~7 minutes there).
 */
const STEPS = Number(process.env.STREAM_STEPS ?? 500);
/** Logits are compared at the last step of every batch (each comparison reads back). */
const BATCH = 100;

const model = parseSpec(
  `model "tiny-streaming" {
  vocab 64
  dim 32
  max_context 32768
  norm rms(eps: 1e-5)
  tie_embeddings true
  mixer attn = attention(heads: 2, kv_heads: 1, window: ${WINDOW}, sink_tokens: ${SINKS})
  ffn mlp = swiglu(hidden: 48)
  layers 2 x attn with ffn mlp
}`,
  'tiny-streaming.strata',
);

/** A fixed token stream (teacher forcing keeps both sides on the same tokens). */
const tokens = (n: number) => randInts(n, 64, 12345);

/**
 * Runs `prompt` tokens through forward() (prefill chunks of maxT), then `steps` teacher-forced
 * decode tokens in batches of `batch` (next() queues a batch's steps and reads the last logits),
 * beside the dense interpreter; returns the worst relative logit error seen.
 */
async function streamAgainstDense(
  maxT: number,
  prompt: number,
  steps: number,
  batch: number,
): Promise<number> {
  const capacity = prompt + steps + 1;
  const m = await gpuModel(model, { maxT, capacity });
  // The caches are rings of sinks + window + (maxT - 1) rows, whatever the capacity.
  const ringRows = SINKS + WINDOW + maxT - 1;
  expect(ringRows).toBeLessThan(capacity);
  const kvCols = 16;
  for (const s of m.compiled.state) expect(s.shape).toEqual([ringRows, kvCols]);
  const dense = (phase: 'prefill' | 'decode') =>
    Interpreter.create(lower(model, { phase, maxT, capacity, ringCaches: false }), m.weights);
  const prefill = await dense('prefill');
  const decode = await dense('decode');
  const state = prefill.newState();
  const ids = tokens(prompt + steps);

  const seq = m.gm.newSequence();
  const sizes = seq.stateSizes();
  expect([...sizes.values()]).toEqual(Array(4).fill(ringRows * kvCols * 4));
  const t0 = performance.now();
  const worst = await teacherForcedWorst(seq, { prefill, decode, state }, ids, prompt, maxT, batch);
  if (process.env.STREAM_STEPS) {
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`${steps} decode steps in ${s} s; worst relative logit error ${worst}`);
  }
  expect(seq.pos).toBe(prompt + steps);
  // Same buffers, same sizes, after running far past the ring's rows.
  expect(seq.stateSizes()).toEqual(sizes);
  return worst;
}

describe('streaming attention (window 256, 4 sinks) end to end', () => {
  it(
    `decodes ${STEPS} tokens past its ring cache, matching dense masked attention`,
    async () => {
      // maxT 1: every token is a decode step, queued BATCH at a time.
      expect(await streamAgainstDense(1, 8, STEPS, BATCH)).toBeLessThan(1e-4);
    },
    Math.max(600_000, 60 * STEPS),
  );

  it('prefill chunks crossing the ring wrap match too', async () => {
    // Chunks of 16 over 300 positions with a ring of 275 rows; then decode steps.
    expect(await streamAgainstDense(16, 300, 5, 1)).toBeLessThan(1e-4);
  }, 600_000);
});

describe('inspect figures of streaming attention', () => {
  it('KV memory stops growing at the ring rows; dense layers grow with the context', () => {
    const mixed = parseSpec(
      `model "mixed" {
  vocab 64
  dim 32
  max_context 32768
  norm rms(eps: 1e-5)
  mixer stream = attention(heads: 2, kv_heads: 1, window: 256, sink_tokens: 4)
  mixer full = attention(heads: 2, kv_heads: 1)
  ffn mlp = swiglu(hidden: 48)
  layers [stream, full] with ffn mlp
}`,
      'mixed.strata',
    );
    const r = report(compileModel(mixed, { caps: BASELINE_CAPS, maxT: 16, capacity: 20000 }));
    const perToken = 2 * 16 * 4; // k and v rows of one kv head of 16, f32
    expect(r.layers.map((l) => [l.kvBytesPerToken, l.kvRows])).toEqual([
      [perToken, 4 + 256 + 15],
      [perToken, null],
    ]);
    expect(r.stateBytesPerSequence).toBe((275 + 20000) * perToken);
    expect(r.kvBytesByContext).toEqual([
      { context: 1024, bytes: (275 + 1024) * perToken },
      { context: 4096, bytes: (275 + 4096) * perToken },
      { context: 16384, bytes: (275 + 16384) * perToken },
      { context: 20000, bytes: (275 + 20000) * perToken },
    ]);
  });
});
