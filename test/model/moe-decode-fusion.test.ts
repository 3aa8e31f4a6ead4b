/**
 * Decode fusion of MoE FFNs (src/passes/fuse-moe.ts) and of attention without RoPE
 * (src/passes/fuse-attn.ts): dispatches per sublayer pinned; the fused decode graph equal to the
 * unfused one on the CPU interpreter over several steps; fused builds on WebGPU (SwiftShader)
 * against the interpreter for odd expert counts, top-k and widths, a folded shared expert with
 * and without its gate, DeepSeek-V3 routing, LayerNorm, experts split over bindings, and
 * batched decode steps of 5 and 16 rows (past MOE_INLINE_MAX_ROWS: small experts fuse at any
 * batch whose rereads stay within MOE_INLINE_REREAD_BYTES, large ones do not).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { compileModel } from '../../codegen/compile.ts';
import type { Dispatch } from '../../codegen/emit.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { parseSpec } from '../../src/spec/load.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { BASELINE_CAPS, NOMINAL_CAPS } from '../../src/target.ts';
import {
  MOE_INLINE_MAX_ROWS,
  MOE_INLINE_REREAD_BYTES,
  moeInlineRereadBytes,
} from '../../src/passes/fuse-moe.ts';
import { BatchSequence } from '../../runtime/batch.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

const TOL = 1e-4;

const JAMBA = parseSpec(readFileSync('specs/jamba-tiny-moe.strata', 'utf8'), 'jamba-tiny-moe');

/**
 * Odd sizes everywhere: dim 45 (no vec4 loads), 7 experts top 3 of hidden 21, a gated shared
 * expert twice as wide (folded in as two experts), a softmax without renormalisation, LayerNorm
 * with bias, attention without RoPE; a second FFN routed DeepSeek-V3 style with 12 experts in 4
 * groups and a shared expert of their width without gate (folded in as one, weight 1).
 */
// Gemma 4's router: a per-expert scale on each selected weight.
const EXPERT_SCALE = parseSpec(
  `model "expert-scale" {
    vocab 97
    dim 32
    max_context 64
    norm rms(eps: 1e-6)
    mixer attn = attention(heads: 2, kv_heads: 1, head_dim: 16, rope: none)
    ffn a = moe(experts: 4, top_k: 2, expert: swiglu(hidden: 16),
                router: softmax(expert_scale: true))
    layers 1 x [attn] with ffn [a]
  }`,
  'expert-scale.strata',
);

const ODD = parseSpec(
  `model "odd-moe" {
    vocab 97
    dim 45
    max_context 128
    norm layer(eps: 1e-5, bias: true)
    mixer attn = attention(heads: 3, kv_heads: 1, head_dim: 10, rope: none)
    ffn a = moe(experts: 7, top_k: 3, expert: swiglu(hidden: 21),
                shared: swiglu(hidden: 42), shared_gate: true, router: softmax(normalize: false))
    ffn b = moe(experts: 12, top_k: 3, expert: swiglu(hidden: 20), shared: swiglu(hidden: 20),
                router: sigmoid(correction_bias: true, groups: 4, topk_groups: 2, scale: 2.5))
    layers 2 x [attn] with ffn [a, b]
  }`,
  'odd-moe.strata',
);

/** Decode dispatches per sublayer ("l3.moe" → n), from the launches' node labels. */
function perSublayer(dispatches: Dispatch[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of dispatches) {
    const m = /^(l\d+\.[a-z_0-9]+)/.exec(d.label);
    if (m) out[m[1]] = (out[m[1]] ?? 0) + 1;
  }
  return out;
}

/** Graph nodes per sublayer in the decode graph (the attention op may take two launches). */
function nodesPerSublayer(model: ModelIR, batch = 1): Record<string, number> {
  const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 16, capacity: 64, batch });
  return perSublayer(c.graphs.decode.nodes.map((n) => ({ label: n.label }) as Dispatch));
}

