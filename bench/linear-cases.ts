/**
 * The linear-recurrence suite (issue 11): strata's `linear_recurrence` kernels on the shapes
 * bench/peers.py gives fla's Triton kernels, in f32. Each family is one recurrence configuration;
 * prefill is one step over T tokens from position 0, decode one token at position 4096 (state
 * carried). Inputs are drawn so the recurrence stays in range (l2-normalised-scale keys, decays
 * in [−0.1, 0)): the timing of exp and division paths does not depend on the values otherwise.
 */
import type { LinearRecurrenceAttrs } from '../src/graph/ops.ts';
import { definitionFor } from '../src/ops/index.ts';
import { generatorFor } from '../codegen/kernels/index.ts';
import type { GpuContext } from '../runtime/gpu.ts';
import { timeLaunches } from './gpu-timer.ts';
import { uniform } from '../src/import/random-init.ts';

/** One family's recurrence, at 16 heads of 128 × 128 (a 2k-wide 1.3B-class layer). */
export const LINEAR_FAMILIES: { name: string; attrs: LinearRecurrenceAttrs }[] = (() => {
  const base = {
    op: 'linear_recurrence',
    heads: 16,
    qHeads: 16,
    kHeads: 16,
    vHeads: 16,
    gateHeads: 16,
    keyDim: 128,
    valueDim: 128,
    scale: 128 ** -0.5,
    normalize: false,
    normEps: 0,
  } as const;
  return [
    { name: 'retention (fixed decay)', attrs: { ...base, decay: 'fixed', update: 'add' } },
    { name: 'gla (key decay)', attrs: { ...base, decay: 'key', update: 'add' } },
    { name: 'gated delta (head decay)', attrs: { ...base, decay: 'head', update: 'delta' } },
    { name: 'delta (no decay)', attrs: { ...base, decay: 'none', update: 'delta' } },
  ];
})();

export const LINEAR_PREFILL = [4096, 16384, 65536];
export const DECODE_POS = 4096;

function elements(shape: (number | string)[], T: number): number {
  return shape.reduce<number>((n, d) => n * (d === 'T' ? T : (d as number)), 1);
}

/** Inputs in range for the recurrence: q, k ~ U(±1/√dk), v ~ U(±1), g ∈ [−0.1, 0), β ∈ (0, 1). */
function initData(a: LinearRecurrenceAttrs, T: number): Record<string, Float32Array> {
  const def = definitionFor(a)!;
  const data: Record<string, Float32Array> = {};
  let seed = 1;
  const r = 1 / Math.sqrt(a.keyDim);
  for (const [name, rule] of Object.entries(def.inputs(a))) {
    const n = elements(rule.shape, T);
    const range: [number, number] =
      name === 'g'
        ? [-0.1, -1e-3]
        : name === 'beta'
          ? [0.05, 0.95]
          : name === 'v'
            ? [-1, 1]
            : [-r, r];
    data[name] = name === 'state' ? new Float32Array(n) : uniform(n, seed++, ...range);
  }
  return data;
}

export interface LinearRow {
  family: string;
  case: string;
  T: number;
  ms: number;
  gpuMs: number | null;
  wallMs: number;
  dispatches: number;
  tokensPerS: number;
}

export async function benchLinear(gpu: GpuContext, log: (m: string) => void): Promise<LinearRow[]> {
  const rows: LinearRow[] = [];
  for (const f of LINEAR_FAMILIES) {
    const def = definitionFor(f.attrs)!;
    for (const T of [...LINEAR_PREFILL, 1]) {
      const gen = generatorFor(f.attrs)(f.attrs, { caps: gpu.caps, maxT: T });
      const bytes: Record<string, number> = { ...gen.scratch };
      for (const [name, rule] of [
        ...Object.entries(def.inputs(f.attrs)),
        ...Object.entries(def.outputs(f.attrs)),
      ]) {
        bytes[name] = 4 * elements(rule.shape, T);
      }
      const pos = T === 1 ? DECODE_POS : 0;
      const reps = T === 1 ? 200 : T >= 65536 ? 2 : 5;
      const t = await timeLaunches(
        gpu,
        gen.launches,
        bytes,
        { T, pos, L: 1 },
        { reps, samples: 5, init: initData(f.attrs, T) },
      );
      const ms = t.gpuMs ?? t.wallMs;
      const label = T === 1 ? `decode @${DECODE_POS}` : `prefill ${T / 1024}k`;
      rows.push({
        family: f.name,
        case: label,
        T,
        ms,
        gpuMs: t.gpuMs,
        wallMs: t.wallMs,
        dispatches: gen.launches.length,
        tokensPerS: T / (ms * 1e-3),
      });
      log(`linear ${f.name} ${label}: ${ms.toFixed(3)} ms (${gen.launches.length} dispatch)`);
    }
  }
  return rows;
}
