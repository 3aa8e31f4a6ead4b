/**
 * RWKV-7's decode fusions (src/passes/fuse-rwkv7.ts, issue 18): dispatches per layer pinned, the
 * fused decode graph computing what the unfused one does over several steps in the interpreter,
 * and on WebGPU against the interpreter, at each storage-buffer budget that changes the graph
 * (8, 10, the device's), on a model of awkward shapes (3 heads of 12 keys and 10
 * values, odd LoRA ranks).
 */
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../src/graph/ir.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { Rwkv7Spec } from '../../src/mixers/rwkv7.ts';
import { runPasses } from '../../src/passes/pipeline.ts';
import { BASELINE_CAPS, type DeviceCaps } from '../../src/target.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { testGpu } from '../helpers/gpu.ts';
import { mlp, tinyLlama } from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

/** rwkv7 time mix + channel mix at layers `at` of `layers`, attention + SwiGLU elsewhere. */
function awkward(layers = 4, at = [0, 1, 3]): ModelIR {
  const tmix: Rwkv7Spec = {
    kind: 'rwkv7',
    heads: 3,
    headDim: 12,
    valueHeadDim: 10,
    decayRank: 5,
    aRank: 7,
    vRank: 3,
    gateRank: 9,
    normEps: 1e-5,
    kkEps: 1e-6,
    normFirst: true,
  };
  const cmix = mlp({ hidden: 37, act: 'relu2', gated: false, tokenShift: true });
  const m = tinyLlama(
    { norm: { kind: 'layer', eps: 1e-5, unitOffset: false, bias: true }, tieEmbeddings: false },
    layers,
  );
  for (const i of at) {
    m.layers[i] = { ...m.layers[i]!, mixerName: 'tmix', mixer: tmix, ffnName: 'cmix', ffn: cmix };
  }
  return m;
}

const decodeGraph = (model: ModelIR, fuse: boolean, caps: DeviceCaps = BASELINE_CAPS): Graph =>
  runPasses(lower(model, { phase: 'decode', maxT: 1, capacity: 32 }), { caps, fuse }).graph;

/** Dispatches of layer i's time mix (label l<i>.rwkv7…) and channel mix (l<i>.mlp…). */
function perLayer(g: Graph, i: number): { tmix: number; cmix: number } {
  const of = (p: string) => g.nodes.filter((n) => n.label.startsWith(`l${i}.${p}`)).length;
  return { tmix: of('rwkv7'), cmix: of('mlp') };
}

