/**
 * Decode fusions of the linear-recurrence mixers (src/passes/fuse-gated-norm.ts and
 * fuse-linear.ts): the fused decode graph on the CPU interpreter beside the lowered, unfused
 * decode graph from the same prefilled state over several steps (1e-5 relative to each row's
 * largest logit, and the states: both sides run the op references with f32 results), and on
 * WebGPU against the interpreter (1e-4: f32 sums on the GPU against f64 ones). Heads 3, head
 * dims 10 and 12 (x read as f32 and as vec4 by the GEMVs), nothing a multiple of a tile. The
 * dispatch labels of each mixer's decode are pinned.
 */
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { parseSpec } from '../../src/spec/load.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { expectMatchesInterpreter, gpuModel } from '../helpers/compare.ts';
import { expectFusedDecodeMatchesUnfused } from '../helpers/decode-fusion.ts';
import { randInts } from '../helpers/numeric.ts';

const MIXERS: Record<string, string> = {
  retnet: 'retnet(heads: 3, key_head_dim: 8, value_head_dim: 12)',
  gla: 'gla(heads: 3, key_head_dim: 8, value_head_dim: 10)',
  gated_deltanet:
    'gated_deltanet(key_heads: 3, value_heads: 3, key_head_dim: 8, value_head_dim: 12)',
  hgrn2: 'hgrn2(heads: 3, key_head_dim: 10, value_head_dim: 10)',
};

function model(kind: string): ModelIR {
  return parseSpec(
    `model "tiny-${kind}" {
  vocab 97
  dim 30
  max_context 64
  norm rms(eps: 1e-5)
  mixer m = ${MIXERS[kind]}
  ffn mlp = swiglu(hidden: 44)
  layers 2 x m with ffn mlp
}`,
    `${kind}.strata`,
  );
}

/** The decode dispatch labels of layer 1's mixer (its FFN left out). */
function mixerLabels(m: ModelIR): string[] {
  return compileModel(m, { caps: BASELINE_CAPS, capacity: 64 })
    .phases.decode.dispatches.filter((d) => d.label.startsWith('l1.') && !d.label.includes('mlp'))
    .map((d) => d.label);
}

describe('linear mixers: decode dispatches per layer', () => {
  it('pins each mixer kind', () => {
    expect(mixerLabels(model('retnet'))).toEqual([
      'l1.retnet.q+k+v+g (norm fused)',
      'l1.retnet recurrence (rope q, rope k fused)',
      'l1.retnet.o (gated norm fused)+residual',
    ]);
    // HGRN2's gate is its decay and also its k (recurrence-shared-input).
    expect(mixerLabels(model('hgrn2'))).toEqual([
      'l1.hgrn2.q+f+i (norm fused)',
      'l1.hgrn2 recurrence (q, k, g fused)',
      'l1.hgrn2.out+residual (norm fused)',
    ]);
    // One in_proj row with the q/k/v convs in its epilogue (recurrence-conv-row).
    expect(mixerLabels(model('gated_deltanet'))).toEqual([
      'l1.deltanet.in_q+in_k+in_v+in_z+in_ba (+conv q, k, v) (norm fused)',
      'l1.deltanet gated delta rule (l2 q, l2 k, beta, g, q, k, v fused)',
      'l1.deltanet.out (gated norm fused)+residual',
    ]);
    // GLA's rank-16 gk1 inside the recurrence (recurrence-low-rank), g beside q+k+v+gk0.
    expect(mixerLabels(model('gla'))).toEqual([
      'l1.gla.q+k+v+gk0+g (norm fused)',
      'l1.gla recurrence (g, gk1 fused)',
      'l1.gla.out (gated norm fused)+residual',
    ]);
  });
});

describe('linear mixers: fused decode graph = unfused decode graph on the interpreter', () => {
  for (const kind of Object.keys(MIXERS)) {
    it(kind, async () => {
      const m = model(kind);
      await expectFusedDecodeMatchesUnfused(m, randomWeights(m, 13), randInts(6, m.vocab, 4), {
        steps: 5,
      });
    });
  }
});

describe('linear mixers: fused decode on WebGPU against the interpreter', () => {
  for (const kind of Object.keys(MIXERS)) {
    it(kind, async () => {
      const m = await gpuModel(model(kind), { maxT: 8, capacity: 32 }, 5);
      await expectMatchesInterpreter(m, randInts(7, m.compiled.model.vocab, 2), 4, 1e-4);
    });
  }
});
