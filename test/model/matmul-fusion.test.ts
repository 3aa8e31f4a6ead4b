/**
 * The matmul-epilogue and matmul-prologue fusions on RWKV-7 (hybrid with attention): token mixes
 * become the projections' x maps, LoRA tanh / sigmoid and gates their epilogues; the fused graph
 * computes what the unfused one does, in the interpreter and on WebGPU, and a fold that would
 * exceed the device's storage buffers is left out.
 */
import { describe, expect, it } from 'vitest';
import { Interpreter } from '../../src/graph/interpret.ts';
import type { Graph } from '../../src/graph/ir.ts';
import { lower } from '../../src/graph/lower.ts';
import type { MatmulAttrs } from '../../src/graph/ops.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { RetNetSpec } from '../../src/mixers/retnet.ts';
import { fuseMatmulEpilogue, fuseMatmulPrologue, fuseResidual } from '../../src/passes/fuse.ts';
import { plainMatmul } from '../../src/graph/ops.ts';
import { runPasses } from '../../src/passes/pipeline.ts';
import { BASELINE_CAPS, type DeviceCaps } from '../../src/target.ts';
import { expectFusedMatchesUnfused, expectMatchesInterpreter } from '../helpers/compare.ts';
import { mlp, rwkv7Hybrid, tinyLlama } from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

const both = (g: Graph, caps: DeviceCaps) =>
  fuseMatmulPrologue(fuseMatmulEpilogue(g, { caps }), { caps });

const matmuls = (g: Graph, layer: number) =>
  g.nodes.filter((n) => n.layer === layer && n.attrs.op === 'matmul') as Array<
    Graph['nodes'][number] & { attrs: MatmulAttrs }
  >;

describe('matmul epilogue and prologue fusions', () => {
  const model = rwkv7Hybrid();

  it('fold the token mixes into the projections and LoRA activations and gates after them', () => {
    const g = lower(model, { phase: 'decode', maxT: 1, capacity: 32 });
    const f = both(g, BASELINE_CAPS);
    for (const layer of [1, 3]) {
      const ms = matmuls(f, layer);
      // r, k, v, w, a, g (and v_lora down in layer 3) and the cmix key: each computes its mix.
      expect(ms.filter((m) => m.attrs.xMap).length).toBeGreaterThanOrEqual(7);
      const epi = ms.filter((m) => m.attrs.epilogue).map((m) => m.label);
      for (const lora of ['w_lora.down+tanh', 'g_lora.down+sigmoid'])
        expect(epi.some((l) => l.startsWith(`l${layer}.rwkv7.${lora}`))).toBe(true);
      // No pointwise op is left whose only readers are matmuls' x.
      const mixes = f.nodes.filter(
        (n) =>
          n.layer === layer &&
          n.attrs.op === 'pointwise' &&
          f.nodes.some((u) => u.attrs.op === 'matmul' && u.inputs.x === n.outputs.out),
      );
      expect(mixes).toEqual([]);
    }
    expect(f.nodes.length).toBeLessThan(g.nodes.length - 20);
  });

  it('leave a fold out where it would take more storage buffers than the device has', () => {
    const g = lower(model, { phase: 'decode', maxT: 1, capacity: 32 });
    // x, prev, μ, w and out: the mixes need 5; tanh after a plain LoRA down needs 3.
    const f = both(g, { ...BASELINE_CAPS, maxStorageBuffersPerStage: 4 });
    expect(matmuls(f, 1).some((m) => m.attrs.xMap)).toBe(false);
    expect(matmuls(f, 1).some((m) => m.attrs.epilogue)).toBe(true);
  });

  it('give the same outputs fused and unfused, in the interpreter and on WebGPU', async () => {
    const weights = randomWeights(model, 11);
    const ids = randInts(9, 260, 5);
    const outputs = async (fold: boolean) => {
      const graph = (phase: 'prefill' | 'decode') => {
        const g = lower(model, { phase, maxT: 16, capacity: 32 });
        return fold ? both(g, BASELINE_CAPS) : g;
      };
      const pre = await Interpreter.create(graph('prefill'), weights);
      const dec = await Interpreter.create(graph('decode'), weights);
      const state = pre.newState();
      const first = pre.step(ids, 0, ids.length, state);
      const next = dec.step(Uint32Array.of(first.token), ids.length, 1, state);
      return [first.logits, next.logits];
    };
    const [a, b] = await outputs(true);
    const [c, d] = await outputs(false);
    expect(maxRelError(a, c)).toBeLessThan(1e-5);
    expect(maxRelError(b, d)).toBeLessThan(1e-5);
    // The full pipeline on the GPU against the unfused one, and against the interpreter.
    const full = runPasses(lower(model, { phase: 'decode', maxT: 1, capacity: 32 }), {
      caps: BASELINE_CAPS,
      fuse: true,
    });
    expect(full.log.map((l) => l.pass)).toContain('matmul-prologue');
    const { fused, plain } = await expectFusedMatchesUnfused(model, [...ids], 1e-4);
    plain.gm.destroy();
    await expectMatchesInterpreter(fused, ids, 3, 1e-4);
    fused.gm.destroy();
  });
});

