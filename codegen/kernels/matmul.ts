/**
 * WGSL generators for the matmul family (semantics: src/ops/matmul.ts). Three schedules share
 * one header, prologue norm and epilogue (matmul/common.ts), so every fused variant exists once:
 * - decode (maxT === 1), and steps of a few rows (gemvServesRows): a GEMV (matmul/gemv.ts),
 *   several rows a workgroup so each weight load serves them all;
 * - prefill on tensor cores when the matmul is f16 × f16 and the device has subgroup matrices
 *   (matmul/subgroup-matrix.ts);
 * - prefill otherwise: register-blocked tiles on the FMA units (matmul/tiled.ts), which also
 *   take f16 weights (and f16-rounded x) on devices without shader-f16.
 */
import type { MatmulAttrs } from '../../src/graph/ops.ts';
import { matmul, matmulStorageBindings } from '../../src/ops/matmul.ts';
import type { KernelGenerator } from './types.ts';
import { dtypeBytes } from '../../src/graph/dtype.ts';
import { common } from './matmul/common.ts';
import { rowPosScratch } from '../kernel-ir.ts';
import { GEMV_ROWS_PER_WORKGROUP, gemvLaunch } from './matmul/gemv.ts';
import { matmulTiling, tiledLaunch } from './matmul/tiled.ts';
import { tensorCommon, tensorLaunch, tensorTiling } from './matmul/subgroup-matrix.ts';

export { matmulTiling, type MatmulTiling } from './matmul/tiled.ts';
export { tensorTiling, tensorUnsupported } from './matmul/subgroup-matrix.ts';

/** Bytes one copy of the weight takes in its buffer. */
export function matmulWeightBytes(a: MatmulAttrs): number {
  return dtypeBytes(a.wType, (a.gated ? 2 : 1) * a.N * a.K);
}

/** Most rows of a step the GEMV takes (gemvServesRows). */
export const GEMV_MAX_ROWS = 16;

/**
 * Whether the GEMV serves a step of up to maxT rows (a batched decode step of B sequences, a
 * block-diffusion block, a short prefill chunk): the tile kernels walk K serially in each of
 * N / BN workgroups, so a step of a few rows leaves most of the GPU idle. On the H100
 * (2026-12-06, bench/batch.ts, Llama-3.2-1B dims) a batched step of B = 4 took 21.5 ms and
 * B = 16 24.8 ms through them, against 3.5 ms for B = 1 through the GEMV; with the GEMV serving
 * weights of up to 32 MiB one row at a time (each row re-reading them), B = 4 still took
 * 15.1 ms. The GEMV now takes up to GEMV_ROWS_PER_WORKGROUP rows a workgroup, so each weight
 * unit it loads serves them all: a step of 8 rows reads the weights once, of 16 twice.
 */
export function gemvServesRows(a: MatmulAttrs, maxT: number): boolean {
  return maxT <= GEMV_MAX_ROWS && !a.conv;
}

export const matmulKernel: KernelGenerator<MatmulAttrs> = (a, { caps, maxT }) => {
  matmul.check(a);
  const storage = matmulStorageBindings(a);
  if (storage > caps.maxStorageBuffersPerStage) {
    throw new Error(
      `matmul${a.ropeKv ? ' (ropeKv)' : ''}: needs ${storage} storage buffers but the device allows ` +
        `maxStorageBuffersPerShaderStage = ${caps.maxStorageBuffersPerStage}; do not fuse this much here`,
    );
  }
  const wBytes = matmulWeightBytes(a);
  if (wBytes > caps.maxStorageBindingBytes) {
    throw new Error(
      `matmul: weight of ${wBytes} bytes exceeds maxStorageBufferBindingSize = ${caps.maxStorageBindingBytes}; ` +
        'split it into column blocks (outStride/outOffset)',
    );
  }
  if (!Number.isInteger(maxT) || maxT < 1)
    throw new Error(`matmul: maxT must be a positive integer, got ${maxT}`);
  // Only the GEMV computes a grouped prologue's statistics (the fusion makes them for decode).
  if ((a.prologueGroup !== undefined || a.prologueGate) && maxT !== 1)
    throw new Error(
      `matmul: a grouped or gated norm prologue (prologueGroup ${a.prologueGroup}, prologueGate ${a.prologueGate}) runs in decode (maxT 1) only, got maxT ${maxT}`,
    );
  // The conv epilogue carries state from row to row, which the prefill tiles (rows in
  // parallel) cannot; the GEMV walks a longer step's rows in order (correct, slow: the fusion
  // makes conv epilogues for decode only).
  // A batched conv epilogue (conv.batch) has a state slice per row: any path takes it.
  // A batched ropeKv epilogue reads each row's position offset (kernel-ir.ts ROW_POS).
  const scratch = (a.ropeKv?.batch ?? 1) > 1 ? rowPosScratch(maxT) : {};
  // Per-split x maps exist in the GEMV only (the rwkv7-projections fusion makes them for maxT 1).
  if (a.splitXMaps && maxT !== 1)
    throw new Error(
      `matmul: splitXMaps (per-split x maps) need the decode GEMV (maxT 1), got maxT ${maxT}`,
    );
  if (maxT === 1 || (a.conv && (a.conv.batch ?? 1) === 1))
    return { launches: [gemvLaunch(a, caps)], scratch };
  if (gemvServesRows(a, maxT))
    return {
      launches: [gemvLaunch(a, caps, undefined, Math.min(maxT, GEMV_ROWS_PER_WORKGROUP))],
      scratch,
    };
  const tensor = tensorTiling(a, caps, maxT);
  const launch = tensor
    ? tensorLaunch(a, tensorCommon(a, tensor), caps, maxT, tensor)
    : tiledLaunch(a, common(a), caps, maxT, matmulTiling(a, caps, maxT));
  return { launches: [launch], scratch };
};
