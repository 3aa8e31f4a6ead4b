/**
 * Every matmul tile shape on every benchmark shape, each checked (sampled f64 dot products) and
 * timed on random data: the measurements the tile rules in codegen/kernels/matmul/ are chosen
 * from. Usage on the GPU machine:
 *   tsx bench/matmul-sweep.ts [--gpu-flags fast] [--out FILE] [--shapes M×N×K[g],…]
 *     [--wtypes f32,f16,q8,q4] [--groups 1,2,4,8] [--tpc 32,64,128,256] [--cs 2,4,8]
 *     [--schedules fma,mma,w16] [--kinds REGEX] [--repeat N]
 * Decode shapes (M = 1) try every GEMV shape (TPC × C × G load units per step) for each weight
 * type of --wtypes; G's rule is GEMV_UNITS in codegen/kernels/matmul/gemv.ts.
 */
import { parseArgs } from 'node:util';
import { gpuFlags, whole, writeResult } from './args.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { plainMatmul, type MatmulAttrs } from '../src/graph/ops.ts';
import { matmulKernel, matmulWeightBytes } from '../codegen/kernels/matmul.ts';
import { gemvLaunch } from '../codegen/kernels/matmul/gemv.ts';
import { WEIGHT_TYPES, weightTypeUnsupported, type WeightType } from '../src/graph/dtype.ts';
import { common } from '../codegen/kernels/matmul/common.ts';
import { TILE_SHAPES, tiledLaunch, tilingFor } from '../codegen/kernels/matmul/tiled.ts';
import {
  TENSOR_SHAPES,
  TENSOR_STAGES,
  tensorCommon,
  tensorLaunch,
  tensorTilingFor,
  tensorUnsupported,
} from '../codegen/kernels/matmul/subgroup-matrix.ts';
import type { KernelLaunch } from '../codegen/kernel-ir.ts';
import { matmulData, timeMatmul } from './matmul-cases.ts';

const { values } = parseArgs({
  options: {
    'gpu-flags': { type: 'string', default: 'fast' },
    out: { type: 'string' },
    /** M×N×K[g],…: other shapes (g: gated), e.g. for a smoke run on SwiftShader. */
    shapes: { type: 'string' },
    /** Weight types of the decode GEMV candidates. */
    wtypes: { type: 'string', default: 'f32,f16,q8,q4' },
    /** Load units per thread and step (GemvShape.G) of the GEMV candidates. */
    groups: { type: 'string', default: '1,2,4,8' },
    /** Threads per row (TPC) and rows per thread group (C) of the GEMV candidates. */
    tpc: { type: 'string', default: '32,64,128,256' },
    cs: { type: 'string', default: '2,4,8' },
    /** Which schedules of the prefill shapes to try: fma (f32 tiles), mma (tensor cores), w16. */
    schedules: { type: 'string', default: 'fma,mma,w16' },
    /** Only the variants whose kind matches this regular expression, e.g. '2x4x4x2 bk32'. */
    kinds: { type: 'string' },
    /**
     * Time every variant this many times, round-robin (variant 1, 2, …, 1, 2, …), so a slow
     * spell of the machine falls on all of them alike; each row gives the median, min and max.
     */
    repeat: { type: 'string', default: '1' },
  },
});
const SCHEDULES = new Set(values.schedules.split(','));
const REPEAT = whole('--repeat', values.repeat, 1);
const WTYPES = values.wtypes.split(',').map((t) => {
  if (!(WEIGHT_TYPES as readonly string[]).includes(t))
    throw new Error(`--wtypes: ${t} is not one of ${WEIGHT_TYPES.join(', ')}`);
  return t as WeightType;
});
const GEMV_G = values.groups.split(',').map(Number);
const gpu = await acquire({ flags: gpuFlags(values['gpu-flags']) });
const log = (m: string) => process.stderr.write(m + '\n');
log(`adapter ${JSON.stringify(gpu.adapterInfo)}; caps ${JSON.stringify(gpu.caps)}`);

// The benchmark's square shapes, then Llama-3.2-1B prefill shapes at 512 tokens (q/k/v fused,
// gate/up fused, down).
const GEMV_TPC = values.tpc.split(',').map(Number);
const GEMV_C = values.cs.split(',').map(Number);

const SHAPES: [number, number, number, boolean][] = values.shapes
  ? values.shapes.split(',').map((s) => {
      const [M, N, K] = s.replace('g', '').split('x').map(Number);
      return [M, N, K, s.endsWith('g')];
    })
  : [
      [1024, 1024, 1024, false],
      [2048, 2048, 2048, false],
      [4096, 4096, 4096, false],
      [512, 3072, 2048, false],
      [512, 8192, 2048, true],
      [512, 2048, 8192, false],
      // Decode GEMVs: the benchmark's, Llama-3.2-1B's (qkv, gate+up, down) and a vocab head.
      [1, 4096, 4096, false],
      [1, 14336, 4096, false],
      [1, 3072, 2048, false],
      [1, 8192, 2048, true],
      [1, 2048, 8192, false],
      [1, 32768, 2048, false],
    ];

interface Row {
  shape: string;
  kind: string;
  kernel: string;
  /** The median over --repeat timings, and their range when there were several. */
  ms?: number;
  minMs?: number;
  maxMs?: number;
  tflops?: number;
  gbps?: number;
  err?: number;
  error?: string;
  chosen: boolean;
}
const rows: Row[] = [];
const ok = (e: unknown) => (e instanceof Error ? e.message : String(e)).slice(0, 300);

