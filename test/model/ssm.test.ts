/**
 * State-space and hybrid models: what the compiled graphs hold (state tensors, dispatches,
 * the inspect report; no GPU needed), and a hybrid of every mixer kind on WebGPU against
 * the CPU interpreter.
 */
import { describe, expect, it } from 'vitest';
import { BASELINE_CAPS } from '../../src/target.ts';
import { compileModel } from '../../codegen/compile.ts';
import { Interpreter } from '../../src/graph/interpret.ts';
import { lower } from '../../src/graph/lower.ts';
import { fuseSharedInput, MAMBA1_STEP_XPROJ_BYTES } from '../../src/passes/fuse.ts';
import { report } from '../../src/cli/report.ts';
import type {
  LayerSpec,
  Mamba1Spec,
  Mamba2Spec,
  MixerSpec,
  ModelIR,
} from '../../src/spec/model.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { attention, mlp, tinyLlama } from '../helpers/models.ts';
import { maxRelError, randInts } from '../helpers/numeric.ts';

const MAMBA1: Mamba1Spec = {
  kind: 'mamba1',
  dInner: 128,
  dState: 16,
  dConv: 4,
  dtRank: 4,
  convBias: true,
  projBias: false,
  innerNorms: null,
};

function layer(index: number, mixer: MixerSpec, ffn: boolean): LayerSpec {
  return {
    index,
    mixerName: mixer.kind,
    mixer,
    ffnName: ffn ? 'mlp' : null,
    ffn: ffn ? mlp({ hidden: 96 }) : null,
  };
}

/** Jamba's layout: groups of 8 layers, attention at offset 4, an MLP after every mixer. */
function jambaLike(attentionAt: number[], groups = 1): ModelIR {
  const n = 8 * groups;
  return tinyLlama({
    dim: 64,
    layers: Array.from({ length: n }, (_, i) =>
      layer(i, attentionAt.includes(i % 8) ? attention({ rope: null }) : MAMBA1, true),
    ),
  });
}

