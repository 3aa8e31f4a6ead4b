/**
 * The mamba2-decode fusion (src/passes/fuse-mamba2.ts): a Mamba-2 layer decodes in three
 * dispatches (in_proj + norm + the x/B/C convs; the SSD with its gate; out_proj with the gated
 * RMSNorm's norm and the residual). The fused decode graph runs on the CPU interpreter beside
 * the lowered, unfused decode graph from the same prefilled state for several steps (both sides
 * run the op references with f32 results: 1e-5 relative to each row's largest logit, the
 * mamba1 fusion's tolerance), and on WebGPU against the interpreter (1e-4: f32 sums on the GPU
 * against f64 ones) on shapes that are multiples of no tile: 5 and 6 heads, head_dim 12,
 * d_state 10, B/C groups 1 to 3.
 */
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import type { Mamba2Spec } from '../../src/mixers/mamba2.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { expectFusedDecodeMatchesUnfused } from '../helpers/decode-fusion.ts';
import { mamba2, tinyLlama } from '../helpers/models.ts';
import { randInts } from '../helpers/numeric.ts';

function model(mixer: Mamba2Spec, dim = 40): ModelIR {
  return tinyLlama({
    dim,
    layers: [0, 1].map((index) => ({
      index,
      mixerName: 'mamba2',
      mixer,
      ffnName: null,
      ffn: null,
    })),
  });
}

/** The decode dispatch labels of layer 1. */
function layerOne(m: ModelIR): string[] {
  return compileModel(m, { caps: BASELINE_CAPS, capacity: 64 })
    .phases.decode.dispatches.filter((d) => d.label.startsWith('l1.'))
    .map((d) => d.label);
}

const WHOLE = mamba2({ heads: 5, groups: 1, normGroup: 60, projBias: false });
const GROUPED = mamba2({ heads: 6, groups: 3, normGroup: 24, projBias: false });
const GATE_ONLY = mamba2({ heads: 5, groups: 1, gateNorm: false, projBias: false, dtMax: 0.8 });

const cases: [string, Mamba2Spec][] = [
  ['one group, whole-row gated norm', WHOLE],
  ['3 B/C groups, the gated norm per group', GROUPED],
  ['no norm (Falcon-H1): y · silu(z)', GATE_ONLY],
  ['no conv bias', { ...WHOLE, convBias: false, dConv: 3 }],
];

describe('mamba2 fused decode: dispatches per layer', () => {
  it('takes three: in_proj + convs, ssd + gate, out_proj + norm + residual', () => {
    for (const [, mixer] of cases) {
      expect(layerOne(model(mixer))).toEqual([
        'l1.mamba2.in_proj (+conv x, b, c) (norm fused)',
        'l1.mamba2 ssd + gate (fused)',
        expect.stringMatching(/^l1\.mamba2\.out(\+residual| \(grouped norm fused\)\+residual)/),
      ]);
    }
  });

  it('leaves in_proj with a bias (9 storage buffers) to the other fusions', () => {
    expect(layerOne(model({ ...WHOLE, projBias: true }))).toContain('l1.mamba2.x conv1d');
  });

  it('keeps prefill unfused', () => {
    const c = compileModel(model(WHOLE), { caps: BASELINE_CAPS, capacity: 64, maxT: 8 });
    const ops = c.graphs.prefill.nodes.map((n) => n.attrs.op);
    expect(ops).toContain('conv1d');
    expect(ops).toContain('gated_norm');
  });
});

describe('mamba2 fused decode graph = unfused decode graph on the interpreter', () => {
  for (const [label, mixer] of cases) {
    it(label, async () => {
      const m = model(mixer);
      // The conv and SSM states the fused graph leaves equal the unfused graph's too.
      const compiled = await expectFusedDecodeMatchesUnfused(
        m,
        randomWeights(m, 11),
        randInts(6, m.vocab, 3),
        { steps: 5 },
      );
      expect(compiled.graphs.decode.nodes.some((n) => n.attrs.op === 'conv1d')).toBe(false);
    });
  }
});

describe('mamba2 fused decode on WebGPU against the interpreter', () => {
  for (const [label, mixer] of cases.slice(0, 3)) {
    it(label, async () => {
      const m = await gpuModel(model(mixer), { maxT: 8, capacity: 32 }, 5);
      const ops = m.compiled.graphs.decode.nodes.map((n) => n.attrs.op);
      expect(ops.filter((o) => o === 'ssd')).toHaveLength(2);
      expect(ops).not.toContain('conv1d');
      await expectMatchesInterpreter(m, randInts(7, m.compiled.model.vocab, 2), 4, 1e-4);
    });
  }
});
