/**
 * Models compiled with f16 KV caches (kv 'f16'): on WebGPU against the CPU interpreter of the
 * same graphs, and against the f32-cache build of the same weights.
 *
 * GPU vs interpreter: both store the same f16 halves of k and v, rounded to nearest even from
 * f32 values that differ only by summation order (~1e-6 relative), so the caches agree except
 * for the rare element whose value sits within that distance of a rounding boundary and lands on
 * the neighbouring half (one f16 step, at most 2^-10 of the element, for ~1e-3 of the elements).
 * Such a step moves a score by far less than the f32 error already budgeted, so the f32
 * whole-model tolerance, max relative error 1e-4 on logits, stays the bound. Measured on this
 * model (SwiftShader, 13-token prompt + 32 steps): 1.4e-5 (f32 caches: 4.5e-7), with 15 of
 * 8640 cache halves one step apart (fused); unfused, a few near-zero values (|v| ~ 1e-4, where
 * the f32 values' absolute difference spans several f16 steps) differ by up to 5 steps.
 *
 * f16 vs f32 caches: every k and v is off by at most half an f16 step, 2^-11 ≈ 4.9e-4 relative;
 * a score q·k over hd terms and the weighted sum of v rows inherit about that relative error
 * (errors of random sign partly cancel), and the residual stream carries it to the logits. So
 * the logits of the two builds may differ by a few 1e-4 relative; the bound used is 2e-3
 * (4 × 2^-11), and greedy tokens agree where no two logits are that close. Measured: 2.7e-4,
 * and the same 25 greedy tokens.
 */
import { describe, expect, it } from 'vitest';
import { compileModel, stateBytes } from '../../codegen/compile.ts';
import { report } from '../../src/cli/report.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { attention, rwkv7Hybrid, tinyLlama } from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

const TOL = 1e-4;
const KV_TOL = 2e-3;

/** Layers: plain GQA, a sliding window of 5 with attention sinks, GQA with qk norm. */
function model() {
  const m = tinyLlama({}, 3);
  m.layers[1].mixer = attention({ window: 5, sinks: true });
  m.layers[2].mixer = attention({ kvHeads: 1, qkNorm: true });
  return m;
}

describe('f16 KV caches on WebGPU vs the CPU interpreter', () => {
  it('fused (QKV + RoPE + append into f16): prefill and 32 greedy decode steps match', async () => {
    const m = await gpuModel(model(), { kv: 'f16' });
    const g = m.compiled.graphs.decode;
    const caches = g.tensors.filter((t) => t.kind === 'state' && t.name.startsWith('cache.'));
    expect(caches.length).toBe(6);
    expect(caches.every((t) => t.dtype === 'f16')).toBe(true);
    // The fusion carried the cache type into the matmul epilogue (the shape check holds it).
    const fused = g.nodes.filter((n) => n.attrs.op === 'matmul' && n.attrs.ropeKv);
    expect(fused.length).toBeGreaterThan(0);
    await expectMatchesInterpreter(m, randInts(13, 260, 3), 32, TOL);
  });

  it('unfused (kv_write into f16): prefill in chunks and 20 decode steps match', async () => {
    const m = await gpuModel(model(), { kv: 'f16', fuse: false, maxT: 8 });
    expect(m.compiled.graphs.prefill.nodes.some((n) => n.attrs.op === 'kv_write')).toBe(true);
    await expectMatchesInterpreter(m, randInts(21, 260, 4), 20, TOL, 8);
  });
});

describe('f16 vs f32 KV caches', () => {
  it('logits within 2e-3 and the same greedy tokens over 24 steps', async () => {
    const f32 = await gpuModel(model());
    const f16 = await gpuModel(model(), { kv: 'f16' });
    const prompt = Array.from(randInts(11, 260, 9));
    const a = f32.gm.newSequence();
    const b = f16.gm.newSequence();
    let ra = await a.forward(prompt);
    let rb = await b.forward(prompt);
    const errs = [maxRelError(rb.logits, ra.logits)];
    const ta = [ra.token];
    const tb = [rb.token];
    for (let i = 0; i < 24; i++) {
      const ga = await a.next([ta[ta.length - 1]], GREEDY, true);
      const gb = await b.next([tb[tb.length - 1]], GREEDY, true);
      errs.push(maxRelError(gb.logits!, ga.logits!));
      ta.push(ga.token);
      tb.push(gb.token);
    }
    console.log(`f16 vs f32 caches: max logit rel error ${Math.max(...errs).toExponential(2)}`);
    expect(Math.max(...errs)).toBeLessThan(KV_TOL);
    expect(tb).toEqual(ta);
  });
});