describe('matmul prologue of a glu output gate', () => {
  // A SiLU gate is one gated_norm with the head norm (src/mixers/parts.ts outputNorm); other gate
  // activations keep norm then glu, and that glu folds into o_proj's x.
  const RETNET: RetNetSpec = {
    kind: 'retnet',
    heads: 4,
    kvHeads: 2,
    keyHeadDim: 8,
    valueHeadDim: 6,
    decayExponent: 5,
    ropeTheta: 10000,
    outputGate: true,
    gateAct: 'sigmoid',
    normEps: 1e-6,
  };
  const model = tinyLlama({
    layers: [0, 1].map((index) => ({
      index,
      mixerName: 'ret',
      mixer: RETNET,
      ffnName: 'mlp',
      ffn: mlp({ hidden: 40 }),
    })),
  });

  it('folds sigmoid(g) · norm(o) into o_proj and computes the same outputs', async () => {
    const weights = randomWeights(model, 3);
    const ids = randInts(7, 256, 9);
    const run = async (fold: boolean) => {
      const g = lower(model, { phase: 'prefill', maxT: 16, capacity: 32 });
      const f = fold ? both(g, BASELINE_CAPS) : g;
      if (fold) {
        expect(f.nodes.some((n) => n.attrs.op === 'glu')).toBe(false);
        // o_proj, and the MLP's down projection (gated-mlp does not run here to take its glu).
        expect(matmuls(f, 0).filter((m) => m.attrs.xMap)).toHaveLength(2);
      }
      const it = await Interpreter.create(f, weights);
      return it.step(ids, 0, ids.length, it.newState()).logits;
    };
    expect(maxRelError(await run(true), await run(false))).toBeLessThan(1e-5);
    const { fused, plain } = await expectFusedMatchesUnfused(model, [...ids], 1e-4);
    plain.gm.destroy();
    fused.gm.destroy();
  });
});

describe('matmul epilogue and the residual fusion', () => {
  /** h + s · tanh(x wᵀ): the epilogue folds; the residual only when s = 1 (scale precedes it). */
  const graph = (s: number): Graph => {
    const act = (id: number, name: string, cols: number) => ({
      id,
      name,
      shape: ['T' as const, cols],
      dtype: 'f32' as const,
      kind: 'activation' as const,
    });
    const whole = { perToken: true, cols: 3, inner: 3, repeat: 1 };
    return {
      phase: 'decode',
      maxT: 1,
      capacity: 4,
      tensors: [
        { ...act(0, 'x', 4), kind: 'input' },
        { id: 1, name: 'w', shape: [3, 4], dtype: 'f32', kind: 'param' },
        act(2, 'y', 3),
        act(3, 'z', 3),
        { ...act(4, 'h', 3), kind: 'input' },
        { ...act(5, 'o', 3), kind: 'output' },
      ],
      nodes: [
        {
          id: 0,
          attrs: plainMatmul(3, 4),
          inputs: { x: 0, w: 1 },
          outputs: { out: 2 },
          layer: 0,
          label: 'mm',
        },
        {
          id: 1,
          attrs: {
            op: 'pointwise',
            width: 3,
            inputs: { y: whole },
            expr: { fn: 'tanh', x: { in: 'y' } },
          },
          inputs: { y: 2 },
          outputs: { out: 3 },
          layer: 0,
          label: 'tanh',
        },
        {
          id: 2,
          attrs: { op: 'add', width: 3, scale: s },
          inputs: { a: 4, b: 3 },
          outputs: { out: 5 },
          layer: 0,
          label: 'add',
        },
      ],
      ids: 0,
      logits: 5,
      token: 5,
    };
  };
  it('keeps a scaled residual add apart from a matmul with an epilogue', () => {
    for (const [s, ops] of [
      [1, ['matmul']],
      [0.5, ['matmul', 'add']],
    ] as const) {
      const f = fuseResidual(fuseMatmulEpilogue(graph(s), { caps: BASELINE_CAPS }), {
        caps: BASELINE_CAPS,
      });
      expect(f.nodes.map((n) => n.attrs.op)).toEqual(ops);
      expect((f.nodes[0].attrs as MatmulAttrs).epilogue).toBeTruthy();
    }
  });
});