/** The dispatch labels of layer 1 (prefix `l1.<prefix>`) in a two-layer model of `mixer`. */
function layerOneLabels(
  mixer: MixerSpec,
  ffn: boolean,
  phase: 'prefill' | 'decode',
  prefix = '',
): string[] {
  const model = tinyLlama({ dim: 64, layers: [0, 1].map((i) => layer(i, mixer, ffn)) });
  return compileModel(model, { caps: BASELINE_CAPS, capacity: 128 })
    .phases[phase].dispatches.filter((d) => d.label.startsWith(`l1.${prefix}`))
    .map((d) => d.label);
}
describe('hybrid graphs and the inspect report', () => {
  it('counts KV bytes per token over the attention layers only; mamba state is fixed-size', () => {
    const one = report(compileModel(jambaLike([4]), { caps: BASELINE_CAPS, capacity: 128 }));
    const two = report(compileModel(jambaLike([2, 6]), { caps: BASELINE_CAPS, capacity: 128 }));
    const kvPerAttentionLayer = 2 * 2 * 16 * 4; // k and v, 2 kv heads of 16 dims, f32
    expect(one.kvBytesPerToken).toBe(kvPerAttentionLayer);
    expect(two.kvBytesPerToken).toBe(2 * kvPerAttentionLayer);
    const mambaState = (4 - 1) * 128 * 4 + 128 * 16 * 4; // conv + ssm, f32
    expect(one.layers[0]).toEqual({
      layer: 0,
      mixer: 'mamba1',
      kvBytesPerToken: 0,
      kvRows: null,
      stateBytes: mambaState,
    });
    expect(one.layers[4]).toEqual({
      layer: 4,
      mixer: 'attention',
      kvBytesPerToken: kvPerAttentionLayer,
      kvRows: null,
      stateBytes: 0,
    });
    expect(one.recurrentStateBytes).toBe(7 * mambaState);
    expect(two.recurrentStateBytes).toBe(6 * mambaState);
    // Per sequence: KV at capacity plus the recurrent state, nothing else.
    expect(one.stateBytesPerSequence).toBe(128 * kvPerAttentionLayer + 7 * mambaState);
  });

  it("keeps a mamba layer's prefill dispatches the same from maxT 64 to 4096", () => {
    const model = jambaLike([4]);
    const mambaDispatches = (maxT: number) =>
      compileModel(model, { caps: BASELINE_CAPS, maxT, capacity: 128 })
        .phases.prefill.dispatches.filter((d) => d.label.startsWith('l1.'))
        // Labels, not kernel names: the matmul tile (in the name) rightly grows with maxT.
        .map((d) => d.label);
    const small = mambaDispatches(64);
    expect(small.length).toBeGreaterThan(0);
    expect(mambaDispatches(4096)).toEqual(small);
  });

  it('decodes a mamba1 layer in 3 dispatches, with or without inner norms; prefill unfused', () => {
    for (const innerNorms of [null, { eps: 1e-6 }]) {
      const labels = (p: 'prefill' | 'decode') =>
        layerOneLabels({ ...MAMBA1, innerNorms }, true, p, 'mamba');
      // (1) in_proj with its norm and the conv (conv-epilogue), (2) x_proj + dt/B/C norms +
      // dt_proj + scan + gate (mamba1-decode's mamba1_step), (3) out_proj with the residual.
      // Before these fusions it took 8 on the baseline device (the conv, x_proj, dt_proj and the
      // scan's 3 chunked launches, whose fused decode kernel needs 9 storage buffers), 10 with
      // Jamba's norms.
      expect(labels('decode')).toEqual([
        'l1.mamba.in_x+in_z (norm fused) (+conv)',
        'l1.mamba x_proj+dt+scan (fused)',
        'l1.mamba.out+residual',
      ]);
      expect(labels('prefill').some((l) => l.includes('selective scan'))).toBe(true);
      expect(labels('prefill')).toContain('l1.mamba conv1d');
    }
  });

  it('keeps a large x_proj as its own matmul before mamba1_step: 4 decode dispatches', () => {
    // dInner 2048, R = 128 + 2·16: 1.25 MiB of x_proj, over MAMBA1_STEP_XPROJ_BYTES.
    const big = { ...MAMBA1, dInner: 2048, dtRank: 128, innerNorms: { eps: 1e-6 } };
    expect(4 * (big.dtRank + 2 * big.dState) * big.dInner).toBeGreaterThan(MAMBA1_STEP_XPROJ_BYTES);
    expect(layerOneLabels(big, true, 'decode', 'mamba')).toEqual([
      'l1.mamba.in_x+in_z (norm fused) (+conv)',
      'l1.mamba.x_dt+x_b+x_c',
      'l1.mamba dt+scan (fused)',
      'l1.mamba.out+residual',
    ]);
  });

  it('decodes a mamba2 layer in 3 dispatches, each within 8 storage buffers', () => {
    const mamba2: Mamba2Spec = {
      kind: 'mamba2',
      heads: 4,
      headDim: 16,
      dState: 8,
      groups: 2,
      dConv: 4,
      chunk: 16,
      convBias: true,
      projBias: false,
      normGroup: 32,
      normEps: 1e-5,
      dtMin: 0,
      dtMax: null,
    };
    // mamba2-decode (src/passes/fuse-mamba2.ts): (1) in_proj's five row ranges with the input
    // norm and the x/B/C convs in the epilogue, (2) the SSD reading that row, gated by silu(z),
    // its parameters packed, (3) out_proj with the gated norm's per-group RMSNorm as its
    // prologue and the residual. It took 8 before: the three convs, in_dt and the gated norm
    // were dispatches of their own.
    expect(layerOneLabels(mamba2, false, 'decode')).toEqual([
      'l1.mamba2.in_proj (+conv x, b, c) (norm fused)',
      'l1.mamba2 ssd + gate (fused)',
      'l1.mamba2.out (grouped norm fused)+residual',
    ]);
  });

  it('gives every mixer kind its state tensors with static shapes', () => {
    const mamba2: Mamba2Spec = {
      kind: 'mamba2',
      heads: 4,
      headDim: 16,
      dState: 8,
      groups: 2,
      dConv: 4,
      chunk: 16,
      convBias: true,
      projBias: false,
      normGroup: 32,
      normEps: 1e-5,
      dtMin: 0,
      dtMax: null,
    };
    const model = tinyLlama({
      dim: 64,
      layers: [
        layer(0, MAMBA1, false),
        layer(1, mamba2, false),
        layer(2, { kind: 'shortconv', lCache: 3, bias: false }, true),
      ],
    });
    const g = lower(model, { phase: 'prefill', maxT: 32, capacity: 64 });
    const states = Object.fromEntries(
      g.tensors.filter((t) => t.kind === 'state').map((t) => [t.name, t.shape]),
    );
    expect(states).toEqual({
      'conv.0': [3, 128],
      'ssm.0': [128, 16],
      'conv.1.x': [3, 64],
      'conv.1.b': [3, 16],
      'conv.1.c': [3, 16],
      'ssm.1': [4, 16, 8],
      'conv.2': [2, 64],
    });
    // Split projections are row ranges of the one canonical weight, never a slice op.
    const inProj = g.tensors.filter((t) =>
      t.name.startsWith('model.layers.1.mixer.in_proj.weight'),
    );
    expect(inProj.map((t) => [t.name, t.shape, t.source])).toContainEqual([
      'model.layers.1.mixer.in_proj.weight#rows128',
      [16, 64],
      {
        kind: 'rows',
        of: { kind: 'weight', name: 'model.layers.1.mixer.in_proj.weight' },
        start: 128,
        count: 16,
        cols: 64,
      },
    ]);
  });

  it('fuses the pre-norm into the input projections and the residual into out_proj', () => {
    const c = compileModel(jambaLike([4]), { caps: BASELINE_CAPS, capacity: 128 });
    const ops = c.graphs.decode.nodes.filter((n) => n.layer === 0).map((n) => n.attrs.op);
    expect(ops).not.toContain('norm');
    expect(ops).not.toContain('add');
    // Decode runs the scan inside mamba1_step (mamba1-decode), with x_proj and dt_proj.
    expect(ops.filter((o) => o === 'mamba1_step')).toHaveLength(1);
    expect(ops).not.toContain('selective_scan');
  });

  it("merges a Mamba layer's prefill matmuls of one input: in_x+in_z, then x_dt+x_b+x_c", () => {
    const model = jambaLike([4]);
    // Prefill: decode folds x_proj and dt_proj into mamba1_step (the test above).
    const decode = (fuse: boolean) =>
      compileModel(model, { caps: BASELINE_CAPS, capacity: 128, fuse }).graphs.prefill;
    const fused = decode(true);
    const plain = decode(false);
    const mm = fused.nodes.filter((n) => n.layer === 0 && n.attrs.op === 'matmul');
    expect(mm.map((n) => n.label)).toEqual([
      'l0.mamba.in_x+in_z (norm fused)',
      'l0.mamba.x_dt+x_b+x_c',
      'l0.mamba.dt',
      'l0.mamba.out+residual',
      'l0.mlp silu-glu (gate+up fused) (norm fused)',
      'l0.mlp.down+residual',
    ]);
    const { dInner: D, dtRank, dState } = MAMBA1;
    expect(mm[0].attrs).toMatchObject({ N: 2 * D, splits: [D, D] });
    expect(mm[1].attrs).toMatchObject({ splits: [dtRank, dState, dState] });
    // The merged matmul writes the tensors the separate ones did, so consumers are untouched.
    const written = (g: typeof fused, id: number) => g.tensors[id].name;
    const separate = ['l0.mamba.x_dt', 'l0.mamba.x_b', 'l0.mamba.x_c'].map((l) =>
      written(plain, plain.nodes.find((n) => n.label === l)!.outputs.out),
    );
    expect(Object.values(mm[1].outputs).map((id) => written(fused, id))).toEqual(separate);
  });

  it('merges only as many matmuls as the storage-buffer limit allows, room kept for the norm x comes from', () => {
    const labels = (limit: number) => {
      const caps = { ...BASELINE_CAPS, maxStorageBuffersPerStage: limit };
      const g = lower(jambaLike([4]), { phase: 'decode', maxT: 1, capacity: 64 });
      return fuseSharedInput(g, { caps })
        .nodes.filter((n) => n.layer === 0 && n.attrs.op === 'matmul')
        .map((n) => n.label)
        .slice(0, 4);
    };
    // in_proj reads an RMSNorm's output: x, w, out, out1 and its one weight fill 5. x_proj reads
    // the conv's output, which no norm will be folded into: x, w and three outputs fill 5.
    expect(labels(5).slice(0, 2)).toEqual(['l0.mamba.in_x+in_z', 'l0.mamba.x_dt+x_b+x_c']);
    // One fewer: in_proj's ranges stay apart, x_proj's third output does not fit.
    expect(labels(4)).toEqual([
      'l0.mamba.in_x',
      'l0.mamba.in_z',
      'l0.mamba.x_dt+x_b',
      'l0.mamba.x_c',
    ]);
  });

  it("fuses LFM2's B·x into one gated matmul over two row ranges of in_proj", () => {
    const model = tinyLlama({
      dim: 64,
      layers: [layer(0, { kind: 'shortconv', lCache: 3, bias: true }, true)],
    });
    const nodes = compileModel(model, { caps: BASELINE_CAPS, capacity: 64 }).graphs.decode.nodes;
    const conv = nodes.filter((n) => n.layer === 0 && n.label.startsWith('l0.conv'));
    // Decode: the short conv runs in B·x's epilogue (conv-epilogue).
    expect(conv.map((n) => n.attrs.op)).toEqual(['matmul', 'matmul', 'mul', 'matmul']);
    const bx = conv[0]!;
    expect(bx.attrs).toMatchObject({ op: 'matmul', gated: true, act: null, N: 64, bias: true });
    expect(bx.attrs).toMatchObject({ conv: { channels: 64, kernel: 3, silu: false } });
  });
});

