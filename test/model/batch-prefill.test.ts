/**
 * Prefill into batch slots (runtime/batch.ts BatchSequence.prefill): a prompt of T tokens fills
 * its slot in ceil(T / maxT) steps of the bundle's one-sequence prefill, then batched decode
 * steps advance every slot, each at its own position (codegen/kernel-ir.ts ROW_POS).
 *
 * At B = 3 with prompts of 1, 6 and 9 tokens (maxT 4: one token, a length that is no multiple of
 * maxT, and one over 2 maxT that ends in a one-token chunk), each slot's logits after its prefill
 * and over the decode steps after equal its single-sequence run, on a llama whose layers have
 * StreamingLLM ring caches (wrapping in prefill), a sliding window and plain attention, a Mamba-1 + Mamba-2
 * + attention hybrid, RetNet (RoPE fused into its recurrence) + GLA + attention, RWKV-7
 * (token_shift) + attention, MLA (latent cache) + LFM2 short conv + MoE, and the sparse
 * mixers with per-sequence state or choices beside attention: H2O eviction (the 9-token prompt
 * evicting in its prefill, the 6-token one from its first decode step), NSA (block picks by
 * importance from position 6) and DSA (MLA + lightning indexer choosing 4 positions from
 * position 4). Each single-sequence run is the CPU interpreter's (prefilled in the same chunks
 * of maxT), within 1e-4 relative, as batch.test.ts (BATCH_VS_CPU_TOL). Against one-sequence GPU
 * runs the gaps were 4e-7 to 2.5e-6 (the sums run in other orders), and 1.2 to 2 for H2O, NSA
 * and DSA while their batched kernels took every row at step.pos.
 *
 * Slots are independent: prefilling slot 1 leaves every byte of slots 0 and 2 of every state
 * buffer (KV caches, SSM, conv and recurrence states) as it was, read back from the device.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import { BatchSequence } from '../../runtime/batch.ts';
import { readBuffer } from '../../runtime/gpu.ts';
import type { Mamba1Spec } from '../../src/mixers/mamba1.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { gpuModel } from '../helpers/compare.ts';
import { testGpu } from '../helpers/gpu.ts';
import { attention, mamba2, rwkv7Hybrid, tinyLlama } from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';
import {
  aloneOnCpu,
  BATCH_VS_CPU_TOL,
  besideAttention,
  LATENT_AND_CONV,
  tinySpec,
} from '../helpers/batch.ts';

const MAX_T = 4;
const LENGTHS = [1, 6, 9];
const prompts = LENGTHS.map((n, i) => Array.from(randInts(n, 250, 70 + i)));
const STEPS = 4;
const OPTS = { maxT: MAX_T, capacity: 48 };

const mamba1: Mamba1Spec = {
  kind: 'mamba1',
  dInner: 64,
  dState: 8,
  dConv: 4,
  dtRank: 4,
  convBias: true,
  projBias: false,
  innerNorms: null,
};

/** Mamba-1 at layer 0, Mamba-2 at 2 (no FFN), attention + SwiGLU at 1 and 3. */
function hybrid(): ModelIR {
  const m = tinyLlama({}, 4);
  return {
    ...m,
    layers: m.layers.map((l) =>
      l.index % 2 === 1
        ? l
        : {
            ...l,
            mixerName: 'ssm',
            mixer: l.index === 0 ? mamba1 : mamba2(),
            ffnName: null,
            ffn: null,
          },
    ),
  };
}

const linear = tinySpec(
  'linear',
  `  mixer r = retnet(heads: 2, key_head_dim: 8, value_head_dim: 16)
  mixer g = gla(heads: 2, key_head_dim: 8, value_head_dim: 16)
  mixer a = attention(heads: 4, kv_heads: 2)
  ffn mlp = swiglu(hidden: 48)
  layers 1 x [1 r : 1 g : 1 a] with ffn mlp`,
);

const latentAndConv = LATENT_AND_CONV;

/** A sparse-attention mixer beside plain attention. */
const sparse = besideAttention;

/** H2O, budget 6 (2 recent, 1 sink): the 9-token prompt evicts in its prefill, the 6-token one
 * from its first decode step, the 1-token one never in 4 steps. */
const h2o = sparse(
  'h2o',
  'attention(heads: 4, kv_heads: 2, sink_tokens: 1, evict: h2o(budget: 6, recent: 2))',
);

