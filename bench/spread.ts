/**
 * Run-to-run spread in the RESULTS tables (issue 18: every figure is a median with its min and
 * max, and the tables say which runs disagree). On the lent GPUs the same prefill has ranged 4×
 * within one run (a slow first chunk, a neighbour on the host), so a median alone hides it.
 */

/** A throughput's median over its runs, with the slowest and fastest run. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/** Fastest ÷ slowest above which the runs are said to disagree. */
export const DISAGREE = 1.5;

/**
 * The spread of `work` units done in each run's seconds (or in just the slowest and fastest
 * run's, with `runs` saying how many there were).
 */
export function spreadOf(
  work: number,
  median: number,
  seconds: readonly number[],
  runs = seconds.length,
): Spread | null {
  const ok = seconds.filter((s) => Number.isFinite(s) && s > 0);
  if (ok.length < 2 || runs < 2) return null;
  return { median, min: work / Math.max(...ok), max: work / Math.min(...ok), runs };
}

/** "17336 (4920–20477)": the median and its range, at `digits` decimals. */
export function withRange(s: Spread, digits: number): string {
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** A sentence naming the figure whose runs disagree (fastest over DISAGREE × slowest), or null. */
export function disagreement(label: string, s: Spread, unit: string): string | null {
  const r = s.max / s.min;
  if (r <= DISAGREE) return null;
  return `Runs disagree on ${label}: ${s.min.toFixed(0)}–${s.max.toFixed(0)} ${unit} over ${s.runs} runs (${r.toFixed(1)}×); the table gives the median.`;
}
