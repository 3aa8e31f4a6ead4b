/**
 * The per-head matmul (semantics: src/ops/head-matmul.ts): one thread per output element
 * (t, h, n), n fastest, summing its head's K products in order in f32. Under wLayout 'kn'
 * neighbouring threads read neighbouring weights at every k (coalesced); under 'nk' each thread
 * walks its own weight row, which the caches serve less well. MLA decode reads each weight once
 * per token either way; a tiled kernel that shares rows between threads is left for when the
 * bench shows this op mattering against the attention over the context.
 */
import type { HeadMatmulAttrs } from '../../src/graph/ops.ts';
import { headMatmul } from '../../src/ops/head-matmul.ts';
import { STEP_WGSL } from '../kernel-ir.ts';
import { opBindings } from './wgsl-builder.ts';
import { weightBinding } from './weight-load.ts';
import type { KernelGenerator } from './types.ts';
import { FLAT_MAIN_WGSL, flatGrid, streamWorkgroup } from './elementwise.ts';

export const headMatmulKernel: KernelGenerator<HeadMatmulAttrs> = (a, { caps, maxT }) => {
  headMatmul.check(a);
  const { heads: H, N, K } = a;
  const wg = streamWorkgroup(caps);
  // An f16 weight is read through the one weight reader (codegen/kernels/weight-load.ts).
  const f16 = (a.wType ?? 'f32') === 'f16';
  const wb = weightBinding(f16 ? 'f16' : 'f32', H * N * K, false);
  const { bindings, decls } = opBindings(
    a,
    [
      'load_w',
      'H',
      'N',
      'K',
      'WG',
      'main',
      'wid',
      'nwg',
      'lid',
      'i',
      'n',
      'th',
      'k',
      's',
      'xo',
      'w_at',
    ],
    [],
    { w: wb },
  );
  // Element (n, k) of head th % H's weight.
  const wAt =
    a.wLayout === 'nk'
      ? `load_w(((th % H) * N + n) * K + k)`
      : `load_w(((th % H) * K + k) * N + n)`;
  const code = `${STEP_WGSL}
${decls}
const H: u32 = ${H}u;
const N: u32 = ${N}u;
const K: u32 = ${K}u;
const WG: u32 = ${wg}u;
${wb.load('load_w', 'w')}

${FLAT_MAIN_WGSL}
  if (i >= step.T * H * N) { return; }
  // th = t·H + h: the (token, head) row; x's head row starts at th·K.
  let th = i / N;
  let n = i % N;
  let xo = th * K;
  var s = 0.0;
  for (var k = 0u; k < K; k++) { s += x[xo + k] * ${wAt}; }
  out[i] = s;
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `head_matmul_${a.wLayout}${f16 ? '_w16' : ''}_h${H}n${N}k${K}_wg${wg}`,
          code,
          bindings,
          workgroupSize: [wg, 1, 1],
        },
        grid: flatGrid('T', H * N, maxT, wg, caps),
      },
    ],
    scratch: {},
  };
};
