/**
 * `inspect --browser`: whether a model fits what a browser tab typically gives, at each weight
 * precision. The model is compiled for WebGPU's default limits (BASELINE_CAPS: storage bindings
 * of 128 MiB, buffers of 256 MiB, which Chromium grants without asking for more), so oversized
 * weights are split as a browser bundle would split them, and the bundle's needs are read the way
 * the runtime's load check reads them (runtime/fits.ts). The tab budget is the GPU memory the
 * bundle allocates: weights, state at the compiled capacity, and both phases' activations.
 */
import { compileModel, type CompileOptions } from '../../codegen/compile.ts';
import { toManifest } from '../../codegen/bundle.ts';
import { bundleNeeds } from '../../runtime/fits.ts';
import { BASELINE_CAPS } from '../target.ts';
import { PRECISIONS, type Precision } from '../passes/precision.ts';
import type { ModelIR } from '../spec/model.ts';
import { report } from './report.ts';

/** A browser tab's GPU memory, as budgets for web apps usually assume. */
export const TAB_BYTES = 4 * 2 ** 30;

export interface BrowserBudget {
  precision: Precision;
  /** Why the model does not compile under the default limits, or null. */
  error: string | null;
  weightBytes: number;
  stateBytes: number;
  activationBytes: number;
  /** What the bundle allocates in all. */
  totalBytes: number;
  /** The largest buffer and what it is, against maxBufferSize (256 MiB by default). */
  largestBuffer: { bytes: number; what: string };
  fitsBuffer: boolean;
  fitsTab: boolean;
}

export function browserBudgets(
  model: ModelIR,
  opts: Pick<CompileOptions, 'maxT' | 'capacity' | 'kv' | 'fuse'>,
): BrowserBudget[] {
  return PRECISIONS.map((precision) => {
    let c;
    try {
      c = compileModel(model, { ...opts, caps: BASELINE_CAPS, precision });
    } catch (e) {
      const none = { bytes: 0, what: 'nothing' };
      return {
        precision,
        error: (e as Error).message,
        weightBytes: 0,
        stateBytes: 0,
        activationBytes: 0,
        totalBytes: 0,
        largestBuffer: none,
        fitsBuffer: false,
        fitsTab: false,
      };
    }
    const r = report(c);
    const m = toManifest(c);
    const needs = bundleNeeds(m);
    const phases = [m.phases.prefill, m.phases.decode];
    const activationBytes = phases.reduce(
      (n, p) =>
        n +
        p.slots.reduce((a, b) => a + b, 0) +
        Object.values(p.scratch).reduce((a, b) => a + b, 0),
      0,
    );
    const totalBytes = r.parameterBytes + r.stateBytesPerSequence + activationBytes;
    const buffer = needs.maxBufferSize;
    return {
      precision,
      error: null,
      weightBytes: r.parameterBytes,
      stateBytes: r.stateBytesPerSequence,
      activationBytes,
      totalBytes,
      largestBuffer: { bytes: buffer.need, what: buffer.what },
      fitsBuffer: buffer.need <= BASELINE_CAPS.maxBufferBytes,
      fitsTab: totalBytes <= TAB_BYTES,
    };
  });
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** The terminal table: one line per precision. */
export function budgetLines(budgets: BrowserBudget[], capacity: number): string[] {
  const lines = [
    `browser budgets (WebGPU default limits: 128 MiB bindings, 256 MiB buffers; a ${TAB_BYTES / 2 ** 30} GiB tab; capacity ${capacity}):`,
  ];
  for (const b of budgets) {
    if (b.error) {
      lines.push(`  ${b.precision.padEnd(4)} does not compile for these limits: ${b.error}`);
      continue;
    }
    const verdict = [
      b.fitsBuffer
        ? null
        : `largest buffer ${mib(b.largestBuffer.bytes)} (${b.largestBuffer.what}) over 256 MiB`,
      b.fitsTab ? null : `total over the tab by ${mib(b.totalBytes - TAB_BYTES)}`,
    ].filter((x) => x !== null);
    lines.push(
      `  ${b.precision.padEnd(4)} ${mib(b.totalBytes).padStart(11)} (weights ${mib(b.weightBytes)}, state ${mib(b.stateBytes)}, activations ${mib(b.activationBytes)}): ` +
        (verdict.length ? `does not fit: ${verdict.join('; ')}` : 'fits'),
    );
  }
  return lines;
}
