/**
 * Batched decode (compile --batch B, runtime/batch.ts): B sequences in one step equal B
 * independent single-sequence runs (each on the CPU interpreter of the one-sequence build),
 * token for token and logits within 1e-4 relative (helpers/batch.ts BATCH_VS_CPU_TOL, the f32
 * bound of every GPU-vs-interpreter model test; against one-sequence GPU runs the gap was ~1e-6:
 * only the order of the batched matmuls' sums differs; the slot prefill itself is tested in
 * batch-prefill.test.ts), for a tiny llama and tiny hybrids of
 * attention with Mamba-1, Mamba-2, gated DeltaNet and RWKV-7 layers (linear_recurrence and
 * token_shift batched). Prompts of different lengths share the batch.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import { BatchSequence } from '../../runtime/batch.ts';
import type { Mamba1Spec } from '../../src/mixers/mamba1.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import type { Mamba2Spec } from '../../src/mixers/mamba2.ts';
import { GPU_MODEL_DEFAULTS, gpuModel } from '../helpers/compare.ts';
import { testGpu } from '../helpers/gpu.ts';
import {
  attention,
  GATED_DELTANET,
  mamba2,
  mlp,
  rwkv7Hybrid,
  tinyLlama,
} from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';
import {
  LATENT_AND_CONV,
  aloneOnCpu,
  expectBatchMatchesAlone,
  tinySpec,
  type AloneRun,
} from '../helpers/batch.ts';
import { maxBatch, MEMORY_BUDGETS, report } from '../../src/cli/report.ts';
import { compileFigures } from '../../src/cli/explore/metrics.ts';
import { DEVICES } from '../../src/cli/explore/roofline.ts';
import { NOMINAL_CAPS } from '../../src/target.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import type { Graph } from '../../src/graph/ir.ts';
import type { OpAttrs } from '../../src/graph/ops.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { GraphBuilder } from '../../src/graph/builder.ts';
import { readFileSync } from 'node:fs';

const ROOFLINE = Object.values(DEVICES)[0];

const mamba: Mamba1Spec = {
  kind: 'mamba1',
  dInner: 96,
  dState: 8,
  dConv: 4,
  dtRank: 5,
  convBias: true,
  projBias: false,
  innerNorms: null,
};

/** Mamba-1 at layers 0 and 2 (no FFN, as HF Mamba), attention + SwiGLU at 1 and 3. */
function hybrid(): ModelIR {
  const m = tinyLlama({}, 4);
  return {
    ...m,
    layers: m.layers.map((l) =>
      l.index % 2 === 0 ? { ...l, mixerName: 'mamba', mixer: mamba, ffnName: null, ffn: null } : l,
    ),
  };
}

const LENGTHS = [5, 3, 7, 4];
const prompts = LENGTHS.map((n, i) => Array.from(randInts(n, 250, 40 + i)));
const STEPS = 5;

/** Mamba-2 (SSD) at layers 0 and 2, attention + SwiGLU at 1 and 3 (Nemotron-H / Bamba style). */
function hybrid2(over: Partial<Mamba2Spec> = {}): ModelIR {
  const m = hybrid();
  return {
    ...m,
    layers: m.layers.map((l) => (l.index % 2 === 0 ? { ...l, mixer: mamba2(over) } : l)),
  };
}

/**
 * Gated DeltaNet at layers 0 and 2 (key heads 2 and 3), Qwen3-Next's gated attention at 1: the
 * recurrence with its fused l2 norms, beta and decay, and its short convs, per sequence.
 */
function deltanetHybrid(): ModelIR {
  const dn = GATED_DELTANET;
  const gated = attention({
    qkNorm: true,
    outputGate: true,
    rope: { theta: 10000, rotaryDim: 4, scaling: { kind: 'none' } },
  });
  const ffn = mlp({ hidden: 80 });
  return tinyLlama({
    dim: 48,
    norm: { kind: 'rms', eps: 1e-6, unitOffset: true, bias: false },
    layers: [dn, gated, { ...dn, keyHeads: 3 }].map((mixer, index) => ({
      index,
      mixerName: mixer.kind,
      mixer,
      ffnName: 'mlp',
      ffn,
    })),
  });
}

const latentAndConv = LATENT_AND_CONV;

/**
 * The other linear recurrences: RetNet (RoPE fused into the recurrence, at the step's shared
 * position), GLA (per-key decay) and normalised linear attention (the key sum z per sequence).
 */
const linear = tinySpec(
  'linear',
  `  mixer r = retnet(heads: 2, key_head_dim: 8, value_head_dim: 16)
  mixer g = gla(heads: 2, key_head_dim: 8, value_head_dim: 16)
  mixer l = linear_attn(heads: 2, key_head_dim: 8, value_head_dim: 16, feature_map: elu1, normalize: true)
  mixer a = attention(heads: 4, kv_heads: 2)
  ffn mlp = swiglu(hidden: 48)
  layers 1 x [1 r : 1 g : 1 l : 1 a] with ffn mlp`,
);

