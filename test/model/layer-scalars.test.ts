/**
 * `layer_scalars true` (ModelIR.layerScalars, Gemma 4's layer_scalar): each layer's output is
 * multiplied by its learned [1] parameter. Checked against a hand-written two-layer forward on the
 * interpreter (where the scalar changes how the second layer's residual mixes), then WebGPU
 * against the interpreter on a model with MLPs, where the fusion passes run.
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
import { HEADER, resolve, roundTrip } from '../spec/helpers.ts';

/** Two attention-only layers, no rope: small enough to write out by hand. */
function twoLayers(): ModelIR {
  const m = tinyLlama({ vocab: 20, dim: 8, layerScalars: true }, 2);
  m.layers = m.layers.map((l) => ({
    ...l,
    mixer: attention({ heads: 1, kvHeads: 1, headDim: 8, rope: null }),
    ffnName: null,
    ffn: null,
  }));
  return m;
}

const rms = (x: number[], eps: number, w: Float32Array) => {
  const r = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + eps);
  return x.map((v, i) => v * r * w[i]);
};
const matvec = (w: Float32Array, x: number[], rows: number) =>
  Array.from({ length: rows }, (_, r) => x.reduce((a, v, c) => a + w[r * x.length + c] * v, 0));

function byHand(m: ModelIR, w: (n: string) => Float32Array, ids: number[]): number[] {
  const d = m.dim;
  const eps = m.norm.eps;
  const E = w('model.embed_tokens.weight');
  let xs = ids.map((id) => Array.from(E.subarray(id * d, (id + 1) * d)));
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}`;
    const hs = xs.map((x) => rms(x, eps, w(`${p}.input_layernorm.weight`)));
    const q = hs.map((h) => matvec(w(`${p}.self_attn.q_proj.weight`), h, d));
    const k = hs.map((h) => matvec(w(`${p}.self_attn.k_proj.weight`), h, d));
    const v = hs.map((h) => matvec(w(`${p}.self_attn.v_proj.weight`), h, d));
    const s = w(`${p}.layer_scalar`)[0];
    xs = xs.map((x, t) => {
      const sc = k
        .slice(0, t + 1)
        .map((kr) => kr.reduce((a, kv, i) => a + kv * q[t][i], 0) / Math.sqrt(d));
      const mx = Math.max(...sc);
      const e = sc.map((z) => Math.exp(z - mx));
      const z = e.reduce((a, b) => a + b, 0);
      const o = Array.from({ length: d }, (_, i) =>
        e.reduce((a, ej, j) => a + (ej / z) * v[j][i], 0),
      );
      const y = matvec(w(`${p}.self_attn.o_proj.weight`), o, d);
      return x.map((xi, i) => (xi + y[i]) * s);
    });
  }
  const last = xs[xs.length - 1];
  return matvec(E, rms(last, eps, w('model.norm.weight')), m.vocab);
}

describe('layer_scalars', () => {
  it('is a model setting, printed and stored only when set', () => {
    const m = resolve(
      'mixer a = attention(heads: 4)\nlayers 2 x a',
      `${HEADER}\n  layer_scalars true`,
    );
    expect(m.layerScalars).toBe(true);
    expect(roundTrip(m)).toContain('layer_scalars true');
    expect(resolve('mixer a = attention(heads: 4)\nlayers 2 x a')).not.toHaveProperty(
      'layerScalars',
    );
    expect(expectedTensors(m).filter((t) => t.name.endsWith('layer_scalar'))).toEqual([
      { name: 'model.layers.0.layer_scalar', shape: [1] },
      { name: 'model.layers.1.layer_scalar', shape: [1] },
    ]);
  });

  it('scales each layer output (interpreter against a hand-written forward)', async () => {
    const m = twoLayers();
    const weights = randomWeights(m, 3);
    // Scalars far from 1, so that a missing or misplaced one shows.
    const w = (n: string) =>
      n.endsWith('layer_scalar')
        ? Float32Array.of(n.includes('.0.') ? 2.5 : 0.3)
        : (weights(n) as Float32Array);
    const ids = [4, 19, 7, 0, 12, 3];
    const it = await Interpreter.create(lower(m, { phase: 'prefill', maxT: 8, capacity: 16 }), w);
    const got = it.step(Uint32Array.from(ids), 0, ids.length, it.newState()).logits;
    const want = Float32Array.from(byHand(m, w, ids));
    expect(maxRelError(got.slice(-m.vocab), want)).toBeLessThan(1e-5);
  });

  it('runs on WebGPU as in the interpreter', async () => {
    const model = tinyLlama({ layerScalars: true }, 2);
    await expectMatchesInterpreter(await gpuModel(model), randInts(9, model.vocab, 5), 3, 1e-4);
  }, 300_000);
});
