/**
 * `strata explore --measure`: each design compiled for the local GPU with seeded random weights
 * and timed, beside the roofline estimate of the same step. Prefill is T = max_t tokens from
 * position 0 (what the estimate's prefill row is); decode is the rate of `steps` greedy tokens
 * after a prompt that fills the cache to the Pareto context (what its decode-at-context row is),
 * then, where the adapter has timestamp queries, PROFILE_STEPS more decode steps with every
 * dispatch timed in a pass of its own: where a decode token's GPU time goes, by role.
 * Each measurement is kept in DIR/measure-cache/ under a hash of everything it depends on, so a
 * rerun, or a sweep interrupted halfway, measures only what it has not.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelIR } from '../../spec/model.ts';
import type { Precision } from '../../passes/precision.ts';
import type { KvType } from '../../graph/ops.ts';
import { randomWeights } from '../../import/random-init.ts';
import { compileModel } from '../../../codegen/compile.ts';
import { memorySource } from '../../../codegen/bundle.ts';
import { GpuModel } from '../../../runtime/model.ts';
import { median, profilePhase, type PhaseProfile } from '../../../runtime/dispatch-profile.ts';
import { GREEDY } from '../../../codegen/kernel-ir.ts';
import type { GpuContext } from '../../../runtime/gpu.ts';
import { UserError } from '../command.ts';
import { DeviceLimitError } from '../../../runtime/fits.ts';

export interface Measurement {
  /** The adapter measured on. */
  device: string;
  precision: Precision;
  prefillTokens: number;
  /** Median of three prefills of prefillTokens from position 0. */
  prefillTokensPerSecond: number;
  context: number;
  /** How the cache came to hold `context` tokens (MeasureSettings.fill). */
  fill: MeasureFill;
  decodeSteps: number;
  /** Tokens after the first over the time they took, once the cache holds `context` tokens. */
  decodeTokensPerSecond: number;
  /**
   * The timed steps' intervals (ms): a median far below the mean (decodeTokensPerSecond) says
   * a few steps stalled, not that every step is slow.
   */
  decodeStepMs: { median: number; min: number; max: number };
  /**
   * The measured build's decode dispatches and the storage buffers its kernels could bind (the
   * adapter's): decode fusions follow that budget (src/passes/fuse-rwkv7.ts), so these may be
   * fewer than the estimate's, compiled at WebGPU's 8.
   */
  decodeDispatches: number;
  storageBuffers: number;
  /**
   * A decode token's GPU time by role (each dispatch in a pass of its own, median of
   * PROFILE_STEPS steps after the timed ones); null without timestamp queries.
   */
  decodeProfile: PhaseProfile | null;
}

/**
 * A design this adapter cannot run, e.g. a cache binding past maxStorageBufferBindingSize
 * (runtime/fits.ts): a row of the sweep that says why, not the end of the sweep.
 */
export interface MeasureRefusal {
  device: string;
  precision: Precision;
  refused: string;
}

export function isMeasurement(m: Measurement | MeasureRefusal): m is Measurement {
  return !('refused' in m);
}

/** Decode steps of the per-dispatch profile, after the timed ones. */
export const PROFILE_STEPS = 5;

export interface MeasureSettings {
  precision: Precision;
  kv: KvType;
  maxT: number;
  context: number;
  steps: number;
  seed: number;
  /**
   * How the cache comes to hold `context` tokens before decode is timed: a real prefill of them,
   * or `zeros`, a jump to the position over zeroed caches (Sequence.skipForTiming): the same
   * decode step, without a fill that a serial policy (H2O) makes slow: its 32k prefill outlasted
   * a 10-minute H100 call.
   */
  fill: MeasureFill;
}

export const MEASURE_FILLS = ['prefill', 'zeros'] as const;
export type MeasureFill = (typeof MEASURE_FILLS)[number];

/** Token ids that are not all the same (a constant prompt could take shortcuts no text does). */
function ids(n: number, vocab: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7919 + 13) % vocab);
}