for (const [M, N, K, gated] of SHAPES) {
  const shape = `${M}x${gated ? 2 * N : N}x${K}${gated ? ' (gated)' : ''}`;
  const d = matmulData(M, gated ? 2 * N : N, K, M + N + K);
  const base: MatmulAttrs = { ...plainMatmul(N, K), gated, act: gated ? 'silu' : null };
  const variants: { kind: string; a: MatmulAttrs; launch: () => KernelLaunch }[] = [];
  const chosenName = (a: MatmulAttrs) =>
    matmulKernel(a, { caps: gpu.caps, maxT: M }).launches[0].kernel.name;
  if (M === 1) {
    // Decode: every GEMV shape for each weight type (q8 / q4 where rows are whole blocks),
    // G only where it divides the row's load units.
    const units = K % 4 === 0 ? K / 4 : K;
    for (const wType of WTYPES) {
      if (weightTypeUnsupported(wType, K)) continue;
      const a: MatmulAttrs = { ...base, wType };
      for (const G of GEMV_G.filter((g) => units % g === 0)) {
        for (const TPC of GEMV_TPC) {
          for (const C of GEMV_C) {
            variants.push({
              kind: `gemv ${wType} tpc${TPC} c${C} u${G}`,
              a,
              launch: () => gemvLaunch(a, gpu.caps, { TPC, C, G }),
            });
          }
        }
      }
    }
  }
  for (const s of M === 1 || !SCHEDULES.has('fma') ? [] : TILE_SHAPES) {
    const t = tilingFor(base, gpu.caps, s);
    if (t)
      variants.push({
        kind: `f32 fma ${s.join('x')}`,
        a: base,
        launch: () => tiledLaunch(base, common(base), gpu.caps, M, t),
      });
  }
  const f16: MatmulAttrs = { ...base, wType: 'f16', xType: 'f16' };
  const why =
    M === 1 ? 'decode' : SCHEDULES.has('mma') ? tensorUnsupported(f16, gpu.caps) : 'not asked';
  if (why) log(`${shape}: no tensor-core variants (${why})`);
  else {
    for (const s of TENSOR_SHAPES) {
      for (const BK of [32, 64]) {
        for (const [stages, vs] of TENSOR_STAGES.flatMap((st) =>
          (gpu.caps.bufferView ? [false, true] : [false]).map((v) => [st, v] as const),
        )) {
          const t = tensorTilingFor(f16, gpu.caps, s, BK, stages, vs);
          if (!t) continue;
          const how = `${stages > 1 ? ' db' : ''}${vs ? ' vs' : ''}`;
          variants.push({
            kind: `f16 mma ${s.join('x')} bk${BK}${how}`,
            a: f16,
            launch: () => tensorLaunch(f16, tensorCommon(f16, t), gpu.caps, M, t),
          });
        }
      }
    }
  }
  const w16: MatmulAttrs = { ...base, wType: 'f16' };
  if (M > 1 && SCHEDULES.has('w16'))
    variants.push({
      kind: 'f16 weights on fma (chosen tile)',
      a: w16,
      launch: () => matmulKernel(w16, { caps: gpu.caps, maxT: M }).launches[0],
    });
  const chosen = new Set(
    M === 1
      ? WTYPES.filter((t) => !weightTypeUnsupported(t, K)).map((t) =>
          chosenName({ ...base, wType: t }),
        )
      : [chosenName(base), chosenName(f16)],
  );
  const only = values.kinds ? new RegExp(values.kinds) : null;
  const picked = variants.filter((v) => !only || only.test(v.kind));
  const times = picked.map(() => [] as number[]);
  const last: ({ kernel: string; err: number } | { kernel: string; error: string })[] = [];
  for (let r = 0; r < REPEAT; r++) {
    for (const [i, v] of picked.entries()) {
      if (last[i] && 'error' in last[i]) continue;
      let kernel = '?';
      try {
        const launch = v.launch();
        kernel = launch.kernel.name;
        const { ms, err } = await timeMatmul(gpu, v.a, [launch], M, d);
        times[i].push(ms);
        last[i] = { kernel, err };
      } catch (e) {
        last[i] = { kernel, error: ok(e) };
        log(`${shape.padEnd(24)} ${v.kind.padEnd(36)} FAILED ${ok(e)}`);
      }
    }
  }
  for (const [i, v] of picked.entries()) {
    const got = last[i];
    if (!got || 'error' in got) {
      rows.push({
        shape,
        kind: v.kind,
        kernel: got?.kernel ?? '?',
        error: got?.error,
        chosen: false,
      });
      continue;
    }
    const ts = [...times[i]].sort((p, q) => p - q);
    const ms = ts[Math.floor((ts.length - 1) / 2)];
    const tflops = (2 * M * v.a.N * (gated ? 2 : 1) * K) / (ms * 1e-3) / 1e12;
    const gbps = (matmulWeightBytes(v.a) + 4 * M * (K + v.a.N)) / (ms * 1e-3) / 1e9;
    const chose = chosen.has(got.kernel);
    rows.push({
      shape,
      kind: v.kind,
      kernel: got.kernel,
      ms,
      ...(ts.length > 1 ? { minMs: ts[0], maxMs: ts[ts.length - 1] } : {}),
      tflops,
      gbps,
      err: got.err,
      chosen: chose,
    });
    const spread = ts.length > 1 ? ` (${ts[0].toFixed(3)}–${ts[ts.length - 1].toFixed(3)})` : '';
    log(
      `${shape.padEnd(24)} ${v.kind.padEnd(36)} ${ms.toFixed(3).padStart(8)} ms${spread} ${tflops.toFixed(1).padStart(6)} TFLOP/s ${gbps.toFixed(0).padStart(5)} GB/s err ${got.err.toExponential(1)}${chose ? '  <- rule' : ''}`,
    );
  }
  writeResult(values.out, 'bench/matmul-sweep.ts', {
    device: gpu.adapterInfo,
    caps: gpu.caps,
    rows,
  });
}
process.exit(0);