describe('f16 KV cache sizes and checks', () => {
  it('halve the caches in stateBytes and the inspect report', () => {
    const opts = { caps: BASELINE_CAPS, maxT: 8, capacity: 64 };
    const m = tinyLlama({}, 2);
    const a = compileModel(m, opts);
    const b = compileModel(m, { ...opts, kv: 'f16' });
    // 2 layers × (k + v) × capacity 64 × kv width 2·16.
    expect(stateBytes(a)).toBe(2 * 2 * 64 * 32 * 4);
    expect(stateBytes(b)).toBe(2 * 2 * 64 * 32 * 2);
    expect(report(a).kvBytesPerToken).toBe(2 * 2 * 32 * 4);
    expect(report(b).kvBytesPerToken).toBe(2 * 2 * 32 * 2);
    expect(report(b).stateBytesPerSequence).toBe(stateBytes(b));
  });

  it('leave recurrent state f32', () => {
    const c = compileModel(rwkv7Hybrid(), {
      caps: BASELINE_CAPS,
      maxT: 4,
      capacity: 16,
      kv: 'f16',
    });
    const states = c.graphs.decode.tensors.filter((t) => t.kind === 'state');
    const caches = states.filter((t) => t.name.startsWith('cache.'));
    expect(caches.length).toBe(4);
    expect(caches.every((t) => t.dtype === 'f16')).toBe(true);
    expect(states.length).toBeGreaterThan(caches.length);
    expect(states.every((t) => t.name.startsWith('cache.') || t.dtype === 'f32')).toBe(true);
  });

  it('refuse odd head widths at compile time, naming the node', () => {
    const m = tinyLlama({}, 1);
    m.layers[0].mixer = attention({ headDim: 15, rope: null });
    const opts = { caps: BASELINE_CAPS, maxT: 4, capacity: 16 };
    expect(() => compileModel(m, opts)).not.toThrow();
    expect(() => compileModel(m, { ...opts, kv: 'f16' })).toThrow(
      /node 'l0.attn attention': attention: kvType 'f16' stores element pairs in u32 words and needs an even headDim, got 15/,
    );
  });
});

const MLA = parseSpec(
  `model "tiny-mla-even" {
  vocab 70
  dim 40
  max_context 128
  norm rms(eps: 1e-5)
  mixer plain = mla(heads: 3, kv_rank: 12, nope_dim: 6, rope_dim: 4, v_dim: 14, rope_pairs: half, bias: true)
  mixer lora  = mla(heads: 5, q_rank: 18, kv_rank: 10, nope_dim: 8, rope_dim: 6, v_dim: 10)
  ffn   mlp   = swiglu(hidden: 36)
  layers [plain, lora] with ffn mlp
}`,
  'tiny-mla-even.strata',
);

describe('MLA with f16 KV caches', () => {
  it('column writes into f16 caches: prefill and 8 decode steps match the interpreter', async () => {
    const m = await gpuModel(MLA, { kv: 'f16', maxT: 24 });
    await expectMatchesInterpreter(m, randInts(19, MLA.vocab, 5), 8, TOL);
  });

  it('an odd nope_dim is fine in the latent cache and refused in the expanded one under kv f16', () => {
    const odd = `model "odd" {
  vocab 70
  dim 40
  max_context 128
  norm rms(eps: 1e-5)
  mixer m = mla(heads: 2, kv_rank: 10, nope_dim: 7, rope_dim: 6, v_dim: 6, cache: CACHE)
  ffn   f = swiglu(hidden: 36)
  layers [m] with ffn f
}`;
    const opts = { caps: BASELINE_CAPS, maxT: 4, capacity: 16 };
    const latent = parseSpec(odd.replace('CACHE', 'latent'), 'odd.strata');
    const expanded = parseSpec(odd.replace('CACHE', 'expanded'), 'odd.strata');
    // The latent cache's rows are kv_rank + rope_dim wide: nope_dim is no cache width.
    expect(() => compileModel(latent, { ...opts, kv: 'f16' })).not.toThrow();
    expect(() => compileModel(expanded, opts)).not.toThrow();
    expect(() => compileModel(expanded, { ...opts, kv: 'f16' })).toThrow(/kvType 'f16'.*even/);
  });
});