/** StreamingLLM attention: the batched build's ring caches (2 sinks + window 6) wrap by step 8. */
const streaming = tinyLlama({
  layers: tinyLlama().layers.map((l) => ({ ...l, mixer: attention({ window: 6, sinkTokens: 2 }) })),
});

/** A block-sparse layer (blocks of 2: most are dropped by step 12) and a global + window layer. */
const sparse = tinySpec(
  'sparse',
  `  mixer a = attention(heads: 4, kv_heads: 2, pattern: block_sparse(block: 2, layout: strided(local: 1, stride: 3, global: 1)))
  mixer b = attention(heads: 4, kv_heads: 2, window: 4, global: 1)
  ffn mlp = swiglu(hidden: 48)
  layers 1 x [1 a : 1 b] with ffn mlp`,
);

/** Mamba-1 + MoE FFNs + attention without RoPE (its q/k/v + KV append fused, batched too). */
const jamba = parseSpec(readFileSync('specs/jamba-tiny-moe.strata', 'utf8'), 'jamba-tiny-moe');

/** Decode nodes carrying each fusion, counting only those of a batch of B (1: unbatched). */
function fusions(g: Graph, B: number): Record<string, number> {
  const of = (a: { batch?: number } | null | undefined) => !!a && (a.batch ?? 1) === B;
  const count = (p: (a: OpAttrs) => boolean) => g.nodes.filter((n) => p(n.attrs)).length;
  return {
    ropeKv: count((a) => a.op === 'matmul' && of(a.ropeKv)),
    conv: count((a) => a.op === 'matmul' && of(a.conv)),
    // RWKV-7's unbatched decode recurrence takes its inputs' work as rwkv7 (src/passes/
    // fuse-rwkv7.ts, single-sequence decode only); batched, the plain prologue folds the decay.
    prologue: count((a) => a.op === 'linear_recurrence' && (!!a.prologue || !!a.rwkv7) && of(a)),
    // MoE decode fusion (src/passes/fuse-moe.ts): row-independent, so no batch in its attrs;
    // these models' small experts fuse at every batch (moeInlineFuses).
    moeRoute: count((a) => a.op === 'moe_matmul' && !!a.route),
  };
}