describe('rwkv7 decode fusion', () => {
  const model = awkward();

  it('pins the dispatches per layer', () => {
    const plain = decodeGraph(model, false);
    const fused = decodeGraph(model, true);
    // Unfused: the lowering's ops. Fused before this work: 22 (later layers) / 21 (the first).
    expect(perLayer(plain, 1)).toEqual({ tmix: 36, cmix: 7 });
    // norm + token shift, 2 mixed projections, v_lora.up, the recurrence (w and a LoRA ups in
    // it), g_lora.up, o_proj; norm + token shift, up, down.
    expect(perLayer(fused, 1)).toEqual({ tmix: 7, cmix: 3 });
    expect(perLayer(fused, 3)).toEqual({ tmix: 7, cmix: 3 });
    // The first layer has no v_lora: r, k, v, w_lora.down, then a_lora and g_lora downs.
    expect(perLayer(fused, 0)).toEqual({ tmix: 6, cmix: 3 });
    const proj = fused.nodes.filter((n) => n.label.includes('(mixes fused)')).map((n) => n.label);
    expect(proj).toContain('l1.rwkv7.r+k+v+v_lora.down (mixes fused)');
    expect(proj).toContain('l1.rwkv7.w_lora.down+a_lora.down+g_lora.down (mixes fused)');
    // A device with more storage buffers takes all seven outputs in one dispatch.
    const wide = decodeGraph(model, true, { ...BASELINE_CAPS, maxStorageBuffersPerStage: 11 });
    // ... and the recurrence takes v_lora.up and v_mix too (10 bindings): norm + shift, one
    // projection, the recurrence, g_lora.up, o_proj.
    expect(perLayer(wide, 1)).toEqual({ tmix: 5, cmix: 3 });
    expect(
      perLayer(decodeGraph(model, true, { ...BASELINE_CAPS, maxStorageBuffersPerStage: 10 }), 1),
    ).toEqual({ tmix: 6, cmix: 3 });
    const rec = fused.nodes.filter((n) => n.attrs.op === 'linear_recurrence' && n.attrs.rwkv7);
    expect(rec.length).toBe(3);
    expect(rec.every((n) => n.attrs.op === 'linear_recurrence' && n.attrs.rwkv7?.lora)).toBe(true);
  });

  it('leaves prefill graphs as they were', () => {
    const g = runPasses(lower(model, { phase: 'prefill', maxT: 8, capacity: 32 }), {
      caps: BASELINE_CAPS,
      fuse: true,
    }).graph;
    expect(g.nodes.some((n) => n.attrs.op === 'matmul' && n.attrs.splitXMaps)).toBe(false);
  });

  // 8: seven dispatches a later layer; 10: six (v_lora.up in the recurrence); 12: five.
  for (const storage of [8, 10, 12])
    it(`computes the same logits fused and unfused over several decode steps (${storage} bindings)`, async () => {
      const caps = { ...BASELINE_CAPS, maxStorageBuffersPerStage: storage };
      const weights = randomWeights(model, 5);
      const ids = randInts(10, 260, 9);
      // Each side prefills with its own graphs (qkv-rope-append stores keys in another layout).
      const run = async (fuse: boolean) => {
        const pre = runPasses(lower(model, { phase: 'prefill', maxT: 8, capacity: 32 }), {
          caps,
          fuse,
        }).graph;
        const prefill = await Interpreter.create(pre, weights);
        const dec = await Interpreter.create(decodeGraph(model, fuse, caps), weights);
        const state = prefill.newState();
        prefill.step(ids.slice(0, 4), 0, 4, state);
        const out: Float32Array[] = [];
        for (let p = 4; p < ids.length; p++)
          out.push(dec.step(ids.slice(p, p + 1), p, 1, state).logits);
        return out;
      };
      const [a, b] = [await run(true), await run(false)];
      for (let i = 0; i < a.length; i++) expect(maxRelError(a[i], b[i])).toBeLessThan(1e-5);
    });

  // Each binding budget's graph on WebGPU: the caps a compile assumes pick the fusions (a kernel
  // binding fewer buffers than the device allows runs as well), so SwiftShader (12 storage
  // buffers) runs the 8- and 10-buffer graphs too. Later layer's time-mix dispatches: 7, 6, 5.
  for (const [storage, tmix] of [
    [8, 7],
    [10, 6],
    [null, 5],
  ] as const)
    it(`runs fused on WebGPU as the interpreter computes it (${storage ?? 'device'} bindings)`, async () => {
      const gpu = await testGpu();
      if (storage === null && gpu.caps.maxStorageBuffersPerStage < 11) return;
      const caps =
        storage === null ? gpu.caps : { ...gpu.caps, maxStorageBuffersPerStage: storage };
      // Two rwkv7 layers (the first and a later one) keep SwiftShader's shader compiles few.
      const m = await gpuModel(awkward(2, [0, 1]), { fuse: true, caps }, 3);
      const dec = m.compiled.graphs.decode;
      expect(dec.nodes.some((n) => n.attrs.op === 'matmul' && n.attrs.splitXMaps)).toBe(true);
      expect(perLayer(dec, 1).tmix).toBe(tmix);
      const recs = dec.nodes.filter((n) => n.attrs.op === 'linear_recurrence');
      expect(
        recs.map((n) => n.attrs.op === 'linear_recurrence' && !!n.attrs.rwkv7?.lora?.vRank),
      ).toEqual([false, tmix < 7]);
      await expectMatchesInterpreter(m, randInts(7, 260, 4), 3, 1e-4);
      m.gm.destroy();
    });
});