async function measure(gpu: GpuContext, model: ModelIR, s: MeasureSettings): Promise<Measurement> {
  const capacity = s.context + s.steps + PROFILE_STEPS;
  if (capacity > model.maxContext)
    throw new UserError(
      `--measure at context ${s.context} plus ${s.steps} decode steps and ${PROFILE_STEPS} profiled ones exceeds the model's max_context ${model.maxContext} (lower --context)`,
    );
  const compiled = compileModel(model, {
    caps: gpu.caps,
    maxT: s.maxT,
    capacity,
    precision: s.precision,
    kv: s.kv,
  });
  const gm = await GpuModel.load(gpu, memorySource(compiled, randomWeights(model, s.seed)));
  try {
    const T = compiled.maxT;
    const chunk = ids(T, model.vocab);
    // A prefill as generation runs it: the step and its sampled token, whose readback waits for
    // the step. Not forward(), which reads every row's logits back (T × vocab × 4 bytes: 262 MB
    // at T 512 and vocab 128256), so the figure measured the copy, not the prefill; nor the new
    // sequence's cache allocation (each run gets a fresh sequence, made before the clock starts).
    const prefill: number[] = [];
    for (let i = 0; i < 4; i++) {
      const seq = gm.newSequence();
      const t0 = performance.now();
      await seq.next(chunk, GREEDY);
      // The first run warms pipelines and buffers.
      if (i > 0) prefill.push((performance.now() - t0) / 1000);
      seq.destroy();
    }
    const times: number[] = [];
    const seq = gm.newSequence();
    let last = 0;
    // Zeros: the first timed step runs at position context - 1, as the prefill's last one would.
    if (s.fill === 'zeros') seq.skipForTiming(s.context - 1);
    const prompt = s.fill === 'zeros' ? ids(1, model.vocab) : ids(s.context, model.vocab);
    for await (const token of seq.generate(prompt, {
      maxTokens: s.steps + 1,
      temperature: 0,
    })) {
      times.push(performance.now());
      last = token;
    }
    if (times.length < 2) throw new Error(`decode stopped after ${times.length} token(s)`);
    const steps = times.slice(1).map((t, i) => t - times[i]!);
    const decodeProfile = await profilePhase(gpu, gm, 'decode', (t) =>
      seq.profileDecode(last, PROFILE_STEPS, t),
    );
    return {
      device: gpu.adapterInfo.description,
      precision: s.precision,
      prefillTokens: T,
      prefillTokensPerSecond: T / median(prefill),
      context: s.context,
      fill: s.fill,
      decodeSteps: times.length - 1,
      decodeTokensPerSecond: ((times.length - 1) * 1000) / (times.at(-1)! - times[0]!),
      decodeStepMs: { median: median(steps), min: Math.min(...steps), max: Math.max(...steps) },
      decodeDispatches: compiled.phases.decode.dispatches.length,
      storageBuffers: gpu.caps.maxStorageBuffersPerStage,
      decodeProfile,
    };
  } finally {
    gm.destroy();
  }
}

/** A cached measurement when one exists for exactly this design, settings and device. */
export async function measureCached(
  gpu: GpuContext,
  model: ModelIR,
  designSource: string,
  s: MeasureSettings,
  cacheDir: string,
): Promise<{ m: Measurement | MeasureRefusal; cached: boolean }> {
  const key = createHash('sha256')
    .update(JSON.stringify({ designSource, s, device: gpu.adapterInfo, v: 6 }))
    .digest('hex')
    .slice(0, 24);
  const file = join(cacheDir, `${key}.json`);
  if (existsSync(file))
    return { m: JSON.parse(readFileSync(file, 'utf8')) as Measurement, cached: true };
  let m: Measurement | MeasureRefusal;
  try {
    m = await measure(gpu, model, s);
  } catch (e) {
    if (!(e instanceof DeviceLimitError)) throw e;
    m = { device: gpu.adapterInfo.description, precision: s.precision, refused: e.message };
  }
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(file, JSON.stringify(m, null, 2) + '\n');
  return { m, cached: false };
}