describe('decode dispatches per sublayer', () => {
  it('jamba-tiny-moe: Mamba 3, MLP 2, MoE 3, attention without RoPE 3 nodes', () => {
    expect(nodesPerSublayer(JAMBA)).toEqual({
      'l0.mamba': 3,
      'l0.mlp': 2,
      'l1.mamba': 3,
      'l1.moe': 3,
      'l2.attn': 3,
      'l2.mlp': 2,
      'l3.mamba': 3,
      'l3.moe': 3,
    });
    const c = compileModel(JAMBA, { caps: BASELINE_CAPS, maxT: 16, capacity: 64 });
    const launches = perSublayer(c.phases.decode.dispatches);
    expect(launches['l1.moe']).toBe(3);
    expect(launches['l3.moe']).toBe(3);
    // Prefill keeps the grouped form: route, group and the tiled expert matmuls.
    const ops = c.graphs.prefill.nodes.map((n) => n.attrs.op);
    expect(ops).toContain('moe_group');
    expect(ops).toContain('moe_combine');
  });

  it('shared experts of the routed width or a multiple fold in: 3 per MoE layer, batched too', () => {
    for (const batch of [1, 3]) {
      const n = nodesPerSublayer(ODD, batch);
      expect(n['l0.moe']).toBe(3);
      // A biased LayerNorm (2 bindings) and the correction bias would make gate_up bind 9
      // buffers with the norm folded in, over WebGPU's 8: the norm keeps its own dispatch.
      expect(n['l1.moe']).toBe(4);
      expect(n['l0.attn']).toBe(3);
    }
  });

  it("folds moe_route into gate_up with Gemma 4's per-expert scales", () => {
    const model = EXPERT_SCALE;
    const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 16, capacity: 64 });
    const nodes = c.graphs.decode.nodes;
    expect(nodes.some((n) => n.attrs.op === 'moe_route')).toBe(false);
    expect(
      nodes.some((n) => n.attrs.op === 'moe_matmul' && n.attrs.route?.expertScale === true),
    ).toBe(true);
  });
});

describe('fused decode graph = unfused on the CPU interpreter', () => {
  // The load counts compared: those of the model's last MoE layer.
  for (const [name, model, load] of [
    ['jamba-tiny-moe', JAMBA, 'moe.load.1'],
    ['odd-moe', ODD, 'moe.load.1'],
    ['expert-scale', EXPERT_SCALE, 'moe.load.0'],
  ] as const) {
    it(`${name}: prefill, then 6 decode steps, logits alike`, async () => {
      const weights = randomWeights(model, 3);
      const run = async (fuse: boolean) => {
        const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 16, capacity: 64, fuse });
        const prefill = await Interpreter.create(c.graphs.prefill, weights);
        const decode = await Interpreter.create(c.graphs.decode, weights);
        const state = prefill.newState();
        const prompt = randInts(7, model.vocab, 5);
        const out = [prefill.step(prompt, 0, prompt.length, state).logits];
        for (let i = 0; i < 6; i++) {
          const tok = Uint32Array.of((i * 37 + 11) % model.vocab);
          out.push(decode.step(tok, prompt.length + i, 1, state).logits);
        }
        return { out, load: state.get(load) };
      };
      const fused = await run(true);
      const plain = await run(false);
      for (let i = 0; i < fused.out.length; i++)
        expect(maxRelError(fused.out[i], plain.out[i])).toBeLessThan(TOL);
      expect(Array.from(fused.load!)).toEqual(Array.from(plain.load!));
    });
  }
});

