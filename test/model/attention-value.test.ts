/**
 * Gemma 4's value options of `attention(...)` (DiffusionGemma's layers): `value_from_key` (no
 * v_proj; the values are the raw key projection, before qk-norm and RoPE) and `value_norm` (a
 * weightless RMS norm per value head, lowered as an l2 norm with the √headDim folded into o_proj).
 * Checked against a hand-written forward on the interpreter, then WebGPU against the interpreter.
 */
import { describe, expect, it } from 'vitest';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { attention, tinyLlama } from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';
import { resolve, roundTrip } from '../spec/helpers.ts';

/** One attention layer, no rope, no FFN: small enough to write out by hand. */
function oneLayer(over: { valueFromKey?: boolean; valueNorm?: boolean }): ModelIR {
  const m = tinyLlama({ vocab: 20, dim: 12 }, 1);
  m.layers[0] = {
    ...m.layers[0],
    mixer: attention({
      heads: 2,
      kvHeads: 1,
      headDim: 4,
      rope: null,
      scale: 0.5,
      qkNorm: true,
      ...over,
    }),
    ffnName: null,
    ffn: null,
  };
  return m;
}

const rms = (x: number[], eps: number, w?: Float32Array) => {
  const r = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + eps);
  return x.map((v, i) => v * r * (w ? w[i] : 1));
};
const matvec = (w: Float32Array, x: number[], rows: number) =>
  Array.from({ length: rows }, (_, r) => x.reduce((a, v, c) => a + w[r * x.length + c] * v, 0));

/** The layer by hand: qk-normed causal attention over values = raw k, v-normed per head. */
async function byHand(m: ModelIR, w: (n: string) => Float32Array, ids: number[]) {
  const d = m.dim;
  const eps = m.norm.eps;
  const E = w('model.embed_tokens.weight');
  const p = 'model.layers.0';
  const xs = ids.map((id) => Array.from(E.subarray(id * d, (id + 1) * d)));
  const hs = xs.map((x) => rms(x, eps, w(`${p}.input_layernorm.weight`)));
  const qn = w(`${p}.self_attn.q_norm.weight`);
  const q = hs.map((h) => {
    const raw = matvec(w(`${p}.self_attn.q_proj.weight`), h, 8);
    return [...rms(raw.slice(0, 4), eps, qn), ...rms(raw.slice(4), eps, qn)];
  });
  const kRaw = hs.map((h) => matvec(w(`${p}.self_attn.k_proj.weight`), h, 4));
  const k = kRaw.map((row) => rms(row, eps, w(`${p}.self_attn.k_norm.weight`)));
  // The values: the raw keys (before k_norm), RMS-normed without a weight.
  const v = kRaw.map((row) => rms(row, eps));
  return xs.map((x, t) => {
    const o: number[] = [];
    for (let h = 0; h < 2; h++) {
      const s = k
        .slice(0, t + 1)
        .map((kr) => 0.5 * kr.reduce((a, kv, i) => a + kv * q[t][h * 4 + i], 0));
      const mx = Math.max(...s);
      const e = s.map((z) => Math.exp(z - mx));
      const z = e.reduce((a, b) => a + b, 0);
      for (let i = 0; i < 4; i++) o.push(e.reduce((a, ej, j) => a + (ej / z) * v[j][i], 0));
    }
    const y = matvec(w(`${p}.self_attn.o_proj.weight`), o, d).map((yi, i) => yi + x[i]);
    return matvec(E, rms(y, eps, w('model.norm.weight')), m.vocab);
  });
}

describe('attention value_from_key and value_norm', () => {
  it('round-trips through the DSL, present only when set', () => {
    const m = resolve(
      'mixer a = attention(heads: 2, head_dim: 16, value_from_key: true, value_norm: true)\nmixer b = attention(heads: 2)\nlayers [a, b]',
    );
    expect(m.layers[0].mixer).toMatchObject({ valueFromKey: true, valueNorm: true });
    expect(m.layers[1].mixer).not.toHaveProperty('valueFromKey');
    const text = roundTrip(m);
    expect(text).toContain('value_from_key: true');
    expect(text).toContain('value_norm: true');
    expect(text.match(/value_norm/g)).toHaveLength(1);
  });

  it('has no v_proj with value_from_key', () => {
    const names = expectedTensors(oneLayer({ valueFromKey: true })).map((t) => t.name);
    expect(names).toContain('model.layers.0.self_attn.k_proj.weight');
    expect(names).not.toContain('model.layers.0.self_attn.v_proj.weight');
  });

  it('computes what a hand-written forward does (interpreter)', async () => {
    const m = oneLayer({ valueFromKey: true, valueNorm: true });
    const weights = randomWeights(m, 5);
    const w = (n: string) => weights(n) as Float32Array;
    const ids = [3, 17, 8, 0, 11];
    const it = await Interpreter.create(
      lower(m, { phase: 'prefill', maxT: 8, capacity: 16 }),
      weights,
    );
    const got = it.step(Uint32Array.from(ids), 0, ids.length, it.newState()).logits;
    const want = (await byHand(m, w, ids)).flat();
    const rows = got.length / m.vocab;
    expect(maxRelError(got, Float32Array.from(want.slice(-rows * m.vocab)))).toBeLessThan(1e-5);
  });

  it('runs on WebGPU as in the interpreter (qk-norm and rope too)', async () => {
    const base = tinyLlama({}, 2);
    const model = tinyLlama({
      layers: base.layers.map((l) => ({
        ...l,
        mixer: attention({ qkNorm: true, valueFromKey: true, valueNorm: true }),
      })),
    });
    await expectMatchesInterpreter(await gpuModel(model), randInts(11, model.vocab, 4), 3, 1e-4);
  }, 300_000);
});
