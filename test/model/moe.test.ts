/**
 * A whole MoE model (specs/tiny-moe.strata: dense first layer, softmax-routed experts with a
 * sigmoid-gated shared expert, a DeepSeek-V3-routed layer) and a Jamba-shaped Mamba-1 + MoE
 * model (specs/jamba-tiny-moe.strata) on WebGPU against the CPU interpreter, prefill and decode;
 * expert weights split over bindings; the expert-load counters; and the inspect report's active
 * parameters and FLOPs.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { compileModel } from '../../codegen/compile.ts';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { parseSpec } from '../../src/spec/load.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { report } from '../../src/cli/report.ts';
import { expertLoads } from '../../src/cli/run-report.ts';
import { testGpu } from '../helpers/gpu.ts';
import {
  expectFusedMatchesUnfused,
  expectMatchesInterpreter,
  gpuModel,
} from '../helpers/compare.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';
import { attention, mlp, moe, tinyLlama } from '../helpers/models.ts';

const TOL = 1e-4;
const MODEL = parseSpec(readFileSync('specs/tiny-moe.strata', 'utf8'), 'tiny-moe.strata');

describe('tiny MoE model on WebGPU vs the CPU interpreter', () => {
  it('prefill logits, 12 greedy decode steps and the expert-load counters match', async () => {
    const { compiled, weights, gm } = await gpuModel(MODEL);
    const decodeLabels = compiled.graphs.decode.nodes.map((n) => n.attrs.op);
    // Decode needs no grouping: each of the k pairs reads its own expert.
    expect(decodeLabels).not.toContain('moe_group');
    expect(compiled.graphs.prefill.nodes.map((n) => n.attrs.op)).toContain('moe_group');

    const { seq, state } = await expectMatchesInterpreter(
      { compiled, weights, gm },
      randInts(13, MODEL.vocab, 3),
      12,
      TOL,
    );
    const loads = await expertLoads(seq);
    expect(loads.map((l) => l.layer)).toEqual([1, 2, 3]);
    for (const { layer, load } of loads) {
      const f = MODEL.layers[layer]!.ffn!;
      const k = f.kind === 'moe' ? f.topK : 0;
      expect(load.total).toBe(25 * k);
      expect(load.counts).toEqual(Array.from(state.get(`moe.load.${layer}`)!));
      expect(load.maxOverMean).toBeGreaterThanOrEqual(1);
    }
  });

  it('expert weights over the binding limit are split by experts and give the same logits', async () => {
    const gpu = await testGpu();
    // 64 KiB: the embedding and dense weights still fit; every expert projection splits.
    const caps = { ...gpu.caps, maxStorageBindingBytes: 64 * 1024 };
    const split = await gpuModel(MODEL, { caps });
    const names = split.compiled.params.map((p) => p.name);
    expect(names).toContain('model.layers.1.mlp.experts.gate_up_proj.weight#experts2');
    expect(names.filter((n) => n.includes('#experts')).length).toBeGreaterThanOrEqual(8);
    const whole = await gpuModel(MODEL);
    const ids = Array.from(randInts(11, MODEL.vocab, 2));
    const a = await split.gm.newSequence().forward(ids);
    const b = await whole.gm.newSequence().forward(ids);
    expect(maxRelError(a.logits, b.logits)).toBeLessThan(TOL);
    // The split graph on the CPU: each expert range fills only its own rows.
    const cpu = await Interpreter.create(split.compiled.graphs.prefill, split.weights);
    const c = cpu.step(Uint32Array.from(ids), 0, ids.length, cpu.newState());
    expect(maxRelError(a.logits, c.logits)).toBeLessThan(TOL);
    // Decode through the split graph too.
    const seq = split.gm.newSequence();
    await seq.forward(ids);
    const d = await seq.next([5], GREEDY, true);
    const seqWhole = whole.gm.newSequence();
    await seqWhole.forward(ids);
    const e = await seqWhole.next([5], GREEDY, true);
    expect(maxRelError(d.logits!, e.logits!)).toBeLessThan(TOL);
  });

  it('unfused and fused compilations agree; chunked prefill equals one chunk', async () => {
    const ids = Array.from(randInts(21, MODEL.vocab, 9));
    const { logits } = await expectFusedMatchesUnfused(MODEL, ids, TOL, { maxT: 32 });
    const chunked = await gpuModel(MODEL, { maxT: 8 });
    const c = await chunked.gm.newSequence().forward(ids);
    expect(maxRelError(logits, c.logits)).toBeLessThan(TOL);
  });
});

describe('a Jamba-shaped model: Mamba-1 mixers with MoE FFNs', () => {
  it('prefill and decode match the interpreter, tokens identical', async () => {
    const model = parseSpec(
      readFileSync('specs/jamba-tiny-moe.strata', 'utf8'),
      'jamba-tiny-moe.strata',
    );
    const { compiled, weights, gm } = await gpuModel(model);
    const prefill = await Interpreter.create(compiled.graphs.prefill, weights);
    const decode = await Interpreter.create(compiled.graphs.decode, weights);
    const state = prefill.newState();
    const prompt = randInts(11, model.vocab, 4);
    const cpu = prefill.step(prompt, 0, prompt.length, state);
    const seq = gm.newSequence();
    const g = await seq.forward(prompt);
    expect(maxRelError(g.logits, cpu.logits)).toBeLessThan(TOL);
    expect(g.token).toBe(cpu.token);
    let tok = cpu.token;
    for (let i = 0; i < 6; i++) {
      const c = decode.step(Uint32Array.of(tok), prompt.length + i, 1, state);
      const r = await seq.next([tok], GREEDY, true);
      expect(maxRelError(r.logits!, c.logits)).toBeLessThan(TOL);
      expect(r.token).toBe(c.token);
      tok = c.token;
    }
  });
});

describe('a GPT-OSS-shaped model: sinks, sliding/full, untruncated YaRN, clamped biased experts', () => {
  it('prefill past the window and decode match the interpreter, tokens identical', async () => {
    const model = parseSpec(
      `model "tiny-gpt-oss" {
        vocab 256
        dim 48
        max_context 256
        norm rms(eps: 1e-5)
        mixer sliding = attention(heads: 6, kv_heads: 2, head_dim: 8, qkv_bias: true,
          out_bias: true, window: 7, sinks: true,
          rope: rope(theta: 150000, scaling: yarn(factor: 32, original_max_positions: 64,
                                                  truncate: false)))
        mixer full = attention(heads: 6, kv_heads: 2, head_dim: 8, qkv_bias: true,
          out_bias: true, sinks: true,
          rope: rope(theta: 150000, scaling: yarn(factor: 32, original_max_positions: 64,
                                                  truncate: false)))
        ffn moe = moe(experts: 5, top_k: 2, expert: swiglu(hidden: 24, bias: true),
          router: softmax(bias: true), clamp: clamp(limit: 7))
        layers 2 x [sliding, full] with ffn moe
      }`,
      'tiny-gpt-oss.strata',
    );
    const loaded = await gpuModel(model, { maxT: 32 });
    await expectMatchesInterpreter(loaded, randInts(19, model.vocab, 11), 10, TOL);
    loaded.gm.destroy();
  });
});

describe('inspect counts only the active experts', () => {
  const D = 64;
  const H = 256;
  const oneLayer = (ffn: ModelIR['layers'][number]['ffn']): ModelIR =>
    tinyLlama({
      dim: D,
      vocab: 64,
      layers: [
        {
          index: 0,
          mixerName: 'attn',
          mixer: attention({ headDim: 16 }),
          ffnName: 'f',
          ffn,
        },
      ],
    });
  const expert = mlp({ hidden: H });
  const moeModel = oneLayer(moe({ experts: 64, topK: 2, expert }));
  // All 64 experts evaluated densely: one MLP 64 times as wide.
  const denseModel = oneLayer(mlp({ hidden: 64 * H }));
  const opts = { caps: BASELINE_CAPS, maxT: 16, capacity: 64 };

  it('a 64-expert top-2 layer costs 2/64 of all experts (within 10%)', () => {
    const moe = report(compileModel(moeModel, opts));
    const dense = report(compileModel(denseModel, opts));
    const ratio = moe.ffn[0]!.flopsPerToken / ((2 / 64) * dense.ffn[0]!.flopsPerToken);
    expect(moe.ffn[0]).toMatchObject({ kind: 'moe', experts: 64, topK: 2 });
    expect(ratio).toBeGreaterThan(0.9);
    expect(ratio).toBeLessThan(1.1);
    // The whole-model figures follow: the dense model does far more work per token.
    expect(moe.flopsPerToken).toBeLessThan(dense.flopsPerToken / 10);
    // Prefill's expert matmuls count the selected pairs only, like decode.
    const ratioPrefill = moe.prefill.flops / dense.prefill.flops;
    expect(ratioPrefill).toBeLessThan(0.1);
  });

  it('reports total and active parameters', () => {
    const r = report(compileModel(moeModel, opts));
    const perExpert = 3 * H * D;
    expect(r.parameters - r.activeParameters).toBe(62 * perExpert);
    const d = report(compileModel(denseModel, opts));
    expect(d.activeParameters).toBe(d.parameters);
  });
});