describe.each([
  // B = 1 (a batch build of one) and 3 (odd, past one); 4 repeated 3 (CI time).
  ['tiny llama', tinyLlama(), {}, [1, 3]],
  ['block-sparse and global-token llama', sparse, {}, [3]],
  ['tiny mamba + attention hybrid', hybrid(), {}, [3]],
  ['tiny mamba2 + attention hybrid', hybrid2(), {}, [3]],
  // No in_proj bias: mamba2-decode's fused in_proj (conv epilogue over three states, batched)
  // and its SSD reading x, dt, B, C and z from the row.
  [
    'tiny fused-decode mamba2 + attention hybrid',
    hybrid2({ projBias: false, groups: 3, normGroup: 72 }),
    {},
    [3],
  ],
  ['tiny llama with f16 KV caches', tinyLlama(), { kv: 'f16' as const }, [3]],
  ['streaming-attention llama (ring caches)', streaming, {}, [3]],
  ['tiny gated DeltaNet + attention hybrid', deltanetHybrid(), {}, [3]],
  ['tiny RWKV-7 + attention hybrid', rwkv7Hybrid(), {}, [3]],
  ['RetNet, GLA, linear attention and attention', linear, {}, [3]],
  ['MLA (latent cache) and short-conv model with MoE', latentAndConv, {}, [3]],
  ['Jamba-shaped model (MoE, attention without RoPE)', jamba, {}, [3]],
])('batched decode of the %s', (_, model, opts, batches) => {
  // Every prompt a batch here takes (the largest B of this model) run alone on the interpreter,
  // and the decode fusions of the one-sequence build, which batching must keep.
  let alone: AloneRun[] = [];
  let fusedAlone: Record<string, number> = {};
  beforeAll(async () => {
    const { caps } = await testGpu();
    const solo = compileModel(model, { caps, ...GPU_MODEL_DEFAULTS, ...opts });
    fusedAlone = fusions(solo.graphs.decode, 1);
    alone = await aloneOnCpu(model, opts, prompts.slice(0, Math.max(...batches)), STEPS);
  });

  it.each(batches)('B = %i equals B single-sequence runs', async (B) => {
    const m = await gpuModel(model, { ...opts, batch: B });
    if (B > 1) {
      const batched = m.compiled.graphs.decode.nodes.filter((n) => 'batch' in n.attrs);
      const ops = new Set(batched.map((n) => n.attrs.op));
      expect(ops).toContain('attention');
      if (model.layers[0].mixer?.kind === 'mamba1') expect(ops).toContain('mamba1_step');
      const m0 = model.layers[0].mixer;
      if (m0?.kind === 'mamba2') expect(ops).toContain('ssd');
      if (m0?.kind === 'mamba2' && !m0.projBias)
        expect(batched.some((n) => n.attrs.op === 'ssd' && n.attrs.row)).toBe(true);
      const kinds = new Set<string | undefined>(model.layers.map((l) => l.mixer?.kind));
      if (['gated_deltanet', 'rwkv7', 'retnet', 'gla'].some((k) => kinds.has(k)))
        expect(ops).toContain('linear_recurrence');
      if (kinds.has('rwkv7')) expect(ops).toContain('token_shift');
      // RetNet's RoPE rotates inside its recurrence, every row at the step's position.
      const rotating = batched.filter(
        (n) => n.attrs.op === 'linear_recurrence' && n.attrs.prologue?.rope,
      );
      expect(rotating.length).toBe(kinds.has('retnet') ? 1 : 0);
      // The decode fusions of one sequence stay, batched: q/k/v + RoPE + KV append one matmul
      // writing each row's own slice; Mamba-1's in_proj with its conv epilogue, each row
      // shifting its own conv state; the recurrences with their prologues (l2 norms, gates).
      const fused = fusions(m.compiled.graphs.decode, B);
      expect(fused).toEqual(fusedAlone);
      // (Gated attention's q/k norms sit between its projection and RoPE, and MLA ropes its
      // latent key apart from the cache write: nothing to fuse there.)
      if (!kinds.has('gated_deltanet') && !kinds.has('mla'))
        expect(fused.ropeKv).toBeGreaterThan(0);
      const mambas = model.layers.filter((l) => l.mixer?.kind === 'mamba1').length;
      if (mambas > 0) expect(fused.conv).toBe(mambas);
    }
    const batch = new BatchSequence(m.gm);
    const got = await batch.generate(prompts.slice(0, B), { maxTokens: STEPS, logits: true });
    expectBatchMatchesAlone(got, alone.slice(0, B), STEPS);
    expect(got.stops).toEqual(Array(B).fill('max-tokens'));
    batch.destroy();
    m.gm.destroy();
  });
});

describe('batched references (src/ops/batch.ts) on the CPU interpreter', () => {
  // The batched graph's references (each op's single-sequence reference run per row, and the
  // fused matmul's batched RoPE + append) against one-sequence decode graphs, token by token.
  it.each([
    ['tiny llama', tinyLlama()],
    ['hybrid', hybrid()],
    ['mamba2 hybrid', hybrid2()],
    ['gated DeltaNet hybrid', deltanetHybrid()],
    ['RWKV-7 hybrid', rwkv7Hybrid()],
    ['RetNet, GLA, linear attention', linear],
  ])('%s: a batch of 3 equals 3 sequences alone', async (_, model) => {
    const { caps } = await testGpu();
    const weights = randomWeights(model, 3);
    const opts = { caps, maxT: 16, capacity: 96 };
    const batched = compileModel(model, { ...opts, batch: 3 }).graphs.decode;
    const single = compileModel(model, opts).graphs.decode;
    const cpuB = await Interpreter.create(batched, weights);
    const cpu1 = await Interpreter.create(single, weights);
    const stateB = cpuB.newState();
    const states = [0, 1, 2].map(() => cpu1.newState());
    const V = model.vocab;
    for (let pos = 0; pos < 6; pos++) {
      const ids = Uint32Array.from([0, 1, 2], (s) => prompts[s][pos % prompts[s].length]);
      const got = cpuB.step(ids, pos, 3, stateB);
      for (let s = 0; s < 3; s++) {
        const want = cpu1.step(ids.subarray(s, s + 1), pos, 1, states[s]);
        expect(maxRelError(got.logits.subarray(s * V, (s + 1) * V), want.logits)).toBeLessThan(
          1e-6,
        );
      }
    }
  });
});