describe('fused MoE decode on WebGPU vs the interpreter', () => {
  it('odd sizes, folded shared experts, DeepSeek-V3 routing, LayerNorm, no RoPE', async () => {
    const m = await gpuModel(ODD, { maxT: 16, capacity: 64 });
    const labels = m.compiled.graphs.decode.nodes.map((n) => n.label);
    expect(labels).toContain('l0.moe experts.down+combine');
    expect(labels).toContain('l0.attn qkv+append (norm fused)');
    await expectMatchesInterpreter(m, randInts(9, ODD.vocab, 4), 5, TOL);
    m.gm.destroy();
  });

  it("Gemma 4's per-expert scales in the inline routing", async () => {
    const m = await gpuModel(EXPERT_SCALE, { maxT: 16, capacity: 64 });
    expect(m.compiled.graphs.decode.nodes.some((n) => n.attrs.op === 'moe_route')).toBe(false);
    await expectMatchesInterpreter(m, randInts(5, EXPERT_SCALE.vocab, 4), 4, TOL);
    m.gm.destroy();
  });

  it('experts split over bindings: routing and shared expert on the right parts', async () => {
    const gpu = await testGpu();
    // 16 KiB: every expert projection splits, into parts of two to four experts.
    const caps = { ...gpu.caps, maxStorageBindingBytes: 16 * 1024 };
    const m = await gpuModel(ODD, { caps, maxT: 16, capacity: 64 });
    const parts = m.compiled.graphs.decode.nodes.filter((n) => /down\+combine \[/.test(n.label));
    expect(parts.length).toBeGreaterThan(4);
    await expectMatchesInterpreter(m, randInts(9, ODD.vocab, 6), 3, TOL);
    m.gm.destroy();
  });
});

/** A MoE of large experts (25 MiB f32 each): a batch past MOE_INLINE_MAX_ROWS rereads too much. */
const WIDE = parseSpec(
  `model "wide-moe" {
    vocab 64
    dim 1024
    max_context 64
    norm rms(eps: 1e-6)
    mixer attn = attention(heads: 8, kv_heads: 8, rope: none)
    ffn moe = moe(experts: 16, top_k: 2, expert: swiglu(hidden: 2048))
    layers 1 x [attn] with ffn moe
  }`,
  'wide-moe.strata',
);

describe('batched decode past MOE_INLINE_MAX_ROWS', () => {
  const moeNodes = (model: ModelIR, batch: number) => {
    const c = compileModel(model, { caps: NOMINAL_CAPS, maxT: 16, capacity: 64, batch });
    return c.graphs.decode.nodes.filter((n) => /^l\d+\.moe/.test(n.label));
  };

  it('fuses small experts at 5, 16 and 64 rows; large ones up to 4', () => {
    for (const batch of [5, 16, 64]) {
      const n = nodesPerSublayer(JAMBA, batch);
      expect([n['l1.moe'], n['l3.moe']]).toEqual([3, 3]);
    }
    for (const batch of [5, 16]) {
      const n = nodesPerSublayer(ODD, batch);
      expect([n['l0.moe'], n['l1.moe']]).toEqual([3, 4]);
    }
    expect(moeNodes(WIDE, MOE_INLINE_MAX_ROWS).map((n) => n.attrs.op)).toEqual([
      'matmul',
      'moe_matmul',
      'moe_matmul',
    ]);
    expect(moeNodes(WIDE, 16).map((n) => n.attrs.op)).toContain('moe_group');
  });

  it('estimates rereads as B·k pairs against the experts picked at least once', () => {
    const c = compileModel(WIDE, { caps: NOMINAL_CAPS, maxT: 16, capacity: 64, fuse: false });
    const [gu, down] = c.graphs.decode.nodes.flatMap((n) =>
      n.attrs.op === 'moe_matmul' ? [n.attrs] : [],
    );
    const expert = 3 * 2048 * 1024 * 4;
    expect(moeInlineRereadBytes(gu, down, 1, 0)).toBeCloseTo(0, 0);
    // 16 experts, top 2, 16 rows: 32 pairs, 16·(1 − (7/8)^16) = 14.11 picked.
    expect(moeInlineRereadBytes(gu, down, 16, 0) / expert).toBeCloseTo(32 - 16 * (1 - 0.875 ** 16));
    // A folded shared expert is reread by every row after the first.
    expect(moeInlineRereadBytes(gu, down, 4, 1) - moeInlineRereadBytes(gu, down, 4, 0)).toBe(
      3 * expert,
    );
    expect(moeInlineRereadBytes(gu, down, 16, 0)).toBeGreaterThan(MOE_INLINE_REREAD_BYTES);
  });

  // Odd expert counts (7 top 3 + a gated shared expert twice as wide; 12 in 4 groups top 3 + a
  // shared one), each row its own token; every row at the same position, from empty caches.
  for (const B of [1, 5, 16])
    it(`the fused graph of ${B} rows computes the unfused one's logits (interpreter)`, async () => {
      const weights = randomWeights(ODD, 3);
      const run = async (fuse: boolean) => {
        const c = compileModel(ODD, {
          caps: BASELINE_CAPS,
          maxT: 16,
          capacity: 64,
          fuse,
          batch: B,
        });
        const dec = await Interpreter.create(c.graphs.decode, weights);
        const state = dec.newState();
        const out: Float32Array[] = [];
        for (let pos = 0; pos < 3; pos++) {
          const ids = Uint32Array.from(
            { length: B },
            (_, s) => (s * 29 + pos * 13 + 5) % ODD.vocab,
          );
          out.push(dec.step(ids, pos, B, state).logits);
        }
        return {
          out,
          load: state.get('moe.load.1'),
          routed: c.graphs.decode.nodes.some((n) => n.attrs.op === 'moe_matmul' && !!n.attrs.route),
        };
      };
      const fused = await run(true);
      const plain = await run(false);
      expect([fused.routed, plain.routed]).toEqual([true, false]);
      for (let i = 0; i < fused.out.length; i++)
        expect(maxRelError(fused.out[i], plain.out[i])).toBeLessThan(TOL);
      expect(Array.from(fused.load!)).toEqual(Array.from(plain.load!));
    });

  for (const B of [5, 16])
    it(`runs a fused step of ${B} rows on WebGPU as the interpreter computes it`, async () => {
      const gpu = await testGpu();
      const m = await gpuModel(ODD, { caps: gpu.caps, maxT: 16, capacity: 64, batch: B });
      const dec = m.compiled.graphs.decode;
      expect(dec.nodes.some((n) => n.attrs.op === 'moe_matmul' && !!n.attrs.route)).toBe(true);
      const cpu = await Interpreter.create(dec, m.weights);
      const state = cpu.newState();
      const batch = new BatchSequence(m.gm);
      for (let pos = 0; pos < 3; pos++) {
        const ids = Uint32Array.from({ length: B }, (_, s) => (s * 29 + pos * 13 + 5) % ODD.vocab);
        const want = cpu.step(ids, pos, B, state).logits;
        const got = await batch.step(ids, undefined, true);
        expect(maxRelError(got.logits!, want)).toBeLessThan(TOL);
      }
      batch.destroy();
      m.gm.destroy();
    });
});