/** NSA, blocks of 2 with 3 picked: from position 6 a pick is by importance. */
const nsa = sparse(
  'nsa',
  'nsa(heads: 4, kv_heads: 2, head_dim: 8, block: 2, select: 3, window: 3)',
);

/** DSA: MLA whose lightning indexer keeps 4 positions, so from position 4 it chooses. */
const dsa = sparse(
  'dsa',
  'mla(heads: 4, q_rank: 16, kv_rank: 16, nope_dim: 8, rope_dim: 4, v_dim: 8, index: indexer(heads: 3, dim: 8, topk: 4))',
);

/** Layers with StreamingLLM ring caches (2 sinks + window 6: wrapping by position 8), a sliding
 * window of 5, and plain attention. */
const windows = tinyLlama({
  layers: tinyLlama().layers.map((l) => ({
    ...l,
    mixer: [attention({ window: 6, sinkTokens: 2 }), attention({ window: 5 }), attention()][
      l.index
    ],
  })),
});

/** Every per-sequence state buffer of a batch, read back (bytes); not the whole-run ones. */
async function snapshot(batch: BatchSequence): Promise<Map<string, Uint8Array>> {
  const { device } = batch.model.gpu;
  const out = new Map<string, Uint8Array>();
  for (const s of batch.model.manifest.state) {
    if (s.shared) continue;
    const buf = batch.stateBuffers().get(s.name)!;
    out.set(s.name, new Uint8Array(await readBuffer(device, buf, buf.size)));
  }
  return out;
}

describe.each([
  ['llama with ring-cache, sliding-window and plain attention', windows],
  ['Mamba-1 + Mamba-2 + attention hybrid', hybrid()],
  ['RetNet + GLA + attention', linear],
  ['RWKV-7 + attention hybrid', rwkv7Hybrid()],
  ['MLA (latent cache) + short conv with MoE', latentAndConv],
  ['H2O eviction + attention', h2o],
  ['NSA + attention', nsa],
  ['DSA (MLA + indexer) + attention', dsa],
])('prefill into batch slots of the %s', (_, model) => {
  let alone: Float32Array<ArrayBufferLike>[][] = [];
  beforeAll(async () => {
    alone = (await aloneOnCpu(model, OPTS, prompts, STEPS + 1)).map((r) => r.logits);
  });

  it('each slot equals its single-sequence run; prefilling a slot leaves the others', async () => {
    const m = await gpuModel(model, { ...OPTS, batch: 3 });
    // The batched bundle's prefill is one sequence's, in chunks of maxT.
    expect(m.compiled.graphs.prefill.maxT).toBe(MAX_T);
    expect(m.compiled.graphs.prefill.nodes.some((n) => 'batch' in n.attrs)).toBe(false);
    const batch = new BatchSequence(m.gm);
    const steps: number[] = [];
    const got = await batch.generate(prompts, {
      maxTokens: STEPS + 1,
      logits: true,
      onPrefill: (slot, done) => slot === 2 && steps.push(done),
    });
    // ceil(9 / 4) prefill steps for the longest prompt, then STEPS batched steps for all.
    expect(steps).toEqual([4, 8, 9]);
    expect(batch.steps).toBe(STEPS);
    expect(batch.positions).toEqual(LENGTHS.map((n) => n + STEPS));
    let worst = 0;
    for (let s = 0; s < 3; s++) {
      expect(got.logits![s]).toHaveLength(STEPS + 1);
      for (let k = 0; k <= STEPS; k++)
        worst = Math.max(worst, maxRelError(got.logits![s][k], alone[s][k]));
    }
    expect(worst).toBeLessThan(BATCH_VS_CPU_TOL);

    // Refill slot 1 with another prompt: slots 0 and 2 keep every byte, slot 1 changes.
    const before = await snapshot(batch);
    await batch.prefill(1, Array.from(randInts(7, 250, 99)));
    const after = await snapshot(batch);
    let changed = 0;
    for (const [name, was] of before) {
      const now = after.get(name)!;
      const slot = was.length / 3;
      for (const s of [0, 2])
        expect(now.subarray(s * slot, (s + 1) * slot), `${name} slot ${s}`).toEqual(
          was.subarray(s * slot, (s + 1) * slot),
        );
      if (!now.subarray(slot, 2 * slot).every((x, i) => x === was[slot + i])) changed++;
    }
    expect(changed).toBeGreaterThan(0);
    expect(batch.positions).toEqual([1 + STEPS, 7, 9 + STEPS]);
    batch.destroy();
    m.gm.destroy();
  });
});

