/** A whole fuzz run: W loops (worker threads when W > 1), their statistics merged. */
import { drive, roundSeed, type DriveOptions, type DriveStats, type Found } from './drive.ts';
import { spawnTsWorker } from './spawn.ts';
import type { InputKind } from './types.ts';

export interface RunOptions {
  seconds: number;
  seed: number;
  workers: number;
  /** Most generated inputs over all workers. */
  runs: number;
  kinds?: InputKind[];
  /** Signatures already known (e.g. in the corpus): counted but not shrunk again. */
  known?: string[];
  shrinkMs?: number;
  /** Time one input may take (property 2); default INPUT_BUDGET_MS. */
  budgetMs?: number;
  onFound?: (f: Found) => void;
}

export interface Summary {
  seed: number;
  workers: number;
  runs: number;
  shrinkRuns: number;
  seconds: number;
  inputsPerSecond: number;
  outcomes: Record<string, number>;
  /** Per signature: failing generated inputs, and that per million inputs. */
  failures: { signature: string; count: number; perMillion: number }[];
  found: Found[];
}

const DRIVER = new URL('./driver-worker.ts', import.meta.url);

function merge(opts: RunOptions, parts: DriveStats[], ms: number): Summary {
  const outcomes: Record<string, number> = {};
  const failures: Record<string, number> = {};
  const found = new Map<string, Found>();
  let runs = 0;
  let shrinkRuns = 0;
  for (const p of parts) {
    runs += p.runs;
    shrinkRuns += p.shrinkRuns;
    for (const [k, v] of Object.entries(p.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + v;
    for (const [k, v] of Object.entries(p.failures)) failures[k] = (failures[k] ?? 0) + v;
    // Two workers can find one signature at once; keep the shorter reproducer.
    for (const f of p.found) {
      const had = found.get(f.signature);
      if (!had || f.input.text.length < had.input.text.length) found.set(f.signature, f);
    }
  }
  return {
    seed: opts.seed,
    workers: opts.workers,
    runs,
    shrinkRuns,
    seconds: ms / 1000,
    inputsPerSecond: runs / Math.max(ms / 1000, 1e-3),
    outcomes,
    failures: Object.entries(failures)
      .map(([signature, count]) => ({ signature, count, perMillion: (count / runs) * 1e6 }))
      .sort((a, b) => b.count - a.count),
    found: [...found.values()],
  };
}

export async function runFuzz(opts: RunOptions): Promise<Summary> {
  const start = Date.now();
  const deadline = start + opts.seconds * 1000;
  const perWorker = (i: number): DriveOptions => ({
    // Each worker its own stream of seeds; worker 0 of seed S is the single-worker run of S.
    seed: i === 0 ? opts.seed : roundSeed(opts.seed, 1_000_000 + i),
    deadline,
    maxRuns: Math.ceil(opts.runs / opts.workers),
    kinds: opts.kinds,
    shrinkMs: opts.shrinkMs ?? 20_000,
    budgetMs: opts.budgetMs,
  });
  const known = new Set(opts.known ?? []);
  if (opts.workers <= 1) {
    const stats = await drive(perWorker(0), known, opts.onFound);
    return merge(opts, [stats], Date.now() - start);
  }
  const workers = Array.from({ length: opts.workers }, (_, i) =>
    spawnTsWorker(DRIVER, { opts: perWorker(i), known: [...known] }),
  );
  const parts = await Promise.all(
    workers.map(
      (w) =>
        new Promise<DriveStats>((resolve, reject) => {
          w.on('message', (m: { found?: Found; stats?: DriveStats }) => {
            if (m.found) {
              if (!known.has(m.found.signature)) opts.onFound?.(m.found);
              known.add(m.found.signature);
              for (const other of workers)
                if (other !== w) other.postMessage({ known: m.found.signature });
            }
            if (m.stats) resolve(m.stats);
          });
          w.on('error', reject);
          w.on('exit', (code) => {
            if (code !== 0) reject(new Error(`fuzz worker exited with code ${code}`));
          });
        }),
    ),
  );
  return merge(opts, parts, Date.now() - start);
}

export function formatSummary(s: Summary): string {
  const lines = [
    `fuzz: seed ${s.seed}, ${s.workers} worker(s): ${s.runs} inputs in ${s.seconds.toFixed(1)} s = ${s.inputsPerSecond.toFixed(1)} inputs/s (+${s.shrinkRuns} shrink/minimise runs)`,
    `outcomes: ${Object.entries(s.outcomes)
      .sort()
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  ];
  if (s.failures.length === 0) lines.push('no failures');
  else {
    lines.push(`failures by signature (per million inputs):`);
    for (const f of s.failures) {
      lines.push(
        `  ${f.perMillion.toFixed(0).padStart(8)}/M  ${String(f.count).padStart(6)}  ${f.signature}`,
      );
    }
  }
  return lines.join('\n');
}
