import { describe, expect, it } from 'vitest';
import { gatedNormKernel } from '../../codegen/kernels/norm.ts';
import type { GatedNormAttrs } from '../../src/graph/ops.ts';
import { gatedNorm } from '../../src/ops/norm.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';

interface Case {
  width: number;
  group: number;
  T: number;
  maxT: number;
  eps: number;
  /** FalconH1RMSNormGated's norm_before_gate=True: rmsnorm(x) · w · silu(z). */
  normBeforeGate?: boolean;
  /** One [group] weight shared by every group (fla's gated per-head output norm). */
  groupWeight?: boolean;
}

const cases: Case[] = [
  { width: 37, group: 37, T: 7, maxT: 9, eps: 1e-5 }, // one group (HF Mamba2)
  { width: 96, group: 32, T: 5, maxT: 8, eps: 1e-6 }, // n_groups = 3 (Bamba, Zamba2, NemotronH)
  { width: 15, group: 5, T: 1, maxT: 1, eps: 1e-5 }, // decode
  { width: 1536, group: 1536, T: 1, maxT: 1, eps: 1e-5 },
  { width: 8192, group: 8192, T: 2, maxT: 3, eps: 1e-5 }, // re-read path (> 16 per thread)
  { width: 300, group: 3, T: 33, maxT: 40, eps: 1e-5 },
  { width: 96, group: 32, T: 5, maxT: 8, eps: 1e-6, normBeforeGate: true },
  { width: 15, group: 15, T: 1, maxT: 1, eps: 1e-5, normBeforeGate: true },
  { width: 8192, group: 4096, T: 3, maxT: 3, eps: 1e-5, normBeforeGate: true }, // re-read path
  // fla: heads of 6 (RetNet, GLA), a decode row of 4 heads of 64, a re-read path.
  { width: 24, group: 6, T: 5, maxT: 8, eps: 1e-6, normBeforeGate: true, groupWeight: true },
  { width: 256, group: 64, T: 1, maxT: 1, eps: 1e-6, normBeforeGate: true, groupWeight: true },
  { width: 8192, group: 4096, T: 2, maxT: 3, eps: 1e-5, normBeforeGate: true, groupWeight: true },
];

/** HF MambaRMSNormGated with group_size, written out here. */
function plain(c: Case, x: Float32Array, z: Float32Array, w: Float32Array): Float32Array {
  const out = new Float32Array(c.T * c.width);
  for (let t = 0; t < c.T; t++) {
    for (let g0 = 0; g0 < c.width; g0 += c.group) {
      const v: number[] = [];
      const silu = (j: number) => z[j] / (1 + Math.exp(-z[j]));
      for (let i = 0; i < c.group; i++) {
        const j = t * c.width + g0 + i;
        v.push(c.normBeforeGate ? x[j] : x[j] * silu(j));
      }
      const ms = v.reduce((s, e) => s + e * e, 0) / c.group;
      for (let i = 0; i < c.group; i++) {
        const j = t * c.width + g0 + i;
        const gate = c.normBeforeGate ? silu(j) : 1;
        out[j] = w[(c.groupWeight ? 0 : g0) + i] * (v[i] / Math.sqrt(ms + c.eps)) * gate;
      }
    }
  }
  return out;
}

describe('gated_norm kernel', () => {
  for (const [ci, c] of cases.entries()) {
    const what = `${c.normBeforeGate ? ', norm before gate' : ''}${c.groupWeight ? ', group weight' : ''}`;
    it(`width ${c.width}, group ${c.group}, T = ${c.T}${what}`, async () => {
      const { caps } = await testGpu();
      const a: GatedNormAttrs = {
        op: 'gated_norm',
        width: c.width,
        group: c.group,
        eps: c.eps,
        normBeforeGate: c.normBeforeGate ?? false,
        groupWeight: c.groupWeight,
      };
      const n = c.maxT * c.width;
      const x = randn(n, 10 + ci, 3);
      const z = randn(n, 20 + ci, 4);
      const w = randn(c.groupWeight ? c.group : c.width, 30 + ci, 1);
      const step = { T: c.T, pos: 0, L: 1 };
      const want = gatedNorm.reference(a, { x, z, w }, step).out;
      expect(maxRelError(want, plain(c, x, z, w))).toBeLessThan(1e-6);
      const out = new Float32Array(n).fill(999);
      const { launches } = gatedNormKernel(a, { caps, maxT: c.maxT });
      const got = await runLaunches(launches, { inputs: { x, z, w, out }, step });
      expect(maxRelError(got.out.subarray(0, want.length), want)).toBeLessThanOrEqual(1e-4);
      expect(got.out.subarray(want.length).every((v) => v === 999)).toBe(true);
    });
  }

  it('rejects a width that is not a multiple of the group', async () => {
    const { caps } = await testGpu();
    const a: GatedNormAttrs = {
      op: 'gated_norm',
      width: 10,
      group: 4,
      eps: 1e-5,
      normBeforeGate: false,
    };
    expect(() => gatedNormKernel(a, { caps, maxT: 1 })).toThrow(/multiple/);
  });
});
