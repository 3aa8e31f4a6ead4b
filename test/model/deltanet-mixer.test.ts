/**
 * The deltanet mixer (fla's DeltaNet / Gated DeltaNet) over its options on the CPU interpreter:
 * the state its graphs declare, prefill in chunks and decode steps against one prefill of the
 * whole sequence (conv and recurrent state carried across steps), and the fused graph against
 * the unfused one. The fla fixtures check the numbers themselves (test/golden/fla-golden.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { Interpreter } from '../../src/graph/interpret.ts';
import { norm } from '../../src/ops/norm.ts';
import { lower } from '../../src/graph/lower.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { DeltaNetSpec } from '../../src/mixers/deltanet.ts';
import type { LayerSpec, ModelIR } from '../../src/spec/model.ts';
import { runPasses } from '../../src/passes/pipeline.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { attention, mlp, tinyLlama } from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

const GATED: DeltaNetSpec = {
  kind: 'deltanet',
  heads: 2,
  valueHeads: 6,
  keyHeadDim: 12,
  valueHeadDim: 10,
  dConv: 4,
  qkActivation: 'silu',
  useBeta: true,
  allowNegEigval: true,
  decay: 'head',
  outputGate: true,
  normEps: 1e-6,
};

const PLAIN: DeltaNetSpec = {
  ...GATED,
  heads: 3,
  valueHeads: 3,
  valueHeadDim: 14,
  allowNegEigval: false,
  decay: 'none',
  outputGate: false,
};

function model(...mixers: DeltaNetSpec[]): ModelIR {
  const layers: LayerSpec[] = mixers.map((mixer, index) => ({
    index,
    mixerName: 'dn',
    mixer,
    ffnName: 'mlp',
    ffn: mlp({ hidden: 40 }),
  }));
  // An attention layer between them, as fla's hybrid attn key places one.
  layers.splice(1, 0, {
    index: 1,
    mixerName: 'attn',
    mixer: attention(),
    ffnName: 'mlp',
    ffn: mlp({ hidden: 40 }),
  });
  return tinyLlama({ dim: 48, layers: layers.map((l, index) => ({ ...l, index })) });
}

const VARIANTS: Record<string, ModelIR> = {
  'DeltaNet (the delta_net fixture)': model(PLAIN, { ...PLAIN, heads: 1, valueHeads: 1 }),
  'Gated DeltaNet, grouped value heads': model(GATED, { ...GATED, heads: 3 }),
  'no short conv, relu, β = 1, output gate': model({
    ...PLAIN,
    dConv: null,
    qkActivation: 'relu',
    useBeta: false,
    outputGate: true,
  }),
  'elu + 1, ×2 β, kernel 2; identity without conv, gated': model(
    { ...PLAIN, qkActivation: 'elu1', allowNegEigval: true, dConv: 2 },
    { ...GATED, qkActivation: 'identity', dConv: null, useBeta: false },
  ),
};

async function interpreters(m: ModelIR, fuse: boolean) {
  const weights = randomWeights(m, 11);
  const graph = (phase: 'prefill' | 'decode') =>
    runPasses(lower(m, { phase, maxT: 16, capacity: 64 }), { caps: BASELINE_CAPS, fuse }).graph;
  return {
    prefill: await Interpreter.create(graph('prefill'), weights),
    decode: await Interpreter.create(graph('decode'), weights),
  };
}

describe('deltanet mixer', () => {
  it('declares conv state per q/k/v and a [valueHeads, key, value] recurrent state', () => {
    const g = lower(model(GATED, PLAIN), { phase: 'decode', maxT: 1, capacity: 64 });
    const shape = (name: string) => g.tensors.find((t) => t.name === name)?.shape;
    expect(shape('delta.0')).toEqual([6, 12, 10]);
    expect(shape('conv.0.q')).toEqual([3, 24]);
    expect(shape('conv.0.v')).toEqual([3, 60]);
    expect(shape('delta.2')).toEqual([3, 12, 14]);
    const noConv = lower(model({ ...PLAIN, dConv: null }), {
      phase: 'decode',
      maxT: 1,
      capacity: 64,
    });
    expect(noConv.tensors.filter((t) => t.name.startsWith('conv.'))).toEqual([]);
  });

  for (const [name, m] of Object.entries(VARIANTS)) {
    it(`${name}: chunked prefill and decode equal one prefill; fused equals unfused`, async () => {
      const ids = randInts(14, m.vocab, 5);
      const whole = await interpreters(m, false);
      const ref = whole.prefill.step(ids, 0, ids.length, whole.prefill.newState()).logits;
      for (const fuse of [false, true]) {
        const run = await interpreters(m, fuse);
        const state = run.prefill.newState();
        const rows: Float32Array[] = [];
        rows.push(run.prefill.step(ids.slice(0, 5), 0, 5, state).logits);
        rows.push(run.prefill.step(ids.slice(5, 11), 5, 6, state).logits);
        for (let t = 11; t < ids.length; t++) {
          rows.push(run.decode.step(ids.slice(t, t + 1), t, 1, state).logits);
        }
        const got = new Float32Array(ref.length);
        let at = 0;
        for (const r of rows) {
          got.set(r, at);
          at += r.length;
        }
        expect(maxRelError(got, ref), `fuse ${fuse}`).toBeLessThan(1e-5);
      }
    });
  }
});

describe("the norm op's l2 kind (q/k normalisation; CPU reference until the kernel branch lands)", () => {
  it('divides each group by sqrt(Σx² + eps), reads no weight', () => {
    const x = Float32Array.from([3, 4, 0, 0, 1, -1, 1, -1]);
    const attrs = {
      op: 'norm',
      norm: { kind: 'l2', eps: 1e-6, unitOffset: false, bias: false },
      width: 4,
      group: 2,
      residual: false,
    } as const;
    const { out } = norm.reference(attrs, { x }, { T: 2, pos: 0, L: 1 });
    const want = [3 / Math.sqrt(25 + 1e-6), 4 / Math.sqrt(25 + 1e-6), 0, 0];
    const s = 1 / Math.sqrt(2 + 1e-6);
    want.push(s, -s, s, -s);
    expect(Array.from(out!)).toEqual(want.map(Math.fround));
  });
});
