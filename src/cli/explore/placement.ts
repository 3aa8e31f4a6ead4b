/**
 * Where k attention layers go among n: the strategies of the hybrid studies (even spacing, front,
 * back, middle, explicit sets) and PostNAS's search space, every C(n, k) placement, sampled with
 * a seed when there are more than a cap.
 */
import { mulberry32 } from '../../import/random-init.ts';
import { UserError, oneOf } from '../command.ts';

export type Placement = { label: string; indices: number[] };

export const STRATEGIES = ['even', 'front', 'back', 'middle', 'indices:I,J,...', 'all'] as const;

/** Number of k-subsets of n, capped at limit + 1 (enough to know it is over). */
function choose(n: number, k: number, limit: number): number {
  let c = 1;
  for (let i = 0; i < k; i++) {
    c = (c * (n - i)) / (i + 1);
    if (c > limit) return limit + 1;
  }
  return Math.round(c);
}

function combinations(n: number, k: number): number[][] {
  const out: number[][] = [];
  const pick: number[] = [];
  const walk = (from: number) => {
    if (pick.length === k) return void out.push([...pick]);
    for (let i = from; i <= n - (k - pick.length); i++) {
      pick.push(i);
      walk(i + 1);
      pick.pop();
    }
  };
  walk(0);
  return out;
}

export interface PlacementOptions {
  n: number;
  k: number;
  cap: number;
  seed: number;
}

export function placements(strategy: string, o: PlacementOptions): Placement[] {
  const { n, k } = o;
  if (k < 1 || k > n) throw new UserError(`--keep ${k}: must be between 1 and the ${n} layers`);
  const range = (start: number) => Array.from({ length: k }, (_, i) => start + i);
  const one = (label: string, indices: number[]) => [{ label, indices }];
  if (strategy === 'even') {
    // The middle of each of k equal stretches: 4 of 32 gives 4, 12, 20, 28 (Jamba's layout).
    return one(
      'even',
      range(0).map((i) => Math.floor(((i + 0.5) * n) / k)),
    );
  }
  if (strategy === 'front') return one('front', range(0));
  if (strategy === 'back') return one('back', range(n - k));
  if (strategy === 'middle') return one('middle', range(Math.floor((n - k) / 2)));
  if (strategy.startsWith('indices:')) {
    const parts = strategy.slice('indices:'.length).split(',');
    const indices = parts.map((p) => {
      const i = /^\d+$/.test(p) ? Number(p) : NaN;
      if (!(i >= 0 && i < n))
        throw new UserError(`--placement ${strategy}: '${p}' is not a layer index in 0..${n - 1}`);
      return i;
    });
    if (new Set(indices).size !== indices.length)
      throw new UserError(`--placement ${strategy}: an index is listed twice`);
    return one(
      `at-${indices.join('.')}`,
      indices.sort((a, b) => a - b),
    );
  }
  if (strategy === 'all') {
    const count = choose(n, k, o.cap);
    const sets = count <= o.cap ? combinations(n, k) : sample(n, k, o.cap, o.seed);
    return sets.map((s) => ({ label: `at-${s.join('.')}`, indices: s }));
  }
  oneOf('placement', STRATEGIES, strategy);
  throw new Error(`placement: strategy '${strategy}' has no branch above`);
}

/** cap distinct k-subsets drawn uniformly (partial Fisher-Yates per draw), sorted for reading. */
function sample(n: number, k: number, cap: number, seed: number): number[][] {
  // Seeded, so a sampled sweep is the same on every run.
  const rnd = mulberry32(seed);
  const seen = new Set<string>();
  const out: number[][] = [];
  while (out.length < cap) {
    const pool = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(rnd() * (n - i));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    const s = pool.slice(0, k).sort((a, b) => a - b);
    const key = s.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(s);
  }
  return out.sort((a, b) => a.join(',').localeCompare(b.join(',')));
}