describe('batched decode limits and sampling', () => {
  it('samples sequence s as one sequence seeded seed + s, whatever the prompt lengths', async () => {
    const model = hybrid();
    // Each prompt is prefilled into its slot, so its kth token is draw k as alone.
    const same = [4, 2, 6].map((n, i) => Array.from(randInts(n, 250, 60 + i)));
    const opts = { maxTokens: 4, temperature: 0.9, seed: 11 };
    const m = await gpuModel(model, { batch: 3 });
    const got = await new BatchSequence(m.gm).generate(same, opts);
    const one = await gpuModel(model);
    const seq = one.gm.newSequence();
    for (let s = 0; s < 3; s++) {
      seq.reset();
      const alone: number[] = [];
      for await (const t of seq.generate(same[s], { ...opts, seed: 11 + s })) alone.push(t);
      expect(got.tokens[s]).toEqual(alone);
    }
    one.gm.destroy();
    m.gm.destroy();
  });

  it('refuses more prompts than the batch, naming the limit', async () => {
    const m = await gpuModel(tinyLlama(), { batch: 4 });
    const batch = new BatchSequence(m.gm);
    await expect(batch.generate(prompts.concat([[1, 2]]), { maxTokens: 2 })).rejects.toThrow(
      /5 prompts exceed the bundle's batch of 4 sequences \(compile with --batch 5/,
    );
    expect(() => m.gm.newSequence()).toThrow(/BatchSequence/);
    m.gm.destroy();
  });

  it('names the layer and op a batched build has no kernel for', () => {
    // Every lowering's stateful op has a batched kernel now (H2O, NSA and the DSA indexer were
    // the last, test/model/batch-sparse.test.ts); an op keeping state without one is refused
    // where it is added rather than sharing one state among the sequences.
    const b = new GraphBuilder('decode', 2, 64, 'f32', 2, true, 2);
    b.layer = 1;
    const state = b.state('extra.state.1', [4, 8]);
    expect(() =>
      b.op(
        { op: 'head_matmul', heads: 2, N: 4, K: 4, wLayout: 'kn' },
        'extra',
        { x: b.tensor('x', ['T', 8], 'input'), w: state },
        { out: { name: 'y', shape: ['T', 8] } },
      ),
    ).toThrow(
      /layer 1 \(extra\): batched decode \(--batch 2\) has no kernel for head_matmul, which keeps state 'extra\.state\.1'/,
    );
  });

  it('keeps one-sequence bundles as they were: no batch attrs, decode maxT 1', async () => {
    const { caps } = await testGpu();
    const c = compileModel(hybrid(), { caps, maxT: 16, capacity: 96 });
    expect(c.graphs.decode.maxT).toBe(1);
    expect(c.graphs.decode.nodes.some((n) => 'batch' in n.attrs)).toBe(false);
    const b = compileModel(hybrid(), { caps, maxT: 16, capacity: 96, batch: 4 });
    const kv = b.state.find((s) => s.name === 'cache.k.1')!;
    expect(kv.shape).toEqual([4 * 96, 2 * 16]);
  });
});

describe('memory per sequence and the largest batch (inspect, explore)', () => {
  // Sizes where the hybrid's smaller cache shows: 8 layers, half Mamba-1, long context.
  const big = (m: ModelIR): ModelIR => ({ ...m, maxContext: 8192 });
  const llama = big(tinyLlama({}, 4));
  const hy = big(hybrid());
  const at = (m: ModelIR, batch: number) =>
    report(compileModel(m, { caps: NOMINAL_CAPS, capacity: 8192, batch }));

  it('reports per sequence whatever the batch a build holds', () => {
    const one = at(hy, 1);
    const four = at(hy, 4);
    expect(four.batch).toBe(4);
    expect(four.stateBytesPerSequence).toBe(one.stateBytesPerSequence);
    expect(four.recurrentStateBytes).toBe(one.recurrentStateBytes);
    expect(four.kvBytesPerToken).toBe(one.kvBytesPerToken);
  });

  it('fits more hybrid sequences than llama ones in a budget at long contexts', () => {
    const l = at(llama, 1).batchFit.find((f) => f.context === 8192)!;
    const h = at(hy, 1).batchFit.find((f) => f.context === 8192)!;
    // Half the attention layers: half the KV per token, plus the Mamba states.
    expect(h.bytesPerSequence).toBeLessThan(l.bytesPerSequence);
    expect(h.maxBatch['4GiB']).toBeGreaterThan(l.maxBatch['4GiB']);
    const budget = 2 ** 30;
    const r = at(llama, 1);
    expect(maxBatch(budget, r.parameterBytes, r.layers, r.recurrentStateBytes, 8192)).toBe(
      Math.floor((budget - r.parameterBytes) / l.bytesPerSequence),
    );
  });

  it('explore gives the largest batch by budget and context', () => {
    const f = (m: ModelIR) =>
      compileFigures(
        m,
        { precision: 'f32', kv: 'f32', capacity: 8192 },
        { contexts: [8192], batch: 1, budgets: MEMORY_BUDGETS, roofline: ROOFLINE },
      );
    expect(f(hy).maxBatch['4GiB'][8192]).toBeGreaterThan(f(llama).maxBatch['4GiB'][8192]);
  });
});