describe('a hybrid of every mixer kind on WebGPU vs the CPU interpreter', () => {
  // Odd sizes on purpose: no width is a multiple of a tile.
  const model = tinyLlama({
    dim: 40,
    tieEmbeddings: false,
    layers: [
      layer(
        0,
        {
          kind: 'mamba1',
          dInner: 72,
          dState: 12,
          dConv: 4,
          dtRank: 5,
          convBias: true,
          projBias: true,
          innerNorms: { eps: 1e-6 },
        },
        false,
      ),
      layer(
        1,
        {
          kind: 'mamba2',
          heads: 6,
          headDim: 12,
          dState: 10,
          groups: 3,
          dConv: 3,
          chunk: 8,
          convBias: false,
          projBias: true,
          normGroup: 24,
          normEps: 1e-5,
          dtMin: 0.001,
          dtMax: 0.5,
        },
        true,
      ),
      layer(2, { kind: 'shortconv', lCache: 4, bias: true }, true),
      layer(3, attention({ headDim: 10, heads: 4, kvHeads: 2 }), true),
    ],
  });

  it('prefill in chunks, then decode, match the interpreter', async () => {
    const m = await gpuModel(model, { maxT: 16, capacity: 64 }, 3);
    const prompt = randInts(21, model.vocab, 4);
    const { seq } = await expectMatchesInterpreter(m, prompt, 5, 1e-4, 16);
    // reset() only rewinds the position: the scans must read the old state as zeros at pos 0.
    seq.reset();
    const again = await seq.forward(Array.from(prompt.slice(0, 7)));
    const prefill = await Interpreter.create(m.compiled.graphs.prefill, m.weights);
    const fresh = prefill.step(prompt.slice(0, 7), 0, 7, prefill.newState());
    expect(maxRelError(again.logits, fresh.logits)).toBeLessThan(1e-4);
    m.gm.destroy();
  });
});
