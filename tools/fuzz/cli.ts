/**
 * npm run fuzz -- --seconds N [--seed S] [--workers W] [--runs R] [--kinds dsl,yaml,json,hf]
 *                 [--no-corpus] [--json]
 * Fuzzes the front end, writes each new failure signature's minimised reproducer to
 * test/fuzz/corpus, and prints inputs/s and failures per million by signature. Exit 1 when
 * anything failed.
 */
import { parseArgs } from 'node:util';
import { addToCorpus, readCorpus } from './corpus.ts';
import { formatSummary, runFuzz } from './run.ts';
import { INPUT_KINDS, type InputKind } from './types.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    workers: { type: 'string', default: '1' },
    runs: { type: 'string', default: String(Number.MAX_SAFE_INTEGER) },
    kinds: { type: 'string' },
    'no-corpus': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

function int(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) {
    console.error(`fuzz: --${name} must be an integer, got '${v}'`);
    process.exit(2);
  }
  return n;
}

const kinds = values.kinds?.split(',').map((k) => k.trim()) as InputKind[] | undefined;
if (kinds?.some((k) => !INPUT_KINDS.includes(k))) {
  console.error(`fuzz: --kinds takes ${INPUT_KINDS.join(', ')}`);
  process.exit(2);
}
// A random seed unless given, always printed so that a run can be replayed.
const seed = values.seed === undefined ? (Math.random() * 2 ** 31) | 0 : int('seed', values.seed);
const writeCorpus = !values['no-corpus'];
const known = readCorpus().map((e) => e.reason.split(' | ')[0]!);
console.error(`fuzz: seed ${seed} (replay with --seed ${seed})`);

const summary = await runFuzz({
  seconds: int('seconds', values.seconds),
  seed,
  workers: Math.max(1, int('workers', values.workers)),
  runs: int('runs', values.runs),
  kinds,
  known,
  onFound: (f) => {
    const file = writeCorpus ? addToCorpus(f) : null;
    console.error(`new failure: ${f.signature}${file ? ` → test/fuzz/corpus/${file}` : ''}`);
  },
});
if (values.json) console.log(JSON.stringify(summary));
else console.log(formatSummary(summary));
process.exit(summary.failures.length ? 1 : 0);
