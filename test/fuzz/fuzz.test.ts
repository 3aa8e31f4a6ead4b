/**
 * A fixed-seed slice of the fuzzer in `npm test`: STRATA_FUZZ_SECONDS (default 10; CI's whole run
 * must stay under 30 minutes on two cores, `npm run fuzz` runs as long as asked) of inputs
 * from seed STRATA_FUZZ_SEED (default 1), at most STRATA_FUZZ_RUNS. The inputs are a prefix of
 * one deterministic sequence per seed, so a failure here replays with
 * `npm run fuzz -- --seed <seed> --seconds <n>`. It fails on any failure, of a signature already
 * in the corpus too: a corpus file that passes says one input is fixed, not every input like it.
 */
import { expect, it } from 'vitest';
import { formatSummary, runFuzz } from '../../tools/fuzz/run.ts';
import { INPUT_BUDGET_MS } from '../../tools/fuzz/types.ts';

const seconds = Number(process.env.STRATA_FUZZ_SECONDS ?? 10);
const seed = Number(process.env.STRATA_FUZZ_SEED ?? 1);
const runs = Number(process.env.STRATA_FUZZ_RUNS ?? 100_000);

it(
  `fuzz slice: seed ${seed}, ${seconds} s`,
  async () => {
    // In npm test the slice shares two cores with the GPU test files, so wall time per input
    // runs up to ~3× what it is alone: the budget is 3 × 2 s here. `npm run fuzz` keeps 2 s.
    const summary = await runFuzz({
      seconds,
      seed,
      workers: 1,
      runs,
      known: [],
      shrinkMs: 5_000,
      budgetMs: 3 * INPUT_BUDGET_MS,
    });
    console.log(formatSummary(summary));
    const fresh = summary.found.map(
      (f) =>
        `${f.signature}\n    ${f.reason}\n    input (${f.input.kind}, ${f.input.origin}): ${JSON.stringify(f.input.text.slice(0, 400))}`,
    );
    expect(summary.runs).toBeGreaterThan(0);
    expect(fresh, `failures (replay: npm run fuzz -- --seed ${seed} --seconds ${seconds})`).toEqual(
      [],
    );
  },
  // Above the slice itself: worker start-up, and a last input that may run its full budget.
  (seconds + 60) * 1000,
);