describe('slots at their own positions on the CPU interpreter (StepShape.rowPos)', () => {
  // Each slot prefilled alone by the batched build's one-sequence prefill graph and copied into
  // its slice; then the batched decode graph (each op's reference per row at pos + rowPos[s])
  // against one-sequence decode graphs at each slot's own position.
  it.each([
    ['tiny llama', tinyLlama()],
    ['hybrid', hybrid()],
    ['RetNet, GLA', linear],
    ['MLA, short conv', latentAndConv],
    ['H2O', h2o],
    ['NSA', nsa],
    ['DSA', dsa],
  ])('%s: a batch of 3 equals 3 sequences alone', async (_, model) => {
    const { caps } = await testGpu();
    const weights = randomWeights(model, 3);
    const b = compileModel(model, { caps, ...OPTS, batch: 3 });
    const one = compileModel(model, { caps, ...OPTS });
    const prefill = await Interpreter.create(b.graphs.prefill, weights);
    const cpuB = await Interpreter.create(b.graphs.decode, weights);
    const cpu1 = await Interpreter.create(one.graphs.decode, weights);
    const stateB = cpuB.newState();
    const states = prompts.map(() => prefill.newState());
    const feed: number[] = [];
    for (const [s, p] of prompts.entries()) {
      let r = { token: 0 };
      for (let at = 0; at < p.length; at += MAX_T) {
        const ids = Uint32Array.from(p.slice(at, at + MAX_T));
        r = prefill.step(ids, at, 1, states[s]);
      }
      feed.push(r.token);
      // Whole-run state (MoE load counters) is one for the batch, not a slice per slot.
      for (const [name, arr] of states[s]) {
        const whole = stateB.get(name)!;
        if (whole.length !== arr.length) whole.set(arr, s * arr.length);
      }
    }
    const V = model.vocab;
    const pos = [...LENGTHS];
    for (let k = 0; k < 3; k++) {
      const base = Math.min(...pos);
      const got = cpuB.step(
        Uint32Array.from(feed),
        base,
        3,
        stateB,
        undefined,
        pos.map((p) => p - base),
      );
      for (let s = 0; s < 3; s++) {
        const want = cpu1.step(Uint32Array.of(feed[s]), pos[s], 1, states[s]);
        expect(maxRelError(got.logits.subarray(s * V, (s + 1) * V), want.logits)).toBeLessThan(
          1e-6,
        );
        feed[s] = want.token;
        pos[s]++;
      }
    }
  });
});

describe('batched steps over prefilled slots', () => {
  it('refuses a step over an empty slot beside filled ones, and a prompt over capacity', async () => {
    const m = await gpuModel(tinyLlama(), { ...OPTS, batch: 2 });
    const batch = new BatchSequence(m.gm);
    await batch.prefill(0, [3, 4, 5]);
    await expect(batch.step([1, 2])).rejects.toThrow(/slot 1 is empty while others hold tokens/);
    await expect(batch.prefill(1, Array(49).fill(1))).rejects.toThrow(
      /prompt of slot 1 \(49 tokens\) exceeds the KV cache capacity 48/,
    );
    await expect(batch.prefill(2, [1])).rejects.toThrow(/slot 2 is not one of the batch's 0..1/);
    batch.destroy();
    // A batched bundle from before slot prefill (its prefill phase was the batched step).
    expect(m.gm.manifest.compile.batchPrefill).toBe('slot');
    delete (m.gm.manifest.compile as { batchPrefill?: 'slot' }).batchPrefill;
    expect(() => new BatchSequence(m.gm)).toThrow(/compiled before batch slots had their own/);
    m.gm.destroy();
  });

  it('stops a slot whose cache fills with "capacity" while the others go on', async () => {
    const m = await gpuModel(tinyLlama(), { ...OPTS, batch: 2 });
    const batch = new BatchSequence(m.gm);
    const got = await batch.generate([Array(46).fill(5), [1, 2]], { maxTokens: 6 });
    // 46 prompt tokens + 2 fed back fill 48 rows: the first token and two more.
    expect(got.tokens[0]).toHaveLength(3);
    expect(got.stops).toEqual(['capacity', 'max-tokens']);
    expect(got.tokens[1]).toHaveLength(6);
    batch.destroy();
    m.gm.destroy();
  });
});
