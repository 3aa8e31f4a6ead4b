/**
 * Issue 17's decode bench in the RESULTS tables: `strata explore --measure` sweeps of
 * bench/sparse/llama-1b-attention.strata (bench/sparse/run.sh), one table per context. Several
 * sweeps of one context merge by design, a later file's row replacing an earlier one's (a rerun of
 * the forms whose kernels changed), and each row names the file it comes from.
 */
import { isMeasurement } from '../../src/cli/explore/measure.ts';
import type { Results } from '../../src/cli/explore/results.ts';

/** An explore results.json: what `isSweep` accepts. */
export type Sweep = Results;

export function isSweep(x: unknown): x is Sweep {
  const r = x as Partial<Results> | null;
  return !!r && Array.isArray(r.designs) && typeof r.paretoContext === 'number' && !!r.roofline;
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const f1 = (x: number) => x.toFixed(1);

/** One table per context, sweeps merged by design name (later files win). */
export function sweepSection(sweeps: { sweep: Sweep; from: string }[]): string[] {
  const byContext = new Map<number, Map<string, { d: Sweep['designs'][number]; from: string }>>();
  for (const { sweep, from } of sweeps) {
    const c = sweep.paretoContext;
    const rows = byContext.get(c) ?? new Map();
    for (const d of sweep.designs) rows.set(d.name, { d, from });
    byContext.set(c, rows);
  }
  const out: string[] = [];
  for (const [c, rows] of [...byContext.entries()].sort((x, y) => x[0] - y[0])) {
    const k = c >= 1024 ? `${c / 1024}k` : String(c);
    out.push(
      `### decode at ${k} context: Llama-3.2-1B dims, one attention form in all 16 layers (f32)`,
      '',
      '| form | caches at context | memory (weights + caches) | decode tok/s (mean of the timed steps) | from the median step | roofline estimate | prefill tok/s (2048 tokens) | decode dispatches | from |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    const notes = new Set<string>();
    for (const { d, from } of rows.values()) {
      const f = d.figures[0]!;
      const m = d.measured?.[0];
      const mem = f.memoryAt[c]!;
      const est = f1(f.decodeAt[c]!.tokensPerSecond);
      const form = d.values.form ?? d.name;
      if (m && !isMeasurement(m)) {
        out.push(
          `| ${form} | ${gib(mem - f.parameterBytes)} | ${gib(mem)} | refused (below) | — | ${est} | — | ${f.decode.dispatches} | ${from} |`,
        );
        notes.add(`${form}: ${m.refused}`);
        continue;
      }
      if (!m) continue;
      if (m.fill === 'zeros')
        notes.add(
          'Decode is timed from a jump to the context over zeroed caches (`--fill zeros`): the step does the same work as after a prefill.',
        );
      out.push(
        `| ${form} | ${gib(mem - f.parameterBytes)} | ${gib(mem)} | ${f1(m.decodeTokensPerSecond)} (${m.decodeSteps} steps, ${m.decodeStepMs.min.toFixed(2)}–${m.decodeStepMs.max.toFixed(2)} ms) | ${f1(1000 / m.decodeStepMs.median)} | ${est} | ${m.prefillTokensPerSecond.toFixed(0)} | ${m.decodeDispatches} | ${from} |`,
      );
    }
    out.push('', ...[...notes].map((n) => `- ${n}`), '');
  }
  return out;
}
