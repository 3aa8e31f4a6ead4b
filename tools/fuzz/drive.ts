/**
 * One fuzzing loop: fast-check generates inputs from a seed, the sandbox runs them, and the
 * first input with a signature not seen before fails the property, so fast-check shrinks it
 * (keeping that signature) and the minimiser trims it. The loop then continues from a seed
 * derived from (seed, round), so a run is a deterministic function of its seed and outcomes.
 */
import fc from 'fast-check';
import { fuzzInputArb } from './arbitrary.ts';
import { minimize } from './minimize.ts';
import { Sandbox } from './sandbox.ts';
import type { FuzzInput, InputKind } from './types.ts';

export interface DriveOptions {
  seed: number;
  /** Wall-clock end (epoch ms). */
  deadline: number;
  /** Most generated inputs (shrinking and minimising not counted). */
  maxRuns: number;
  kinds?: InputKind[];
  /** Time allowed to shrink and minimise one new failure. */
  shrinkMs: number;
  /** Time one input may take; the sandbox's default when absent. */
  budgetMs?: number;
}

export interface Found {
  signature: string;
  reason: string;
  input: FuzzInput;
  /** The round's seed: `fc.check` with it reproduces the unshrunk input. */
  seed: number;
}

export interface DriveStats {
  runs: number;
  shrinkRuns: number;
  ms: number;
  outcomes: Record<string, number>;
  /** Generated inputs failing, by signature (shrink runs excluded). */
  failures: Record<string, number>;
  found: Found[];
}

/** The seed of a round: a 32-bit mix so that neighbouring seeds give unrelated rounds. */
export function roundSeed(seed: number, round: number): number {
  let h = (seed ^ Math.imul(round + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) | 0;
}

export async function drive(
  opts: DriveOptions,
  known: Set<string>,
  onFound: (f: Found) => void = () => {},
): Promise<DriveStats> {
  const sandbox = new Sandbox(opts.budgetMs);
  const arb = fuzzInputArb({ kinds: opts.kinds });
  const stats: DriveStats = {
    runs: 0,
    shrinkRuns: 0,
    ms: 0,
    outcomes: {},
    failures: {},
    found: [],
  };
  const started = Date.now();
  try {
    for (let round = 0; Date.now() < opts.deadline && stats.runs < opts.maxRuns; round++) {
      const seed = roundSeed(opts.seed, round);
      let target: string | null = null;
      let targetReason = '';
      let shrinkDeadline = Infinity;
      const property = fc.asyncProperty(arb, async (input: FuzzInput) => {
        if (target === null) {
          if (Date.now() >= opts.deadline) return true;
          stats.runs++;
          const o = await sandbox.run(input);
          const key = `${input.kind}:${o.status}`;
          stats.outcomes[key] = (stats.outcomes[key] ?? 0) + 1;
          if (o.status !== 'failure') return true;
          stats.failures[o.signature] = (stats.failures[o.signature] ?? 0) + 1;
          if (known.has(o.signature)) return true;
          target = o.signature;
          targetReason = o.reason;
          shrinkDeadline = Date.now() + opts.shrinkMs;
          return false;
        }
        // Shrinking: a candidate counts as failing only with the same signature.
        if (Date.now() > shrinkDeadline) return true;
        stats.shrinkRuns++;
        const o = await sandbox.run(input);
        if (o.status === 'failure' && o.signature === target) {
          targetReason = o.reason;
          return false;
        }
        return true;
      });
      const details = await fc.check(property, {
        seed,
        numRuns: opts.maxRuns - stats.runs,
        interruptAfterTimeLimit: Math.max(1, opts.deadline - Date.now()),
        markInterruptAsFailure: false,
      });
      if (details.failed && target === null)
        throw new Error(`fuzz loop broke: ${String(details.errorInstance)}`);
      if (!details.failed || target === null || !details.counterexample) break;
      const signature: string = target;
      known.add(signature);
      const shrunk = details.counterexample[0];
      const timeout = /timeout|out of memory/.test(signature);
      const small = await minimize(
        shrunk,
        signature,
        (i) =>
          sandbox.run(i).then((o) => {
            stats.shrinkRuns++;
            return o;
          }),
        {
          maxTries: timeout ? 8 : 300,
          deadline: Date.now() + opts.shrinkMs,
        },
      );
      const found: Found = { signature, reason: targetReason, input: small, seed };
      stats.found.push(found);
      onFound(found);
    }
  } finally {
    await sandbox.close();
  }
  stats.ms = Date.now() - started;
  return stats;
}
