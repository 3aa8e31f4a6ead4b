/**
 * A matmul per head, each head with its own weight (semantics in src/graph/ops.ts,
 * HeadMatmulAttrs): MLA's absorbed projections, where each of DeepSeek-V3's 128 heads carries its
 * own [128 × 512] slice of kv_b_proj. A plain matmul would need a block-diagonal weight, 128×
 * larger; the grouped MoE matmul selects weights per token, not per column block.
 */
import type { HeadMatmulAttrs } from '../graph/ops.ts';
import { dtypeBytes } from '../graph/dtype.ts';
import { roundWeight } from './weight-storage.ts';
import { f32, rule, type OpDefinition } from './types.ts';

/** The weight's [rows, cols]: the head's weights stacked head by head in their stored layout. */
export function headMatmulWeightShape(a: HeadMatmulAttrs): [number, number] {
  return a.wLayout === 'nk' ? [a.heads * a.N, a.K] : [a.heads * a.K, a.N];
}

export const headMatmul: OpDefinition<HeadMatmulAttrs> = {
  check(a) {
    for (const [name, v] of Object.entries({ heads: a.heads, N: a.N, K: a.K })) {
      if (!Number.isInteger(v) || v < 1) {
        throw new Error(`head_matmul: ${name} must be a positive integer, got ${v}`);
      }
    }
    if (a.wLayout !== 'nk' && a.wLayout !== 'kn') {
      throw new Error(`head_matmul: wLayout must be 'nk' or 'kn', got '${String(a.wLayout)}'`);
    }
    const t = a.wType ?? 'f32';
    if (t !== 'f32' && t !== 'f16') {
      throw new Error(`head_matmul: wType must be 'f32' or 'f16', got '${String(t)}'`);
    }
  },
  inputs: (a) => ({
    x: rule(['T', a.heads * a.K]),
    w: rule(headMatmulWeightShape(a), 'read', a.wType ?? 'f32'),
  }),
  outputs: (a) => ({ out: rule(['T', a.heads * a.N]) }),
  reference(a, inputs, step) {
    headMatmul.check(a);
    const x = f32(inputs, 'x');
    // The values the kernel reads: each weight rounded to f16 when stored so.
    const w = roundWeight(a.wType ?? 'f32', f32(inputs, 'w'), headMatmulWeightShape(a)[1]);
    const { heads: H, N, K } = a;
    if (x.length < step.T * H * K) {
      throw new Error(`head_matmul: x has ${x.length} elements, the step needs ${step.T * H * K}`);
    }
    if (w.length !== H * N * K) {
      throw new Error(`head_matmul: w has ${w.length} elements, not heads·N·K = ${H * N * K}`);
    }
    // Element (n, k) of head h's weight, in either layout.
    const wAt =
      a.wLayout === 'nk'
        ? (h: number, n: number, k: number) => w[(h * N + n) * K + k]
        : (h: number, n: number, k: number) => w[(h * K + k) * N + n];
    const out = new Float32Array(step.T * H * N);
    for (let t = 0; t < step.T; t++) {
      for (let h = 0; h < H; h++) {
        const xo = (t * H + h) * K;
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += x[xo + k] * wAt(h, n, k);
          out[(t * H + h) * N + n] = s;
        }
      }
    }
    return { out };
  },
  cost(a, step) {
    const { heads: H, N, K } = a;
    return {
      flops: 2 * step.T * H * N * K,
      bytesRead: 4 * step.T * H * K + dtypeBytes(a.wType ?? 'f32', H * N * K),
      bytesWritten: 4 * step.T * H * N,
    };
  },
};
